/// Ethernet / IPv4 / TCP packet bytes (checksums left zero: nvmetrace, like a capture taken with
/// offloads on, does not check them).
public enum PacketBuilder {
    public struct Host: Sendable, Hashable {
        public var ipv4: UInt32
        public var mac: [UInt8]
        public init(ipv4: UInt32) {
            self.ipv4 = ipv4
            mac = [0x02, 0x00] + (0..<4).map { UInt8(truncatingIfNeeded: ipv4 >> (24 - 8 * $0)) }
        }
        /// 10.0.a.b
        public static func ip(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> Host {
            Host(ipv4: UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
        }
    }

    public static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    public static func tcp(from src: Host, _ sport: UInt16, to dst: Host, _ dport: UInt16,
                           seq: UInt32, ack ackNumber: UInt32, flags: UInt8, payload: ArraySlice<UInt8> = [],
                           window: UInt16 = 65535) -> [UInt8] {
        var p: [UInt8] = []
        p.reserveCapacity(54 + payload.count)
        p += dst.mac + src.mac + [0x08, 0x00]
        let total = 20 + 20 + payload.count
        p += [0x45, 0x00, UInt8(total >> 8 & 0xFF), UInt8(total & 0xFF), 0x00, 0x00, 0x40, 0x00, 64, 6, 0, 0]
        p += be32(src.ipv4) + be32(dst.ipv4)
        p += be16(sport) + be16(dport) + be32(seq) + be32(ackNumber)
        p += [0x50, flags] + be16(window) + [0, 0, 0, 0]
        p += payload
        return p
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
}

/// One TCP connection, sequence numbers tracked, turning byte sends into MSS-sized segments and
/// the peer's acknowledgements.
public final class TCPConversation {
    public let client: PacketBuilder.Host
    public let server: PacketBuilder.Host
    public let clientPort: UInt16
    public let serverPort: UInt16
    public let mss: Int
    private var seq: [UInt32]   // next sequence number per side (0 client, 1 server)
    private let emit: (Int64, [UInt8]) -> Void

    public init(client: PacketBuilder.Host, clientPort: UInt16, server: PacketBuilder.Host, serverPort: UInt16,
                mss: Int = 1448, isn: (UInt32, UInt32) = (1000, 5000), emit: @escaping (Int64, [UInt8]) -> Void) {
        self.client = client
        self.server = server
        self.clientPort = clientPort
        self.serverPort = serverPort
        self.mss = mss
        seq = [isn.0, isn.1]
        self.emit = emit
    }

    private func packet(fromClient: Bool, flags: UInt8, payload: ArraySlice<UInt8> = [], at t: Int64, seqOverride: UInt32? = nil,
                        window: UInt16 = 65535) {
        let bytes = fromClient
            ? PacketBuilder.tcp(from: client, clientPort, to: server, serverPort, seq: seqOverride ?? seq[0], ack: seq[1], flags: flags, payload: payload, window: window)
            : PacketBuilder.tcp(from: server, serverPort, to: client, clientPort, seq: seqOverride ?? seq[1], ack: seq[0], flags: flags, payload: payload, window: window)
        emit(t, bytes)
    }

    /// A connection attempt the server refuses: SYN, then RST-ACK (no listener).
    public func refusedSYN(at t: Int64) {
        packet(fromClient: true, flags: PacketBuilder.syn, at: t)
        seq[0] &+= 1
        packet(fromClient: false, flags: PacketBuilder.rst | PacketBuilder.ack, at: t + 80_000, seqOverride: 0)
    }

    /// A connection attempt nobody answers: the SYN and `retries` retransmissions of it, 1 s,
    /// 2 s, 4 s ... apart (Linux's initial RTO and backoff).
    public func unansweredSYN(at t: Int64, retries: Int) {
        var at = t, rto: Int64 = 1_000_000_000
        for _ in 0...retries {
            packet(fromClient: true, flags: PacketBuilder.syn, at: at, seqOverride: seq[0])
            at += rto
            rto *= 2
        }
        seq[0] &+= 1
    }

    /// The side's receive window closes at `t` (an ACK advertising zero) and opens again at
    /// `until` (a window update).
    public func zeroWindow(fromClient: Bool, at t: Int64, until: Int64) {
        packet(fromClient: fromClient, flags: PacketBuilder.ack, at: t, window: 0)
        packet(fromClient: fromClient, flags: PacketBuilder.ack, at: until)
    }

    /// Sends the last `bytes.count` bytes this side sent again, as one segment (a retransmission).
    public func resend(fromClient: Bool, _ bytes: [UInt8], at t: Int64) {
        resendAt(fromClient: fromClient, bytes, offsetFromEnd: bytes.count, at: t)
    }

    /// Sends `bytes` as one segment starting `offsetFromEnd` bytes before this side's next
    /// sequence number: a segment sent (or dropped by `send`) earlier, sent again.
    public func resendAt(fromClient: Bool, _ bytes: [UInt8], offsetFromEnd: Int, at t: Int64) {
        let i = fromClient ? 0 : 1
        packet(fromClient: fromClient, flags: PacketBuilder.ack | PacketBuilder.psh, payload: bytes[...], at: t,
               seqOverride: seq[i] &- UInt32(offsetFromEnd))
    }

    public func handshake(at t: Int64) {
        packet(fromClient: true, flags: PacketBuilder.syn, at: t)
        seq[0] &+= 1
        packet(fromClient: false, flags: PacketBuilder.syn | PacketBuilder.ack, at: t + 50_000)
        seq[1] &+= 1
        packet(fromClient: true, flags: PacketBuilder.ack, at: t + 100_000)
    }

    /// Sends bytes in MSS-sized segments, then the peer's ACK. `drop` skips a segment's packet
    /// (loss before the capture point) while still advancing the sequence number.
    public func send(fromClient: Bool, _ bytes: [UInt8], at t: Int64, drop: Set<Int> = [], ackAfter: Bool = true,
                     window: UInt16 = 65535) {
        let i = fromClient ? 0 : 1
        var offset = 0
        var n = 0
        while offset < bytes.count {
            let end = min(offset + mss, bytes.count)
            if !drop.contains(n) {
                packet(fromClient: fromClient, flags: PacketBuilder.ack | PacketBuilder.psh, payload: bytes[offset..<end], at: t + Int64(n) * 1000,
                       window: window)
            }
            seq[i] &+= UInt32(end - offset)
            offset = end
            n += 1
        }
        if ackAfter { packet(fromClient: !fromClient, flags: PacketBuilder.ack, at: t + Int64(n) * 1000 + 10_000) }
    }

    public func fin(fromClient: Bool, at t: Int64) {
        packet(fromClient: fromClient, flags: PacketBuilder.fin | PacketBuilder.ack, at: t)
        seq[fromClient ? 0 : 1] &+= 1
        packet(fromClient: !fromClient, flags: PacketBuilder.fin | PacketBuilder.ack, at: t + 100_000)
        seq[fromClient ? 1 : 0] &+= 1
        packet(fromClient: fromClient, flags: PacketBuilder.ack, at: t + 200_000)
    }

    public func rst(fromClient: Bool, at t: Int64) {
        packet(fromClient: fromClient, flags: PacketBuilder.rst | PacketBuilder.ack, at: t)
    }
}
