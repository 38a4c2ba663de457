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
    private var reported: Set<String> = []
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
        lastEvaluationNs = nowNs
        evaluate(nowNs: nowNs)
    }

    /// Runs the rules over the model as of `nowNs` and reports findings not reported before.
    public func evaluate(nowNs: Int64) {
        guard analysis.analyzer.packets > 0 else { return }
        // Without command latency: findings only (their lines do not print it).
        let report = analysis.report(engine: engine, end: now(nowNs), latency: false)
        for f in report.findings {
            if reported.insert(Self.key(f)).inserted { onFinding?(f, report) }
        }
        onEvaluation?(report)
    }

    /// The capture stopped at `nowNs`: flush every connection and build the final report.
    public func finish(nowNs: Int64) -> Report {
        analysis.analyzer.finish()
        let report = analysis.report(engine: engine, end: now(nowNs))
        for f in report.findings {
            if reported.insert(Self.key(f)).inserted { onFinding?(f, report) }
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
