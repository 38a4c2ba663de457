/// What a completion tells, decoded in the light of the command it completes.
public enum CompletionDetail: Sendable, Equatable {
    case connect(cntlid: UInt16, authreq: UInt16)
    case propertyGet(value: UInt64)
    case asyncEvent(AsyncEvent)
    // Boxed: rare and large, they would otherwise widen every completion.
    indirect case identifyController(IdentifyController)
    indirect case discoveryLog(DiscoveryLog)
    case features(fid: UInt8, value: UInt32)
    case none
}

/// A completion queue entry (16 bytes; NVMe Base 2.1 §4.2.1), or the implied successful
/// completion of a C2HData PDU with the SUCCESS flag.
public struct NVMeCompletion: Sendable, Equatable {
    public var cid: UInt16
    public var dw0: UInt32
    public var dw1: UInt32
    public var sqhd: UInt16
    public var sqid: UInt16
    /// Nil when the capture cut the CQE before its last two bytes (a snap length): the command
    /// completed, how is unknown.
    public var status: NVMeStatus?
    /// True when completed by C2HData SUCCESS rather than a CapsuleResp.
    public var implied: Bool

    /// Decodes a CQE, or the first 14 bytes of one (up to its CID) that a capture cut.
    public init?(cqe: UnsafeRawBufferPointer) {
        guard let dw0 = cqe.le32(at: 0), let dw1 = cqe.le32(at: 4), let sqhd = cqe.le16(at: 8),
              let sqid = cqe.le16(at: 10), let cid = cqe.le16(at: 12) else { return nil }
        self.cid = cid; self.dw0 = dw0; self.dw1 = dw1; self.sqhd = sqhd; self.sqid = sqid
        status = cqe.le16(at: 14).map(NVMeStatus.init(raw:))
        implied = false
    }

    /// True when the status was captured and is success.
    public var succeeded: Bool { status?.isSuccess == true }

    public init(impliedSuccessFor cid: UInt16) {
        self.cid = cid; dw0 = 0; dw1 = 0; sqhd = 0; sqid = 0
        status = NVMeStatus(raw: 0)
        implied = true
    }
}
