/// The Discovery log page (LID 0x70; NVMe Base 2.1 §5.1.12.3.1, Figures 292-293).
public struct DiscoveryLog: Sendable, Equatable {
    /// At most this much of a discovery log is kept: the header and 63 entries.
    public static let maxKeptBytes = 64 * 1024

    public struct Entry: Sendable, Equatable {
        public var trtype: UInt8
        public var adrfam: UInt8
        /// 1 referral, 2 NVM subsystem, 3 current discovery subsystem.
        public var subtype: UInt8
        public var treq: UInt8
        public var portid: UInt16
        public var cntlid: UInt16
        public var asqsz: UInt16
        public var eflags: UInt16
        public var trsvcid: String
        public var subnqn: String
        public var traddr: String

        /// Explicit Persistent Connection Support for Discovery (EFLAGS bit 1).
        public var epcsd: Bool { eflags & 0x2 != 0 }

        public var subtypeName: String {
            switch subtype {
            case 1: "referral"
            case 2: "nvme"
            case 3: "current-discovery"
            default: "subtype \(subtype)"
            }
        }
    }

    public var genctr: UInt64
    public var numrec: UInt64
    public var recfmt: UInt16
    /// Entries fully present in the bytes read (a host often reads the header first).
    public var entries: [Entry]

    /// Decodes a log page read that started at `offset`; nil unless it covers the header.
    public init?(_ d: [UInt8], offset: UInt64) {
        guard offset == 0, let g = d.le64(at: 0), let n = d.le64(at: 8), let r = d.le16(at: 16) else { return nil }
        genctr = g
        numrec = n
        recfmt = r
        entries = []
        var at = 1024
        while at + 1024 <= d.count, UInt64(entries.count) < n {
            guard let e = DiscoveryLog.entry(d, at: at) else { break }
            entries.append(e)
            at += 1024
        }
    }

    static func entry(_ d: [UInt8], at o: Int) -> Entry? {
        guard let trtype = d.u8(at: o), let adrfam = d.u8(at: o + 1), let sub = d.u8(at: o + 2),
              let treq = d.u8(at: o + 3), let portid = d.le16(at: o + 4), let cntlid = d.le16(at: o + 6),
              let asqsz = d.le16(at: o + 8), let eflags = d.le16(at: o + 10) else { return nil }
        return Entry(trtype: trtype, adrfam: adrfam, subtype: sub, treq: treq, portid: portid, cntlid: cntlid,
                     asqsz: asqsz, eflags: eflags,
                     trsvcid: d.fixedString(at: o + 32, length: 32) ?? "",
                     subnqn: d.fixedString(at: o + 256, length: 256) ?? "",
                     traddr: d.fixedString(at: o + 512, length: 256) ?? "")
    }
}

/// An Asynchronous Event Request completion's Dword 0 (NVMe Base 2.1 §5.1.2, Figure 150).
public struct AsyncEvent: Sendable, Equatable {
    public var type: UInt8
    public var info: UInt8
    public var logPage: UInt8

    public init(dw0: UInt32) {
        type = UInt8(truncatingIfNeeded: dw0) & 0x7
        info = UInt8(truncatingIfNeeded: dw0 >> 8)
        logPage = UInt8(truncatingIfNeeded: dw0 >> 16)
    }

    public var typeName: String {
        switch type {
        case 0: "Error"
        case 1: "SMART/Health"
        case 2: "Notice"
        case 3: "Immediate"
        case 4: "One-Shot"
        case 6: "I/O Command Set Specific"
        case 7: "Vendor Specific"
        default: "Type \(type)"
        }
    }

    public var infoName: String {
        switch (type, info) {
        case (2, 0x00): "Namespace Attribute Changed"
        case (2, 0x01): "Firmware Activation Starting"
        case (2, 0x02): "Telemetry Log Changed"
        case (2, 0x03): "Asymmetric Namespace Access Change"
        case (2, 0x04): "Predictable Latency Event Aggregate Log Change"
        case (2, 0x05): "LBA Status Information Alert"
        case (2, 0x06): "Endurance Group Event Aggregate Log Page Change"
        case (2, 0xF0): "Discovery Log Page Change"
        case (2, 0xF1): "Host Discovery Log Page Change"
        case (2, 0xF2): "AVE Discovery Log Page Change"
        case (2, 0xF3): "Pull Model DDC Request Log Page Change"
        default: "info \(hexValue(info))"
        }
    }
}
