/// The live side of the analysis: packets from a capture device go through the same pipeline,
/// session model and rules as a file; the rules are re-run on a clock tick so findings appear as
/// soon as they are true — a silence passing KATO is noticed even when no packet arrives.
public final class LiveAnalysis {
    public let analysis: CaptureAnalysis
    public let engine: RuleEngine
    /// Called once per new finding, as soon as it is known.
    public var onFinding: ((Finding, Report) -> Void)?
    /// How often the rules are re-run.
    public var intervalNs: Int64 = 500_000_000
    private var lastEvaluationNs: Int64 = 0
    /// Findings reported, by key (`key(_:)`), with their rule and connections.
    private var reported: [String: (rule: String, connections: [Int])] = [:]
    /// Set when connections were retired: the next evaluation keeps only the keys of findings it
    /// still makes (those of what was retired never come back), so `reported` stays bounded.
    private var pruneReported = false
    public let fileIndex: Int

    public init(device: String, options: AnalyzerOptions, engine: RuleEngine) {
        analysis = CaptureAnalysis(options: options)
        analysis.live = true
        self.engine = engine
        fileIndex = analysis.analyzer.addFile(device)
    }

    public func packet(_ p: Packet) {
        analysis.analyzer.noteCut(p)
        analysis.analyzer.process(p)
    }

    /// The wall clock moved on: re-run the rules when the interval has passed.
    /// Called with the report of every evaluation (after `onFinding` for its new findings).
    public var onEvaluation: ((Report) -> Void)?

    public func tick(nowNs: Int64) {
        guard nowNs &- lastEvaluationNs >= intervalNs else { return }
        // Closed connections end on the clock too, so that a daemon can retire them.
        if analysis.analyzer.packets > 0 { analysis.analyzer.flows.clock(now(nowNs)) }
        lastEvaluationNs = nowNs
        evaluate(nowNs: nowNs)
    }

    /// Runs the rules over the model as of `nowNs` and reports findings not reported before.
    public func evaluate(nowNs: Int64) {
        guard analysis.analyzer.packets > 0 else { return }
        // Without command latency: findings only (their lines do not print it).
        let report = analysis.report(engine: engine, end: now(nowNs), latency: false)
        if pruneReported {
            prune(report)
            pruneReported = false
        } else {
            for f in report.findings where reported.updateValue((f.rule, f.connections), forKey: Self.key(f)) == nil {
                onFinding?(f, report)
            }
        }
        onEvaluation?(report)
    }

    /// The first evaluation after a retirement: only the findings it still makes are kept. A
    /// finding whose first connection was retired comes back with another first connection (a
    /// reconnect loop whose oldest association went): when a new finding shares a connection with
    /// such a one of the same rule, it is that finding, not a new one.
    private func prune(_ report: Report) {
        var current: [String: (rule: String, connections: [Int])] = [:]
        var fresh: [Finding] = []
        for f in report.findings {
            let key = Self.key(f)
            current[key] = (f.rule, f.connections)
            if reported[key] == nil { fresh.append(f) }
        }
        let orphans = reported.filter { key, value in
            current[key] == nil && value.connections.first.map { report.model.position(of: $0) == nil } ?? false
        }.values
        for f in fresh {
            let mine = Set(f.connections)
            if orphans.contains(where: { $0.rule == f.rule && $0.connections.contains(where: mine.contains) }) { continue }
            onFinding?(f, report)
        }
        reported = current
    }

    /// Retires what the session model no longer needs (`SessionTracker.retire`): connections
    /// that ended before `cutoffNs`, and the controllers and chains made only of them.
    @discardableResult
    public func retire(endedBefore cutoffNs: Int64) -> Retired {
        let r = analysis.tracker.retire(endedBefore: cutoffNs)
        if r != Retired() { pruneReported = true }
        return r
    }

    /// The capture stopped at `nowNs`: flush every connection and build the final report.
    public func finish(nowNs: Int64) -> Report {
        analysis.analyzer.finish()
        let report = analysis.report(engine: engine, end: now(nowNs))
        for f in report.findings where reported.updateValue((f.rule, f.connections), forKey: Self.key(f)) == nil {
            onFinding?(f, report)
        }
        return report
    }

    private func now(_ ns: Int64) -> FrameRef {
        FrameRef(file: fileIndex, frame: analysis.analyzer.lastRef.frame, timeNs: ns)
    }

    /// A finding is the same finding on later ticks when its rule, connection and first piece of
    /// evidence agree (the evidence grows, a silence's length grows, its start does not).
    static func key(_ f: Finding) -> String {
        let first = f.evidence.first.map { "\($0.ref.file):\($0.ref.frame)" } ?? "-"
        return "\(f.rule)|\(f.connection.map(String.init) ?? "-")|\(first)"
    }
}
