/// Builds the session model from decoded PDUs and connection ends, in capture order: the
/// connections, the controllers their Connects create or join, the reconnect chains and the
/// keep-alive timelines. Keeps running figures, not PDUs.
///
/// It does not need the Connect data's NQNs, nor the Connect itself: field captures are cut by a
/// snap length and start mid-stream. What the capture does not show is inferred only from
/// evidence, and every inference is recorded with it (`Basis`):
/// - a connection's queue from its Connect's QID, else from its commands (Keep Alive is an admin
///   command; reads and writes naming a namespace are I/O commands);
/// - a controller from a successful admin Connect (NQNs and CNTLID where captured), or, for an
///   admin queue picked up mid-stream, from the queue itself;
/// - an I/O queue's controller from the Connect data's CNTLID, else from the one admin queue of
///   the same host address to the same target address and port that is open when it connects;
/// - reconnect chains by NQNs, else by host address and target, one association after another.
public final class SessionTracker {
    /// A discovery connection open this long past its discovery transaction is persistent (a
    /// one-shot `nvme discover` closes within about 0.3 s).
    public var persistentAfterSeconds: Double = 10
    /// Keep Alive exchanges each connection keeps for drawing (`KeepAliveLog.limit`): a daemon,
    /// which draws nothing, sets a few.
    public var keepAliveSample = KeepAliveLog.capacity

    /// Connections in order of their first PDU.
    var connections: [ConnectionModel] = []
    /// Position in `connections` by connection id. Ids are dense (counted like tcp.stream), so
    /// an array finds them without hashing; ids the array would be sparse for (past
    /// `maxDirectID`, or far past the connections held: `setPosition`) go through a dictionary.
    var positionByID: [Int32] = []
    var positionByLargeID: [Int: Int] = [:]
    /// The id `positionByID[0]` stands for: raised when connections are retired, so that a
    /// daemon's array covers the ids of recent connections, not every id since it started.
    var positionBase = 0
    private static let maxDirectID = 1 << 24
    var controllers: [ControllerModel] = []
    var chains: [ReconnectChain] = []
    var chainByNQNs: [ChainKey: Int] = [:]
    /// The newest chain per host address and target.
    var chainByPath: [Path: Int] = [:]
    /// Controllers whose admin queue is open, per host address and target (an I/O queue joins one
    /// of these; a closed admin queue leaves).
    var openControllers: [Path: [Int]] = [:]
    /// When each controller's admin queue closed (FIN, RST, TermReq), by controller id. Kept apart
    /// from `connections`: it is read while a connection's model is being updated in place.
    var adminClosed: [Int: FrameRef] = [:]
    var lastConnection = -1
    /// Command latencies (bounded histograms).
    var latency = CommandLatencies()
    /// Attempts the targets never accepted, per target port (at most `maxFailedConnectTargets`).
    var failedConnects: [Endpoint: FailedConnects] = [:]
    private var failedConnectsUntracked = 0
    static let maxFailedConnectTargets = 256
    var lastIndex: Int?

    /// A host address and a target endpoint: where associations are made.
    struct Path: Hashable {
        var host: IPAddress
        var target: Endpoint
    }

    struct ChainKey: Hashable {
        var target: Endpoint
        var subnqn: String
        var hostnqn: String
    }

    public init() {}

    // MARK: - input

    /// An owned record: the same as the pipeline's lent form.
    public func record(_ r: OwnedPDURecord) {
        r.lent { record($0) }
    }

    public func record(_ r: LentPDURecord) {
        let index = connectionIndex(of: r)
        // Plain I/O, summarised: what every PDU and every command changes, no more.
        if case .ioSummary(let kind) = r.body {
            touch(&connections[index], fromHost: r.fromHost, ref: r.pdu.ref)
            if let kind { countCommand(kind, ref: r.pdu.ref, in: &connections[index]) }
            return
        }
        // Mutate the stored model in place: a copy out and back would copy its arrays on every PDU.
        update(&connections[index], with: r, fromHost: r.fromHost, ref: r.pdu.ref)
    }

    /// Bytes the host sent on connection `id` were lost from the capture between PDUs: a command
    /// may have been among them, so the gap in the controller's timer series that spans them is
    /// not a silence the capture shows (the Keep Alive series only for its admin queue).
    public func hostBytesLost(connection id: Int) {
        guard let i = position(of: id), let ctl = connections[i].controller else { return }
        controllers[ctl].anyCommand.hostBytesLost()
        if controllers[ctl].adminConnection == id { controllers[ctl].keepAlives.hostBytesLost() }
    }

    /// The position of a connection's model, created at its first PDU.
    @inline(__always)
    private func connectionIndex(of r: LentPDURecord) -> Int {
        // PDUs come in runs per connection; entries are never removed, so an index stays valid.
        if r.connection == lastConnection, let lastIndex { return lastIndex }
        return connectionIndexLookingUp(r)
    }

    /// Out of line: the endpoints and frame it reads are loaded only when the connection changes
    /// (loaded up front for every PDU, they were a third of `record`'s cost; callgrind).
    @inline(never)
    private func connectionIndexLookingUp(_ r: LentPDURecord) -> Int {
        let id = r.connection
        let index: Int
        if let known = position(of: id) {
            index = known
        } else {
            connections.append(ConnectionModel(
                id: id, host: r.fromHost ? r.src : r.dst, target: r.fromHost ? r.dst : r.src,
                firstRef: r.pdu.firstRef, lastRef: r.pdu.firstRef, synSeen: false, keepAlives: KeepAliveLog(limit: keepAliveSample)))
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
        // Bytes behind a given-up hole arrive with their own (earlier) frames: keep the latest.
        if ref.timeNs >= c.lastRef.timeNs { c.lastRef = ref }
        if fromHost, c.lastHostPDU.map({ ref.timeNs >= $0.timeNs }) ?? true { c.lastHostPDU = ref }
    }

    /// Commands of a connection timed by the decoder: into the latency distributions.
    public func commandsTimed(connection: Int, _ timings: [CommandTiming]) {
        latency.record(connection: connection, timings)
    }

    /// What every command changes: counts, and the controller's any-command timer.
    @inline(__always)
    private func countCommand(_ kind: CommandKind, ref: FrameRef, in c: inout ConnectionModel) {
        c.commands += 1
        if c.lastHostCommand.map({ ref.timeNs >= $0.timeNs }) ?? true {
            c.lastHostCommand = ref
            c.lastHostCommandKind = kind
        }
        if let ctl = c.controller { controllers[ctl].anyCommand.add(TimerEvent(ref: ref, connection: c.id, command: kind)) }
    }

    func position(of id: Int) -> Int? {
        let d = id &- positionBase
        if d >= 0 && d < positionByID.count {
            let p = positionByID[d]
            if p >= 0 { return Int(p) }
        }
        // Ids the array does not cover, or did not when they were set (see `setPosition`).
        return positionByLargeID.isEmpty ? nil : positionByLargeID[id]
    }

    /// The array grows only while it stays dense: ids are counted over every TCP flow, so one
    /// NVMe/TCP connection after millions of other flows (a daemon's weeks) would otherwise size
    /// it by the flows ever seen, not by the connections held.
    private func setPosition(_ position: Int, of id: Int) {
        let d = id &- positionBase
        if d >= 0 && d < positionByID.count {
            positionByID[d] = Int32(position)
        } else if d >= 0 && d < Self.maxDirectID && d < 2 * connections.count + 4096 {
            positionByID.append(contentsOf: repeatElement(-1, count: max(d + 1, positionByID.count * 2) - positionByID.count))
            positionByID[d] = Int32(position)
        } else {
            positionByLargeID[id] = position
        }
    }

    /// Out of line: the summarised PDUs of plain I/O (most of them) take the short path in
    /// `record`, which this made larger and slower when inlined there (callgrind).
    @inline(never)
    private func update(_ c: inout ConnectionModel, with r: LentPDURecord, fromHost: Bool, ref: FrameRef) {
        touch(&c, fromHost: fromHost, ref: ref)
        if case .mismatch = r.pdu.headerDigest {
            c.digestErrors.append((ref, r.pdu.type, true))
            c.headerDigestErrors += 1
        }
        if case .mismatch = r.pdu.dataDigest { c.digestErrors.append((ref, r.pdu.type, false)) }
        if r.pdu.headerIsPartial {
            c.capture.partialHeaders += 1
            if r.pdu.headerDigest == .unverifiable { c.capture.unverifiableHeaderDigests += 1 }
        }
        switch r.body {
        case .icReq(let ic):
            c.icReq = ic
            c.sawICReq = true
        case .icResp(let ic): c.icResp = ic
        case .termReq(let t):
            c.termReqs.append((ref, fromHost ? .host : .target, t?.fes))
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
                if let qid = cc.qid, qid != 0 { c.cntlid = connectData.cntlid }
            }
        case .r2t, .untrusted, .notCaptured, .ioSummary:
            break
        }
    }

    /// The TCP connection is over (or the capture ended): who closed it, and how. `unframedBytes`
    /// are the bytes the framers skipped while looking for a PDU boundary. `nvmeTCP` says the
    /// connection is NVMe/TCP although none of its PDUs is in the capture (a connection to an
    /// NVMe/TCP port of which the capture holds only a FIN, or ACKs): it joins the model, so that
    /// the rules say they cannot judge it rather than pass over it.
    /// A connection decoded as NVMe/TCP closed (FIN or RST): updates it when the model knows it
    /// (one it does not know yet is added when it ends, if it carried NVMe/TCP).
    public func connectionClosed(_ flow: ConnectionSummary) {
        guard position(of: flow.id) != nil else { return }
        connectionEnded(flow, final: false)
    }

    public func connectionEnded(_ flow: ConnectionSummary) {
        connectionEnded(flow, final: true)
    }

    /// `final`: the connection left the pipeline (its TCP figures are complete).
    private func connectionEnded(_ flow: ConnectionSummary, final: Bool) {
        if let failed = flow.failedConnect {
            let attempt = FailedConnects.Attempt(client: flow.client, attempt: failed)
            if failedConnects[flow.server] != nil {
                failedConnects[flow.server]!.add(attempt)
            } else if failedConnects.count < Self.maxFailedConnectTargets {
                failedConnects[flow.server] = FailedConnects(target: flow.server, first: attempt)
            } else {
                failedConnectsUntracked += 1
            }
            return
        }
        if position(of: flow.id) == nil {
            guard flow.nvmeTCP else { return }
            connections.append(ConnectionModel(id: flow.id, host: flow.client, target: flow.server,
                                               firstRef: flow.firstRef, lastRef: flow.lastRef, synSeen: false,
                                               keepAlives: KeepAliveLog(limit: keepAliveSample)))
            setPosition(connections.count - 1, of: flow.id)
        }
        guard let index = position(of: flow.id) else { return }
        // In place: a copy of the model out and back costs a retain and release of each of its
        // references, twice per connection.
        let (end, controller, id) = Self.close(&connections[index], flow: flow, final: final)
        if final { connections[index].leftPipeline = true }
        // An admin queue that closed no longer takes I/O queues.
        if let end, let ctl = controller, controllers[ctl].adminConnection == id {
            adminClosed[ctl] = end.ref
            let path = Path(host: connections[index].host.address, target: connections[index].target)
            openControllers[path]?.removeAll { $0 == ctl }
            if openControllers[path]?.isEmpty == true { openControllers[path] = nil }
        }
    }

    /// What the end of its TCP connection tells of a connection: who closed it and how, its
    /// span, what the capture missed of it.
    private static func close(_ c: inout ConnectionModel, flow: ConnectionSummary, final: Bool) -> (ConnectionEnd?, Int?, Int) {
        c.synSeen = flow.sawSYN
        if let t = c.termReqs.first {
            c.end = ConnectionEnd(by: t.from, how: .termReq, ref: t.ref)
        } else if let close = flow.firstClose {
            let sender = close.byClient ? flow.client : flow.server
            c.end = ConnectionEnd(by: sender == c.host ? .host : .target, how: close.kind == .fin ? .fin : .rst, ref: close.ref)
        }
        if flow.lastRef.timeNs > c.lastRef.timeNs { c.lastRef = flow.lastRef }
        // The connection spans the whole TCP connection (handshake included), not just its PDUs.
        if (flow.firstRef.file, flow.firstRef.frame) < (c.firstRef.file, c.firstRef.frame) { c.firstRef = flow.firstRef }
        c.capture.capturedBytes = flow.capturedBytes
        c.capture.notCapturedBytes = flow.notCapturedBytes
        c.capture.lostBytes = flow.lostBytes
        c.capture.unframedBytes = max(c.capture.unframedBytes, flow.unframedBytes)
        // Once, when the connection has ended: a close is followed by its end.
        if final { c.tcp = ConnectionTCP(flow, hostIsClient: flow.client == c.host) }
        c.waitingCommands = flow.waitingCommands
        c.oldestWaitingCommands = flow.oldestWaitingCommands
        c.completionsMissedAt = flow.completionsMissedAt
        c.untimedCommands = flow.waitingCommands + flow.replacedUnanswered
        return (c.end, c.controller, c.id)
    }

    // MARK: - commands and completions

    /// A Property Set: a write of CC says how the host means to end the association (see
    /// `HostShutdown`); an enable clears what an earlier reset said.
    private func propertySet(_ cmd: NVMeCommand, ref: FrameRef, in c: inout ConnectionModel) {
        guard case .propertySet(let offset, _, let value) = cmd.detail else {
            c.hostShutdown = HostShutdown(ref: ref, kind: .valueNotCaptured, cc: nil)
            return
        }
        guard offset == 0x14 else { return }
        let cc = UInt32(truncatingIfNeeded: value)
        if (cc >> 14) & 0x3 != 0 {
            c.hostShutdown = HostShutdown(ref: ref, kind: .shutdown, cc: cc)
        } else if cc & 0x1 == 0 {
            c.hostShutdown = HostShutdown(ref: ref, kind: .reset, cc: cc)
        } else {
            c.hostShutdown = nil
        }
    }

    private func command(_ cmd: NVMeCommand, connectData: ConnectData?, ref: FrameRef, in c: inout ConnectionModel) {
        if cmd.fctype == 0x00 { propertySet(cmd, ref: ref, in: &c) }
        // The host's answer to asynchronous events: the log page it reads next.
        if let from = c.eventsAwaitingLogRead, case .getLogPage(let lid, _, _, _) = cmd.detail {
            c.asyncEvents.updateKept(from: from) { $0.logRead = (lid, ref) }
            c.eventsAwaitingLogRead = nil
        }
        switch cmd.detail {
        case .connect(let cc):
            c.connect = cc
            c.connectData = connectData
            c.connectRef = ref
            if let qid = cc.qid {
                c.queueKind = qid == 0 ? .admin : .io
                if qid != 0 { c.cntlid = connectData?.cntlid }
            }
        case _ where cmd.fctype == 0x00 || cmd.fctype == 0x04:
            if c.queueKind == nil {
                // Fabrics Property Set/Get (FCTYPE 00h/04h) go only on the admin queue (NVMe over
                // Fabrics 1.1 §3.4, §3.5); the FCTYPE is in the first bytes of the SQE, which even
                // a 96-byte snap length keeps.
                inferQueue(.admin, .inferred("Fabrics \(cmd.name) (frame \(ref.frame)), which only the admin queue carries"), ref: ref, in: &c)
            }
        case .keepAlive where cmd.queue == .admin:
            if c.queueKind == nil {
                // Keep Alive (opcode 0x18) is an admin command (NVMe Base 2.1 §5.2.12): only an
                // admin queue carries it.
                inferQueue(.admin, .inferred("Keep Alive commands (admin opcode 0x18), the first at frame \(ref.frame)"), ref: ref, in: &c)
            }
            let event = TimerEvent(ref: ref, connection: c.id, command: cmd.kind)
            c.keepAlives.add(KeepAliveExchange(cid: cmd.cid, command: ref))
            c.keepAliveSeries.add(event)
            c.keepAliveCadence.add(ref)
            if let ctl = c.controller { controllers[ctl].keepAlives.add(event) }
        case .asyncEventRequest:
            c.outstandingAERs[cmd.cid] = ref
        case .getLogPage(let lid, _, _, _) where lid == 0x70:
            c.readDiscoveryLog = true
        case .setFeatures(let fid, _, _) where fid == 0x07, .getFeatures(let fid, _) where fid == 0x07:
            // Number of Queues: only controllers with I/O queues have it (a discovery controller
            // has none; NVMe Base 2.1 §3.1.3.3).
            if c.ioControllerCommand == nil { c.ioControllerCommand = ("\(cmd.name) Number of Queues", ref) }
        case .identify(let cns, _) where Self.namespaceCNS.contains(cns):
            if c.ioControllerCommand == nil { c.ioControllerCommand = ("Identify CNS \(hexValue(cns)) (\(NVMeOpcodes.identifyCNSName(cns)))", ref) }
        default:
            break
        }
        if c.queueKind == nil, cmd.fctype == nil, Self.isAdminOnly(cmd) {
            inferQueue(.admin, .inferred("admin commands (\(cmd.name), opcode \(hexValue(cmd.opcode))\(cmd.known(upTo: 8) ? ", NSID \(hexValue(cmd.nsid, digits: 8))" : "")), the first at frame \(ref.frame)"), ref: ref, in: &c)
        }
        if c.queueKind == nil, cmd.queueGuessed, cmd.queue == .io {
            // Reads, writes and the like naming a namespace are I/O commands; the admin queue
            // has no such opcodes with a namespace (see `NVMeCommand`'s queue guess).
            inferQueue(.io, .inferred("I/O commands (\(cmd.name) with NSID \(cmd.nsid)), the first at frame \(ref.frame)"), ref: ref, in: &c)
        }
        countCommand(cmd.kind, ref: ref, in: &c)
    }

    /// A command only an admin queue carries, from its opcode and NSID alone (the queue is not
    /// known): Identify (06h; the NVM command set has no I/O opcode 06h), and Get Log Page,
    /// Set/Get Features, Asynchronous Event Request, Keep Alive (02h, 09h, 0Ah, 0Ch, 18h) naming
    /// no namespace or all of them (NSID 0 or FFFFFFFFh), which the I/O commands sharing those
    /// opcodes (Read, Dataset Management, Verify) never do.
    static func isAdminOnly(_ cmd: NVMeCommand) -> Bool {
        if cmd.opcode == 0x06 { return true }
        guard cmd.known(upTo: 8) else { return false }
        switch cmd.opcode {
        case 0x02, 0x09, 0x0A, 0x18: return cmd.nsid == 0 || cmd.nsid == 0xFFFF_FFFF
        case 0x0C: return cmd.nsid == 0
        default: return false
        }
    }

    /// Identify CNS values about namespaces and I/O command sets: a discovery controller answers
    /// only Identify Controller (CNS 01h) (NVMe Base 2.1 §5.1.13, discovery controller command
    /// support).
    static let namespaceCNS: Set<UInt8> = [0x00, 0x02, 0x03, 0x05, 0x06, 0x07, 0x08]

    private func completion(_ cqe: NVMeCompletion, _ done: CompletedCommand, ref: FrameRef, in c: inout ConnectionModel) {
        switch done.command.detail {
        case .connect(let cc):
            c.connectStatus = cqe.status
            c.connectResponseRef = ref
            // Whether the Connect succeeded is unknown when the status was not captured: no
            // controller rests on it (the queue can still be inferred from its commands).
            guard cqe.succeeded else { return }
            if case .connect(let cntlid, _) = done.detail { c.connectResponseCntlid = cntlid }
            if let data = done.connectData, c.connectData == nil { c.connectData = data }
            switch cc.qid {
            case .some(0):
                c.cntlid = c.connectResponseCntlid
                createController(for: &c, kato: cc.kato, connectRef: done.issued)
            case .some:
                if c.cntlid == nil { c.cntlid = done.connectData?.cntlid }
                joinController(&c, ref: ref)
            case .none:
                break  // QID not captured: decided when the queue is inferred
            }
        case .keepAlive:
            if let status = cqe.status, !status.isSuccess { c.failedKeepAlives.append((ref, status)) }
            c.keepAlives.complete(issued: done.issued, ref: ref, status: cqe.status)
        case .asyncEventRequest:
            if let submitted = c.outstandingAERs.removeValue(forKey: done.command.cid) {
                c.longestAERSeconds = max(c.longestAERSeconds, Double(ref.timeNs &- submitted.timeNs) / 1e9)
            }
            // Only a success reports an event (an AER aborted when the queue is deleted does not:
            // its detail is left empty by the decoder).
            if case .asyncEvent(let event) = done.detail,
               c.asyncEvents.append(AsyncEventNotice(event: event, ref: ref, request: done.issued)),
               c.eventsAwaitingLogRead == nil {
                c.eventsAwaitingLogRead = c.asyncEvents.kept.count - 1
            }
        case .identify:
            if case .identifyController(let id) = done.detail {
                c.identify = id
                if let ctl = c.controller, let tbkas = id.tbkas { controllers[ctl].tbkas = tbkas }
            }
        case .getLogPage(let lid, _, _, _) where lid == 0x70:
            c.readDiscoveryLog = true
            c.lastDiscoveryLogRef = ref
        default:
            break
        }
    }

    // MARK: - queues and controllers

    /// The queue kind of a connection whose Connect QID the capture did not show, from `basis`.
    private func inferQueue(_ kind: QueueKind, _ basis: Basis, ref: FrameRef, in c: inout ConnectionModel) {
        c.queueKind = kind
        c.inferredQueueBasis = basis
        guard c.controller == nil else { return }
        if kind == .admin {
            // An admin queue is its controller's: the association exists even when its Connect
            // (or the Connect's QID) is not in the capture. A Connect seen without QID still gives
            // the timer start and the CNTLID of its response.
            // Only a Connect known to have failed rules it out (its response may not have been
            // captured; Keep Alives flowing say the association exists).
            if c.connectStatus.map({ !$0.isSuccess }) ?? false { return }
            if c.cntlid == nil { c.cntlid = c.connectResponseCntlid }
            createController(for: &c, kato: c.connect?.kato, connectRef: c.connectRef)
            // Commands came between the Connect and this one (the queue was recognised only now):
            // the any-command series starts at the last of them, not at the Connect, so that no
            // gap is made up of commands that were not counted. (The Keep Alive series keeps the
            // Connect: a Keep Alive would have told the queue earlier.)
            if let last = c.lastHostCommand, let ctl = c.controller, last != c.connectRef {
                controllers[ctl].anyCommand = TimerSeries()
                controllers[ctl].anyCommand.add(TimerEvent(ref: last, connection: c.id, command: c.lastHostCommandKind))
            }
        } else if c.connectStatus?.isSuccess ?? true {
            joinController(&c, ref: ref)
        }
    }

    /// Creates the controller of admin queue `c`. `connectRef` is nil when the association began
    /// before the capture.
    private func createController(for c: inout ConnectionModel, kato: UInt32?, connectRef: FrameRef?) {
        let id = controllers.count
        let path = Path(host: c.host.address, target: c.target)
        var ctl = ControllerModel(id: id, adminConnection: c.id, cntlid: c.cntlid, hostnqn: c.hostnqn, subnqn: c.subnqn,
                                  host: c.host.address, target: c.target, kato: kato, connectSeen: connectRef != nil,
                                  discovery: nil, tbkas: c.identify?.tbkas)
        if let connectRef {
            // The target's keep-alive timer starts when the controller is created by the Connect.
            let start = TimerEvent(ref: connectRef, connection: c.id, command: nil)
            ctl.keepAlives.add(start)
            ctl.anyCommand.add(start)
        }
        let (chain, basis) = chainFor(&ctl, path: path, connectRef: connectRef)
        chains[chain].controllers.append(id)
        ctl.chain = chain
        ctl.chainBasis = basis
        controllers.append(ctl)
        c.controller = id
        if c.end == nil { openControllers[path, default: []].append(id) }
    }

    /// The chain a new controller belongs to: by its NQNs when the Connect data shows them; else
    /// the newest chain of the same host address and target whose last association ended before
    /// this one began (a reconnect); else a new chain.
    private func chainFor(_ ctl: inout ControllerModel, path: Path, connectRef: FrameRef?) -> (Int, Basis?) {
        if let sub = ctl.subnqn, let host = ctl.hostnqn {
            let key = ChainKey(target: ctl.target, subnqn: sub, hostnqn: host)
            if let existing = chainByNQNs[key] { return (existing, nil) }
            // A chain begun without NQNs (a Connect whose data was cut, a mid-stream start) on the
            // same path takes this association when its last one had ended.
            if let c = chainByPath[path], chains[c].hostnqn == nil, let prev = previousEnded(c, before: connectRef) {
                chains[c].hostnqn = host
                chains[c].subnqn = sub
                chainByNQNs[key] = c
                return (c, .inferred("same host address and target as connection \(prev), which had closed before this Connect"))
            }
            let id = newChain(hostnqn: host, subnqn: sub, path: path)
            chainByNQNs[key] = id
            return (id, nil)
        }
        if let c = chainByPath[path], let prev = previousEnded(c, before: connectRef) {
            return (c, .inferred("Connect data not captured: same host address and target as connection \(prev), which had closed before this association began"))
        }
        return (newChain(hostnqn: nil, subnqn: nil, path: path), nil)
    }

    /// The admin connection of chain `c`'s last association when it ended before `ref` (or, for
    /// an association begun before the capture, at all).
    private func previousEnded(_ chain: Int, before ref: FrameRef?) -> Int? {
        // An association picked up mid-stream began before the capture, so before any end the
        // capture shows: it overlapped the previous one and re-made nothing.
        guard let ref, let last = chains[chain].controllers.last, let end = adminClosed[last],
              end.timeNs <= ref.timeNs else { return nil }
        return controllers[last].adminConnection
    }

    private func newChain(hostnqn: String?, subnqn: String?, path: Path) -> Int {
        let id = chains.count
        chains.append(ReconnectChain(id: id, hostnqn: hostnqn, subnqn: subnqn, host: path.host, target: path.target))
        chainByPath[path] = id
        return id
    }

    /// Joins I/O queue `c` to its controller: by the Connect data's CNTLID (and NQNs) when
    /// captured; otherwise the one open controller of the same host address and target, narrowed
    /// by the Connect response's CNTLID when there are several. Ambiguity leaves it unjoined.
    private func joinController(_ c: inout ConnectionModel, ref: FrameRef) {
        guard c.controller == nil else { return }
        let path = Path(host: c.host.address, target: c.target)
        let open = openControllers[path] ?? []
        var chosen: Int?
        var basis: Basis?
        if let cntlid = c.connectData?.cntlid {
            let compatible = open.filter { ctl in
                (c.subnqn == nil || controllers[ctl].subnqn == nil || controllers[ctl].subnqn == c.subnqn)
                    && (c.hostnqn == nil || controllers[ctl].hostnqn == nil || controllers[ctl].hostnqn == c.hostnqn)
            }
            let matches = compatible.filter { controllers[$0].cntlid == cntlid }
            // An admin queue picked up mid-stream has no CNTLID to compare: the only such one
            // on the path may be it.
            let unknown = compatible.filter { controllers[$0].cntlid == nil }
            if matches.count == 1 {
                chosen = matches[0]
                let nqns = c.subnqn != nil && controllers[matches[0]].subnqn != nil
                basis = nqns ? .observed("Connect data CNTLID \(cntlid) and NQNs")
                    : .inferred("Connect data CNTLID \(cntlid) on the same host address and target (NQNs not captured)")
            } else if matches.isEmpty && unknown.count == 1 {
                chosen = unknown[0]
                basis = .inferred("Connect data CNTLID \(cntlid); the only admin queue of host \(c.host.address) to \(c.target) open at frame \(ref.frame) is connection \(controllers[unknown[0]].adminConnection), whose CNTLID the capture does not show")
            }
        } else {
            var candidates = open
            var narrowed = false
            if candidates.count > 1, let cntlid = c.connectResponseCntlid {
                candidates = candidates.filter { controllers[$0].cntlid == cntlid }
                narrowed = true
            }
            if candidates.count == 1 {
                chosen = candidates[0]
                let admin = controllers[candidates[0]].adminConnection
                basis = .inferred("\(c.connect == nil ? "Connect not captured" : "Connect data not captured"): the only admin queue of host \(c.host.address) to \(c.target) open at frame \(ref.frame) is connection \(admin)"
                                  + (narrowed ? ", the one with the CNTLID of the Connect response" : ""))
            }
        }
        guard let ctl = chosen else { return }
        controllers[ctl].ioConnections.append(c.id)
        c.controller = ctl
        c.controllerBasis = basis
        if c.cntlid == nil { c.cntlid = controllers[ctl].cntlid }
    }

    // MARK: - output

    /// The model as of `captureEnd`: connections still open end there; the kind of each
    /// controller and the persistence of discovery connections are judged.
    /// `latency`: with the command latency distributions (merged per controller and their
    /// percentiles computed: no rule reads them, and a live capture's model every 100 ms need not).
    public func model(files: [String], packets: Int, captureStart: FrameRef?, captureEnd: FrameRef, latency withLatency: Bool = true) -> SessionModel {
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
        // I/O queues whose admin queue was recognised only after they connected (both picked up
        // mid-stream, or the admin's Connect cut): joined now, to the one controller of the same
        // host address and target whose admin queue was open when they connected.
        // Built only when an I/O queue is left to join (rare outside cut captures).
        lazy var ctlsByPath: [Path: [Int]] = {
            var out: [Path: [Int]] = [:]
            for k in ctls.indices { out[Path(host: ctls[k].host, target: ctls[k].target), default: []].append(k) }
            return out
        }()
        for i in conns.indices where conns[i].queueKind == .io && conns[i].controller == nil {
            if let st = conns[i].connectStatus, !st.isSuccess { continue }
            let at = conns[i].connectRef ?? conns[i].firstRef
            var candidates = (ctlsByPath[Path(host: conns[i].host.address, target: conns[i].target)] ?? []).filter { k in
                guard let a = index[ctls[k].adminConnection] else { return false }
                // An admin queue picked up mid-stream was open before the capture began.
                return (conns[a].midStream || conns[a].firstRef.timeNs <= at.timeNs)
                    && (conns[a].end?.how == .captureEnd || conns[a].end.map { $0.ref.timeNs >= at.timeNs } ?? true)
            }
            let cntlid = conns[i].connectData?.cntlid ?? conns[i].connectResponseCntlid
            if candidates.count > 1, let cntlid { candidates = candidates.filter { ctls[$0].cntlid == cntlid } }
            guard candidates.count == 1, let k = candidates.first else { continue }
            ctls[k].ioConnections.append(conns[i].id)
            ctls[k].lateIOConnections.append(conns[i].id)
            conns[i].controller = k
            if conns[i].cntlid == nil { conns[i].cntlid = ctls[k].cntlid }
            conns[i].controllerBasis = .inferred("the only admin queue of host \(conns[i].host.address) to \(conns[i].target) open when it \(conns[i].connectRef != nil ? "connected (frame \(at.frame))" : "was first seen") is connection \(ctls[k].adminConnection)")
        }
        // Controller type, strongest evidence first.
        for i in conns.indices where conns[i].queueKind != .io {
            let ctl = conns[i].controller.flatMap { ctls[$0].adminConnection == conns[i].id ? $0 : nil }
            let ioQueues = ctl.map { ctls[$0].ioConnections } ?? []
            guard let (discovery, basis) = Self.controllerType(conns[i], ioQueues: ioQueues) else { continue }
            conns[i].discovery = discovery
            conns[i].discoveryBasis = basis
            if let ctl {
                ctls[ctl].discovery = discovery
                ctls[ctl].discoveryBasis = basis
            }
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
        var model = SessionModel(files: files, packets: packets, captureStart: captureStart, captureEnd: captureEnd,
                                 connections: conns, controllers: ctls, chains: chains)
        model.failedConnects = failedConnects.values.sorted {
            ($0.target.address.description, $0.target.port) < ($1.target.address.description, $1.target.port)
        }
        model.failedConnectsUntracked = failedConnectsUntracked
        if withLatency {
            model.latency = latency.groups { id in index[id].map { (conns[$0].controller, conns[$0].queueKind) } ?? (nil, nil) }
        }
        return model
    }

    /// Whether the controller behind an admin queue (or a queue whose kind is unknown) is a
    /// discovery controller, from the strongest evidence present (issue #13): the subsystem NQN,
    /// Identify CNTRLTYPE, a discovery log read, then what only I/O controllers do, then the
    /// well-known discovery port. Nil when nothing tells: never a default.
    static func controllerType(_ c: ConnectionModel, ioQueues: [Int]) -> (Bool, Basis)? {
        if let sub = c.subnqn {
            let discovery = sub == SessionModel.discoveryNQN
            return (discovery, .observed("subsystem NQN \(sub)\(discovery ? " (the well-known discovery NQN)" : "")"))
        }
        if let type = c.identify?.cntrltype, (1...3).contains(type) {
            return (type == 2, .observed("Identify Controller CNTRLTYPE \(type) (\(c.identify!.controllerTypeName))"))
        }
        if c.readDiscoveryLog {
            let at = c.lastDiscoveryLogRef.map { " (frame \($0.frame))" } ?? ""
            return (true, .inferred("it read the discovery log page (Get Log Page LID 70h)\(at)"))
        }
        if !ioQueues.isEmpty {
            return (false, .inferred("it has I/O queues (connection \(ioQueues.map(String.init).joined(separator: ", ")))"))
        }
        if let cmd = c.ioControllerCommand {
            return (false, .inferred("it sent \(cmd.name) (frame \(cmd.ref.frame)), which only I/O controllers take"))
        }
        if c.target.port == 8009 {
            return (true, .inferred("target port 8009, the well-known discovery port (Connect data not captured)"))
        }
        return nil
    }
}
