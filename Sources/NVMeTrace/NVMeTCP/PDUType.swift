/// NVMe/TCP PDU types (NVMe/TCP Transport Specification §3.6.1, Figure 21).
public enum PDUType: UInt8, Sendable, CaseIterable, Codable {
    case icReq = 0x00
    case icResp = 0x01
    case h2cTermReq = 0x02
    case c2hTermReq = 0x03
    case capsuleCmd = 0x04
    case capsuleResp = 0x05
    case h2cData = 0x06
    case c2hData = 0x07
    case r2t = 0x09

    /// The name used in output and JSON (matches Wireshark's naming).
    public var name: String {
        switch self {
        case .icReq: "ICReq"
        case .icResp: "ICResp"
        case .h2cTermReq: "H2CTermReq"
        case .c2hTermReq: "C2HTermReq"
        case .capsuleCmd: "CapsuleCmd"
        case .capsuleResp: "CapsuleResp"
        case .h2cData: "H2CData"
        case .c2hData: "C2HData"
        case .r2t: "R2T"
        }
    }

    /// The fixed header length (HLEN) each type must carry.
    public var headerLength: Int {
        switch self {
        case .icReq, .icResp: 128
        case .h2cTermReq, .c2hTermReq: 24
        case .capsuleCmd: 72
        case .capsuleResp, .h2cData, .c2hData, .r2t: 24
        }
    }

    /// Sent by the host (as opposed to the controller).
    public var fromHost: Bool {
        switch self {
        case .icReq, .h2cTermReq, .capsuleCmd, .h2cData: true
        case .icResp, .c2hTermReq, .capsuleResp, .c2hData, .r2t: false
        }
    }

    /// Whether the type may carry a data digest / data at all.
    var mayCarryData: Bool {
        switch self {
        case .capsuleCmd, .h2cData, .c2hData, .h2cTermReq, .c2hTermReq: true
        default: false
        }
    }
}

/// PDU header flags (common header byte 1).
public struct PDUFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let hdgst = PDUFlags(rawValue: 0x01)
    public static let ddgst = PDUFlags(rawValue: 0x02)
    /// DATA_LAST on H2CData/C2HData.
    public static let last = PDUFlags(rawValue: 0x04)
    /// SUCCESS on C2HData: the command completed without a CapsuleResp.
    public static let success = PDUFlags(rawValue: 0x08)
}
