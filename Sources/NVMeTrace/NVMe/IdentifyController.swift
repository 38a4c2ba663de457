/// The Identify Controller fields that matter for keep-alive and discovery analysis
/// (NVMe Base 2.1 §5.1.13.2.1, Figure 312).
public struct IdentifyController: Sendable, Equatable {
    public static let size = 4096

    public var vid: UInt16
    public var serialNumber: String
    public var modelNumber: String
    public var firmware: String
    public var mdts: UInt8
    public var cntlid: UInt16
    public var version: UInt32
    /// Controller Attributes; bit 6 is Traffic Based Keep Alive Support.
    public var ctratt: UInt32
    /// 1 I/O controller, 2 discovery controller, 3 administrative controller, 0 not reported.
    public var cntrltype: UInt8
    /// Keep Alive Support: granularity of the keep-alive timer in 100 ms units (0: not supported).
    public var kas: UInt16
    public var subnqn: String?

    public var tbkas: Bool { ctratt & (1 << 6) != 0 }

    public var controllerTypeName: String {
        switch cntrltype {
        case 1: "io"
        case 2: "discovery"
        case 3: "admin"
        default: "unreported"
        }
    }

    /// Decodes from the first bytes of the data structure; the fields up to KAS (offset 321) must
    /// be present.
    public init?(_ d: [UInt8]) {
        guard d.count >= 322, let vid = d.le16(at: 0), let mdts = d.u8(at: 77), let cntlid = d.le16(at: 78),
              let ver = d.le32(at: 80), let ctratt = d.le32(at: 96), let type = d.u8(at: 111),
              let kas = d.le16(at: 320) else { return nil }
        self.vid = vid
        serialNumber = d.fixedString(at: 4, length: 20) ?? ""
        modelNumber = d.fixedString(at: 24, length: 40) ?? ""
        firmware = d.fixedString(at: 64, length: 8) ?? ""
        self.mdts = mdts
        self.cntlid = cntlid
        version = ver
        self.ctratt = ctratt
        cntrltype = type
        self.kas = kas
        subnqn = d.count >= 1024 ? d.fixedString(at: 768, length: 256) : nil
    }
}
