/// Gives NVMe meaning to the PDUs of one NVMe/TCP connection (both directions): decodes commands
/// and completions, matches them by CID, keeps the data of the few commands whose data matters
/// (Connect, Identify Controller, the discovery log), and learns the queue id from the Connect.
public final class NVMeConnectionDecoder {
    struct Outstanding {
        var command: NVMeCommand
        var ref: FrameRef
        /// Only for the commands whose data is decoded; nil for every I/O command.
        var kept: KeptData?
    }

    /// The data kept for one of the few commands whose data is decoded (Connect, Identify
    /// Controller, the discovery log), in a box allocated only for them: every other command's
    /// record is a command, a frame and one empty reference, cheaper to store, move and destroy
    /// at each command and completion than an array, a limit and a second reference.
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
    public var onEvent: ((NVMeDecodeEvent, FrameRef) -> Void)?

    public init(maxOutstanding: Int = 65536) {
        self.maxOutstanding = maxOutstanding
    }

    public var outstandingCount: Int { outstanding.count }

    /// How many data bytes of a PDU to keep, decided from its header (framer callback).
    public func dataBytesToKeep(_ shape: PDUShape, header: UnsafeRawBufferPointer) -> Int {
        switch shape.type {
        case .capsuleCmd:
            // In-capsule data matters only for Connect (opcode 0x7F, fctype 0x01).
            return header.u8(at: 8) == NVMeOpcodes.fabrics && header.u8(at: 12) == 0x01 ? ConnectData.size : 0
        case .c2hData, .h2cData:
            guard let dh = DataTransferHeader(header: header), let p = outstanding.position(of: dh.cccid),
                  let kept = outstanding[position: p].kept else { return 0 }
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
    public func decode(_ pdu: PDU) -> DecodedPDU {
        var connectData: ConnectData?
        var completed: CompletedCommand?
        let body = pdu.withFramed { decode($0, connectData: &connectData, completed: &completed) }
        return DecodedPDU(pdu: pdu, body: body, connectData: connectData, completed: completed)
    }

    /// Decodes a lent PDU (the pipeline: nothing of it is copied unless kept). `connectData` is
    /// set when this PDU completed the Connect data, `completed` when it completed a command.
    public func decode(_ pdu: FramedPDU, connectData: inout ConnectData?, completed: inout CompletedCommand?) -> DecodedPDU.Body {
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
            guard let cqe = pdu.header.slice(8, 16).flatMap(NVMeCompletion.init(cqe:)) else {
                return .untrusted
            }
            completed = complete(cqe, ref: pdu.ref)
            return .completion(cqe)
        case .h2cData:
            let dh = DataTransferHeader(header: pdu.header)
            if let dh, !pdu.data.isEmpty, let p = outstanding.position(of: dh.cccid),
               outstanding[position: p].command.keepsHostData, let kept = outstanding[position: p].kept,
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
            if let dh, !pdu.data.isEmpty, let p = outstanding.position(of: dh.cccid),
               let kept = outstanding[position: p].kept, Int(dh.offset) == kept.bytes.count {
                kept.bytes.append(contentsOf: pdu.data.prefix(max(0, kept.limit - kept.bytes.count)))
            }
            if let dh, pdu.flags.contains(.success) && pdu.flags.contains(.last) {
                let cqe = NVMeCompletion(impliedSuccessFor: dh.cccid)
                completed = complete(cqe, ref: pdu.ref)
                return .c2hData(dh, completion: cqe)
            }
            return .c2hData(dh, completion: nil)
        case .r2t:
            return .r2t(DataTransferHeader(header: pdu.header))
        }
    }

    private func decodeCommand(_ pdu: FramedPDU, connectData: inout ConnectData?) -> DecodedPDU.Body {
        guard var cmd = pdu.header.slice(8, 64).flatMap({ NVMeCommand(sqe: $0, qid: qid) }) else {
            return .untrusted
        }
        if case .connect(let c) = cmd.detail {
            qid = c.qid
            cmd.qid = c.qid
            if !pdu.data.isEmpty {
                if let cd = ConnectData(Array(pdu.data)) {
                    connectData = cd
                } else {
                    onEvent?(.shortConnectData(bytes: pdu.data.count), pdu.ref)
                }
            }
        }
        let reused = outstanding.position(of: cmd.cid) != nil
        if reused {
            onEvent?(.cidReused(cid: cmd.cid), pdu.ref)
        }
        if outstanding.count < maxOutstanding || reused {
            let limit = cmd.dataToKeep
            let kept = limit > 0 || connectData != nil ? KeptData(limit: limit, connectData: connectData) : nil
            outstanding.set(Outstanding(command: cmd, ref: pdu.ref, kept: kept),
                            for: cmd.cid)
        }
        return .command(cmd)
    }

    /// Matches a completion with its command and decodes what the completion means for it.
    private func complete(_ cqe: NVMeCompletion, ref: FrameRef) -> CompletedCommand? {
        guard let o = outstanding.removeValue(for: cqe.cid) else {
            onEvent?(.unmatchedCompletion(cid: cqe.cid), ref)
            return nil
        }
        var detail = CompletionDetail.none
        if cqe.status.isSuccess {
            switch o.command.detail {
            case .connect:
                detail = .connect(cntlid: UInt16(truncatingIfNeeded: cqe.dw0), authreq: UInt16(truncatingIfNeeded: cqe.dw0 >> 16))
            case .propertyGet(_, let size):
                detail = .propertyGet(value: size == 8 ? UInt64(cqe.dw0) | UInt64(cqe.dw1) << 32 : UInt64(cqe.dw0))
            case .asyncEventRequest:
                detail = .asyncEvent(AsyncEvent(dw0: cqe.dw0))
            case .identify(let cns, _) where cns == 0x01:
                if let id = IdentifyController(o.kept?.bytes ?? []) { detail = .identifyController(id) }
            case .getLogPage(let lid, _, _, let offset) where lid == 0x70:
                if let log = DiscoveryLog(o.kept?.bytes ?? [], offset: offset) { detail = .discoveryLog(log) }
            case .getFeatures(let fid, _):
                detail = .features(fid: fid, value: cqe.dw0)
            case .setFeatures(let fid, let value, _):
                detail = .features(fid: fid, value: value)
            default:
                break
            }
        }
        return CompletedCommand(command: o.command, issued: o.ref, latencyNs: ref.timeNs &- o.ref.timeNs,
                                detail: detail, connectData: o.kept?.connectData)
    }
}
