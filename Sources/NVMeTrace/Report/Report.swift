import Foundation

/// Facts about one input file, for the report header.
public struct CaptureFileInfo: Sendable {
    public var name: String
    public var bytes: Int64?
    public var sha256: String?
    public var frames: Int
}

/// What kind of capture it was, for the report's header: field captures are headers-only and
/// start mid-stream, and every verdict is only as good as what was captured.
public struct CaptureQuality: Sendable, Equatable {
    /// The snap length each file's header declares (live: the `-s` asked for).
    public var snapLengths: [Int] = []
    /// Packets stored shorter than they were on the wire, and the longest of those as stored (the
    /// snap length that was applied).
    public var packetsCut = 0
    public var cutTo = 0
    /// NVMe/TCP stream bytes captured, cut by the snap length, and lost before the capture point
    /// (over all connections and both directions).
    public var capturedBytes: UInt64 = 0
    public var notCapturedBytes: UInt64 = 0
    public var lostBytes: UInt64 = 0
    /// Bytes that could not be framed as PDUs, and PDUs whose header was cut.
    public var unframedBytes: UInt64 = 0
    public var partialHeaders = 0
    /// Connections picked up mid-stream (their ICReq and Connect not in the capture).
    public var midStream: [Int] = []

    public init() {}

    /// Every NVMe/TCP byte the connections announced was captured.
    public var isWhole: Bool { notCapturedBytes == 0 && lostBytes == 0 && midStream.isEmpty && unframedBytes == 0 }

    /// The quality of the capture from the model's connections and the reader's counts.
    public static func of(_ model: SessionModel, snapLengths: [Int], packetsCut: Int, cutTo: Int) -> CaptureQuality {
        var q = CaptureQuality()
        q.snapLengths = snapLengths
        q.packetsCut = packetsCut
        q.cutTo = cutTo
        for c in model.connections {
            q.capturedBytes += c.capture.capturedBytes
            q.notCapturedBytes += c.capture.notCapturedBytes
            q.lostBytes += c.capture.lostBytes
            q.unframedBytes += c.capture.unframedBytes
            q.partialHeaders += c.capture.partialHeaders
            if c.midStream { q.midStream.append(c.id) }
        }
        return q
    }

    /// One line for the report's header.
    public func summary(connections: Int) -> String {
        var parts: [String] = []
        if packetsCut > 0 {
            let total = capturedBytes + notCapturedBytes + lostBytes
            let share = total > 0 ? Double(notCapturedBytes) / Double(total) * 100 : 0
            parts.append("packets cut to \(cutTo) bytes (a snap length; \(packetsCut) packet\(packetsCut == 1 ? "" : "s") cut): \(formatBytes(notCapturedBytes)) of \(formatBytes(total)) of NVMe/TCP stream bytes (\(String(format: "%.0f", share))%) not captured, \(partialHeaders) PDU header\(partialHeaders == 1 ? "" : "s") cut")
        } else {
            let snap = Set(snapLengths).sorted()
            parts.append("whole packets" + (snap.isEmpty ? "" : " (snap length \(snap.map(String.init).joined(separator: ", ")))"))
        }
        if lostBytes > 0 { parts.append("\(formatBytes(lostBytes)) lost before the capture point") }
        if unframedBytes > 0 { parts.append("\(formatBytes(unframedBytes)) not framed as PDUs") }
        if midStream.isEmpty {
            switch connections {
            case 0: break
            case 1: parts.append("the connection from its start")
            case 2: parts.append("both connections from their start")
            default: parts.append("all \(connections) connections from their start")
            }
        } else {
            parts.append("\(midStream.count) of \(connections) connection\(connections == 1 ? "" : "s") picked up mid-stream (\(midStream.map { "#\($0)" }.joined(separator: ", ")): no ICReq or Connect in the capture)")
        }
        return parts.joined(separator: "; ")
    }
}

/// "1.2 MB", "340 kB", "512 bytes".
func formatBytes(_ n: UInt64) -> String {
    if n >= 1_000_000 { return String(format: "%.1f MB", Double(n) / 1e6) }
    if n >= 10_000 { return String(format: "%.0f kB", Double(n) / 1e3) }
    return "\(n) bytes"
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
    /// Warnings by stable id.
    public var decodeWarningCounts: [Diagnostic.Kind: Int] = [:]
    /// Warnings printed in full (the first ones).
    public var decodeWarningSamples: [String]
    public var readErrors: [String]
    /// The evidence capture written for the findings (`--evidence`).
    public var evidence: EvidenceInfo?
    /// What kind of capture it was.
    public var capture = CaptureQuality()
    /// The configuration the rules judged with (the HTML timeline draws the same effective KATO).
    public var ruleConfig = RuleConfig()

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

    /// The connections the findings involve, with their frame spans, for `EvidenceWriter`; admin
    /// queues are kept whole (little data, and the Identify data the keep-alive rules rest on).
    public func evidenceConnections() -> [(Int, EvidenceWriter.Connection)] {
        var ids: [Int] = []
        for f in findings { for c in f.connections where !ids.contains(c) { ids.append(c) } }
        return ids.sorted().compactMap { id in
            model.connection(id).map { (id, EvidenceWriter.Connection(a: $0.host, b: $0.target, first: $0.firstRef, last: $0.lastRef,
                                                           keepWhole: $0.queueKind == .admin)) }
        }
    }

    /// The failed connection attempts behind `connect-refused` findings (the SYNs, and the RSTs
    /// that refused them): no connections of the model, so listed apart. The latest attempts per
    /// target port (`FailedConnects.recentKept`), as the model keeps them.
    public func evidenceAttempts() -> [EvidenceWriter.Connection] {
        guard findings.contains(where: { $0.rule == "connect-refused" }) else { return [] }
        return model.failedConnects.flatMap { f in
            f.recent.map { EvidenceWriter.Connection(a: $0.client, b: f.target, first: $0.attempt.syn, last: $0.attempt.last, keepWhole: true) }
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

    /// "discovery", "admin", "io" or "?" for a connection: an I/O queue, the admin queue of a
    /// discovery or an I/O controller, or unknown (also an admin queue whose controller type the
    /// capture does not tell: never "admin" by default).
    public func kind(_ c: ConnectionModel) -> String {
        switch c.queueKind {
        case .some(.io): "io"
        case .some(.admin): c.discovery.map { $0 ? "discovery" : "admin" } ?? "?"
        case .none: "?"
        }
    }

    /// True when the connection's kind, queue or controller rests on an inference.
    public func kindInferred(_ c: ConnectionModel) -> Bool {
        c.inferredQueueBasis != nil || c.discoveryBasis?.inferred == true || c.controllerBasis?.inferred == true
    }

    /// The kind as the tables show it: `~` marks an inference (listed under "inferred").
    public func kindText(_ c: ConnectionModel) -> String { kind(c) + (kindInferred(c) ? "~" : "") }

    /// The queue id as the tables show it: from the Connect, else `0~`/`io~` when inferred.
    public func qidText(_ c: ConnectionModel) -> String {
        if let q = c.qid { return String(q) }
        switch c.queueKind {
        case .some(.admin): return "0~"
        case .some(.io): return "io~"
        case .none: return "?"
        }
    }

    /// KATO (ms) the connection's Connect carried (0 on I/O queues, where the field is reserved).
    public func kato(_ c: ConnectionModel) -> UInt32? { c.connect?.kato }

    /// KATO as the text reports show it: an I/O queue shows its controller's in parentheses.
    public func katoText(_ c: ConnectionModel) -> String {
        if c.queueKind == .io, let ctl = c.controller, let ck = model.controllers[ctl].kato { return "(\(ck) ms)" }
        guard let k = c.connect?.kato else { return "?" }
        return "\(k) ms"
    }

    /// Every inference the model rests on, per connection, with its evidence: the reports list
    /// them so that no inferred link or kind passes for a fact.
    public var inferences: [(connection: Int, what: String)] {
        var out: [(Int, String)] = []
        for c in model.connections {
            if let b = c.inferredQueueBasis { out.append((c.id, "\(c.queueKind == .io ? "I/O" : "admin") queue: \(b.evidence)")) }
            if let b = c.discoveryBasis, b.inferred, let d = c.discovery {
                out.append((c.id, "\(d ? "discovery controller" : "I/O controller"): \(b.evidence)"))
            }
            if let b = c.controllerBasis, b.inferred, let ctl = c.controller {
                out.append((c.id, "I/O queue of controller \(ctl) (admin queue connection \(model.controllers[ctl].adminConnection)): \(b.evidence)"))
            }
            if let ctl = c.controller, model.controllers[ctl].adminConnection == c.id, let b = model.controllers[ctl].chainBasis, b.inferred {
                out.append((c.id, "reconnect of the previous association in its chain: \(b.evidence)"))
            }
        }
        return out
    }

    /// What a finding rests on, in one line: the facts read from the capture, then what was
    /// inferred ("inferred: …").
    public static func basisText(_ f: Finding) -> String {
        f.basis.map { ($0.inferred ? "inferred: " : "") + $0.evidence }.joined(separator: "; ")
    }

    /// A connection's TCP health in a few words: "RTT 0.21 ms, 8 retransmitted (10%), zero window
    /// 3 s (target)"; "-" when the capture shows nothing of note and no handshake. `rtt: false`
    /// leaves the handshake RTT out (the text report's table, which shows only trouble).
    public func tcpText(_ c: ConnectionModel, rtt: Bool = true) -> String {
        let t = c.tcp
        var parts: [String] = []
        if rtt, let ns = t.handshakeRTTNs { parts.append("RTT \(Self.milliseconds(ns))") }
        if t.retransmittedSegments > 0 {
            parts.append("\(t.retransmittedSegments) retransmitted (\(TCPLossRule.percent(Double(t.retransmittedSegments) / Double(max(t.packets, 1)))))")
        }
        if t.outOfOrderSegments > 0 { parts.append("\(t.outOfOrderSegments) out of order") }
        if let z = t.longestZeroWindow { parts.append("zero window \(formatSeconds(Double(z.ns) / 1e9)) (\(z.side.rawValue))") }
        if t.missingBytes > 0 { parts.append("\(t.missingBytes) B missing") }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }

    /// Any connection whose TCP shows trouble (retransmissions, reordering, zero windows, bytes
    /// missing from the capture).
    public var anyTCPTrouble: Bool {
        model.connections.contains { c in
            let t = c.tcp
            return t.retransmittedSegments > 0 || t.outOfOrderSegments > 0 || t.zeroWindows > 0 || t.missingBytes > 0
        }
    }

    /// "0.21 ms", "12.3 ms", "1.25 s". In integers: a report of many connections formats one
    /// per connection, and a Double's description costs ten times as much.
    static func milliseconds(_ ns: Int64) -> String {
        guard ns >= 0 else { return "-" }
        if ns >= 1_000_000_000 { return formatSeconds(Double(ns) / 1e9) }
        if ns >= 10_000_000 {
            let tenths = (ns + 50_000) / 100_000        // 12.3 ms
            return "\(tenths / 10).\(tenths % 10) ms"
        }
        let hundredths = (ns + 5_000) / 10_000          // 0.21 ms, 9.72 ms
        let frac = hundredths % 100
        return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac) ms"
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
