/// The daemon's analysis (`nvmetrace monitor`, issue #17): the live pipeline, session model and
/// rules, plus what a fleet needs of them — events as they happen (findings, associations up and
/// down, outages), Prometheus metrics, and memory bounded by the live connections: what ended
/// more than `retainNs` ago is retired from the model (`SessionTracker.retire`), having been
/// counted and reported when it happened.
///
/// Call order, on the capture thread: `packet` for each packet, `tick` with the wall clock
/// whenever the capture loop wakes (at least every 100 ms), `finish` once at the end.
public final class Monitor {
    public let live: LiveAnalysis
    public let metrics: MonitorMetrics
    /// What ended this long ago is retired (default 10 minutes: longer than any rule looks back).
    public var retainNs: Int64 = 600 * 1_000_000_000
    /// How often retirement runs.
    public var retireEveryNs: Int64 = 10 * 1_000_000_000
    /// Called for each event, in the order found.
    public var onEvent: ((MonitorEvent) -> Void)?
    /// The evidence ring (`--ring`): every packet goes into it, and each finding's evidence is
    /// cut from it when the finding fires.
    public var ring: EvidenceRing?
    /// Why the last evidence cut failed (nil when it did not).
    public private(set) var ringError: CaptureError?

    /// Admin connections whose association was announced up, and down.
    private var announcedUp: Set<Int> = []
    private var announcedDown: Set<Int> = []
    private var pruneAnnounced = false
    private var lastRetireNs: Int64 = 0
    private let tap: MonitorTap

    public init(device: String, options: AnalyzerOptions, engine: RuleEngine, metrics: MonitorMetrics) {
        live = LiveAnalysis(device: device, options: options, engine: engine)
        self.metrics = metrics
        tap = MonitorTap(metrics: metrics)
        live.analysis.tap = tap
        // Latency goes to the histograms, not into the model's per-connection distributions, and
        // no Keep Alive timeline is drawn: a few exchanges per connection, not 1024.
        live.analysis.modelLatency = false
        live.analysis.tracker.keepAliveSample = 8
        live.onFinding = { [unowned self] f, report in
            metrics.findingReported(f)
            onEvent?(.finding(f, report, evidence: cutEvidence(f, report)))
        }
        live.onEvaluation = { [unowned self] report in evaluated(report) }
    }

    public func packet(_ p: Packet) {
        ring?.write(p)
        live.packet(p)
    }

    /// The packets the ring holds of a finding's connections, in a pcap of their own (none for a
    /// finding of no connection).
    private func cutEvidence(_ f: Finding, _ report: Report) -> EvidenceCut? {
        ringError = nil
        guard let ring else { return nil }
        let connections = f.connections.compactMap { report.model.connection($0) }.map {
            // Up to now: every packet of the connection the ring still holds.
            EvidenceWriter.Connection(a: $0.host, b: $0.target, first: $0.firstRef, last: report.model.captureEnd, keepWhole: true)
        }
        guard !connections.isEmpty else { return nil }
        let name = "\(EvidenceRing.stamp(f.ref.timeNs))-\(f.rule)-c\(f.connection.map(String.init) ?? "-")"
        do {
            let cut = try ring.cut(connections, name: name)
            return EvidenceCut(file: cut.path, packets: cut.packets)
        } catch {
            ringError = error
            return nil
        }
    }

    /// The wall clock moved on: rules re-run on their interval, retirement on its own.
    public func tick(nowNs: Int64) {
        live.tick(nowNs: nowNs)
        if nowNs &- lastRetireNs >= retireEveryNs {
            lastRetireNs = nowNs
            let r = live.retire(endedBefore: nowNs &- retainNs)
            if r != Retired() { pruneAnnounced = true }
            metrics.retired(r)
        }
    }

    /// The capture stopped: every connection is flushed, the last events said.
    @discardableResult
    public func finish(nowNs: Int64) -> Report {
        let report = live.finish(nowNs: nowNs)
        evaluated(report)
        return report
    }

    /// Associations that came up or went down since the last evaluation; metrics brought up to
    /// date.
    private func evaluated(_ report: Report) {
        let model = report.model
        var seen: Set<Int> = []
        for ctl in model.controllers {
            guard let admin = model.connection(ctl.adminConnection) else { continue }
            if pruneAnnounced { seen.insert(admin.id) }
            let kind = Self.kind(ctl)
            if announcedUp.insert(admin.id).inserted {
                metrics.associationCreated(kind: kind)
                onEvent?(.associationUp(AssociationEvent(ctl, admin, model: model)))
                if let outage = OutageEvent(after: ctl, model: model) {
                    metrics.outage(seconds: outage.seconds)
                    onEvent?(.outage(outage))
                }
            }
            if let close = AssociationEnd.firstClose(ctl, model), let by = close.by, announcedDown.insert(admin.id).inserted {
                metrics.associationEnded(kind: kind, by: by, how: close.how)
                var e = AssociationEvent(ctl, admin, model: model)
                e.end = close
                e.cause = AssociationEnd(ctl, model).map { Self.cause($0.cause) }
                onEvent?(.associationDown(e))
            }
        }
        if pruneAnnounced {
            announcedUp.formIntersection(seen)
            announcedDown.formIntersection(seen)
            pruneAnnounced = false
        }
        metrics.update(from: report)
        metrics.tracked(live.analysis.tracker.held)
    }

    static func kind(_ ctl: ControllerModel) -> String {
        ctl.discovery.map { $0 ? "discovery" : "io" } ?? "unknown"
    }

    static func cause(_ c: AssociationEnd.Cause) -> String {
        switch c {
        case .hostShutdown: "host-shutdown"
        case .hostReset: "host-reset"
        case .hostErrorRecovery: "host-error-recovery"
        case .target: "target"
        }
    }
}

/// What the daemon takes from the pipeline beside the model: each Keep Alive's interval, each
/// timed command's latency, each ended connection's TCP figures. State per live connection only.
final class MonitorTap: AnalyzerConsumer {
    let metrics: MonitorMetrics
    /// The last Keep Alive per connection (removed when the connection ends).
    private var lastKeepAlive: [Int: Int64] = [:]

    init(metrics: MonitorMetrics) { self.metrics = metrics }

    func pdu(_ record: LentPDURecord) {
        guard case .command(let cmd) = record.body, case .keepAlive = cmd.detail, record.fromHost else { return }
        let t = record.pdu.ref.timeNs
        if let last = lastKeepAlive[record.connection], t > last {
            metrics.keepAliveInterval(seconds: Double(t - last) / 1e9)
        }
        lastKeepAlive[record.connection] = t
    }

    func commandsTimed(connection: Int, _ timings: [CommandTiming]) {
        for t in timings where t.latencyNs >= 0 { metrics.commandLatency(t.kind, seconds: Double(t.latencyNs) / 1e9) }
    }

    func connectionEnded(_ summary: ConnectionSummary) {
        lastKeepAlive[summary.id] = nil
        guard summary.nvmeTCP else { return }
        metrics.tcpEnded(summary)
    }
}
