/// The framing-relevant facts of a PDU, derived from its 8-byte common header (NVMe/TCP
/// Transport §3.6.2.1): where its header digest, data and data digest lie.
public struct PDUShape: Sendable, Equatable {
    public var type: PDUType
    public var flags: PDUFlags
    public var hlen: Int
    public var pdo: Int
    public var plen: Int
    public var headerDigestLength: Int   // 0 or 4
    public var dataDigestLength: Int     // 0 or 4
    /// Offset of the first data byte within the PDU (PDO, or right after the header when PDO is 0).
    public var dataStart: Int
    public var dataLength: Int

    /// Bytes of header plus header digest: what is read before the body.
    public var headerBytes: Int { hlen + headerDigestLength }
}

/// Why a common header cannot start a PDU.
public enum HeaderProblem: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownType(UInt8)
    case headerLengthMismatch(PDUType, Int)
    case lengthTooSmall(PDUType, Int, minimum: Int)
    case lengthTooLarge(PDUType, Int, maximum: Int)
    case lengthNotAllowed(PDUType, Int)
    case dataOffsetOutOfRange(PDUType, pdo: Int, plen: Int)
    case digestNotAllowed(PDUType)

    public var description: String {
        switch self {
        case let .unknownType(t): "unknown PDU type \(hexValue(t))"
        case let .headerLengthMismatch(t, h): "\(t.name) with HLEN \(h) (must be \(t.headerLength))"
        case let .lengthTooSmall(t, p, m): "\(t.name) with PLEN \(p) < \(m)"
        case let .lengthTooLarge(t, p, m): "\(t.name) with PLEN \(p) > \(m)"
        case let .lengthNotAllowed(t, p): "\(t.name) with PLEN \(p) (not allowed for this type)"
        case let .dataOffsetOutOfRange(t, pdo, plen): "\(t.name) with PDO \(pdo) outside its header/length (PLEN \(plen))"
        case let .digestNotAllowed(t): "\(t.name) with a digest flag (ICReq/ICResp never carry digests)"
        }
    }
}

public enum PDUHeaderCheck {
    /// PDUs longer than this are treated as corrupt rather than skipped: Linux caps H2CData at
    /// MAXH2CDATA (typically 4 MiB) and C2HData at the transfer size.
    public static let defaultMaxPDULength = 64 << 20

    /// Validates the 8-byte common header against what the spec requires of every PDU of its type.
    public static func shape(_ ch: UnsafeRawBufferPointer, maxPDULength: Int = defaultMaxPDULength)
        -> Result<PDUShape, HeaderProblem>
    {
        // One bounds check for the eight bytes (this runs for every PDU).
        guard ch.count >= 8, let base = ch.baseAddress else { return .failure(.unknownType(0)) }
        let t = base.load(as: UInt8.self), f = base.load(fromByteOffset: 1, as: UInt8.self)
        let h = base.load(fromByteOffset: 2, as: UInt8.self), p = base.load(fromByteOffset: 3, as: UInt8.self)
        let l = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard let type = PDUType(rawValue: t) else { return .failure(.unknownType(t)) }
        let flags = PDUFlags(rawValue: f)
        let hlen = Int(h), pdo = Int(p), plen = Int(l)
        guard hlen == type.headerLength else { return .failure(.headerLengthMismatch(type, hlen)) }
        if (type == .icReq || type == .icResp) && f & 0x03 != 0 { return .failure(.digestNotAllowed(type)) }
        let hd = flags.contains(.hdgst) ? 4 : 0
        let dd = type.mayCarryData && flags.contains(.ddgst) ? 4 : 0
        guard plen >= hlen + hd else { return .failure(.lengthTooSmall(type, plen, minimum: hlen + hd)) }
        guard plen <= maxPDULength else { return .failure(.lengthTooLarge(type, plen, maximum: maxPDULength)) }
        switch type {
        case .icReq, .icResp:
            guard plen == 128 else { return .failure(.lengthNotAllowed(type, plen)) }
        case .capsuleResp, .r2t:
            guard plen == hlen + hd else { return .failure(.lengthNotAllowed(type, plen)) }
        case .h2cTermReq, .c2hTermReq:
            // Header plus at most 128 bytes of the offending PDU header (§3.6.2.4).
            guard plen <= hlen + hd + 128 + dd else { return .failure(.lengthTooLarge(type, plen, maximum: hlen + hd + 128 + dd)) }
        default:
            break
        }
        var dataStart = hlen + hd
        if pdo != 0 {
            guard pdo >= hlen + hd, pdo <= plen - dd else {
                return .failure(.dataOffsetOutOfRange(type, pdo: pdo, plen: plen))
            }
            dataStart = pdo
        }
        var dataLength = plen - dataStart - dd
        var ddLen = dd
        if dataLength < 0 {
            // A digest flag without room for data: no data, no digest.
            dataLength = 0
            ddLen = 0
        }
        if dataLength == 0 && plen == dataStart { ddLen = 0 }
        return .success(PDUShape(type: type, flags: flags, hlen: hlen, pdo: pdo, plen: plen,
                                 headerDigestLength: hd, dataDigestLength: ddLen,
                                 dataStart: dataStart, dataLength: dataLength))
    }

    /// Stricter checks on a whole header, used when hunting for a PDU boundary after a gap or in a
    /// connection picked up mid-stream: fields that must hold a fixed value, or agree with each
    /// other, make a false match in payload bytes very unlikely.
    public static func plausible(_ shape: PDUShape, header: UnsafeRawBufferPointer) -> Bool {
        let f = shape.flags.rawValue
        switch shape.type {
        case .icReq:
            guard f == 0, shape.pdo == 0, header.le16(at: 8) == 0, let hpda = header.u8(at: 10), hpda <= 31,
                  let dg = header.u8(at: 11), dg & ~0x03 == 0 else { return false }
        case .icResp:
            guard f == 0, shape.pdo == 0, header.le16(at: 8) == 0, let cpda = header.u8(at: 10), cpda <= 31,
                  let dg = header.u8(at: 11), dg & ~0x03 == 0,
                  let maxh2c = header.le32(at: 12), maxh2c % 4 == 0, maxh2c >= 4096 else { return false }
        case .capsuleCmd:
            // NVMe over Fabrics commands use SGLs: PSDT (SQE byte 1, bits 7:6) is never 0.
            guard f & ~0x03 == 0, let sqeFlags = header.u8(at: 9), sqeFlags >> 6 != 0 else { return false }
            if shape.plen > shape.headerBytes { guard shape.pdo != 0 || shape.dataLength > 0 else { return false } }
        case .capsuleResp, .r2t:
            guard f & ~0x01 == 0, shape.pdo == 0 else { return false }
            if shape.type == .r2t {
                guard let r2tl = header.le32(at: 16), r2tl > 0 else { return false }
            }
        case .h2cData, .c2hData:
            let allowed: UInt8 = shape.type == .c2hData ? 0x0F : 0x07
            guard f & ~allowed == 0, shape.pdo != 0, let datal = header.le32(at: 16),
                  Int(datal) == shape.dataLength, datal > 0 else { return false }
            if shape.type == .c2hData && f & 0x08 != 0 && f & 0x04 == 0 { return false }  // SUCCESS needs LAST
        case .h2cTermReq, .c2hTermReq:
            guard f & ~0x03 == 0, let fes = header.le16(at: 8), fes >= 1 && fes <= 6 else { return false }
        }
        return true
    }
}
