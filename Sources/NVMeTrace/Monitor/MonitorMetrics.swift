import Synchronization
import Prometheus

/// What a monitoring daemon exposes to Prometheus (issue #17), in its naming conventions
/// (`_total` counters, base units, `nvmetrace_` prefix) and with bounded label sets: labels are
/// rule names and severities (a fixed list), connection kinds and states, never a CID, a frame or
/// an ephemeral port.
///
/// Updated from the live analysis: `findingReported` for each new finding, `update(from:)` with
/// the report of each evaluation (every 100 ms of wall clock), `capture(received:dropped:)` with
/// libpcap's counters.
public final class MonitorMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    private let findings: [String: Counter]
    private let connections: [String: Gauge]
    private let katoZeroDiscovery: Gauge
    private let keepAliveOverKATO: Gauge
    private let controllers: Gauge
    private let packetsReceived: Counter
    private let packetsDroppedKernel: Counter
    private let packetsDroppedInterface: Counter
    /// libpcap's counters as last seen (its counters are cumulative; Prometheus counters are
    /// increased by the difference).
    private let lastCapture = Mutex<(UInt32, UInt32, UInt32)>((0, 0, 0))
    private let created: [String: Counter]
    private let ended: [String: Counter]
    private let outages: ValueHistogram
    private let keepAliveIntervals: ValueHistogram
    private let latency: [String: ValueHistogram]
    private let retransmitted: [String: Counter]
    private let zeroWindow: [String: Counter]
    private let trackedConnections: Gauge
    private let trackedControllers: Gauge
    private let retiredConnections: Counter
    private let residentMemory: Gauge
    /// The per-controller gap gauges: at most `maxControllerSeries`, then one overflow series.
    private let perController = Mutex<[String: Gauge]>([:])
    public let maxControllerSeries: Int
    /// Label value of the overflow series (the largest gap among controllers past the cap).
    public static let overflow = "_other"

    /// Association kinds (`Monitor.kind`), the sides that close and how.
    static let associationKinds = ["discovery", "io", "unknown"]
    static let sides = ["host", "target"]
    static let closes: [(ConnectionEnd.How, String)] = [(.fin, "fin"), (.rst, "rst"), (.termReq, "termreq")]
    /// Command classes of the latency histograms: a fixed list (opcodes outside it are "other").
    static let commandClasses: [(queue: String, command: String)] = [
        ("io", "read"), ("io", "write"), ("io", "flush"), ("io", "other"),
        ("admin", "keep-alive"), ("admin", "identify"), ("admin", "get-log-page"), ("admin", "features"), ("admin", "other"),
        ("fabrics", "connect"), ("fabrics", "property"), ("fabrics", "other"),
    ]
    /// Seconds: 50 µs to 60 s (NVMe/TCP reads on a LAN take ~100 µs; the host's timeouts are 30 and 60 s).
    static let latencyBuckets: [Double] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    /// Seconds: a Linux host sends a Keep Alive every KATO/2 (KATO/4 with TBKAS); KATOs are 5 to 120 s.
    static let keepAliveBuckets: [Double] = [0.5, 1, 2, 2.5, 3, 5, 7.5, 10, 15, 30, 60, 120]
    /// Seconds: reconnect_delay is 10 s, ctrl_loss_tmo 600 s.
    static let outageBuckets: [Double] = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600]

    /// Connection kinds and states, the label values of `nvmetrace_connections`.
    static let kinds = ["discovery", "admin", "io", "unknown"]
    static let states = ["open", "closed"]

    /// Counters for every rule and severity it takes, made up front: a series that appears only
    /// when its first finding comes breaks `rate()` and alerts on `increase()`.
    public convenience init(maxControllerSeries: Int = 64) {
        self.init(rules: RuleEngine.allRules.map { r in (r.id, r.severities.split(separator: "/").compactMap { Severity(rawValue: String($0)) }) },
                  maxControllerSeries: maxControllerSeries)
    }

    public init(rules: [(name: String, severities: [Severity])], maxControllerSeries: Int = 64) {
        self.maxControllerSeries = maxControllerSeries
        var f: [String: Counter] = [:]
        for rule in rules {
            for s in rule.severities {
                f[rule.name + "/" + s.rawValue] = registry.makeCounter(
                    name: "nvmetrace_findings_total", labels: [("rule", rule.name), ("severity", s.rawValue)],
                    help: "Findings reported, by rule and severity.")
            }
        }
        findings = f
        var c: [String: Gauge] = [:]
        for k in Self.kinds {
            for s in Self.states {
                c[k + "/" + s] = registry.makeGauge(name: "nvmetrace_connections", labels: [("kind", k), ("state", s)],
                                                    help: "NVMe/TCP connections seen, by kind and whether they are still open.")
            }
        }
        connections = c
        controllers = registry.makeGauge(name: "nvmetrace_controllers", help: "Controllers (associations) seen.")
        katoZeroDiscovery = registry.makeGauge(
            name: "nvmetrace_discovery_kato_zero_controllers",
            help: "Persistent discovery controllers whose Connect carried KATO 0 (NVMe Base 2.1; Linux commit 2e482655019a).")
        keepAliveOverKATO = registry.makeGauge(
            name: "nvmetrace_keep_alive_gap_over_kato_max",
            help: "Largest current silence of an open controller's host, as a fraction of its KATO (1 or more: past its keep-alive timer).")
        packetsReceived = registry.makeCounter(name: "nvmetrace_capture_packets_received_total", help: "Packets libpcap's filter received.")
        packetsDroppedKernel = registry.makeCounter(name: "nvmetrace_capture_packets_dropped_total", labels: [("by", "kernel")],
                                                    help: "Packets dropped before nvmetrace saw them, by the kernel or the interface.")
        packetsDroppedInterface = registry.makeCounter(name: "nvmetrace_capture_packets_dropped_total", labels: [("by", "interface")],
                                                       help: "Packets dropped before nvmetrace saw them, by the kernel or the interface.")
        var cr: [String: Counter] = [:]
        var en: [String: Counter] = [:]
        for k in Self.associationKinds {
            cr[k] = registry.makeCounter(name: "nvmetrace_associations_created_total", labels: [("kind", k)],
                                         help: "Associations (controllers) that came up, or were first seen mid-stream, by kind.")
            for side in Self.sides {
                for (_, how) in Self.closes {
                    en[k + "/" + side + "/" + how] = registry.makeCounter(
                        name: "nvmetrace_associations_ended_total", labels: [("kind", k), ("by", side), ("how", how)],
                        help: "Associations torn down, by kind, the side that closed first and how (FIN, RST, Termination Request).")
                }
            }
        }
        created = cr
        ended = en
        outages = registry.makeValueHistogram(name: "nvmetrace_outage_seconds", buckets: Self.outageBuckets,
                                              help: "Downtime between an association's teardown and its chain's next Connect.")
        keepAliveIntervals = registry.makeValueHistogram(name: "nvmetrace_keep_alive_interval_seconds", buckets: Self.keepAliveBuckets,
                                                         help: "Time between successive Keep Alive commands of a host on one admin queue.")
        var l: [String: ValueHistogram] = [:]
        for (q, c) in Self.commandClasses {
            l[q + "/" + c] = registry.makeValueHistogram(name: "nvmetrace_command_latency_seconds", labels: [("queue", q), ("command", c)],
                                                         buckets: Self.latencyBuckets,
                                                         help: "Command capsule to completion as the capture point sees it, by queue and command class.")
        }
        latency = l
        var rt: [String: Counter] = [:]
        var zw: [String: Counter] = [:]
        for side in Self.sides {
            rt[side] = registry.makeCounter(name: "nvmetrace_tcp_retransmitted_segments_total", labels: [("sender", side)],
                                            help: "TCP segments sent again on NVMe/TCP connections, by sender (counted when the connection ends).")
            zw[side] = registry.makeCounter(name: "nvmetrace_tcp_zero_window_seconds_total", labels: [("advertiser", side)],
                                            help: "Seconds NVMe/TCP connections advertised a zero window, by the side that did (counted when the connection ends).")
        }
        retransmitted = rt
        zeroWindow = zw
        trackedConnections = registry.makeGauge(name: "nvmetrace_tracked_connections", help: "Connections the session model holds (live ones and those ended within --retain).")
        trackedControllers = registry.makeGauge(name: "nvmetrace_tracked_controllers", help: "Controllers the session model holds.")
        retiredConnections = registry.makeCounter(name: "nvmetrace_retired_connections_total", help: "Connections retired from the session model after --retain.")
        residentMemory = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory size in bytes.")
    }

    /// An association came up (or was first seen).
    public func associationCreated(kind: String) { created[kind]?.increment() }

    /// An association's first queue closed.
    public func associationEnded(kind: String, by: Side, how: ConnectionEnd.How) {
        guard let h = Self.closes.first(where: { $0.0 == how })?.1 else { return }
        ended[kind + "/" + by.rawValue + "/" + h]?.increment()
    }

    public func outage(seconds: Double) { outages.record(seconds) }
    public func keepAliveInterval(seconds: Double) { keepAliveIntervals.record(seconds) }

    /// A timed command's latency, into its class's histogram.
    public func commandLatency(_ kind: CommandKind, seconds: Double) {
        latency[Self.commandClass(kind)]?.record(seconds)
    }

    /// "queue/command" of the latency histograms.
    static func commandClass(_ k: CommandKind) -> String {
        if let fctype = k.fctype {
            switch fctype {
            case 0x01: return "fabrics/connect"
            case 0x00, 0x04: return "fabrics/property"
            default: return "fabrics/other"
            }
        }
        if k.queue == .io {
            switch k.opcode {
            case 0x02: return "io/read"
            case 0x01: return "io/write"
            case 0x00: return "io/flush"
            default: return "io/other"
            }
        }
        switch k.opcode {
        case 0x18: return "admin/keep-alive"
        case 0x06: return "admin/identify"
        case 0x02: return "admin/get-log-page"
        case 0x09, 0x0A: return "admin/features"
        default: return "admin/other"
        }
    }

    /// An NVMe/TCP connection ended: its TCP figures.
    public func tcpEnded(_ s: ConnectionSummary) {
        // The client is the host (it connects to the target's port).
        let byHost = s.clientStream.retransmittedSegments, byTarget = s.serverStream.retransmittedSegments
        if byHost > 0 { retransmitted["host"]?.increment(by: Int64(byHost)) }
        if byTarget > 0 { retransmitted["target"]?.increment(by: Int64(byTarget)) }
        if s.health.client.zeroWindowNs > 0 { zeroWindow["host"]?.increment(by: Double(s.health.client.zeroWindowNs) / 1e9) }
        if s.health.server.zeroWindowNs > 0 { zeroWindow["target"]?.increment(by: Double(s.health.server.zeroWindowNs) / 1e9) }
    }

    /// What the session model holds, after each evaluation; and the process's resident memory.
    public func tracked(_ held: (connections: Int, controllers: Int, chains: Int)) {
        trackedConnections.set(Int64(held.connections))
        trackedControllers.set(Int64(held.controllers))
        if let kib = residentKiB() { residentMemory.set(Int64(kib) * 1024) }
    }

    public func retired(_ r: Retired) {
        if r.connections > 0 { retiredConnections.increment(by: Int64(r.connections)) }
    }

    /// A finding reported for the first time.
    public func findingReported(_ f: Finding) {
        findings[f.rule + "/" + f.severity.rawValue]?.increment()
    }

    /// The state of the session model as of a live evaluation.
    public func update(from r: Report) {
        var counts: [String: Int] = [:]
        for c in r.model.connections {
            let kind = r.kind(c) == "?" ? "unknown" : r.kind(c)
            counts[kind + "/" + (c.end?.by == nil ? "open" : "closed"), default: 0] += 1
        }
        for (key, gauge) in connections { gauge.set(Int64(counts[key] ?? 0)) }
        controllers.set(Int64(r.model.controllers.count))
        katoZeroDiscovery.set(Int64(Set(r.findings.filter { $0.rule == "discovery-kato-zero" }.map(\.connection)).count))
        var worst = 0.0
        var gaps: [(key: [(String, String)], ratio: Double)] = []
        for ctl in r.model.controllers {
            guard let admin = r.model.connection(ctl.adminConnection), admin.end?.by == nil,
                  let kato = ctl.kato, kato > 0, let last = ctl.timerSeries.last else { continue }
            let silence = Double(r.model.captureEnd.timeNs &- last.ref.timeNs) / 1e9
            let ratio = silence / (Double(kato) / 1000)
            worst = max(worst, ratio)
            gaps.append(([("host", admin.host.address.description), ("target", admin.target.description), ("subnqn", ctl.subnqn ?? "")], ratio))
        }
        keepAliveOverKATO.set(worst)
        controllerGaps(gaps)
    }

    /// `nvmetrace_keep_alive_gap_over_kato{host,target,subnqn}`: one series per open controller
    /// with a KATO, at most `maxControllerSeries` (the first by label order); the rest go into one
    /// series whose labels are all `_other`, holding their largest ratio. Series of controllers
    /// that closed are removed, so the count follows the live controllers, never the traffic.
    private func controllerGaps(_ gaps: [(key: [(String, String)], ratio: Double)]) {
        let sorted = gaps.sorted { $0.key.map(\.1).lexicographicallyPrecedes($1.key.map(\.1)) }
        var wanted: [String: ([(String, String)], Double)] = [:]
        for (i, g) in sorted.enumerated() {
            if i < maxControllerSeries {
                // Controllers whose labels are the same (one host address, one target, the NQN
                // not captured) share a series: the largest ratio stands for them.
                let id = g.key.map(\.1).joined(separator: "\u{0}")
                wanted[id] = (g.key, max(wanted[id]?.1 ?? 0, g.ratio))
            } else {
                let k = [("host", Self.overflow), ("target", Self.overflow), ("subnqn", Self.overflow)]
                let id = k.map(\.1).joined(separator: "\u{0}")
                wanted[id] = (k, max(wanted[id]?.1 ?? 0, g.ratio))
            }
        }
        perController.withLock { series in
            for (id, gauge) in series where wanted[id] == nil {
                registry.unregisterGauge(gauge)
                series[id] = nil
            }
            for (id, (labels, ratio)) in wanted {
                let g = series[id] ?? registry.makeGauge(
                    name: "nvmetrace_keep_alive_gap_over_kato", labels: labels,
                    help: "Current silence of an open controller's host as a fraction of its KATO, per controller (1 or more: past its keep-alive timer).")
                series[id] = g
                g.set(ratio)
            }
        }
    }

    /// libpcap's counters.
    public func capture(received: UInt32, droppedByKernel: UInt32, droppedByInterface: UInt32) {
        let (r, k, i) = lastCapture.withLock { last in
            defer { last = (received, droppedByKernel, droppedByInterface) }
            // Wrapping differences: libpcap's 32-bit counters wrap on long captures.
            return (received &- last.0, droppedByKernel &- last.1, droppedByInterface &- last.2)
        }
        if r > 0 { packetsReceived.increment(by: Int64(r)) }
        if k > 0 { packetsDroppedKernel.increment(by: Int64(k)) }
        if i > 0 { packetsDroppedInterface.increment(by: Int64(i)) }
    }

    /// The exposition page (Prometheus text format 0.0.4).
    public func page() -> [UInt8] { registry.emitToBuffer() }
}
