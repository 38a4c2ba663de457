/// Retiring what a long-running capture no longer needs (issue #17: a daemon's memory is bounded
/// by the live connections, not by how long it has run).
///
/// A connection can go once the pipeline is done with it (its TCP connection ended and was
/// flushed) and its last packet is older than the cutoff; a controller once all of its queues can
/// go; a reconnect chain once all of its controllers can. While any association of a chain lives
/// on (or ended within the cutoff), the chain stays, with its newest association: a reconnect is
/// judged against the association before it (outage, reconnect-loop, the chain a Connect without
/// NQNs joins), so a reconnect up to the cutoff after a teardown is measured as an outage, and one
/// later begins a new chain. Whatever the rules said of what is retired was said before: a daemon
/// reports findings as they become true. Rules that look back over several associations
/// (reconnect-loop) see those within the cutoff only (`--retain`, 10 minutes by default: five
/// of the 2-minute teardowns of a KATO 0 discovery loop, and Linux's ctrl_loss_tmo).
///
/// Controller and chain ids are positions in their arrays, so the survivors are renumbered, and
/// every reference to them with them (connections' controllers, chains' members, the indexes).
/// Connection ids are the analyzer's and never change.
public struct Retired: Sendable, Equatable {
    public var connections = 0
    public var controllers = 0
    public var chains = 0
    public var failedConnectTargets = 0
}

extension SessionTracker {
    /// Retires what ended before `cutoffNs` (see above); returns how much went.
    @discardableResult
    public func retire(endedBefore cutoffNs: Int64) -> Retired {
        var out = Retired()
        func done(_ c: ConnectionModel) -> Bool { c.leftPipeline && c.lastRef.timeNs < cutoffNs }

        // Controllers whose every queue is done.
        var ctlDone = [Bool](repeating: false, count: controllers.count)
        for k in controllers.indices {
            let ctl = controllers[k]
            ctlDone[k] = ([ctl.adminConnection] + ctl.ioConnections).allSatisfy { id in
                position(of: id).map { done(connections[$0]) } ?? true
            }
        }
        // Chains go whole, or keep their newest controller (and those not done).
        var ctlGoes = [Bool](repeating: false, count: controllers.count)
        var chainGoes = [Bool](repeating: false, count: chains.count)
        for ch in chains.indices {
            let members = chains[ch].controllers
            if members.allSatisfy({ ctlDone[$0] }) {
                chainGoes[ch] = true
                for m in members { ctlGoes[m] = true }
            } else {
                for m in members.dropLast() where ctlDone[m] { ctlGoes[m] = true }
            }
        }
        // Connections: those of controllers that go, and those of no controller that are done.
        var keep: [ConnectionModel] = []
        keep.reserveCapacity(connections.count)
        for c in connections {
            let goes = c.controller.map { ctlGoes[$0] } ?? done(c)
            if goes { out.connections += 1 } else { keep.append(c) }
        }
        // New numbers for the controllers and chains that stay.
        var ctlNew = [Int?](repeating: nil, count: controllers.count)
        var keptCtls: [ControllerModel] = []
        for k in controllers.indices where !ctlGoes[k] {
            ctlNew[k] = keptCtls.count
            keptCtls.append(controllers[k])
        }
        var chainNew = [Int?](repeating: nil, count: chains.count)
        var keptChains: [ReconnectChain] = []
        for ch in chains.indices where !chainGoes[ch] {
            chainNew[ch] = keptChains.count
            var chain = chains[ch]
            chain.id = keptChains.count
            chain.controllers = chain.controllers.compactMap { ctlNew[$0] }
            keptChains.append(chain)
        }
        for k in keptCtls.indices {
            keptCtls[k].id = k
            keptCtls[k].chain = keptCtls[k].chain.flatMap { chainNew[$0] }
        }
        for i in keep.indices {
            keep[i].controller = keep[i].controller.flatMap { ctlNew[$0] }
        }
        out.controllers = controllers.count - keptCtls.count
        out.chains = chains.count - keptChains.count
        guard out.connections > 0 || out.controllers > 0 || out.chains > 0 || failedConnects.values.contains(where: { $0.last.attempt.syn.timeNs < cutoffNs }) else {
            return out
        }
        connections = keep
        controllers = keptCtls
        chains = keptChains
        chainByNQNs = chainByNQNs.compactMapValues { chainNew[$0] }
        chainByPath = chainByPath.compactMapValues { chainNew[$0] }
        openControllers = openControllers.compactMapValues { ids in
            let kept = ids.compactMap { ctlNew[$0] }
            return kept.isEmpty ? nil : kept
        }
        var closed: [Int: FrameRef] = [:]
        for (k, ref) in adminClosed { if let n = ctlNew[k] { closed[n] = ref } }
        adminClosed = closed
        let before = failedConnects.count
        failedConnects = failedConnects.filter { $0.value.last.attempt.syn.timeNs >= cutoffNs }
        out.failedConnectTargets = before - failedConnects.count

        // Positions: the connections kept go by dictionary, and the array starts again after the
        // newest id seen, so that it covers the ids to come, not every id since the start.
        positionByLargeID = [:]
        positionByID = []
        positionBase = (connections.map(\.id).max() ?? positionBase - 1) + 1
        for (i, c) in connections.enumerated() { positionByLargeID[c.id] = i }
        lastConnection = -1
        lastIndex = nil
        return out
    }

    /// Connections, controllers and chains held now (what `retire` bounds).
    public var held: (connections: Int, controllers: Int, chains: Int) {
        (connections.count, controllers.count, chains.count)
    }
}
