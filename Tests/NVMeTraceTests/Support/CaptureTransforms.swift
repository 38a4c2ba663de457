import Foundation

// Pure functions that turn a real Ethernet/IPv4 capture into the same traffic seen through another
// link type, over IPv6, or under other network conditions; plus a small reference NVMe/TCP
// framer, independent of NVMeTrace, that tells tests which PDUs a transformed capture still holds.

// MARK: - bytes

@inline(__always) private func rd16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
@inline(__always) private func rd32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
}
@inline(__always) private func rdLE32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
}
@inline(__always) private func wr16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) {
    b[o] = UInt8(v >> 8); b[o + 1] = UInt8(v & 0xFF)
}
@inline(__always) private func wr32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
    for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * i)) }
}
private func be16Bytes(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
private func be32Bytes(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
private func le32Bytes(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// RFC 1071 one's-complement sum, not yet folded or inverted.
private func checksumSum(_ b: ArraySlice<UInt8>, _ initial: UInt32 = 0) -> UInt32 {
    var sum = initial
    var i = b.startIndex
    while i + 1 < b.endIndex { sum &+= UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
    if i < b.endIndex { sum &+= UInt32(b[i]) << 8 }
    return sum
}

private func checksumFold(_ s: UInt32) -> UInt16 {
    var sum = s
    while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}

// MARK: - TCP view of an Ethernet frame

enum TCPFlag {
    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10
}

/// One direction of a TCP connection.
struct TCPDirectionKey: Hashable, Sendable {
    var src: [UInt8], srcPort: UInt16, dst: [UInt8], dstPort: UInt16
    var reversed: TCPDirectionKey { TCPDirectionKey(src: dst, srcPort: dstPort, dst: src, dstPort: srcPort) }
}

/// Where the headers of an Ethernet II / IPv4 (or IPv6 without extension headers) / TCP frame lie.
struct TCPFrameView {
    var ip: Int                 // offset of the IP header
    var ipv6: Bool
    var ipHeaderLength: Int
    var tcp: Int                // offset of the TCP header
    var tcpHeaderLength: Int
    var payloadLength: Int      // announced by the IP header
    var key: TCPDirectionKey
    var seq: UInt32
    var ack: UInt32
    var flags: UInt8

    var payload: Int { tcp + tcpHeaderLength }
    /// Carries stream bytes and nothing that ends or starts the connection.
    var isData: Bool { payloadLength > 0 && flags & (TCPFlag.syn | TCPFlag.fin | TCPFlag.rst) == 0 }
    /// Payload bytes actually in the frame (fewer when cut by a snap length).
    func capturedPayload(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        let end = min(bytes.count, payload + payloadLength)
        return end > payload ? bytes[payload..<end] : []
    }

    /// Parses an Ethernet frame. The IP and TCP headers must have been captured in full.
    init?(_ b: [UInt8]) {
        guard b.count >= 14 else { return nil }
        let etherType = rd16(b, 12)
        ip = 14
        if etherType == 0x0800 {
            guard b.count >= ip + 20, b[ip] >> 4 == 4, b[ip + 9] == 6, rd16(b, ip + 6) & 0x3FFF == 0 else { return nil }
            ipv6 = false
            ipHeaderLength = Int(b[ip] & 0x0F) * 4
            tcp = ip + ipHeaderLength
            guard b.count >= tcp + 20 else { return nil }
            tcpHeaderLength = Int(b[tcp + 12] >> 4) * 4
            payloadLength = Int(rd16(b, ip + 2)) - ipHeaderLength - tcpHeaderLength
            key = TCPDirectionKey(src: Array(b[ip + 12..<ip + 16]), srcPort: rd16(b, tcp),
                                  dst: Array(b[ip + 16..<ip + 20]), dstPort: rd16(b, tcp + 2))
        } else if etherType == 0x86DD {
            guard b.count >= ip + 40, b[ip + 6] == 6 else { return nil }
            ipv6 = true
            ipHeaderLength = 40
            tcp = ip + 40
            guard b.count >= tcp + 20 else { return nil }
            tcpHeaderLength = Int(b[tcp + 12] >> 4) * 4
            payloadLength = Int(rd16(b, ip + 4)) - tcpHeaderLength
            key = TCPDirectionKey(src: Array(b[ip + 8..<ip + 24]), srcPort: rd16(b, tcp),
                                  dst: Array(b[ip + 24..<ip + 40]), dstPort: rd16(b, tcp + 2))
        } else {
            return nil
        }
        guard payloadLength >= 0, b.count >= tcp + tcpHeaderLength else { return nil }
        seq = rd32(b, tcp + 4)
        ack = rd32(b, tcp + 8)
        flags = b[tcp + 13]
    }
}

/// Recomputes the IPv4 header checksum and the TCP checksum of a complete Ethernet/IP/TCP frame.
private func fixChecksums(_ b: inout [UInt8], _ v: TCPFrameView) {
    let tcpLength = v.tcpHeaderLength + v.payloadLength
    guard b.count >= v.tcp + tcpLength else { return }
    var pseudo: UInt32
    if v.ipv6 {
        pseudo = checksumSum(b[v.ip + 8..<v.ip + 40]) &+ UInt32(tcpLength >> 16) &+ UInt32(tcpLength & 0xFFFF) &+ 6
    } else {
        wr16(&b, v.ip + 10, 0)
        wr16(&b, v.ip + 10, checksumFold(checksumSum(b[v.ip..<v.ip + v.ipHeaderLength])))
        pseudo = checksumSum(b[v.ip + 12..<v.ip + 20]) &+ 6 &+ UInt32(tcpLength)
    }
    wr16(&b, v.tcp + 16, 0)
    wr16(&b, v.tcp + 16, checksumFold(checksumSum(b[v.tcp..<v.tcp + tcpLength], pseudo)))
}

/// The same TCP segment with another sequence number and payload (lengths and checksums fixed).
private func rebuildSegment(_ p: StoredPacket, _ v: TCPFrameView, seq: UInt32, payload: ArraySlice<UInt8>,
                            push: Bool? = nil) -> StoredPacket {
    var b = Array(p.bytes[..<v.payload])
    b.append(contentsOf: payload)
    if v.ipv6 {
        wr16(&b, v.ip + 4, UInt16(v.tcpHeaderLength + payload.count))
    } else {
        wr16(&b, v.ip + 2, UInt16(v.ipHeaderLength + v.tcpHeaderLength + payload.count))
    }
    wr32(&b, v.tcp + 4, seq)
    if let push { b[v.tcp + 13] = push ? b[v.tcp + 13] | TCPFlag.psh : b[v.tcp + 13] & ~TCPFlag.psh }
    var nv = v
    nv.payloadLength = payload.count
    nv.seq = seq
    fixChecksums(&b, nv)
    return StoredPacket(timeNs: p.timeNs, wireLength: b.count, bytes: b, origin: p.origin)
}

// MARK: - link layers

enum Encapsulation: String, CaseIterable, Sendable, CustomStringConvertible {
    case linuxSLL         // LINKTYPE_LINUX_SLL 113
    case linuxSLL2        // LINKTYPE_LINUX_SLL2 276
    case nullLittleEndian // LINKTYPE_NULL 0, captured on a little-endian host
    case nullBigEndian    // LINKTYPE_NULL 0, captured on a big-endian host
    case loop             // LINKTYPE_LOOP 108 (OpenBSD), network byte order
    case raw              // LINKTYPE_RAW 101
    case vlan             // Ethernet with one 802.1Q tag
    case qinq             // Ethernet with an 802.1ad outer tag and an 802.1Q inner tag
    case ethernetTrailer  // Ethernet with 4 bytes after the IP packet (an FCS, or padding)

    var description: String { rawValue }

    var linkType: UInt32 {
        switch self {
        case .linuxSLL: LinkTypeValue.linuxSLL
        case .linuxSLL2: LinkTypeValue.linuxSLL2
        case .nullLittleEndian, .nullBigEndian: LinkTypeValue.null
        case .loop: LinkTypeValue.loop
        case .raw: LinkTypeValue.raw
        case .vlan, .qinq, .ethernetTrailer: LinkTypeValue.ethernet
        }
    }

    /// Whether packets that are not IPv4/IPv6 (ARP) can be carried; they are dropped otherwise.
    var carriesNonIP: Bool {
        switch self {
        case .linuxSLL, .linuxSLL2, .vlan, .qinq, .ethernetTrailer: true
        case .nullLittleEndian, .nullBigEndian, .loop, .raw: false
        }
    }
}

/// The length of an IP packet per its own header, to drop Ethernet padding; nil when not IP.
private func ipPacketLength(_ b: ArraySlice<UInt8>, etherType: UInt16) -> Int? {
    let s = b.startIndex
    switch etherType {
    case 0x0800 where b.count >= 4: return Int(UInt16(b[s + 2]) << 8 | UInt16(b[s + 3]))
    case 0x86DD where b.count >= 6: return 40 + Int(UInt16(b[s + 4]) << 8 | UInt16(b[s + 5]))
    default: return nil
    }
}

/// Re-encapsulates every packet of an (untagged) Ethernet capture. The link-layer header is
/// replaced; the network-layer bytes are kept unchanged (minus Ethernet padding where the new link
/// has none). Packets the new link cannot carry are dropped; `origin` keeps the frame mapping.
func reencapsulate(_ capture: StoredCapture, as encapsulation: Encapsulation) -> StoredCapture {
    precondition(capture.linkType == LinkTypeValue.ethernet)
    var out: [StoredPacket] = []
    out.reserveCapacity(capture.packets.count)
    for p in capture.packets {
        let b = p.bytes
        guard b.count >= 14 else { continue }
        let etherType = rd16(b, 12)
        var body = b[14...]
        var wire = p.wireLength - 14
        let isIP = etherType == 0x0800 || etherType == 0x86DD
        if !isIP && !encapsulation.carriesNonIP { continue }
        var header: [UInt8]
        switch encapsulation {
        case .vlan:
            header = Array(b[0..<12]) + [0x81, 0x00] + be16Bytes(0x2064) + be16Bytes(etherType)
        case .qinq:
            header = Array(b[0..<12]) + [0x88, 0xA8] + be16Bytes(0x00C8) + [0x81, 0x00] + be16Bytes(0x0064)
                + be16Bytes(etherType)
        case .ethernetTrailer:
            // Bytes past the IP packet's own length are not part of it: the decoder must not
            // take them for TCP payload.
            header = Array(b[0..<14])
            if let n = ipPacketLength(body, etherType: etherType), n < body.count { body = body.prefix(n) }
            body = body + [0xDE, 0xAD, 0xBE, 0xEF]
            wire = body.count
        default:
            // The other links carry no padding: cut the frame to the IP packet's own length.
            if let n = ipPacketLength(body, etherType: etherType), n < body.count {
                body = body.prefix(n)
                wire = n
            }
            // Linux packet type: 0 = to us, 4 = sent by us; "us" is the host (10.0.0.2), which
            // has the source MAC of every frame it sent.
            let outgoing: Bool = {
                guard let v = TCPFrameView(b), !v.ipv6 else { return false }
                return v.key.src == [10, 0, 0, 2]
            }()
            let pktType: UInt16 = outgoing ? 4 : 0
            switch encapsulation {
            case .linuxSLL:
                header = be16Bytes(pktType) + be16Bytes(1) + be16Bytes(6) + Array(b[6..<12]) + [0, 0]
                    + be16Bytes(etherType)
            case .linuxSLL2:
                header = be16Bytes(etherType) + [0, 0] + be32Bytes(3) + be16Bytes(1) + [UInt8(pktType), 6]
                    + Array(b[6..<12]) + [0, 0]
            case .nullLittleEndian:
                header = le32Bytes(etherType == 0x0800 ? 2 : 30)   // AF_INET, AF_INET6 (Darwin)
            case .nullBigEndian:
                header = be32Bytes(etherType == 0x0800 ? 2 : 28)   // AF_INET, AF_INET6 (FreeBSD)
            case .loop:
                header = be32Bytes(etherType == 0x0800 ? 2 : 24)   // AF_INET, AF_INET6 (OpenBSD)
            case .raw:
                header = []
            case .vlan, .qinq, .ethernetTrailer:
                fatalError()
            }
        }
        out.append(StoredPacket(timeNs: p.timeNs, wireLength: header.count + wire,
                                bytes: header + body, origin: p.origin))
    }
    return StoredCapture(linkType: encapsulation.linkType, packets: out)
}

// MARK: - IPv4 → IPv6

/// fd00::a.b.c.d (the IPv4 address in the low 32 bits): 10.0.0.2 becomes fd00::a00:2.
func mappedIPv6(_ v4: [UInt8]) -> [UInt8] { [0xFD, 0x00] + Array(repeating: 0, count: 10) + v4 }

/// `[fd00::a00:2]:port` for `10.0.0.2:port`, as NVMeTrace prints endpoints.
func mappedEndpointDescription(_ v4Endpoint: String) -> String {
    let parts = v4Endpoint.split(separator: ":")
    let o = parts[0].split(separator: ".").map { Int($0)! }
    let hi = o[0] << 8 | o[1], lo = o[2] << 8 | o[3]
    let addr = hi == 0 ? "fd00::\(String(lo, radix: 16))" : "fd00::\(String(hi, radix: 16)):\(String(lo, radix: 16))"
    return "[\(addr)]:\(parts[1])"
}

/// Rewrites every Ethernet IPv4/TCP packet as IPv6 (40-byte header, next header TCP, addresses
/// mapped by `mappedIPv6`, hop limit from the TTL); the TCP header and payload are unchanged
/// apart from the checksum, which is recomputed over the new pseudo-header. Other packets are kept.
/// With `extensionHeaders`, a Hop-by-Hop Options and a Destination Options header (RFC 8200 §4.3,
/// §4.6; 8 bytes each, padded with PadN) sit between the IPv6 header and TCP. The TCP checksum is
/// unchanged by them: its pseudo-header counts the upper-layer length only (§8.1).
func toIPv6(_ capture: StoredCapture, extensionHeaders: Bool = false) -> StoredCapture {
    precondition(capture.linkType == LinkTypeValue.ethernet)
    var out = capture
    for i in out.packets.indices {
        let p = out.packets[i]
        guard let v = TCPFrameView(p.bytes), !v.ipv6, v.ip == 14 else { continue }
        let b = p.bytes
        let ipTotal = Int(rd16(b, v.ip + 2))
        let tcpEnd = min(b.count, v.ip + ipTotal)
        var n = Array(b[0..<12]) + be16Bytes(0x86DD)
        n += [0x60, 0, 0, 0] + be16Bytes(UInt16(ipTotal - v.ipHeaderLength)) + [6, b[v.ip + 8]]
        n += mappedIPv6(Array(b[v.ip + 12..<v.ip + 16])) + mappedIPv6(Array(b[v.ip + 16..<v.ip + 20]))
        n += b[v.tcp..<tcpEnd]
        if let nv = TCPFrameView(n) { fixChecksums(&n, nv) }
        var added = 0
        if extensionHeaders {
            // Hop-by-Hop (next: Destination Options, 60), then Destination Options (next: TCP);
            // each: next header, length 0 (8 bytes), PadN of 4 bytes of padding.
            let hopByHop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0], destination: [UInt8] = [6, 0, 1, 4, 0, 0, 0, 0]
            n.insert(contentsOf: hopByHop + destination, at: 14 + 40)
            n[14 + 6] = 0  // the IPv6 header's next header: Hop-by-Hop
            added = hopByHop.count + destination.count
            let payloadLength = Int(rd16(n, 14 + 4)) + added
            n[14 + 4] = UInt8(payloadLength >> 8); n[14 + 5] = UInt8(payloadLength & 0xFF)
        }
        out.packets[i].bytes = n
        out.packets[i].wireLength = 14 + 40 + added + (ipTotal - v.ipHeaderLength)
    }
    return out
}

// MARK: - network conditions

/// Out-of-order delivery: for pairs of consecutive data segments of the same direction (the second
/// continuing the first's sequence space) with nothing but payload-less, flag-less packets (pure
/// ACKs, ARP) between them, the second is moved in front of the first. Pure ACKs stay after both,
/// so no acknowledgement ever precedes the data it covers. Each position keeps its timestamp.
/// Pairs do not overlap; at most `limit` pairs are swapped (all when nil).
func reorderAdjacentDataSegments(_ capture: StoredCapture, limit: Int? = nil) -> StoredCapture {
    let views = capture.packets.map { TCPFrameView($0.bytes) }
    var out = capture.packets
    var swaps = 0
    var i = 0
    let n = out.count
    while i < n {
        if let limit, swaps >= limit { break }
        guard let a = views[i], a.isData else { i += 1; continue }
        var found: Int?
        var j = i + 1
        while j < n {
            if let b = views[j] {
                if b.isData && b.key == a.key && b.seq == a.seq &+ UInt32(a.payloadLength) { found = j; break }
                if b.payloadLength > 0 || b.flags & (TCPFlag.syn | TCPFlag.fin | TCPFlag.rst) != 0 { break }
            }
            j += 1
        }
        guard let j = found else { i += 1; continue }
        let order = [j, i] + Array(i + 1 ..< j)
        for (k, src) in order.enumerated() {
            out[i + k] = capture.packets[src]
            out[i + k].timeNs = capture.packets[i + k].timeNs
        }
        swaps += 1
        i = j + 1
    }
    return StoredCapture(linkType: capture.linkType, packets: out)
}

/// Loss before the capture point, recovered: every `every`-th data segment that can be (see
/// below) is held back and sent after the next `past` data segments of its direction (which the capture now shows out of
/// order), as a retransmission after the receiver's duplicate ACKs. The receiver's pure ACKs in
/// between are rewritten to acknowledge only up to the missing segment, as they would have. Only
/// applied where nothing but same-direction data and payload-less, flag-less packets lie between,
/// so no PDU of the other direction changes its place relative to it.
func delayDataSegments(_ capture: StoredCapture, every: Int = 20, past: Int = 3) -> StoredCapture {
    delayDataSegmentsCounting(capture, every: every, past: past).capture
}

/// `delayDataSegments`, and how many segments it held back. With `retransmitAfterNs`, each held
/// segment comes that much after the packet it follows (the sender's retransmission timeout) and
/// every later packet is shifted by as much, so time never goes backwards.
func delayDataSegmentsCounting(_ capture: StoredCapture, every: Int = 20, past: Int = 3,
                               retransmitAfterNs: Int64 = 0) -> (capture: StoredCapture, held: Int) {
    var shift: Int64 = 0
    var held = 0
    let views = capture.packets.map { TCPFrameView($0.bytes) }
    var out: [StoredPacket] = []
    out.reserveCapacity(capture.packets.count)
    var dataSegments = 0
    var i = 0
    let n = capture.packets.count
    func shifted(_ p: StoredPacket) -> StoredPacket { var p = p; p.timeNs += shift; return p }
    outer: while i < n {
        guard let a = views[i], a.isData else { out.append(shifted(capture.packets[i])); i += 1; continue }
        // Find the `past`-th following data segment of the same direction.
        var seen = 0
        var q = i + 1
        var expectedSeq = a.seq &+ UInt32(a.payloadLength)
        while q < n && seen < past {
            if let b = views[q] {
                if b.flags & (TCPFlag.syn | TCPFlag.fin | TCPFlag.rst) != 0 { break }
                if b.key == a.key && b.payloadLength > 0 {
                    guard b.seq == expectedSeq else { break }
                    expectedSeq = b.seq &+ UInt32(b.payloadLength)
                    seen += 1
                } else if b.payloadLength > 0 {
                    break
                }
            }
            if seen < past { q += 1 }
        }
        guard seen == past, q < n else { out.append(shifted(capture.packets[i])); i += 1; continue }
        dataSegments += 1
        guard dataSegments % every == 0 else { out.append(shifted(capture.packets[i])); i += 1; continue }
        held += 1
        // Positions i...q: the others move up one, the held-back segment goes last.
        for k in (i + 1)...q {
            var p = capture.packets[k]
            p.timeNs = capture.packets[k - 1].timeNs + shift
            if let v = views[k], v.key == a.key.reversed, v.flags & TCPFlag.ack != 0,
               Int32(bitPattern: v.ack &- a.seq) > 0 {
                wr32(&p.bytes, v.tcp + 8, a.seq)
                fixChecksums(&p.bytes, v)
            }
            out.append(p)
        }
        shift += retransmitAfterNs
        var late = capture.packets[i]
        late.timeNs = capture.packets[q].timeNs + shift
        out.append(late)
        i = q + 1
        continue outer
    }
    return (StoredCapture(linkType: capture.linkType, packets: out), held)
}

/// Retransmissions: every `every`-th data segment is sent again, right after the packet that
/// follows it (typically the peer's ACK, as a spurious retransmission), with that packet's time.
func duplicateDataSegments(_ capture: StoredCapture, every: Int = 3) -> StoredCapture {
    var out: [StoredPacket] = []
    out.reserveCapacity(capture.packets.count * 4 / 3 + 1)
    var pendingCopy: StoredPacket?
    var dataSegments = 0
    for p in capture.packets {
        out.append(p)
        if var copy = pendingCopy {
            copy.timeNs = p.timeNs
            copy.origin = nil
            out.append(copy)
            pendingCopy = nil
        }
        if let v = TCPFrameView(p.bytes), v.isData {
            dataSegments += 1
            if dataSegments % every == 0 { pendingCopy = p }
        }
    }
    if var copy = pendingCopy { copy.origin = nil; out.append(copy) }
    return StoredCapture(linkType: capture.linkType, packets: out)
}

/// Splits every data segment's payload into pieces of the given sizes, in order (when `cycle`,
/// the sizes repeat until the payload is used up; otherwise the rest goes into one last piece).
/// Sequence numbers, IP lengths and checksums are correct; PSH stays on the last piece only; all
/// pieces keep the original's timestamp and origin.
func splitDataSegments(_ capture: StoredCapture, pieces: [Int], cycle: Bool) -> StoredCapture {
    precondition(!pieces.isEmpty && pieces.allSatisfy { $0 > 0 })
    var out: [StoredPacket] = []
    for p in capture.packets {
        guard let v = TCPFrameView(p.bytes), v.isData else { out.append(p); continue }
        let payload = v.capturedPayload(p.bytes)
        precondition(payload.count == v.payloadLength, "split needs fully captured packets")
        let push = v.flags & TCPFlag.psh != 0
        var offset = 0
        var k = 0
        while offset < payload.count {
            var size: Int
            if k < pieces.count || cycle { size = pieces[k % pieces.count] } else { size = payload.count - offset }
            size = min(size, payload.count - offset)
            let slice = payload[(payload.startIndex + offset)..<(payload.startIndex + offset + size)]
            let last = offset + size == payload.count
            out.append(rebuildSegment(p, v, seq: v.seq &+ UInt32(offset), payload: slice, push: push && last))
            offset += size
            k += 1
        }
    }
    return StoredCapture(linkType: capture.linkType, packets: out)
}

/// Overlapping retransmission: every data segment that continues the previous data segment of its
/// direction is replaced by one that starts `overlap` bytes earlier (re-sending the tail of the
/// previous segment, at most all of it) and then carries its own new bytes.
func overlapRetransmissions(_ capture: StoredCapture, overlap: Int) -> StoredCapture {
    var last: [TCPDirectionKey: (seq: UInt32, payload: ArraySlice<UInt8>)] = [:]
    var out: [StoredPacket] = []
    out.reserveCapacity(capture.packets.count)
    for p in capture.packets {
        guard let v = TCPFrameView(p.bytes), v.isData else { out.append(p); continue }
        let payload = v.capturedPayload(p.bytes)
        if let prev = last[v.key], prev.seq &+ UInt32(prev.payload.count) == v.seq {
            let k = min(overlap, prev.payload.count)
            out.append(rebuildSegment(p, v, seq: v.seq &- UInt32(k), payload: prev.payload.suffix(k) + payload))
        } else {
            out.append(p)
        }
        if let prev = last[v.key], Int32(bitPattern: (v.seq &+ UInt32(payload.count)) &- (prev.seq &+ UInt32(prev.payload.count))) <= 0 {
            continue  // an old retransmission in the original: keep the furthest segment
        }
        last[v.key] = (v.seq, payload)
    }
    return StoredCapture(linkType: capture.linkType, packets: out)
}

/// Out-of-order overlapping pieces: every data segment of at least 3 bytes is cut in thirds and
/// sent last third first; the middle third is extended by `overlap` bytes of the last one and
/// the first third by `overlap` bytes of the middle one, so the later pieces overlap bytes that
/// are already buffered out of order. All pieces keep the original's time and origin.
func reverseOverlappingPieces(_ capture: StoredCapture, overlap: Int = 5) -> StoredCapture {
    var out: [StoredPacket] = []
    for p in capture.packets {
        guard let v = TCPFrameView(p.bytes), v.isData, v.payloadLength >= 3 else { out.append(p); continue }
        let payload = v.capturedPayload(p.bytes)
        let s = payload.startIndex, n = payload.count
        let c1 = n / 3, c2 = 2 * n / 3
        let ranges = [c2..<n, c1..<min(n, c2 + overlap), 0..<min(n, c1 + overlap)]
        for r in ranges {
            out.append(rebuildSegment(p, v, seq: v.seq &+ UInt32(r.lowerBound),
                                      payload: payload[(s + r.lowerBound)..<(s + r.upperBound)],
                                      push: r.upperBound == n && v.flags & TCPFlag.psh != 0))
        }
    }
    return StoredCapture(linkType: capture.linkType, packets: out)
}

/// Sequence-number wrap-around: every direction's initial sequence number is moved to
/// `2^32 - wrapAfter` (acknowledgement numbers follow), so each stream's sequence numbers wrap
/// past zero after `wrapAfter` bytes.
func wrappingSequenceNumbers(_ capture: StoredCapture, wrapAfter: UInt32 = 700) -> StoredCapture {
    var delta: [TCPDirectionKey: UInt32] = [:]
    var out = capture
    for i in out.packets.indices {
        guard let v = TCPFrameView(out.packets[i].bytes) else { continue }
        if delta[v.key] == nil {
            // The SYN's sequence number is the ISN; otherwise (no handshake seen) the first one.
            delta[v.key] = (0 &- wrapAfter) &- v.seq &- (v.flags & TCPFlag.syn != 0 ? 0 : 1)
        }
        var b = out.packets[i].bytes
        wr32(&b, v.tcp + 4, v.seq &+ delta[v.key]!)
        if v.flags & TCPFlag.ack != 0, let d = delta[v.key.reversed] { wr32(&b, v.tcp + 8, v.ack &+ d) }
        fixChecksums(&b, v)
        out.packets[i].bytes = b
    }
    return out
}

/// The same traffic on another TCP port: every source or destination port `from` becomes `to`,
/// IP and TCP checksums fixed (packets must be captured whole). Nothing else moves, so frame
/// numbers, sequence numbers and stream offsets stay those of the original.
func rewritingPort(_ capture: StoredCapture, from old: UInt16, to new: UInt16) -> StoredCapture {
    var out = capture
    for i in out.packets.indices {
        guard let v = TCPFrameView(out.packets[i].bytes), v.key.srcPort == old || v.key.dstPort == old else { continue }
        var b = out.packets[i].bytes
        if v.key.srcPort == old { wr16(&b, v.tcp, new) }
        if v.key.dstPort == old { wr16(&b, v.tcp + 2, new) }
        fixChecksums(&b, v)
        out.packets[i].bytes = b
    }
    return out
}

/// Loss: removes the packets made from the given original frames.
func dropping(_ capture: StoredCapture, origins: Set<Int>) -> StoredCapture {
    StoredCapture(linkType: capture.linkType, packets: capture.packets.filter { p in
        !(p.origin.map(origins.contains) ?? false)
    })
}

/// A capture taken with a snap length: every packet cut to `snaplen` bytes, wire length kept.
func truncated(_ capture: StoredCapture, to snaplen: Int) -> StoredCapture {
    var out = capture
    for i in out.packets.indices where out.packets[i].bytes.count > snaplen {
        out.packets[i].bytes = Array(out.packets[i].bytes.prefix(snaplen))
    }
    return out
}

// MARK: - reference framing (independent of NVMeTrace)

/// PDU type names as the ground truth (Wireshark) spells them.
let referencePDUTypeNames: [UInt8: String] = [
    0: "ICReq", 1: "ICResp", 2: "H2CTermReq", 3: "C2HTermReq", 4: "CapsuleCmd", 5: "CapsuleResp",
    6: "H2CData", 7: "C2HData", 9: "R2T",
]

/// One PDU found by walking a complete stream by PLEN.
struct ReferencePDU: Sendable {
    var offset: Int         // stream offset of its first byte
    var type: UInt8
    var flags: UInt8
    var plen: Int
    /// HLEN plus the header digest: the bytes a framer needs to recognise the PDU.
    var headerBytes: Int
    /// Where its data lies within the PDU (PDO, or right after the header).
    var dataStart: Int
    var dataLength: Int
    /// CapsuleCmd: SQE opcode; Connect: qid and kato from the SQE.
    var opcode: UInt8?
    var connect: (qid: Int, kato: Int)?

    var typeName: String { referencePDUTypeNames[type] ?? "type\(type)" }
    var headerRange: Range<Int> { offset..<(offset + headerBytes) }
}

/// One direction of a connection as the capture holds it.
struct ReferenceStream: Sendable {
    /// Sequence number of stream offset 0 (ISN + 1).
    var base: UInt32 = 0
    var sawSYN = false
    /// Stream offsets whose bytes the capture holds, merged and sorted.
    var captured: [Range<Int>] = []
    /// PDUs of the stream, walked over the longest gap-free prefix.
    var pdus: [ReferencePDU] = []
    /// The data segments: (frame, stream range), in capture order.
    var segments: [(frame: Int, range: Range<Int>)] = []

    func isCaptured(_ r: Range<Int>) -> Bool {
        captured.contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }
    }
    func offset(ofSeq seq: UInt32) -> Int { Int(Int32(bitPattern: seq &- base)) }
}

struct ReferenceConnection: Sendable {
    var host: String      // "10.0.0.2:34214", the SYN sender
    var target: String
    var key: TCPDirectionKey   // host → target
    /// [host → target, target → host]
    var streams: [ReferenceStream]
    var connect: (qid: Int, kato: Int)? {
        streams[0].pdus.lazy.compactMap(\.connect).first
    }
    /// Keep Alive commands (opcode 0x18) when this is an admin queue (Connect qid 0).
    var keepAlives: Int {
        guard connect?.qid == 0 else { return 0 }
        return streams[0].pdus.filter { $0.type == 4 && $0.opcode == 0x18 }.count
    }
}

private func endpointString(_ addr: [UInt8], _ port: UInt16) -> String {
    addr.count == 4 ? addr.map(String.init).joined(separator: ".") + ":\(port)" : "?:\(port)"
}

/// Walks an Ethernet/IPv4 capture: TCP connections (from their SYN) in order of appearance,
/// each direction's stream rebuilt by sequence number, and the NVMe/TCP PDUs found by PLEN.
func referenceConnections(_ capture: StoredCapture) -> [ReferenceConnection] {
    precondition(capture.linkType == LinkTypeValue.ethernet)
    var conns: [ReferenceConnection] = []
    var index: [TCPDirectionKey: (Int, Int)] = [:]   // direction → (connection, stream)
    var chunks: [[(Int, ArraySlice<UInt8>)]] = []    // per connection*2 + stream
    for (i, p) in capture.packets.enumerated() {
        guard let v = TCPFrameView(p.bytes), !v.ipv6 else { continue }
        if v.flags & TCPFlag.syn != 0 && v.flags & TCPFlag.ack == 0 && index[v.key] == nil {
            let c = ReferenceConnection(host: endpointString(v.key.src, v.key.srcPort),
                                        target: endpointString(v.key.dst, v.key.dstPort), key: v.key,
                                        streams: [ReferenceStream(), ReferenceStream()])
            index[v.key] = (conns.count, 0)
            index[v.key.reversed] = (conns.count, 1)
            conns.append(c)
            chunks.append([]); chunks.append([])
        }
        guard let (c, s) = index[v.key] else { continue }
        if v.flags & TCPFlag.syn != 0 {
            if !conns[c].streams[s].sawSYN {
                conns[c].streams[s].sawSYN = true
                conns[c].streams[s].base = v.seq &+ 1
            }
            continue
        }
        guard conns[c].streams[s].sawSYN, v.payloadLength > 0 else { continue }
        let o = conns[c].streams[s].offset(ofSeq: v.seq)
        let data = v.capturedPayload(p.bytes)
        chunks[2 * c + s].append((o, data))
        conns[c].streams[s].segments.append((i + 1, o..<(o + v.payloadLength)))
    }
    for c in conns.indices {
        for s in 0..<2 {
            let pieces = chunks[2 * c + s].filter { !$0.1.isEmpty }.sorted { $0.0 < $1.0 }
            // Merge captured ranges and assemble the gap-free prefix.
            var ranges: [Range<Int>] = []
            for (o, d) in pieces {
                let r = o..<(o + d.count)
                if let last = ranges.last, r.lowerBound <= last.upperBound {
                    ranges[ranges.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
                } else {
                    ranges.append(r)
                }
            }
            conns[c].streams[s].captured = ranges
            var stream: [UInt8] = []
            for (o, d) in pieces where o <= stream.count && o + d.count > stream.count {
                stream.append(contentsOf: d.dropFirst(stream.count - o))
            }
            if ranges.first?.lowerBound != 0 { stream = [] }
            conns[c].streams[s].pdus = walkPDUs(stream)
        }
    }
    return conns
}

/// `cut`'s connections (from `referenceConnections(capture)`) with each stream's captured bytes
/// counted as a reader that meets the segments in capture order holds them: a byte counts when the
/// first segment that carried it, in stream order, captured it. Bytes a cut segment announced but
/// did not hold are passed then; a later segment that re-sends them (an overlapping
/// retransmission) holds them too late. Defined for captures whose every data segment starts at or
/// before the end of what came before it in its direction (no reordering, no loss); returns nil
/// otherwise.
func firstCopyCaptured(_ capture: StoredCapture, _ cut: [ReferenceConnection]) -> [ReferenceConnection]? {
    var out = cut
    for c in out.indices {
        for s in 0..<2 {
            let key = s == 0 ? out[c].key : out[c].key.reversed
            var next = 0
            var ranges: [Range<Int>] = []
            for p in capture.packets {
                guard let v = TCPFrameView(p.bytes), v.key == key, v.isData else { continue }
                let o = out[c].streams[s].offset(ofSeq: v.seq)
                if o > next { return nil }
                let heldTo = o + v.capturedPayload(p.bytes).count
                if heldTo > next {
                    let r = next..<heldTo
                    if let last = ranges.last, last.upperBound == r.lowerBound {
                        ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
                    } else {
                        ranges.append(r)
                    }
                }
                next = max(next, o + v.payloadLength)
            }
            out[c].streams[s].captured = ranges
        }
    }
    return out
}

/// Walks a stream that starts at a PDU boundary, PDU by PDU, by PLEN.
func walkPDUs(_ s: [UInt8]) -> [ReferencePDU] {
    var pdus: [ReferencePDU] = []
    var o = 0
    while o + 8 <= s.count {
        let type = s[o], flags = s[o + 1], hlen = Int(s[o + 2]), pdo = Int(s[o + 3])
        let plen = Int(rdLE32(s, o + 4))
        guard plen >= 8 else { break }
        let hd = type > 1 && flags & 0x01 != 0 ? 4 : 0
        let dd = [2, 3, 4, 6, 7].contains(type) && flags & 0x02 != 0 && plen > hlen + hd ? 4 : 0
        let dataStart = pdo != 0 ? pdo : hlen + hd
        var pdu = ReferencePDU(offset: o, type: type, flags: flags, plen: plen, headerBytes: hlen + hd,
                               dataStart: dataStart, dataLength: max(0, plen - dataStart - dd))
        if type == 4 && o + 72 <= s.count {
            pdu.opcode = s[o + 8]
            if s[o + 8] == 0x7F && s[o + 12] == 0x01 {
                // Fabrics Connect: QID at SQE byte 42, KATO at SQE bytes 48-51 (little-endian).
                let qid = Int(s[o + 8 + 42]) | Int(s[o + 8 + 43]) << 8
                pdu.connect = (qid, Int(rdLE32(s, o + 8 + 48)))
            }
        }
        pdus.append(pdu)
        o += plen
    }
    return pdus
}
