/// Command latencies (command capsule to completion, as the capture point sees them) per
/// connection and command kind, with their phases (`LatencyPhase`), the slowest commands and a
/// bounded latency-over-time series: memory does not grow with the number of commands, and at
/// most `maxGroups` groups are kept (commands of further connections fold into one group per
/// queue kind and command, `connection` nil). The model turns them into distributions per
/// controller (`LatencyGroup`).
struct CommandLatencies {
    struct Key: Hashable {
        var connection: Int?
        var opcode: UInt8
        var fctype: UInt8?
        var queue: QueueKind

        /// The key in one word, for the index: hashing the four fields cost ~300 instructions a
        /// lookup, and every connection of a capture of thousands looks up each kind it sends.
        var packed: Int64 {
            Int64((connection ?? -1) &+ 1) << 24 | Int64(queue == .io ? 1 : 0) << 17
                | Int64(fctype == nil ? 0 : 1) << 16 | Int64(fctype ?? 0) << 8 | Int64(opcode)
        }
    }

    /// A class: recording mutates it in place through the array (a struct this size was
    /// copied out and back per command: callgrind, +30% instructions on 4 KiB I/O).
    final class Group {
        let key: Key
        var name: String
        var total = LatencyDistribution()
        /// The phases, in `LatencyPhase` order.
        var toR2T = LatencyDistribution()
        var r2tToData = LatencyDistribution()
        var dataToCompletion = LatencyDistribution()
        /// Slowest first, at most `slowestKept`.
        var slowest: [SlowCommand] = []
        /// The latency a command must pass to be among the slowest (-1 while fewer are kept).
        var slowerThan: Int64 = -1
        var timeline = LatencyTimeline()

        init(key: Key, name: String) {
            self.key = key
            self.name = name
        }

        var phases: [LatencyDistribution] { [toR2T, r2tToData, dataToCompletion] }

        @inline(__always)
        func record(_ t: borrowing CommandTiming, connection: Int) {
            let ns = t.latencyNs
            // A completion before its command (bytes behind a hole delivered late): no latency.
            guard ns >= 0 else { return }
            total.record(ns)
            if t.toR2T >= 0 { toR2T.record(t.toR2T) }
            if t.r2tToData >= 0 { r2tToData.record(t.r2tToData) }
            if t.dataToCompletion >= 0 { dataToCompletion.record(t.dataToCompletion) }
            timeline.record(issuedNs: t.issued.timeNs, latencyNs: ns)
            // Built only when worth keeping (most commands are not).
            if ns > slowerThan { keepSlow(SlowCommand(connection: connection, timing: copy t)) }
        }

        @inline(never)
        private func keepSlow(_ s: SlowCommand) {
            var at = slowest.count
            while at > 0 && slowest[at - 1].latencyNs < s.latencyNs { at -= 1 }
            slowest.insert(s, at: at)
            if slowest.count > CommandLatencies.slowestKept { slowest.removeLast() }
            if slowest.count == CommandLatencies.slowestKept { slowerThan = slowest[CommandLatencies.slowestKept - 1].latencyNs }
        }

        /// A copy (groups of several connections merge into a copy of the first).
        func copy() -> Group {
            let g = Group(key: key, name: name)
            g.total = total
            (g.toR2T, g.r2tToData, g.dataToCompletion) = (toR2T, r2tToData, dataToCompletion)
            g.slowest = slowest
            g.slowerThan = slowerThan
            g.timeline = timeline
            return g
        }

        func add(_ o: Group) {
            total.add(o.total)
            toR2T.add(o.toR2T)
            r2tToData.add(o.r2tToData)
            dataToCompletion.add(o.dataToCompletion)
            slowest = Array((slowest + o.slowest).sorted { $0.latencyNs > $1.latencyNs }.prefix(CommandLatencies.slowestKept))
            timeline.add(o.timeline)
        }
    }

    /// Groups kept at most.
    static let maxGroups = 256
    /// The slowest commands named per group.
    static let slowestKept = 5

    private(set) var groups: [Group] = []
    private var index: [Int64: Int] = [:]
    /// Connections with groups of their own (at most `maxGroups`): once groups are at the bound,
    /// other connections' commands fold without a lookup per kind.
    private var owners: Set<Int> = []
    /// The groups of the connection recorded last, by command kind: a batch's commands find
    /// theirs by a short scan, not by hashing (reads and writes alternate).
    private var lastConnection = -1
    private var lastGroups: [(kind: CommandKind, group: Unmanaged<Group>)] = []
    /// Whether that connection has groups of its own (`owners`).
    private var lastIsOwner = false
    /// The largest connection id among `owners`: later connections are no owners, known without
    /// hashing (a capture of thousands of connections changes connection at every command).
    private var largestOwner = -1
    /// The folded groups by command kind (a handful).
    private var folded: [(kind: CommandKind, group: Unmanaged<Group>)] = []

    /// The group of `kind` on `connection` (made when new).
    mutating func group(connection: Int, kind: CommandKind) -> Int {
        var key = Key(connection: connection, opcode: kind.opcode, fctype: kind.fctype, queue: kind.queue)
        let full = groups.count >= Self.maxGroups
        if !full || lastIsOwner, let known = index[key.packed] { return known }
        if full {
            key.connection = nil
            if let folded = index[key.packed] { return folded }
        } else {
            owners.insert(connection)
            largestOwner = max(largestOwner, connection)
        }
        groups.append(Group(key: key, name: kind.name))
        index[key.packed] = groups.count - 1
        return groups.count - 1
    }

    /// Records the timed commands of one connection (`AnalyzerConsumer.commandsTimed`).
    mutating func record(connection: Int, _ timings: [CommandTiming]) {
        if connection != lastConnection {
            lastConnection = connection
            // (Emptied one by one: `removeAll(keepingCapacity:)` cost ~70 instructions.)
            while !lastGroups.isEmpty { lastGroups.removeLast() }
            lastIsOwner = groups.count < Self.maxGroups || (connection <= largestOwner && owners.contains(connection))
        }
        // Unretained: `groups` holds every group for as long as this does (retaining one per
        // command cost more than recording it: callgrind).
        for i in timings.indices {
            let kind = timings[i].kind
            if lastIsOwner {
                var at = 0
                while at < lastGroups.count && lastGroups[at].kind != kind { at += 1 }
                if at == lastGroups.count {
                    lastGroups.append((kind, Unmanaged.passUnretained(groups[group(connection: connection, kind: kind)])))
                }
                lastGroups[at].group._withUnsafeGuaranteedRef { $0.record(timings[i], connection: connection) }
            } else {
                var at = 0
                while at < folded.count && folded[at].kind != kind { at += 1 }
                if at == folded.count {
                    folded.append((kind, Unmanaged.passUnretained(groups[group(connection: connection, kind: kind)])))
                }
                folded[at].group._withUnsafeGuaranteedRef { $0.record(timings[i], connection: connection) }
            }
        }
    }
}

/// One command, timed, with its connection: one of the slowest of a group.
public struct SlowCommand: Sendable, Equatable {
    public var connection: Int
    public var timing: CommandTiming
    public var latencyNs: Int64 { timing.latencyNs }
    public var cid: UInt16 { timing.cid }
    public var issued: FrameRef { timing.issued }
    public var completed: FrameRef { timing.completed }
}

/// The distribution of one command kind on one queue kind of one controller (or of one
/// connection no controller was found for), with its phases where the wire showed them.
public struct LatencyGroup: Sendable {
    /// The controller (index in `SessionModel.controllers`), nil when none is known.
    public var controller: Int?
    /// Its connections that carried these commands (the one connection when no controller).
    public var connections: [Int]
    /// The queue kind of its connections as the model knows it (nil when nothing tells, as
    /// when the snap length cut the Connect's QID); for commands folded past `maxGroups`, as
    /// their commands were decoded.
    public var queue: QueueKind?
    /// "admin", "io", or "?" when the capture does not tell.
    public var queueText: String { queue?.rawValue ?? "?" }
    public var command: String
    public var total: LatencyFigures
    /// The phases seen, in `LatencyPhase` order (none for a command whose data went in its capsule).
    public var phases: [(phase: LatencyPhase, figures: LatencyFigures)]
    /// Slowest first, at most `CommandLatencies.slowestKept`.
    public var slowest: [SlowCommand]
    /// Latency over time: the longest latency of the commands sent in each time slice, and when
    /// that command was sent (nanoseconds since the epoch), oldest first.
    public var timeline: [(issuedNs: Int64, latencyNs: Int64)]
    /// The slices' width.
    public var sliceNs: Int64
}

extension CommandLatencies {
    /// Groups per controller (connections joined to one are merged), in controller order, then
    /// connections without one. `connection` gives a connection's controller and queue kind.
    func groups(connection info: (Int) -> (controller: Int?, queue: QueueKind?)) -> [LatencyGroup] {
        struct Merged {
            var controller: Int?
            var connections: [Int]
            var queue: QueueKind?
            var group: Group
            var name: String
            var order: Int
        }
        struct MergeKey: Hashable { var controller: Int?; var connection: Int?; var queue: QueueKind?; var key: Key }
        var merged: [MergeKey: Merged] = [:]
        for (n, g) in groups.enumerated() {
            let (ctl, connQueue) = g.key.connection.map(info) ?? (nil, g.key.queue)
            // A command's queue was guessed when the Connect was not captured: the model's
            // judgement of the connection names it (an opcode means another command on the
            // other queue kind).
            var name = g.name
            if let connQueue, connQueue != g.key.queue, g.key.fctype == nil {
                name = CommandKind(opcode: g.key.opcode, fctype: nil, queue: connQueue).name
            }
            var k = MergeKey(controller: ctl, connection: ctl == nil ? g.key.connection : nil, queue: connQueue, key: g.key)
            k.key.connection = nil
            k.key.queue = connQueue ?? g.key.queue
            if var m = merged[k] {
                if m.group === groups[m.order] { m.group = m.group.copy() }  // the recorder stays as it was
                m.group.add(g)
                if let c = g.key.connection, !m.connections.contains(c) { m.connections.append(c) }
                merged[k] = m
            } else {
                merged[k] = Merged(controller: ctl, connections: g.key.connection.map { [$0] } ?? [], queue: connQueue, group: g,
                                   name: name, order: n)
            }
        }
        return merged.values.sorted {
            // A controller's admin queue first, then its I/O queues; connections without a
            // controller after every controller, by connection.
            ($0.controller ?? Int.max, $0.controller == nil ? $0.connections.first ?? Int.max : 0, $0.queue == .admin ? 0 : 1, $0.order)
                < ($1.controller ?? Int.max, $1.controller == nil ? $1.connections.first ?? Int.max : 0, $1.queue == .admin ? 0 : 1, $1.order)
        }.map { m in
            LatencyGroup(controller: m.controller, connections: m.connections.sorted(), queue: m.queue, command: m.name,
                         total: m.group.total.figures,
                         phases: zip(LatencyPhase.allCases, m.group.phases).filter { $0.1.count > 0 }.map { ($0.0, $0.1.figures) },
                         slowest: m.group.slowest, timeline: m.group.timeline.points.map { ($0.issuedNs, $0.latencyNs) }, sliceNs: m.group.timeline.widthNs)
        }
    }
}
