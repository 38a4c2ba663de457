/// Which kind of queue a command was sent on.
public enum QueueKind: String, Sendable, Codable {
    case admin, io
}

/// Fabrics Connect command (NVMe over Fabrics 1.1 §3.3, Figure 20) and its data (Figure 21).
/// Each field is nil when the capture cut the SQE before it (a snap length): never guessed.
public struct ConnectCommand: Sendable, Equatable {
    public var recfmt: UInt16?
    public var qid: UInt16?
    /// Submission queue size, 0's based as on the wire.
    public var sqsize: UInt16?
    public var cattr: UInt8?
    /// Keep Alive Timeout in milliseconds (0: no keep-alive requested).
    public var kato: UInt32?

    public init(recfmt: UInt16?, qid: UInt16?, sqsize: UInt16?, cattr: UInt8?, kato: UInt32?) {
        self.recfmt = recfmt
        self.qid = qid
        self.sqsize = sqsize
        self.cattr = cattr
        self.kato = kato
    }

    /// The SQE bytes each field needs (SQE bytes 40-51: CDW10 RECFMT and QID, CDW11 SQSIZE and
    /// CATTR, CDW12 KATO).
    static let qidEnd = 44, katoEnd = 52
    // The Connect data (Figure 21) is not part of the command: it travels beside it
    // (`PDURecord.connectData`, `CompletedCommand.connectData`), so that a decoded command is
    // a plain value, copied without reference counting (copies and destroys of commands were
    // ~550 instructions per I/O while this held a reference).
}

/// A class: decoded once, then shared by the PDU that carried it, the outstanding command and
/// its completion. Immutable.
///
/// A capture cut by a snap length may hold only the first bytes of the data (a `tcpdump -s 256`
/// keeps the host id and CNTLID of an in-capsule Connect): each field is nil when its bytes were
/// not captured. An NQN is known when its terminating NUL (or all 256 bytes) was captured.
public final class ConnectData: Sendable, Equatable {
    public let hostid: [UInt8]?
    public let cntlid: UInt16?
    public let subnqn: String?
    public let hostnqn: String?
    /// The bytes captured (1024 when whole).
    public let capturedBytes: Int

    public static func == (a: ConnectData, b: ConnectData) -> Bool {
        a === b || (a.hostid == b.hostid && a.cntlid == b.cntlid && a.subnqn == b.subnqn && a.hostnqn == b.hostnqn
            && a.capturedBytes == b.capturedBytes)
    }

    public static let size = 1024

    /// Decodes the 1024-byte Connect data; nil when fewer bytes were sent (a malformed Connect).
    public convenience init?(_ d: [UInt8]) {
        guard d.count >= ConnectData.size else { return nil }
        self.init(captured: d)
    }

    /// Decodes as much of the Connect data as `d`, its first bytes, holds (nil for none).
    public init?(captured d: [UInt8]) {
        guard !d.isEmpty else { return nil }
        let n = min(d.count, ConnectData.size)
        capturedBytes = n
        hostid = n >= 16 ? Array(d[0..<16]) : nil
        cntlid = n >= 18 ? d.le16(at: 16) : nil
        // The NQN fields end at 512 and 768, within the 1024 bytes: `d` past them is not read.
        subnqn = d.capturedString(at: 256, length: 256)
        hostnqn = d.capturedString(at: 512, length: 256)
    }

    public var isComplete: Bool { capturedBytes >= ConnectData.size }

    public var hostidString: String? {
        guard let hostid else { return nil }
        // Printed as a UUID, as nvme-cli shows --hostid.
        let h = hexString(hostid)
        guard h.count == 32 else { return h }
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-"
            + String(c[16..<20]) + "-" + String(c[20..<32])
    }
}

/// What a command is, decoded from its SQE as far as this tool needs.
public enum CommandDetail: Sendable, Equatable {
    case connect(ConnectCommand)
    case propertyGet(offset: UInt32, size: Int)
    case propertySet(offset: UInt32, size: Int, value: UInt64)
    case disconnect(recfmt: UInt16)
    case authenticationSend(secp: UInt8, spsp: UInt16, length: UInt32)
    case authenticationReceive(secp: UInt8, spsp: UInt16, length: UInt32)
    case identify(cns: UInt8, cntid: UInt16)
    /// The LID, in CDW10, is what tells a discovery log read. Length (NUMD, CDW10-11) and offset
    /// (CDW12-13) read 0 when the capture cut the SQE before them: see
    /// `NVMeCommand.logPageLength` and `logPageOffset`, which say so. (Kept non-optional: this
    /// enum rides in every command, and optionals here widened it by a third.)
    case getLogPage(lid: UInt8, lsp: UInt8, length: UInt64, offset: UInt64)
    case setFeatures(fid: UInt8, value: UInt32, save: Bool)
    case getFeatures(fid: UInt8, select: UInt8)
    case keepAlive
    case asyncEventRequest
    case readWrite(slba: UInt64, blocks: UInt32)
    case other
}

/// What names a command: its opcode in its command set (admin, I/O, or Fabrics by FCTYPE). Kept
/// where only the name may be needed later, instead of the name itself (no string per command).
public struct CommandKind: Sendable, Equatable {
    public var opcode: UInt8
    public var fctype: UInt8?
    public var queue: QueueKind

    public var name: String {
        if let fctype { return NVMeOpcodes.fabricsName(fctype) }
        return queue == .admin ? NVMeOpcodes.adminName(opcode) : NVMeOpcodes.ioName(opcode)
    }
}

/// An NVMe command decoded from a 64-byte submission queue entry.
public struct NVMeCommand: Sendable, Equatable {
    public var opcode: UInt8
    public var cid: UInt16
    public var nsid: UInt32
    /// Fabrics command type when opcode is 0x7F.
    public var fctype: UInt8?
    /// The queue it was sent on, when known (from the connection's Connect).
    public var qid: UInt16?
    public var queue: QueueKind
    /// True when the queue kind was guessed (the capture did not show the Connect).
    public var queueGuessed: Bool
    public var detail: CommandDetail
    /// Command Dword 10-15 (for output of undecoded commands).
    public var cdw10: UInt32
    public var cdw11: UInt32
    /// SQE bytes the capture held: 64, or fewer when a snap length cut the capsule's header.
    /// Fields past them are unknown: `detail` then holds only what was captured (`.other` when
    /// the bytes it needs are missing), `nsid`, `cdw10` and `cdw11` read 0 (see `known(upTo:)`).
    public var capturedBytes: UInt8 = 64

    /// True when the SQE bytes before `end` were captured.
    public func known(upTo end: Int) -> Bool { Int(capturedBytes) >= end }

    /// Get Log Page's length in bytes and offset; nil when the SQE was cut before them.
    public var logPageLength: UInt64? {
        guard case .getLogPage(_, _, let length, _) = detail, known(upTo: 48) else { return nil }
        return length
    }
    public var logPageOffset: UInt64? {
        guard case .getLogPage(_, _, _, let offset) = detail, known(upTo: 56) else { return nil }
        return offset
    }

    public var isFabrics: Bool { fctype != nil }

    public var kind: CommandKind { CommandKind(opcode: opcode, fctype: fctype, queue: queue) }
    public var name: String { kind.name }

    public var isKeepAlive: Bool { fctype == nil && queue == .admin && opcode == 0x18 && (!queueGuessed || known(upTo: 8)) }

    /// Decodes the first bytes of an SQE a capture holds (at least opcode, flags and CID: 4
    /// bytes): the fields they contain, the rest unknown (`capturedBytes`). Nil under 4 bytes.
    public init?(capturedSQE sqe: UnsafeRawBufferPointer, qid: UInt16?) {
        if sqe.count >= 64 {
            self.init(sqe: sqe, qid: qid)
            return
        }
        guard sqe.count >= 4, let src = sqe.baseAddress else { return nil }
        let n = sqe.count
        // Decode from a zero-padded copy, then forget what came from the padding.
        let decoded = withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { buf -> NVMeCommand? in
            guard let base = buf.baseAddress else { return nil }
            base.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
            base.copyMemory(from: src, byteCount: n)
            return NVMeCommand(sqe: UnsafeRawBufferPointer(buf), qid: qid)
        }
        guard var cmd = decoded else { return nil }
        cmd.capturedBytes = UInt8(n)
        cmd.forgetUncaptured()
        self = cmd
    }

    /// Clears what the zero padding of a partial SQE made up (see `init(capturedSQE:qid:)`).
    private mutating func forgetUncaptured() {
        if !known(upTo: 8) {
            nsid = 0
            // The queue guess (no Connect seen) rests on the NSID: without it there is none, and
            // an opcode means nothing more (`queue` reads admin, `detail` nothing).
            if queueGuessed {
                queue = .admin
                detail = .other
            }
        }
        if !known(upTo: 44) { cdw10 = 0 }
        if !known(upTo: 48) { cdw11 = 0 }
        if fctype != nil, !known(upTo: 5) { fctype = nil; detail = .other; return }
        switch detail {
        case .connect(let c):
            // Each field from the bytes that hold it (SQE 40-51).
            let kept = ConnectCommand(recfmt: known(upTo: 42) ? c.recfmt : nil, qid: known(upTo: ConnectCommand.qidEnd) ? c.qid : nil,
                                      sqsize: known(upTo: 46) ? c.sqsize : nil, cattr: known(upTo: 47) ? c.cattr : nil,
                                      kato: known(upTo: ConnectCommand.katoEnd) ? c.kato : nil)
            detail = .connect(kept)
            if kept.qid == nil { qid = nil }
        case .getLogPage(let lid, let lsp, let length, let offset):
            if !known(upTo: 44) { detail = .other }
            else { detail = .getLogPage(lid: lid, lsp: lsp, length: known(upTo: 48) ? length : 0, offset: known(upTo: 56) ? offset : 0) }
        case .identify, .getFeatures, .disconnect:
            if !known(upTo: 44) { detail = .other }
        case .propertyGet, .setFeatures, .authenticationSend, .authenticationReceive:
            if !known(upTo: 48) { detail = .other }
        case .readWrite:
            if !known(upTo: 52) { detail = .other }
        case .propertySet:
            if !known(upTo: 56) { detail = .other }
        case .keepAlive, .asyncEventRequest, .other:
            break
        }
    }

    /// Decodes a whole SQE. `qid` is the connection's queue id if its Connect was seen.
    public init?(sqe: UnsafeRawBufferPointer, qid: UInt16?) {
        guard sqe.count >= 64, let op = sqe.u8(at: 0), let cid = sqe.le16(at: 2), let nsid = sqe.le32(at: 4),
              let d10 = sqe.le32(at: 40), let d11 = sqe.le32(at: 44), let d12 = sqe.le32(at: 48),
              let d13 = sqe.le32(at: 52) else { return nil }
        opcode = op
        self.cid = cid
        self.nsid = nsid
        self.qid = qid
        cdw10 = d10
        cdw11 = d11
        fctype = nil
        if let qid {
            queue = qid == 0 ? .admin : .io
            queueGuessed = false
        } else {
            // Without the Connect, read/write-like opcodes aimed at a namespace are I/O.
            queue = (op == 0x01 || op == 0x02 || op == 0x00 || op == 0x08 || op == 0x09 || op == 0x05)
                && nsid != 0 && nsid != 0xFFFF_FFFF ? .io : .admin
            queueGuessed = true
        }
        if op == NVMeOpcodes.fabrics {
            let fct = sqe.u8(at: 4) ?? 0xFF
            fctype = fct
            self.nsid = 0
            switch fct {
            case 0x01:
                queue = .admin  // Connect creates the queue; judged by its own qid below
                let cqid = UInt16(truncatingIfNeeded: d10 >> 16)
                detail = .connect(ConnectCommand(
                    recfmt: UInt16(truncatingIfNeeded: d10), qid: cqid,
                    sqsize: UInt16(truncatingIfNeeded: d11), cattr: UInt8(truncatingIfNeeded: d11 >> 16),
                    kato: d12))
                if qid == nil { self.qid = cqid; queue = cqid == 0 ? .admin : .io; queueGuessed = false }
            case 0x00:
                let size = d10 & 0x7 == 1 ? 8 : 4
                let value = UInt64(d12) | UInt64(d13) << 32
                detail = .propertySet(offset: d11, size: size, value: size == 8 ? value : UInt64(d12))
            case 0x04:
                detail = .propertyGet(offset: d11, size: d10 & 0x7 == 1 ? 8 : 4)
            case 0x08:
                detail = .disconnect(recfmt: UInt16(truncatingIfNeeded: d10))
            case 0x05:
                detail = .authenticationSend(secp: UInt8(truncatingIfNeeded: d10 >> 24),
                                             spsp: UInt16(truncatingIfNeeded: d10 >> 8), length: d11)
            case 0x06:
                detail = .authenticationReceive(secp: UInt8(truncatingIfNeeded: d10 >> 24),
                                                spsp: UInt16(truncatingIfNeeded: d10 >> 8), length: d11)
            default:
                detail = .other
            }
            return
        }
        if queue == .admin {
            switch op {
            case 0x06:
                detail = .identify(cns: UInt8(truncatingIfNeeded: d10), cntid: UInt16(truncatingIfNeeded: d10 >> 16))
            case 0x02:
                // NUMD is 0's based, in dwords, split over CDW10 (NUMDL) and CDW11 (NUMDU).
                let numd = (UInt64(d11 & 0xFFFF) << 16 | UInt64(d10 >> 16)) + 1
                detail = .getLogPage(lid: UInt8(truncatingIfNeeded: d10), lsp: UInt8(truncatingIfNeeded: d10 >> 8) & 0x7F,
                                     length: numd * 4, offset: UInt64(d12) | UInt64(d13) << 32)
            case 0x09:
                detail = .setFeatures(fid: UInt8(truncatingIfNeeded: d10), value: d11, save: d10 & 0x8000_0000 != 0)
            case 0x0A:
                detail = .getFeatures(fid: UInt8(truncatingIfNeeded: d10), select: UInt8(truncatingIfNeeded: d10 >> 8) & 0x7)
            case 0x18:
                detail = .keepAlive
            case 0x0C:
                detail = .asyncEventRequest
            default:
                detail = .other
            }
        } else {
            switch op {
            case 0x01, 0x02, 0x05, 0x08, 0x0C, 0x04:
                detail = .readWrite(slba: UInt64(d10) | UInt64(d11) << 32, blocks: (d12 & 0xFFFF) + 1)
            default:
                detail = .other
            }
        }
    }

    /// How many data bytes of this command's transfer are worth keeping for decode.
    var dataToKeep: Int {
        switch detail {
        case .connect: return ConnectData.size
        case .identify(let cns, _): return cns == 0x01 ? IdentifyController.size : 0
        case .getLogPage(let lid, _, _, _): return lid == 0x70 && logPageOffset == 0 ? DiscoveryLog.maxKeptBytes : 0
        default: return 0
        }
    }

    /// Data that flows from host to controller (in-capsule or H2CData) is Connect's.
    var keepsHostData: Bool {
        if case .connect = detail { return true }
        return false
    }
}
