/// Why a packet was not turned into a TCP segment. Most are ordinary (ARP, UDP); the malformed
/// ones are counted and reported as warnings.
public enum PacketSkip: Equatable, Sendable {
    case notIP              // ARP, LLDP, other ethertypes
    case notTCP             // UDP, ICMP, ...
    case fragment           // IP fragment: NVMe/TCP segments are not fragmented in practice
    case unsupportedLinkType(Int32)
    case malformed(String)  // a header that does not fit the captured bytes or contradicts itself
}

public enum PacketDecodeResult {
    case tcp(TCPSegment)
    case skipped(PacketSkip)
}

/// Link, IP and TCP header decode: bytes in, a TCP segment view out. Every length is checked
/// against the captured bytes before it is used.
public enum PacketDecoder {
    public static func decode(linkType: Int32, bytes: UnsafeRawBufferPointer) -> PacketDecodeResult {
        if linkType == LinkType.ethernet.rawValue, let segment = ethernetIPv4TCP(bytes) { return .tcp(segment) }
        switch LinkType(rawValue: linkType) {
        case .ethernet:
            guard let etherType = bytes.be16(at: 12) else { return .skipped(.malformed("Ethernet header truncated")) }
            return decodeEtherType(etherType, bytes.dropFirst(14), depth: 0)
        case .linuxSLL:
            // Linux cooked capture v1: 16-byte header, protocol type at offset 14.
            guard let proto = bytes.be16(at: 14) else { return .skipped(.malformed("SLL header truncated")) }
            return decodeEtherType(proto, bytes.dropFirst(16), depth: 0)
        case .linuxSLL2:
            // Linux cooked capture v2: 20-byte header, protocol type at offset 0.
            guard bytes.count >= 20, let proto = bytes.be16(at: 0) else {
                return .skipped(.malformed("SLL2 header truncated"))
            }
            return decodeEtherType(proto, bytes.dropFirst(20), depth: 0)
        case .null, .loop:
            // BSD loopback: a 4-byte address family; its byte order depends on the capturing host
            // (NULL) or is big-endian (LOOP). AF_INET is 2 everywhere; AF_INET6 differs by OS.
            guard var family = bytes.le32(at: 0) else { return .skipped(.malformed("loopback header truncated")) }
            if family > 0xFFFF { family = family.byteSwapped }
            let rest = bytes.dropFirst(4)
            switch family {
            case 2: return decodeIPv4(rest)
            case 10, 23, 24, 28, 30: return decodeIPv6(rest)
            default: return .skipped(.notIP)
            }
        case .raw, .rawOpenBSD, .rawLinktype:
            return decodeRawIP(bytes)
        case .ipv4:
            return decodeIPv4(bytes)
        case .ipv6:
            return decodeIPv6(bytes)
        case nil:
            return .skipped(.unsupportedLinkType(linkType))
        }
    }

    /// The common case in one pass: untagged Ethernet, IPv4 without options or fragmentation,
    /// TCP. One length check up front, then plain loads; anything else (or anything odd) returns
    /// nil and takes the general path, which explains what is wrong.
    @inline(__always)
    static func ethernetIPv4TCP(_ b: UnsafeRawBufferPointer) -> TCPSegment? {
        guard b.count >= 54, let base = b.baseAddress else { return nil }
        @inline(__always) func be16(_ o: Int) -> UInt16 { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        @inline(__always) func be32(_ o: Int) -> UInt32 { UInt32(bigEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        guard be16(12) == 0x0800, b[14] == 0x45, b[23] == 6, be16(20) & 0x3FFF == 0 else { return nil }
        let total = Int(be16(16))
        guard total >= 40, total <= b.count - 14 else { return nil }  // TSO zero/short: general path
        let tcpHeader = Int(b[46] >> 4) * 4
        guard tcpHeader >= 20, 14 + 20 + tcpHeader <= 14 + total else { return nil }
        let payloadStart = 34 + tcpHeader
        let payloadLength = total - 20 - tcpHeader
        return TCPSegment(
            src: Endpoint(address: IPAddress(v4: be32(26)), port: be16(34)),
            dst: Endpoint(address: IPAddress(v4: be32(30)), port: be16(36)),
            seq: be32(38), ack: be32(42), flags: TCPFlags(rawValue: b[47] & 0x1F),
            payload: UnsafeRawBufferPointer(start: base + payloadStart, count: payloadLength),
            payloadLength: payloadLength, window: be16(48))
    }

    static func decodeRawIP(_ bytes: UnsafeRawBufferPointer) -> PacketDecodeResult {
        guard let first = bytes.u8(at: 0) else { return .skipped(.malformed("empty IP packet")) }
        switch first >> 4 {
        case 4: return decodeIPv4(bytes)
        case 6: return decodeIPv6(bytes)
        default: return .skipped(.malformed("IP version \(first >> 4)"))
        }
    }

    static func decodeEtherType(_ type: UInt16, _ bytes: UnsafeRawBufferPointer, depth: Int) -> PacketDecodeResult {
        switch type {
        case 0x0800: return decodeIPv4(bytes)
        case 0x86DD: return decodeIPv6(bytes)
        case 0x8100, 0x88A8, 0x9100:
            // 802.1Q / 802.1ad (QinQ) tag: 2 bytes TCI, then the inner ethertype.
            guard depth < 8 else { return .skipped(.malformed("too many VLAN tags")) }
            guard let inner = bytes.be16(at: 2) else { return .skipped(.malformed("VLAN tag truncated")) }
            return decodeEtherType(inner, bytes.dropFirst(4), depth: depth + 1)
        default:
            return .skipped(.notIP)
        }
    }

    static func decodeIPv4(_ b: UnsafeRawBufferPointer) -> PacketDecodeResult {
        guard let vihl = b.u8(at: 0) else { return .skipped(.malformed("IPv4 header truncated")) }
        guard vihl >> 4 == 4 else { return .skipped(.malformed("IPv4 header with version \(vihl >> 4)")) }
        let ihl = Int(vihl & 0x0F) * 4
        guard ihl >= 20 else { return .skipped(.malformed("IPv4 header length \(ihl) < 20")) }
        guard b.count >= ihl, let total16 = b.be16(at: 2), let frag = b.be16(at: 6),
              let proto = b.u8(at: 9) else {
            return .skipped(.malformed("IPv4 header truncated"))
        }
        guard proto == 6 else { return .skipped(.notTCP) }
        if frag & 0x3FFF != 0 { return .skipped(.fragment) }
        // Total length 0 appears when the capturing host uses TSO; then the frame says how long.
        var total = Int(total16)
        if total == 0 { total = b.count }
        guard total >= ihl else { return .skipped(.malformed("IPv4 total length \(total) < header length \(ihl)")) }
        let src = IPAddress(v4: b.slice(12, 4)!)
        let dst = IPAddress(v4: b.slice(16, 4)!)
        // Ethernet pads short frames: bytes past the IP total length are not TCP payload.
        let captured = b.prefix(total)
        return decodeTCP(captured.dropFirst(ihl), announcedLength: total - ihl, src: src, dst: dst)
    }

    static func decodeIPv6(_ b: UnsafeRawBufferPointer) -> PacketDecodeResult {
        guard b.count >= 40, let v = b.u8(at: 0), let plen16 = b.be16(at: 4), var next = b.u8(at: 6) else {
            return .skipped(.malformed("IPv6 header truncated"))
        }
        guard v >> 4 == 6 else { return .skipped(.malformed("IPv6 header with version \(v >> 4)")) }
        let src = IPAddress(v6: b.slice(8, 16)!)
        let dst = IPAddress(v6: b.slice(24, 16)!)
        var payloadLength = Int(plen16)
        if payloadLength == 0 { payloadLength = b.count - 40 }  // jumbogram or TSO
        var rest = b.dropFirst(40).prefix(payloadLength)
        var announced = payloadLength
        // Walk extension headers (RFC 8200 §4) up to TCP.
        var hops = 0
        while next != 6 {
            hops += 1
            guard hops <= 16 else { return .skipped(.malformed("too many IPv6 extension headers")) }
            switch next {
            case 0, 43, 60, 135, 139, 140:
                guard let nh = rest.u8(at: 0), let len = rest.u8(at: 1) else {
                    return .skipped(.malformed("IPv6 extension header truncated"))
                }
                let size = (Int(len) + 1) * 8
                guard rest.count >= size else { return .skipped(.malformed("IPv6 extension header truncated")) }
                next = nh; rest = rest.dropFirst(size); announced -= size
            case 51:  // AH: length in 4-octet units, minus 2
                guard let nh = rest.u8(at: 0), let len = rest.u8(at: 1) else {
                    return .skipped(.malformed("IPv6 AH header truncated"))
                }
                let size = (Int(len) + 2) * 4
                guard rest.count >= size else { return .skipped(.malformed("IPv6 AH header truncated")) }
                next = nh; rest = rest.dropFirst(size); announced -= size
            case 44:
                return .skipped(.fragment)
            default:
                return .skipped(.notTCP)
            }
        }
        guard announced >= 0 else { return .skipped(.malformed("IPv6 payload length too short for its headers")) }
        return decodeTCP(rest, announcedLength: announced, src: src, dst: dst)
    }

    static func decodeTCP(_ b: UnsafeRawBufferPointer, announcedLength: Int, src: IPAddress, dst: IPAddress) -> PacketDecodeResult {
        guard let sport = b.be16(at: 0), let dport = b.be16(at: 2), let seq = b.be32(at: 4),
              let ack = b.be32(at: 8), let off = b.u8(at: 12), let fl = b.u8(at: 13) else {
            return .skipped(.malformed("TCP header truncated"))
        }
        let hlen = Int(off >> 4) * 4
        guard hlen >= 20 else { return .skipped(.malformed("TCP data offset \(hlen) < 20")) }
        guard hlen <= announcedLength else {
            return .skipped(.malformed("TCP data offset \(hlen) beyond the segment (\(announcedLength) bytes)"))
        }
        guard b.count >= hlen else { return .skipped(.malformed("TCP header truncated by the snap length")) }
        let payload = b.dropFirst(hlen)
        return .tcp(TCPSegment(
            src: Endpoint(address: src, port: sport),
            dst: Endpoint(address: dst, port: dport),
            seq: seq, ack: ack, flags: TCPFlags(rawValue: fl & 0x1F),
            payload: payload,
            payloadLength: announcedLength - hlen, window: b.be16(at: 14) ?? 0xFFFF))
    }
}
