import Crypto
import Foundation

/// The whole offline analysis: decode pipeline, session model, rules, report.
public final class CaptureAnalysis {
    public let analyzer: Analyzer
    public let tracker: SessionTracker
    /// Decode warnings: how many, by stable id (`Diagnostic.Kind`), and the first few.
    public var warningCount: Int { feed.warningCount }
    public var warningCounts: [Diagnostic.Kind: Int] { feed.warningCounts }
    public var warningSamples: [String] { feed.warningSamples }
    public private(set) var readErrors: [String] = []
    /// Called for each decode warning as it happens (the CLI prints them unless quiet).
    public var onWarning: ((Diagnostic) -> Void)? {
        get { feed.onWarning }
        set { feed.onWarning = newValue }
    }
    public static let warningSampleLimit = 20
    /// Inputs are interface names, not files (no sizes or hashes).
    public var live = false
    /// Live: the snap length asked of each interface.
    public var liveSnapLengths: [Int] = []
    private let feed: Feed

    /// A second consumer of the pipeline's output, called after the session model for each PDU,
    /// timed command and connection end (a daemon's metrics). Its `detail` is not asked: it gets
    /// what the model gets.
    public var tap: (any AnalyzerConsumer)? {
        get { feed.tap }
        set { feed.tap = newValue }
    }
    /// Whether command latencies go into the model's distributions (`SessionModel.latency`).
    public var modelLatency: Bool {
        get { feed.modelLatency }
        set { feed.modelLatency = newValue }
    }

    /// The analyzer's consumer: PDUs and connection summaries to the session model, warnings
    /// counted. Holds no reference back to the analyzer or to this analysis.
    final class Feed: AnalyzerConsumer {
        let tracker: SessionTracker
        let detail: RecordDetail
        var warningCount = 0
        var warningCounts: [Diagnostic.Kind: Int] = [:]
        var warningSamples: [String] = []
        var onWarning: ((Diagnostic) -> Void)?
        /// A second consumer that sees what the model sees, after it (a daemon's metrics).
        var tap: (any AnalyzerConsumer)?
        /// Command latencies go into the model (a daemon takes them into histograms of its own).
        var modelLatency = true

        init(tracker: SessionTracker, detail: RecordDetail) {
            self.tracker = tracker
            self.detail = detail
        }

        func pdu(_ record: LentPDURecord) {
            tracker.record(record)
            tap?.pdu(record)
        }
        func hostBytesLost(connection: Int, ref: FrameRef) { tracker.hostBytesLost(connection: connection) }
        func commandsTimed(connection: Int, _ timings: [CommandTiming]) {
            if modelLatency { tracker.commandsTimed(connection: connection, timings) }
            tap?.commandsTimed(connection: connection, timings)
        }
        func connectionClosed(_ summary: ConnectionSummary) { tracker.connectionClosed(summary) }
        func connectionEnded(_ summary: ConnectionSummary) {
            tracker.connectionEnded(summary)
            tap?.connectionEnded(summary)
        }
        func diagnostic(_ d: Diagnostic) {
            warningCount += 1
            warningCounts[d.kind, default: 0] += 1
            if warningSamples.count < CaptureAnalysis.warningSampleLimit { warningSamples.append(d.description) }
            onWarning?(d)
        }
    }

    /// `detail`: the session model needs no more of plain I/O PDUs than a summary; `.full`
    /// decodes every PDU (the model comes out the same: LentRecordTests).
    public init(options: AnalyzerOptions = AnalyzerOptions(), detail: RecordDetail = .summaryForPlainIO) {
        analyzer = Analyzer(options: options)
        tracker = SessionTracker()
        feed = Feed(tracker: tracker, detail: detail)
        analyzer.consumer = feed
    }

    /// Reads the files in order (one continuing capture). Errors are recorded and reading goes
    /// on with the next file; returns false when any file could not be read completely.
    @discardableResult
    public func read(paths: [String]) -> Bool {
        var ok = true
        for p in paths {
            do { try analyzer.read(path: p) } catch {
                readErrors.append(error.description)
                ok = false
            }
        }
        analyzer.finish()
        return ok
    }

    /// The session model as of the last packet, or of `end` (a live capture's clock); `latency`:
    /// with command latency (`SessionTracker.model`).
    public func model(end: FrameRef? = nil, latency: Bool = true) -> SessionModel {
        var captureEnd = analyzer.lastRef
        if let end, end.timeNs > captureEnd.timeNs { captureEnd = end }
        return tracker.model(files: analyzer.fileNames, packets: analyzer.packets, captureStart: analyzer.firstRef,
                             captureEnd: captureEnd, latency: latency)
    }

    /// Runs the rules and assembles the report. `hashFiles` adds each file's SHA-256 (read again
    /// from disk; not possible for standard input).
    public func report(engine: RuleEngine = RuleEngine(), hashFiles: Bool = false, end: FrameRef? = nil, latency: Bool = true) -> Report {
        let model = model(end: end, latency: latency)
        let files = analyzer.fileNames.enumerated().map { i, name in
            CaptureFileInfo(name: live ? name + " (live)" : name, bytes: live ? nil : Self.size(of: name),
                            sha256: hashFiles && !live ? Self.sha256(of: name) : nil,
                            frames: analyzer.framesPerFile[i] ?? 0)
        }
        var r = Report(files: files, model: model, result: engine.run(model), decodeWarnings: warningCount,
                       decodeWarningSamples: warningSamples, readErrors: readErrors)
        r.decodeWarningCounts = warningCounts
        r.ruleConfig = engine.config
        r.capture = CaptureQuality.of(model, snapLengths: live ? liveSnapLengths : analyzer.snapLengths,
                                      packetsCut: analyzer.packetsCut, cutTo: analyzer.longestCutPacket)
        r.fileStart = analyzer.fileStartNs
        return r
    }

    /// lstat(2)'s size, as FileManager.attributesOfItem(atPath:) gives it (a symbolic link's own
    /// size), without that call's dictionary of attributes (~0.45 million instructions once per
    /// process, most of it a run-time protocol conformance lookup).
    static func size(of path: String) -> Int64? {
        guard path != "-" else { return nil }
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    static func sha256(of path: String) -> String? {
        guard path != "-", let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        var hasher = SHA256()
        while true {
            guard let chunk = try? h.read(upToCount: 1 << 20), !chunk.isEmpty else { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { hex2($0) }.joined()
    }
}
