/// Scripted NVMe/TCP exchanges over a `TCPConversation`: the host's commands and the
/// controller's answers, as the Linux host and nvmet target send them.
public final class NVMeScript {
    public let tcp: TCPConversation
    public var hdgst = false
    public var ddgst = false
    private var nextCID: UInt16 = 1

    public static let discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

    public init(_ tcp: TCPConversation) { self.tcp = tcp }

    private func cid() -> UInt16 {
        defer { nextCID &+= 1 }
        return nextCID
    }

    /// Handshake, ICReq/ICResp, Connect (in-capsule data) and its response.
    public func connect(at t: Int64, qid: UInt16 = 0, kato: UInt32, subnqn: String, hostnqn: String,
                        cntlid: UInt16 = 1, status: UInt16 = 0) {
        tcp.handshake(at: t)
        tcp.send(fromClient: true, PDUBuilder.icReq(hdgst: hdgst, ddgst: ddgst), at: t + 1_000_000)
        tcp.send(fromClient: false, PDUBuilder.icResp(hdgst: hdgst, ddgst: ddgst), at: t + 2_000_000)
        let c = cid()
        let data = PDUBuilder.connectData(cntlid: qid == 0 ? 0xFFFF : cntlid, subnqn: subnqn, hostnqn: hostnqn)
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: c, qid: qid, kato: kato), data: data,
                                                         hdgst: hdgst, ddgst: ddgst), at: t + 3_000_000)
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, status: status, dw0: status == 0 ? UInt32(cntlid) : 0, hdgst: hdgst),
                 at: t + 4_000_000)
    }

    /// Identify Controller with the fields that matter: CNTRLTYPE, KAS, CTRATT.TBKAS.
    public func identify(at t: Int64, cntrltype: UInt8, tbkas: Bool, kas: UInt16 = 10) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x06, cid: c, cdw10: 1), hdgst: hdgst), at: t)
        var id = [UInt8](repeating: 0, count: 4096)
        id[96] = tbkas ? 0x40 : 0
        id[111] = cntrltype
        id[320] = UInt8(kas & 0xFF); id[321] = UInt8(kas >> 8)
        tcp.send(fromClient: false, PDUBuilder.c2hData(cid: c, data: id, hdgst: hdgst, ddgst: ddgst)
                 + PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: t + 500_000)
    }

    /// Fabrics Property Set of CC (offset 14h) to `cc`, and its completion: 0x464061 is the shutdown
    /// a Linux host writes when it disconnects (SHN 01b), 0x460060 a reset (EN cleared).
    public func propertySetCC(at t: Int64, _ cc: UInt32) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x7F, cid: c, fctype: 0x00, cdw10: 0, cdw11: 0x14, cdw12: cc),
                                                         hdgst: hdgst), at: t)
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: t + 300_000)
    }

    public func keepAlive(at t: Int64, status: UInt16 = 0) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: c), hdgst: hdgst), at: t)
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, status: status, hdgst: hdgst), at: t + 300_000)
    }

    /// An Asynchronous Event Request that stays outstanding.
    public func asyncEventRequest(at t: Int64) {
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: cid()), hdgst: hdgst), at: t)
    }

    /// An Asynchronous Event Request at `t`, completed at `completed` reporting an event (Dword 0:
    /// type in bits 2:0, information in 15:8, log page in 23:16; NVMe Base 2.1 §5.1.2), or with
    /// `status` (SCT and SC as in the CQE status field without its phase bit; Command Aborted due
    /// to SQ Deletion, 0x008, when the queue is deleted).
    public func asyncEvent(at t: Int64, completed: Int64, type: UInt8, info: UInt8, logPage: UInt8, status: UInt16 = 0) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: c), hdgst: hdgst), at: t)
        let dw0 = UInt32(type & 0x7) | UInt32(info) << 8 | UInt32(logPage) << 16
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, status: status, dw0: status == 0 ? dw0 : 0, hdgst: hdgst),
                 at: completed)
    }

    /// Get Log Page `lid` (512 bytes) and its data.
    public func getLogPage(at t: Int64, lid: UInt8) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: c, cdw10: UInt32(lid) | (127 << 16)), hdgst: hdgst), at: t)
        tcp.send(fromClient: false, PDUBuilder.c2hData(cid: c, data: [UInt8](repeating: 0, count: 512), hdgst: hdgst, ddgst: ddgst)
                 + PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: t + 500_000)
    }

    /// Get Log Page (discovery log, header only) and its data.
    public func discoveryLog(at t: Int64) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: c, cdw10: 0x70 | (255 << 16)), hdgst: hdgst), at: t)
        var log = [UInt8](repeating: 0, count: 1024)
        log[0] = 1
        tcp.send(fromClient: false, PDUBuilder.c2hData(cid: c, data: log, hdgst: hdgst, ddgst: ddgst)
                 + PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: t + 500_000)
    }

    /// A read of `bytes` on an I/O queue: command, C2HData (split at `chunk`), response.
    public func read(at t: Int64, bytes: Int, chunk: Int = 131_072, successFlag: Bool = false) {
        let c = cid()
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: c, nsid: 1, cdw12: UInt32(bytes / 512 - 1)), hdgst: hdgst), at: t)
        var out: [UInt8] = []
        var offset = 0
        while offset < bytes {
            let n = min(chunk, bytes - offset)
            let last = offset + n == bytes
            out += PDUBuilder.c2hData(cid: c, offset: UInt32(offset), data: [UInt8](repeating: UInt8(truncatingIfNeeded: c), count: n),
                                      last: last, success: last && successFlag, hdgst: hdgst, ddgst: ddgst)
            offset += n
        }
        if !successFlag { out += PDUBuilder.capsuleResp(cid: c, hdgst: hdgst) }
        tcp.send(fromClient: false, out, at: t + 200_000)
    }

    /// A write of `bytes`: in-capsule when small, else R2T + H2CData.
    public func write(at t: Int64, bytes: Int, inCapsuleLimit: Int = 8192) {
        let c = cid()
        let data = [UInt8](repeating: 0x77, count: bytes)
        let sqe = PDUBuilder.sqe(opcode: 0x01, cid: c, nsid: 1, cdw12: UInt32(bytes / 512 - 1))
        if bytes <= inCapsuleLimit {
            tcp.send(fromClient: true, PDUBuilder.capsuleCmd(sqe, data: data, hdgst: hdgst, ddgst: ddgst), at: t)
        } else {
            tcp.send(fromClient: true, PDUBuilder.capsuleCmd(sqe, hdgst: hdgst), at: t)
            tcp.send(fromClient: false, PDUBuilder.r2t(cid: c, ttag: c, length: UInt32(bytes), hdgst: hdgst), at: t + 100_000)
            tcp.send(fromClient: true, PDUBuilder.h2cData(cid: c, ttag: c, data: data, hdgst: hdgst, ddgst: ddgst), at: t + 200_000)
        }
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: t + 300_000)
    }

    /// A write whose data goes in answer to R2Ts: each R2T (for `chunk` bytes) at its time, its
    /// H2CData at its own; the response at `completed`. Returns the CID.
    @discardableResult
    public func writeWithR2Ts(at t: Int64, r2ts: [(r2t: Int64, data: Int64)], chunk: Int = 4096, completed: Int64) -> UInt16 {
        let c = cid()
        let bytes = chunk * r2ts.count
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x01, cid: c, nsid: 1, cdw12: UInt32(bytes / 512 - 1)),
                                                         hdgst: hdgst), at: t)
        for (i, step) in r2ts.enumerated() {
            let offset = UInt32(i * chunk)
            tcp.send(fromClient: false, PDUBuilder.r2t(cid: c, ttag: c, offset: offset, length: UInt32(chunk), hdgst: hdgst), at: step.r2t)
            tcp.send(fromClient: true, PDUBuilder.h2cData(cid: c, ttag: c, offset: offset, data: [UInt8](repeating: 0x77, count: chunk),
                                                          hdgst: hdgst, ddgst: ddgst), at: step.data)
        }
        tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: completed)
        return c
    }

    /// A read whose C2HData PDUs (`chunk` bytes each) go at the times given; the response at
    /// `completed`, or with `completed` nil the last C2HData carries SUCCESS. Returns the CID.
    @discardableResult
    public func readTimed(at t: Int64, data: [Int64], chunk: Int = 4096, completed: Int64?, opcode: UInt8 = 0x02) -> UInt16 {
        let c = cid()
        let bytes = chunk * data.count
        tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: opcode, cid: c, nsid: 1, cdw12: UInt32(max(bytes, 512) / 512 - 1)),
                                                         hdgst: hdgst), at: t)
        for (i, at) in data.enumerated() {
            let last = i == data.count - 1
            tcp.send(fromClient: false, PDUBuilder.c2hData(cid: c, offset: UInt32(i * chunk), data: [UInt8](repeating: 0x55, count: chunk),
                                                           last: last, success: last && completed == nil, hdgst: hdgst, ddgst: ddgst), at: at)
        }
        if let completed { tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: c, hdgst: hdgst), at: completed) }
        return c
    }

    public func termReq(fromHost: Bool, fes: UInt16, at t: Int64) {
        tcp.send(fromClient: fromHost, PDUBuilder.termReq(c2h: !fromHost, fes: fes), at: t)
    }

    /// Sends raw bytes (e.g. a hand-corrupted PDU).
    public func raw(fromHost: Bool, _ bytes: [UInt8], at t: Int64) {
        tcp.send(fromClient: fromHost, bytes, at: t)
    }
}
