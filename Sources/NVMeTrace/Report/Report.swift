import Foundation

/// Facts about one input file, for the report header.
public struct CaptureFileInfo: Sendable {
    public var name: String
    public var bytes: Int64?
    public var sha256: String?
    public var frames: Int
}

/// Everything a renderer needs: the capture, the session model and the rule results.
public struct Report: Sendable {
    public var version = NVMeTraceVersion.string
    public var files: [CaptureFileInfo]
    public var model: SessionModel
    public var findings: [Finding]
    public var unjudged: [Unjudged]
    /// Warnings from decoding (gaps, resynchronisation, malformed packets), counted.
    public var decodeWarnings: Int
    /// Warnings printed in full (the first ones).
    public var decodeWarningSamples: [String]
    public var readErrors: [String]
    /// The evidence capture written for the findings (`--evidence`).
    public var evidence: EvidenceInfo?

    public struct EvidenceInfo: Sendable {
        public var file: String
        public var packets: Int
        public var connections: [Int]
        public var snaplen: Int?

        public init(file: String, packets: Int, connections: [Int], snaplen: Int?) {
            self.file = file
            self.packets = packets
            self.connections = connections
            self.snaplen = snaplen
        }
    }

    /// The connections the findings involve, with their frame spans, for `EvidenceWriter`.
    public func evidenceConnections() -> [(Int, EvidenceWriter.Connection)] {
        var ids: [Int] = []
        for f in findings { for c in f.connections where !ids.contains(c) { ids.append(c) } }
        return ids.sorted().compactMap { id in
            model.connection(id).map { (id, EvidenceWriter.Connection(a: $0.host, b: $0.target, first: $0.firstRef, last: $0.lastRef)) }
        }
    }

    public init(files: [CaptureFileInfo], model: SessionModel, result: RuleResult,
                decodeWarnings: Int = 0, decodeWarningSamples: [String] = [], readErrors: [String] = []) {
        self.files = files
        self.model = model
        self.findings = result.findings
        self.unjudged = result.unjudged
        self.decodeWarnings = decodeWarnings
        self.decodeWarningSamples = decodeWarningSamples
        self.readErrors = readErrors
    }

    public var spanSeconds: Double {
        guard let start = model.captureStart else { return 0 }
        return Double(model.captureEnd.timeNs &- start.timeNs) / 1e9
    }

    public func count(_ severity: Severity) -> Int { findings.filter { $0.severity == severity }.count }

    /// Seconds since the first packet of the frame's file.
    public func relative(_ ref: FrameRef) -> Double {
        Double(ref.timeNs &- (fileStart[ref.file] ?? ref.timeNs)) / 1e9
    }

    /// First packet time per file index.
    public var fileStart: [Int: Int64] = [:]

    public func fileName(_ ref: FrameRef) -> String {
        ref.file >= 0 && ref.file < files.count ? files[ref.file].name : "?"
    }

    /// "discovery", "admin", "io" or "?" for a connection.
    public func kind(_ c: ConnectionModel) -> String {
        guard let qid = c.qid else { return "?" }
        if qid != 0 { return "io" }
        return c.isDiscovery ? "discovery" : "admin"
    }

    /// KATO (ms) the connection's Connect carried (0 on I/O queues, where the field is reserved).
    public func kato(_ c: ConnectionModel) -> UInt32? { c.connect?.kato }

    /// KATO as the text reports show it: an I/O queue shows its controller's in parentheses.
    public func katoText(_ c: ConnectionModel) -> String {
        guard let k = c.connect?.kato else { return "?" }
        if c.qid != 0, let ctl = c.controller, let ck = model.controllers[ctl].kato { return "(\(ck) ms)" }
        return "\(k) ms"
    }

    public func closedText(_ c: ConnectionModel) -> String {
        guard let end = c.end else { return "-" }
        guard let by = end.by else { return "open at end" }
        return "\(by.rawValue) \(end.how.rawValue)"
    }

    /// UTC time of a frame, ISO 8601 with milliseconds.
    /// Formatted by hand: an `ISO8601DateFormatter` costs about 2 ms to create (ICU calendar
    /// data), more than the rest of a small capture's report.
    public static func utc(_ ref: FrameRef) -> String {
        // Milliseconds rounded to nearest (as Foundation's formatter rounds), in integers.
        let ns = ref.timeNs
        let ms = ns >= 0 ? (ns / 500_000 + 1) / 2 : -((-(ns / 500_000) + 1) / 2)
        var (seconds, millis) = ms.quotientAndRemainder(dividingBy: 1000)
        if millis < 0 { seconds -= 1; millis += 1000 }
        var t = time_t(seconds)
        var tm = tm()
        guard gmtime_r(&t, &tm) != nil else { return "?" }
        func pad(_ v: Int, _ width: Int) -> String {
            let digits = String(v)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))"
            + "T\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(Int(millis), 3))Z"
    }

    /// Exit status for `--fail-on`: 1 when a finding is at or above the threshold.
    public func hasFindings(atOrAbove threshold: Severity?) -> Bool {
        guard let threshold else { return false }
        return findings.contains { $0.severity >= threshold }
    }
}
