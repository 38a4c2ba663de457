/// What every report format says about command latency, computed once: the table (a row per
/// controller, queue kind and command, and a row per phase under it) and the slowest commands
/// with their frames and a display filter that shows them.
extension Report {
    /// Who a latency group belongs to: its controller by the admin queue's connection (as the
    /// connection table numbers them), or its connections.
    public func latencyOwner(_ g: LatencyGroup) -> String {
        if let c = g.controller, c < model.controllers.count { return "controller #\(model.controllers[c].adminConnection)" }
        return g.connections.isEmpty ? "other connections" : "connection " + g.connections.map(String.init).joined(separator: ", ")
    }

    /// The latency table: a header and, per group, a row and one row per phase the wire showed.
    /// Empty when no command was completed.
    public var latencyRows: [[String]] {
        guard !model.latency.isEmpty else { return [] }
        var rows = [["controller", "queue", "command", "count", "p50", "p90", "p99", "p99.9", "max", "slowest (frames)"]]
        func figures(_ d: LatencyFigures) -> [String] {
            [String(d.count), Self.milliseconds(d.p50Ns), Self.milliseconds(d.p90Ns),
             Self.milliseconds(d.p99Ns), Self.milliseconds(d.p999Ns), Self.milliseconds(d.maxNs)]
        }
        for g in model.latency {
            let slow = g.slowest.first.map { "\($0.issued.frame)→\($0.completed.frame)" } ?? "-"
            rows.append([latencyOwner(g), g.queueText, g.command] + figures(g.total) + [slow])
            for (phase, d) in g.phases { rows.append(["", "", "  " + phase.title] + figures(d) + [""]) }
        }
        return rows
    }

    /// What the figures leave out, when anything: commands whose completion the capture does
    /// not show (`ConnectionModel.untimedCommands`), which no figure includes.
    public var untimedNote: String? {
        let conns = model.connections.filter { $0.untimedCommands > 0 }
        guard !conns.isEmpty else { return nil }
        let n = conns.reduce(0) { $0 + $1.untimedCommands }
        let list = conns.prefix(8).map { String($0.id) }.joined(separator: ", ") + (conns.count > 8 ? ", …" : "")
        return "Not timed: \(n) command\(n == 1 ? "" : "s") on connection\(conns.count == 1 ? "" : "s") \(list) whose completion "
            + "the capture does not show (cut by the snap length, lost, or still waiting at the end); no figure includes them."
    }

    /// One of the slowest commands, as the reports list it.
    public struct SlowCommandView: Sendable {
        public var group: LatencyGroup
        public var command: SlowCommand
        /// "frame.number in {issued, completed}" (both in the same file).
        public var filter: String
        /// "command → R2T 1.20 ms, R2T → H2CData 0.05 ms", empty when the wire showed no phase.
        public var phases: String
        /// An id unique in the report (HTML anchors).
        public var anchor: String
    }

    /// The slowest commands of all groups, slowest first, at most `limit`.
    public func slowestCommands(limit: Int = 10) -> [SlowCommandView] {
        var all: [SlowCommandView] = []
        for g in model.latency {
            for s in g.slowest {
                let phases = LatencyPhase.allCases.compactMap { p -> String? in
                    let ns = s.timing.phase(p)
                    return ns >= 0 ? "\(p.title) \(Self.milliseconds(ns))" : nil
                }.joined(separator: ", ")
                all.append(SlowCommandView(group: g, command: s,
                                           filter: "frame.number in {\(s.issued.frame), \(s.completed.frame)}",
                                           phases: phases, anchor: "cmd-\(s.issued.file)-\(s.issued.frame)-\(s.cid)"))
            }
        }
        all.sort { ($0.command.latencyNs, $1.command.issued.timeNs) > ($1.command.latencyNs, $0.command.issued.timeNs) }
        return Array(all.prefix(limit))
    }
}
