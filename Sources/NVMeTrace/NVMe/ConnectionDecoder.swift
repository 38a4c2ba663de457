/// Gives NVMe meaning to the PDUs of one NVMe/TCP connection (both directions): decodes commands
/// and completions, matches them by CID, keeps the data of the few commands whose data matters
/// (Connect, Identify Controller, the discovery log), and learns the queue id from the Connect.
public final class NVMeConnectionDecoder {
    /// What `decodePlainIO` found: a command of this kind, or (nil) a completion, data or R2T.
    public struct PlainIO: Sendable {
        public var kind: CommandKind?
    }

    /// A plain value: stored, moved and dropped at every command and completion, which a
    /// reference inside made cost a generic destroy each (callgrind).
    struct Outstanding {
        var command: NVMeCommand
        var ref: FrameRef
        /// The command's data is being kept (`kept[cid]`).
        var keepsData: Bool
        /// When its R2T and data PDUs went by (its latency's phases).
        var times = CommandPhaseTimes()
    }

    /// The data kept for one of the few commands whose data is decoded (Connect, Identify
    /// Controller, the discovery log), in a box allocated only for them and found by CID.
    final class KeptData {
        var bytes: [UInt8] = []
        let limit: Int
        var connectData: ConnectData?
        init(limit: Int, connectData: ConnectData?) {
            self.limit = limit
            self.connectData = connectData
        }
    }

    /// Queue id from this connection's Connect (nil until seen).
    public private(set) var qid: UInt16?
    public private(set) var icReq: InitializeConnection?
    public private(set) var icResp: InitializeConnection?
    /// Cap on outstanding commands tracked (a queue holds at most 65535; a hostile stream can
    /// send commands that never complete).
    public let maxOutstanding: Int
    private var outstanding = CIDMap<Outstanding>()
    /// The last completions that matched no command (CID and time), so that a command delivered
    /// after its own completion (its bytes were behind a hole in the host's stream, given up
    /// and delivered late with their own, earlier frame) is known to have been answered.
    private var unmatched: [(cid: UInt16, timeNs: Int64)] = []
    static let unmatchedKept = 32
    /// The time of the latest of them: only a command sent no later than that can be one (a
    /// command delivered in capture order is later than every completion before it).
    private var latestUnmatchedNs = Int64.min
    /// Kept data of the outstanding commands with `keepsData`, and only of those.
    private var kept: [UInt16: KeptData] = [:]
    /// What the decoder noticed while decoding the last PDU (`decode`), oldest first, for its
    /// caller to take (`takeEvents`; the next `decode` forgets them either way) and judge: whether an unmatched completion or a reused CID is
    /// news depends on what the capture missed, which only the caller knows. Empty for almost
    /// every PDU (its buffer is kept once allocated).
    public private(set) var events: [(NVMeDecodeEvent, FrameRef)] = []

    private func note(_ event: NVMeDecodeEvent, _ ref: FrameRef) { events.append((event, ref)) }

    /// Commands completed since the caller last took them (`timingsTaken`), timed: handed on
    /// apart from the PDUs, whose record a timing would have widened for every PDU of plain I/O
    /// (callgrind: +5% on 4 KiB I/O). One by one for a connection's first `timingsOneByOne`
    /// (most connections of a capture of thousands complete a handful: a buffer for a batch
    /// each cost 0.5 KiB a connection), in batches of `timingsBatch` after that.
    public private(set) var timings: [CommandTiming] = []
    /// Set when `timings` should be handed on (checked after each PDU).
    public private(set) var timingsReady = false
    private var timedCount = 0
    public static let timingsBatch = 64
    public static let timingsOneByOne = 64

    /// Forgets the timings taken (`timings` was read).
    public func timingsTaken() {
        // One by one while few (`removeAll(keepingCapacity:)` cost ~70 instructions a call).
        if timings.count <= 2 {
            while !timings.isEmpty { timings.removeLast() }
        } else {
            timings.removeAll(keepingCapacity: true)
        }
        timingsReady = false
    }

    @inline(__always)
    private func noteTimed() {
        timedCount &+= 1
        if timedCount <= Self.timingsOneByOne || timings.count >= Self.timingsBatch { timingsReady = true }
    }

    @inline(__always)
    private func timed(_ o: borrowing Outstanding, completed: FrameRef, byData: Bool) {
        timings.append(CommandTiming(kind: CommandKind(opcode: o.command.opcode, fctype: o.command.fctype, queue: o.command.queue),
                                     cid: o.command.cid, issued: o.ref, completed: completed, times: withLastC2H(o.times, cid: o.command.cid),
                                     completedByData: byData))
        noteTimed()
    }

    /// `timed` for the outstanding command at `p`, its fields read in place (a copy of the
    /// whole entry cost more than the timing).
    @inline(__always)
    private func timed(at p: Int, completed: FrameRef, byData: Bool) {
        let kind = CommandKind(opcode: outstanding[position: p].command.opcode, fctype: outstanding[position: p].command.fctype,
                               queue: outstanding[position: p].command.queue)
        let cid = outstanding[position: p].command.cid
        timings.append(CommandTiming(kind: kind, cid: cid, issued: outstanding[position: p].ref,
                                     completed: completed, times: withLastC2H(outstanding[position: p].times, cid: cid), completedByData: byData))
        noteTimed()
    }

    /// The last C2HData PDU (its command's CID and time), not yet written into its command's
    /// entry: a read's data and its response follow each other on the wire (Linux's target and
    /// SPDK's send them so), and writing the time into the command's entry at every C2HData,
    /// a copy-on-write check and a store, cost more than the phase itself. Written into the
    /// entry only when another command's data comes between (`c2hSeen`).
    private var lastC2HCID: UInt16 = 0
    private var lastC2HNs = CommandPhaseTimes.none

    @inline(__always)
    private func c2hSeen(cid: UInt16, timeNs: Int64) {
        if lastC2HNs != CommandPhaseTimes.none && lastC2HCID != cid { writeBackC2H() }
        lastC2HCID = cid
        lastC2HNs = timeNs
    }

    @inline(never)
    private func writeBackC2H() {
        if let q = outstanding.position(of: lastC2HCID) { outstanding[position: q].times.c2hSeen(lastC2HNs) }
        lastC2HNs = CommandPhaseTimes.none
    }

    /// A completing command's times with the last C2HData's, when it was this command's (taken).
    @inline(__always)
    private func withLastC2H(_ times: CommandPhaseTimes, cid: UInt16) -> CommandPhaseTimes {
        guard lastC2HNs != CommandPhaseTimes.none, lastC2HCID == cid else { return times }
        var t = times
        t.c2hSeen(max(lastC2HNs, t.lastData))
        lastC2HNs = CommandPhaseTimes.none
        return t
    }

    /// The events noted since the last call, and forgets them.
    public func takeEvents() -> [(NVMeDecodeEvent, FrameRef)] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    public init(maxOutstanding: Int = 65536) {
        self.maxOutstanding = maxOutstanding
    }

    public var outstandingCount: Int { outstanding.count }
    /// Commands (not Asynchronous Event Requests) whose CID a later command took while they were
    /// outstanding: their completion was not in the capture (or not decodable), so they were
    /// never timed.
    public private(set) var replacedUnanswered = 0

    /// The commands waiting for a completion now, but Asynchronous Event Requests (outstanding by
    /// design, NVMe Base 2.1 §5.1.2): how many, and the `limit` oldest, oldest first. Runs over
    /// every outstanding command (at a connection's close, not per PDU).
    public func waitingCommands(limit: Int) -> (count: Int, oldest: [OutstandingCommand]) {
        var count = 0
        var oldest: [OutstandingCommand] = []
        guard !outstanding.isEmpty else { return (0, []) }
        for o in outstanding.values {
            if case .asyncEventRequest = o.command.detail { continue }
            count += 1
            oldest.append(OutstandingCommand(cid: o.command.cid, kind: o.command.kind, issued: o.ref))
            if oldest.count > 2 * limit {
                oldest.sort { $0.issued.timeNs < $1.issued.timeNs }
                oldest.removeLast(oldest.count - limit)
            }
        }
        oldest.sort { ($0.issued.timeNs, $0.issued.frame) < ($1.issued.timeNs, $1.issued.frame) }
        return (count, Array(oldest.prefix(limit)))
    }

    /// How many data bytes of a PDU to keep, decided from its header (framer callback).
    public func dataBytesToKeep(_ shape: PDUShape, header: UnsafeRawBufferPointer) -> Int {
        switch shape.type {
        case .capsuleCmd:
            // In-capsule data matters only for Connect (opcode 0x7F, fctype 0x01).
            return header.u8(at: 8) == NVMeOpcodes.fabrics && header.u8(at: 12) == 0x01 ? ConnectData.size : 0
        case .c2hData, .h2cData:
            // No command keeps data (the usual case once a queue is connected): no lookup.
            guard !kept.isEmpty, let dh = DataTransferHeader(header: header), let p = outstanding.position(of: dh.cccid),
                  let kept = keptData(at: p, cid: dh.cccid) else { return 0 }
            // Fields read one by one: a copy of the whole record costs more than the rest.
            let limit: Int
            if shape.type == .h2cData {
                guard outstanding[position: p].command.keepsHostData else { return 0 }
                limit = ConnectData.size
            } else {
                limit = kept.limit
            }
            let have = kept.bytes.count
            // Only contiguous data is kept: an offset past what we hold means some was lost.
            guard Int(dh.offset) == have, have < limit else { return 0 }
            return limit - have
        case .h2cTermReq, .c2hTermReq:
            return 128
        default:
            return 0
        }
    }

    /// Decodes an owned PDU (tests, tools): the same decode as the pipeline's.
    public func decode(_ pdu: PDU) -> (body: PDUBody, connectData: ConnectData?, completed: CompletedCommand?) {
        var connectData: ConnectData?
        var completed: CompletedCommand?
        let body = pdu.lent { decode($0, connectData: &connectData, completed: &completed) }
        return (body, connectData, completed)
    }

    /// Decodes a lent PDU (the pipeline: nothing of it is copied unless kept). `connectData` is
    /// set when this PDU completed the Connect data, `completed` when it completed a command.
    public func decode(_ pdu: LentPDU, connectData: inout ConnectData?, completed: inout CompletedCommand?) -> PDUBody {
        // Only the last PDU's events are kept, whether or not they were taken.
        if !events.isEmpty { events.removeAll(keepingCapacity: true) }
        if case .mismatch = pdu.headerDigest { return .untrusted }
        switch pdu.type {
        case .icReq:
            icReq = InitializeConnection(header: pdu.header)
            return .icReq(icReq)
        case .icResp:
            icResp = InitializeConnection(header: pdu.header)
            return .icResp(icResp)
        case .h2cTermReq, .c2hTermReq:
            return .termReq(TerminationRequest(header: pdu.header))
        case .capsuleCmd:
            return decodeCommand(pdu, connectData: &connectData)
        case .capsuleResp:
            // A CQE cut by the snap length still completes its command when its CID was captured.
            guard let cqe = NVMeCompletion(cqe: pdu.header.dropFirst(8)) else {
                return pdu.headerIsPartial ? .notCaptured : .untrusted
            }
            completed = complete(cqe, ref: pdu.ref)
            return .completion(cqe)
        case .h2cData:
            let dh = DataTransferHeader(header: pdu.header)
            let p = dh.flatMap { outstanding.position(of: $0.cccid) }
            if let p { outstanding[position: p].times.h2cSeen(pdu.ref.timeNs) }
            if let dh, !pdu.data.isEmpty, let p,
               outstanding[position: p].command.keepsHostData, let kept = keptData(at: p, cid: dh.cccid),
               Int(dh.offset) == kept.bytes.count {
                kept.bytes.append(contentsOf: pdu.data.prefix(ConnectData.size - kept.bytes.count))
                if kept.bytes.count >= ConnectData.size, let cd = ConnectData(kept.bytes) {
                    connectData = cd
                    kept.connectData = cd
                }
            }
            return .h2cData(dh)
        case .c2hData:
            let dh = DataTransferHeader(header: pdu.header)
            let p = dh.flatMap { outstanding.position(of: $0.cccid) }
            if let p, let dh { c2hSeen(cid: dh.cccid, timeNs: pdu.ref.timeNs) }
            if let dh, !pdu.data.isEmpty, let p,
               let kept = keptData(at: p, cid: dh.cccid), Int(dh.offset) == kept.bytes.count {
                kept.bytes.append(contentsOf: pdu.data.prefix(max(0, kept.limit - kept.bytes.count)))
            }
            // SUCCESS with LAST completes the command (§3.6.2.8); a header cut after CCCID still says
            // which one.
            if pdu.flags.contains(.success) && pdu.flags.contains(.last), let cccid = dh?.cccid ?? pdu.header.le16(at: 8) {
                let cqe = NVMeCompletion(impliedSuccessFor: cccid)
                completed = complete(cqe, ref: pdu.ref, byData: true)
                return .c2hData(dh, completion: cqe)
            }
            return .c2hData(dh, completion: nil)
        case .r2t:
            let dh = DataTransferHeader(header: pdu.header)
            if let dh, let p = outstanding.position(of: dh.cccid) { outstanding[position: p].times.r2tSeen(pdu.ref.timeNs) }
            return .r2t(dh)
        }
    }

    private func decodeCommand(_ pdu: LentPDU, connectData: inout ConnectData?) -> PDUBody {
        // The whole SQE (the usual case) is decoded directly; a cut one as far as it goes.
        let sqe = pdu.header.dropFirst(8)
        guard var cmd = sqe.count >= 64 ? NVMeCommand(sqe: sqe, qid: qid) : NVMeCommand(capturedSQE: sqe, qid: qid) else {
            return pdu.headerIsPartial ? .notCaptured : .untrusted
        }
        if case .connect(let c) = cmd.detail {
            // The QID is unknown when the snap length cut the SQE before it: the queue stays unknown.
            if let q = c.qid { qid = q }
            cmd.qid = c.qid
            if !pdu.data.isEmpty {
                if let cd = ConnectData(Array(pdu.data)) {
                    connectData = cd
                } else if pdu.incomplete {
                    // The capture kept only the data's first bytes: decode what they hold.
                    connectData = ConnectData(captured: Array(pdu.data))
                } else {
                    note(.shortConnectData(bytes: pdu.data.count), pdu.ref)
                }
            }
        }
        // Its completion came first: answered, not waiting.
        if pdu.ref.timeNs <= latestUnmatchedNs, let i = unmatched.firstIndex(where: { $0.cid == cmd.cid && $0.timeNs >= pdu.ref.timeNs }) {
            unmatched.remove(at: i)
            return .command(cmd)
        }
        let previous = outstanding.position(of: cmd.cid)
        let reused = previous != nil
        if let previous {
            note(.cidReused(cid: cmd.cid), pdu.ref)
            if lastC2HCID == cmd.cid { lastC2HNs = CommandPhaseTimes.none }  // the replaced command's data
            if case .asyncEventRequest = outstanding[position: previous].command.detail {} else { replacedUnanswered += 1 }
        }
        if outstanding.count < maxOutstanding || reused {
            let limit = cmd.dataToKeep
            let keepsData = limit > 0 || connectData != nil
            if keepsData {
                kept[cmd.cid] = KeptData(limit: limit, connectData: connectData)
            } else if let previous, outstanding[position: previous].keepsData {
                kept[cmd.cid] = nil  // the reused CID's data went with the command it belonged to
            }
            outstanding.set(Outstanding(command: cmd, ref: pdu.ref, keepsData: keepsData),
                            for: cmd.cid)
        }
        return .command(cmd)
    }

    /// The data being kept for the outstanding command at `p` (with CID `cid`); the flag is
    /// checked first so that commands keeping nothing cost no hashing.
    @inline(__always)
    private func keptData(at p: Int, cid: UInt16) -> KeptData? {
        outstanding[position: p].keepsData ? kept[cid] : nil
    }

    // MARK: - plain I/O

    /// Decodes a PDU of plain I/O traffic, and only such a PDU, for a consumer that needs no more
    /// of it than its kind (the session model): on a connection whose Connect named an
    /// I/O queue, a command that is not a Fabrics command, its completion, and data and R2T PDUs
    /// of such commands, with a trusted header. The bulk of a capture; decoded in full and lent
    /// on, each cost ~1,300 instructions (callgrind), most of it describing reads and writes
    /// nobody reads about.
    ///
    /// Returns nil, having changed nothing, for any other PDU: the caller then decodes it in full
    /// with `decode`. Otherwise the decoder's state changes exactly as `decode` would change it.
    /// The summary becomes a `PDUBody.ioSummary`; returned as this small value, not the body
    /// (a larger return value cost ~10 instructions a PDU).
    public func decodePlainIO(_ pdu: LentPDU) -> PlainIO? {
        guard let qid, qid != 0 else { return nil }
        if case .mismatch = pdu.headerDigest { return nil }
        let h = pdu.header
        switch pdu.type {
        case .capsuleCmd:
            guard h.u8(at: 8) != NVMeOpcodes.fabrics, let sqe = h.slice(8, 64),
                  let cmd = NVMeCommand(sqe: sqe, qid: qid),
                  outstanding.position(of: cmd.cid) == nil,   // reused CID: `decode` warns
                  pdu.ref.timeNs > latestUnmatchedNs,         // maybe answered already: `decode` looks
                  outstanding.count < maxOutstanding else { return nil }
            outstanding.insertNew(Outstanding(command: cmd, ref: pdu.ref, keepsData: false), for: cmd.cid)
            return PlainIO(kind: cmd.kind)
        case .capsuleResp:
            // CQE (§3.6.2.6): the CID is at byte 12 of the 16 after the common header.
            guard h.slice(8, 16) != nil, let cid = h.le16(at: 8 + 12), let p = outstanding.position(of: cid),
                  isPlain(at: p) else { return nil }
            timed(at: p, completed: pdu.ref, byData: false)
            outstanding.remove(at: p)
            return PlainIO(kind: nil)
        case .c2hData:
            guard let dh = DataTransferHeader(header: h) else { return nil }
            let p = outstanding.position(of: dh.cccid)
            if let p, !isPlain(at: p) { return nil }
            if pdu.flags.contains(.success) && pdu.flags.contains(.last) {
                guard let p else { return nil }  // unmatched: `decode` warns
                c2hSeen(cid: dh.cccid, timeNs: pdu.ref.timeNs)
                timed(at: p, completed: pdu.ref, byData: true)
                outstanding.remove(at: p)
            } else if p != nil {
                c2hSeen(cid: dh.cccid, timeNs: pdu.ref.timeNs)
            }
            return PlainIO(kind: nil)
        case .h2cData, .r2t:
            guard let dh = DataTransferHeader(header: h) else { return nil }
            if let p = outstanding.position(of: dh.cccid) {
                guard isPlain(at: p) else { return nil }
                if pdu.type == .r2t {
                    outstanding[position: p].times.r2tSeen(pdu.ref.timeNs)
                } else {
                    outstanding[position: p].times.h2cSeen(pdu.ref.timeNs)
                }
            }
            return PlainIO(kind: nil)
        default:
            return nil
        }
    }

    /// True when the outstanding command at `p` is not a Fabrics command and keeps no data
    /// (nothing is decoded from its data or its completion).
    @inline(__always)
    private func isPlain(at p: Int) -> Bool {
        outstanding[position: p].command.fctype == nil && !outstanding[position: p].keepsData
    }

    /// Matches a completion with its command and decodes what the completion means for it.
    private func complete(_ cqe: NVMeCompletion, ref: FrameRef, byData: Bool = false) -> CompletedCommand? {
        guard let o = outstanding.removeValue(for: cqe.cid) else {
            note(.unmatchedCompletion(cid: cqe.cid), ref)
            if unmatched.count == Self.unmatchedKept { unmatched.removeFirst() }
            unmatched.append((cqe.cid, ref.timeNs))
            latestUnmatchedNs = max(latestUnmatchedNs, ref.timeNs)
            return nil
        }
        let keptData = o.keepsData ? kept.removeValue(forKey: cqe.cid) : nil
        if case .asyncEventRequest = o.command.detail {} else { timed(o, completed: ref, byData: byData) }
        var detail = CompletionDetail.none
        // Connect data sent by H2CData of which the capture kept only the first bytes.
        var connectData = keptData?.connectData
        if connectData == nil, o.command.keepsHostData, let bytes = keptData?.bytes { connectData = ConnectData(captured: bytes) }
        if cqe.succeeded {
            switch o.command.detail {
            case .connect:
                detail = .connect(cntlid: UInt16(truncatingIfNeeded: cqe.dw0), authreq: UInt16(truncatingIfNeeded: cqe.dw0 >> 16))
            case .propertyGet(_, let size):
                detail = .propertyGet(value: size == 8 ? UInt64(cqe.dw0) | UInt64(cqe.dw1) << 32 : UInt64(cqe.dw0))
            case .asyncEventRequest:
                detail = .asyncEvent(AsyncEvent(dw0: cqe.dw0))
            case .identify(let cns, _) where cns == 0x01:
                if let id = IdentifyController(keptData?.bytes ?? []) { detail = .identifyController(id) }
            case .getLogPage(let lid, _, _, _) where lid == 0x70:
                if let offset = o.command.logPageOffset, let log = DiscoveryLog(keptData?.bytes ?? [], offset: offset) { detail = .discoveryLog(log) }
            case .getFeatures(let fid, _):
                detail = .features(fid: fid, value: cqe.dw0)
            case .setFeatures(let fid, let value, _):
                detail = .features(fid: fid, value: value)
            default:
                break
            }
        }
        return CompletedCommand(command: o.command, issued: o.ref, latencyNs: ref.timeNs &- o.ref.timeNs,
                                detail: detail, connectData: connectData)
    }
}
