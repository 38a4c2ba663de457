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

    /// Connection kinds and states, the label values of `nvmetrace_connections`.
    static let kinds = ["discovery", "admin", "io", "unknown"]
    static let states = ["open", "closed"]

    /// Counters for every rule and severity it takes, made up front: a series that appears only
    /// when its first finding comes breaks `rate()` and alerts on `increase()`.
    public convenience init() {
        self.init(rules: RuleEngine.allRules.map { r in (r.id, r.severities.split(separator: "/").compactMap { Severity(rawValue: String($0)) }) })
    }

    public init(rules: [(name: String, severities: [Severity])]) {
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
        for ctl in r.model.controllers {
            guard let admin = r.model.connection(ctl.adminConnection), admin.end?.by == nil,
                  let kato = ctl.kato, kato > 0, let last = ctl.timerSeries.last else { continue }
            let silence = Double(r.model.captureEnd.timeNs &- last.ref.timeNs) / 1e9
            worst = max(worst, silence / (Double(kato) / 1000))
        }
        keepAliveOverKATO.set(worst)
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
