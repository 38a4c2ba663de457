/// The Identify Controller fields that matter for keep-alive and discovery analysis
/// (NVMe Base 2.1 §5.1.13.2.1, Figure 312).
public struct IdentifyController: Sendable, Equatable {
    public static let size = 4096

    // Each field is nil when the capture did not hold its bytes: a snap length keeps only the
    // first bytes of the C2HData that carries the structure (`tcpdump -s 200` keeps about 110).
    public var vid: UInt16?
    public var serialNumber: String?
    public var modelNumber: String?
    public var firmware: String?
    public var mdts: UInt8?
    public var cntlid: UInt16?
    public var version: UInt32?
    /// Controller Attributes; bit 6 is Traffic Based Keep Alive Support.
    public var ctratt: UInt32?
    /// 1 I/O controller, 2 discovery controller, 3 administrative controller, 0 not reported.
    public var cntrltype: UInt8?
    /// Keep Alive Support: granularity of the keep-alive timer in 100 ms units (0: not supported).
    public var kas: UInt16?
    public var subnqn: String?
    /// The bytes of the structure the capture held (4096 when whole).
    public var capturedBytes: Int

    /// Traffic Based Keep Alive Support (CTRATT bit 6); nil when CTRATT was not captured.
    public var tbkas: Bool? { ctratt.map { $0 & (1 << 6) != 0 } }

    public var controllerTypeName: String {
        switch cntrltype {
        case .some(1): "io"
        case .some(2): "discovery"
        case .some(3): "admin"
        case .some: "unreported"
        case .none: "not-captured"
        }
    }

    /// Decodes the fields `d`, the structure's first bytes, holds; nil when it holds none of
    /// them (fewer than 2 bytes).
    public init?(_ d: [UInt8]) {
        guard d.count >= 2 else { return nil }
        capturedBytes = min(d.count, IdentifyController.size)
        vid = d.le16(at: 0)
        serialNumber = d.count >= 24 ? d.fixedString(at: 4, length: 20) : nil
        modelNumber = d.count >= 64 ? d.fixedString(at: 24, length: 40) : nil
        firmware = d.count >= 72 ? d.fixedString(at: 64, length: 8) : nil
        mdts = d.u8(at: 77)
        cntlid = d.le16(at: 78)
        version = d.le32(at: 80)
        ctratt = d.le32(at: 96)
        cntrltype = d.u8(at: 111)
        kas = d.le16(at: 320)
        subnqn = d.capturedString(at: 768, length: 256)
    }
}
