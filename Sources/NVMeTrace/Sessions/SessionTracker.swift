/// Builds the session model from decoded PDUs and connection ends, in capture order: the
/// connections, the controllers their Connects create or join, the reconnect chains and the
/// keep-alive timelines. Keeps running figures, not PDUs.
public final class SessionTracker {
    /// A discovery connection open this long past its discovery transaction is persistent (a
    /// one-shot `nvme discover` closes within about 0.3 s).
    public var persistentAfterSeconds: Double = 10

    /// Connections in order of their first PDU.
    private var connections: [ConnectionModel] = []
    /// Position in `connections` by connection id. Ids are dense (counted like tcp.stream), so
    /// an array finds them without hashing; ids past `maxDirectID` (not seen from the analyzer)
    /// go through a dictionary.
    private var positionByID: [Int32] = []
    private var positionByLargeID: [Int: Int] = [:]
    private static let maxDirectID = 1 << 24
    private var controllers: [ControllerModel] = []
    private var chains: [ReconnectChain] = []
    private var chainByKey: [ChainKey: Int] = [:]
    private var liveController: [ControllerKey: Int] = [:]
    private var lastConnection = -1
    private var lastIndex: Int?

    struct ControllerKey: Hashable {
        var target: Endpoint
        var subnqn: String
        var hostnqn: String
        var cntlid: UInt16
    }

    struct ChainKey: Hashable {
        var target: Endpoint
        var subnqn: String
        var hostnqn: String
    }

    public init() {}

    // MARK: - input

    /// An owned record: the same as the pipeline's lent form.
    public func record(_ r: PDURecord) {
        r.withView { record($0) }
    }

    public func record(_ r: PDURecordView) {
        let index = connectionIndex(r.connection, fromHost: r.fromHost, src: r.src, dst: r.dst, firstRef: r.pdu.firstRef)
        // Mutate the stored model in place: a copy out and back would copy its arrays on every PDU.
        update(&connections[index], with: r, fromHost: r.fromHost, ref: r.pdu.ref)
    }

    /// A PDU of plain I/O traffic: what `record` does for it, without the decoded PDU.
    public func record(_ p: PlainIOPDU) {
        let index = connectionIndex(p.connection, fromHost: p.fromHost, src: p.src, dst: p.dst, firstRef: p.firstRef)
        update(&connections[index], with: p)
    }

    private func update(_ c: inout ConnectionModel, with p: PlainIOPDU) {
        touch(&c, fromHost: p.fromHost, ref: p.ref)
        if case .command(let kind) = p.kind { countCommand(kind, ref: p.ref, in: &c) }
    }

    /// The position of a connection's model, created at its first PDU.
    @inline(__always)
    private func connectionIndex(_ id: Int, fromHost: Bool, src: Endpoint, dst: Endpoint, firstRef: FrameRef) -> Int {
        // PDUs come in runs per connection; entries are never removed, so an index stays valid.
        if id == lastConnection, let lastIndex { return lastIndex }
        let index: Int
        if let known = position(of: id) {
            index = known
        } else {
            connections.append(ConnectionModel(
                id: id, host: fromHost ? src : dst, target: fromHost ? dst : src,
                firstRef: firstRef, lastRef: firstRef, synSeen: false))
            index = connections.count - 1
            setPosition(index, of: id)
        }
        lastConnection = id
        lastIndex = index
        return index
    }

    /// What every PDU changes.
    @inline(__always)
    private func touch(_ c: inout ConnectionModel, fromHost: Bool, ref: FrameRef) {
        c.lastRef = ref
        if fromHost { c.lastHostPDU = ref }
    }

    /// What every command changes: counts, and the controller's any-command timer.
    @inline(__always)
    private func countCommand(_ kind: CommandKind, ref: FrameRef, in c: inout ConnectionModel) {
        c.commands += 1
        c.lastHostCommand = ref
        if let ctl = c.controller { controllers[ctl].anyCommand.add(TimerEvent(ref: ref, connection: c.id, command: kind)) }
    }

    private func position(of id: Int) -> Int? {
        guard id >= 0 && id < Self.maxDirectID else { return positionByLargeID[id] }
        guard id < positionByID.count, positionByID[id] >= 0 else { return nil }
        return Int(positionByID[id])
    }

    private func setPosition(_ position: Int, of id: Int) {
        guard id >= 0 && id < Self.maxDirectID else { positionByLargeID[id] = position; return }
        if id >= positionByID.count {
            positionByID.append(contentsOf: repeatElement(-1, count: max(id + 1, positionByID.count * 2) - positionByID.count))
        }
        positionByID[id] = Int32(position)
    }

    private func update(_ c: inout ConnectionModel, with r: PDURecordView, fromHost: Bool, ref: FrameRef) {
        touch(&c, fromHost: fromHost, ref: ref)
        if case .mismatch = r.pdu.headerDigest {
            c.digestErrors.append((ref, r.pdu.type, true))
            c.headerDigestErrors += 1
        }
        if case .mismatch = r.pdu.dataDigest { c.digestErrors.append((ref, r.pdu.type, false)) }
        switch r.body {
        case .icReq(let ic): c.icReq = ic
        case .icResp(let ic): c.icResp = ic
        case .termReq(let t):
            c.termReqs.append((ref, fromHost ? .host : .target, t?.fes ?? 0))
        case .command(let cmd):
            command(cmd, connectData: r.connectData, ref: ref, in: &c)
        case .completion(let cqe):
            if let done = r.completed { completion(cqe, done, ref: ref, in: &c) }
        case .c2hData(_, let cqe):
            if let cqe, let done = r.completed { completion(cqe, done, ref: ref, in: &c) }
        case .h2cData:
            // Connect data sent by H2CData (after an R2T) rather than in the capsule.
            if let connectData = r.connectData, let cc = c.connect, c.connectData == nil {
                c.connectData = connectData
                if cc.qid != 0 { c.cntlid = connectData.cntlid }
            }
        case .r2t, .untrusted:
            break
        }
    }

    /// The TCP connection is over (or the capture ended): who closed it, and how.
    public func flowEnded(_ flow: Flow) {
        guard let index = position(of: flow.index) else { return }
        var c = connections[index]
        c.synSeen = flow.synRef != nil
        if let t = c.termReqs.first {
            c.end = ConnectionEnd(by: t.from, how: .termReq, ref: t.ref)
        } else if let (dir, close) = flow.firstClose {
            let sender = dir == .clientToServer ? flow.client : flow.server
            c.end = ConnectionEnd(by: sender == c.host ? .host : .target, how: close.kind == .fin ? .fin : .rst, ref: close.ref)
        }
        if flow.lastRef.timeNs > c.lastRef.timeNs { c.lastRef = flow.lastRef }
        // The connection spans the whole TCP connection (handshake included), not just its PDUs.
        if (flow.firstRef.file, flow.firstRef.frame) < (c.firstRef.file, c.firstRef.frame) { c.firstRef = flow.firstRef }
        connections[index] = c
    }

    // MARK: - commands and completions

    private func command(_ cmd: NVMeCommand, connectData: ConnectData?, ref: FrameRef, in c: inout ConnectionModel) {
        switch cmd.detail {
        case .connect(let cc):
            c.connect = cc
            c.connectData = connectData
            c.connectRef = ref
            if cc.qid != 0 { c.cntlid = connectData?.cntlid }
        case .keepAlive where cmd.queue == .admin:
            let event = TimerEvent(ref: ref, connection: c.id, command: cmd.kind)
            c.keepAlives.add(KeepAliveExchange(cid: cmd.cid, command: ref))
            c.keepAliveSeries.add(event)
            if let ctl = c.controller { controllers[ctl].keepAlives.add(event) }
        case .asyncEventRequest:
            c.outstandingAERs[cmd.cid] = ref
        case .getLogPage(let lid, _, _, _) where lid == 0x70:
            c.readDiscoveryLog = true
        default:
            break
        }
        countCommand(cmd.kind, ref: ref, in: &c)
    }

    private func completion(_ cqe: NVMeCompletion, _ done: CompletedCommand, ref: FrameRef, in c: inout ConnectionModel) {
        switch done.command.detail {
        case .connect(let cc):
            c.connectStatus = cqe.status
            c.connectResponseRef = ref
            guard cqe.status.isSuccess, let data = done.connectData else { return }
            if cc.qid == 0 {
                if case .connect(let cntlid, _) = done.detail { c.cntlid = cntlid }
                createController(for: &c, connect: cc, data: data, connectRef: done.issued)
            } else if let cntlid = c.cntlid,
                      let ctl = liveController[ControllerKey(target: c.target, subnqn: data.subnqn, hostnqn: data.hostnqn, cntlid: cntlid)] {
                controllers[ctl].ioConnections.append(c.id)
                c.controller = ctl
            }
        case .keepAlive:
            if !cqe.status.isSuccess { c.failedKeepAlives.append((ref, cqe.status)) }
            c.keepAlives.complete(issued: done.issued, ref: ref, status: cqe.status)
        case .asyncEventRequest:
            if let submitted = c.outstandingAERs.removeValue(forKey: done.command.cid) {
                c.longestAERSeconds = max(c.longestAERSeconds, Double(ref.timeNs &- submitted.timeNs) / 1e9)
            }
        case .identify:
            if case .identifyController(let id) = done.detail {
                c.identify = id
                if let ctl = c.controller {
                    controllers[ctl].tbkas = id.tbkas
                    if id.cntrltype == 2 { controllers[ctl].discovery = true }
                }
            }
        case .getLogPage(let lid, _, _, _) where lid == 0x70:
            c.readDiscoveryLog = true
            c.lastDiscoveryLogRef = ref
            if let ctl = c.controller { controllers[ctl].discovery = true }
        default:
            break
        }
    }

    private func createController(for c: inout ConnectionModel, connect cc: ConnectCommand, data: ConnectData, connectRef: FrameRef) {
        let id = controllers.count
        var ctl = ControllerModel(id: id, adminConnection: c.id, cntlid: c.cntlid, hostnqn: data.hostnqn,
                                  subnqn: data.subnqn, target: c.target, kato: cc.kato,
                                  discovery: data.subnqn == SessionModel.discoveryNQN, tbkas: false)
        // The target's keep-alive timer starts when the controller is created by the Connect.
        let start = TimerEvent(ref: connectRef, connection: c.id, command: nil)
        ctl.keepAlives.add(start)
        ctl.anyCommand.add(start)
        let chainKey = ChainKey(target: c.target, subnqn: data.subnqn, hostnqn: data.hostnqn)
        let chain: Int
        if let existing = chainByKey[chainKey] {
            chain = existing
        } else {
            chain = chains.count
            chains.append(ReconnectChain(id: chain, hostnqn: data.hostnqn, subnqn: data.subnqn, target: c.target))
            chainByKey[chainKey] = chain
        }
        chains[chain].controllers.append(id)
        ctl.chain = chain
        controllers.append(ctl)
        c.controller = id
        if let cntlid = c.cntlid {
            liveController[ControllerKey(target: c.target, subnqn: data.subnqn, hostnqn: data.hostnqn, cntlid: cntlid)] = id
        }
    }

    // MARK: - output

    /// The model as of `captureEnd`: connections still open end there; persistence of discovery
    /// connections is judged.
    public func model(files: [String], packets: Int, captureStart: FrameRef?, captureEnd: FrameRef) -> SessionModel {
        var conns = connections.sorted { $0.id < $1.id }
        var index: [Int: Int] = [:]
        for (i, c) in conns.enumerated() { index[c.id] = i }
        for i in conns.indices {
            if conns[i].end == nil { conns[i].end = ConnectionEnd(by: nil, how: .captureEnd, ref: captureEnd) }
            let endRef = conns[i].end!.ref
            for (_, submitted) in conns[i].outstandingAERs {
                conns[i].longestAERSeconds = max(conns[i].longestAERSeconds, Double(endRef.timeNs &- submitted.timeNs) / 1e9)
            }
        }
        var ctls = controllers
        for i in ctls.indices {
            if let a = index[ctls[i].adminConnection], conns[a].isDiscovery { ctls[i].discovery = true }
        }
        // Persistence of discovery connections.
        for i in conns.indices where conns[i].isDiscovery && conns[i].isAdmin {
            var reasons = Set<PersistenceReason>()
            let c = conns[i]
            let endRef = c.end!.ref
            if !c.keepAlives.isEmpty { reasons.insert(.sendsKeepAlives) }
            if c.longestAERSeconds >= persistentAfterSeconds { reasons.insert(.outstandingAER) }
            let transactionEnd = c.lastDiscoveryLogRef ?? c.connectResponseRef ?? c.firstRef
            if c.seconds(from: transactionEnd, to: endRef) >= persistentAfterSeconds { reasons.insert(.outlivedDiscovery) }
            if let ctl = c.controller, let chain = ctls[ctl].chain {
                let members = chains[chain].controllers
                if let pos = members.firstIndex(of: ctl), pos > 0,
                   let prev = index[ctls[members[pos - 1]].adminConnection], conns[prev].end?.by == .target {
                    reasons.insert(.reconnect)
                }
            }
            conns[i].persistence = reasons
        }
        return SessionModel(files: files, packets: packets, captureStart: captureStart, captureEnd: captureEnd,
                            connections: conns, controllers: ctls, chains: chains)
    }
}
