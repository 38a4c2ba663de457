/// Writes packets to a pcap, optionally losing or reordering data segments (as a capture point
/// would miss or see them out of order), keeping timestamps non-decreasing.
public final class PacketSink {
    let writer: PcapWriter
    let loss: Double
    let reorder: Double
    var rng: SplitMix64
    var held: (Int64, [UInt8])?
    var lastTime: Int64 = 0

    public init(writer: PcapWriter, loss: Double = 0, reorder: Double = 0, seed: UInt64 = 1) {
        self.writer = writer
        self.loss = loss
        self.reorder = reorder
        rng = SplitMix64(seed: seed)
    }

    /// A packet at time `t`; segments with payload may be lost or held back one packet.
    public func emit(_ t: Int64, _ bytes: [UInt8]) {
        let hasPayload = bytes.count > 54
        if hasPayload && loss > 0 && Double.random(in: 0..<1, using: &rng) < loss { return }
        if hasPayload && reorder > 0 && held == nil && Double.random(in: 0..<1, using: &rng) < reorder {
            held = (t, bytes)
            return
        }
        write(t, bytes)
        if let h = held {
            held = nil
            write(max(h.0, t), h.1)
        }
    }

    private func write(_ t: Int64, _ bytes: [UInt8]) {
        let time = max(t, lastTime)
        lastTime = time
        writer.write(timeNs: time, bytes: bytes)
    }

    public func finish() {
        if let h = held { write(h.0, h.1); held = nil }
        writer.flush()
    }
}

/// Realistic Linux-like NVMe/TCP traffic: per host an admin queue and I/O queues on port 4420,
/// Keep Alive every KATO/2 on each admin queue, reads and writes of 4 KiB to 128 KiB.
public final class TrafficGenerator {
    let sink: PacketSink
    let mss: Int
    let kato: UInt32
    let digests: Bool
    let readFraction: Double
    var admins: [NVMeScript] = []
    var ios: [NVMeScript] = []
    public private(set) var connections = 0
    /// The simulated clock, nanoseconds since the epoch.
    public private(set) var now: Int64 = 1_750_000_000 * 1_000_000_000
    var nextKeepAlive: Int64
    let hosts: Int
    let ioQueues: Int
    /// Simulated time between one queue's Connect and the next (small for many-host captures, or
    /// the connect phase alone spans many keep-alive periods).
    public var connectSpacingNs: Int64 = 5_000_000
    /// I/O sizes, as powers of two of 512-byte blocks: 2^3 (4 KiB) to 2^8 (128 KiB) by default.
    public var ioBlockExponents: ClosedRange<Int> = 3...8

    static let subnqn = "nqn.2024-01.org.example:generated"
    static let target = PacketBuilder.Host.ip(10, 1, 0, 1)

    public init(sink: PacketSink, hosts: Int, ioQueues: Int, mss: Int, kato: UInt32, digests: Bool, readFraction: Double) {
        self.sink = sink
        self.hosts = hosts
        self.ioQueues = ioQueues
        self.mss = mss
        self.kato = kato
        self.digests = digests
        self.readFraction = readFraction
        nextKeepAlive = now + Int64(kato) * 500_000
    }

    func hostnqn(_ h: Int) -> String { "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-\(String(h, radix: 16).leftPad(12))" }

    private func script(host: Int, port: UInt16) -> NVMeScript {
        let hostAddr = PacketBuilder.Host(ipv4: 0x0A02_0000 | UInt32(host + 1))
        let tcp = TCPConversation(client: hostAddr, clientPort: port, server: Self.target, serverPort: 4420, mss: mss,
                                  isn: (UInt32(truncatingIfNeeded: host &* 7919 &+ Int(port)), 77)) { [sink] t, b in
            sink.emit(t, b)
        }
        let s = NVMeScript(tcp)
        s.hdgst = digests
        s.ddgst = digests
        connections += 1
        return s
    }

    /// Every host connects its admin queue, then its I/O queues.
    public func connectAll() {
        for h in 0..<hosts {
            let admin = script(host: h, port: 40000)
            admin.connect(at: now, qid: 0, kato: kato, subnqn: Self.subnqn, hostnqn: hostnqn(h), cntlid: UInt16(truncatingIfNeeded: h + 1))
            advance(connectSpacingNs)
            admin.identify(at: now, cntrltype: 1, tbkas: true)
            advance(connectSpacingNs / 5)
            admins.append(admin)
            for q in 0..<ioQueues {
                let io = script(host: h, port: UInt16(40001 + q))
                io.connect(at: now, qid: UInt16(q + 1), kato: 0, subnqn: Self.subnqn, hostnqn: hostnqn(h),
                           cntlid: UInt16(truncatingIfNeeded: h + 1))
                advance(connectSpacingNs)
                ios.append(io)
            }
        }
    }

    private func advance(_ ns: Int64) { now += ns }

    /// One I/O on a random queue (and the Keep Alives that fall due).
    public func step(_ rng: inout SplitMix64) {
        while now >= nextKeepAlive {
            for a in admins { a.keepAlive(at: nextKeepAlive); }
            nextKeepAlive += Int64(kato) * 500_000
            now = max(now, nextKeepAlive - Int64(kato) * 500_000 + 2_000_000)
        }
        guard !ios.isEmpty else { advance(100_000_000); return }
        let q = ios[Int.random(in: 0..<ios.count, using: &rng)]
        let blocks = 1 << Int.random(in: ioBlockExponents, using: &rng)
        let bytes = blocks * 512
        if Double.random(in: 0..<1, using: &rng) < readFraction {
            q.read(at: now, bytes: bytes, chunk: 131_072, successFlag: Bool.random(using: &rng))
        } else {
            q.write(at: now, bytes: bytes)
        }
        // Room for the segments just sent (1 µs apart) plus a little think time.
        advance(Int64(bytes / mss + 4) * 1000 + 20_000 + Int64.random(in: 0..<2_000_000, using: &rng))
    }

    public func closeAll() {
        for s in ios + admins {
            s.tcp.fin(fromClient: true, at: now)
            advance(300_000)
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// Sizes as the generator and benchmark options take them: a number with an optional K, M or G
/// (binary) suffix. Nil for anything else.
public func parseByteSize(_ s: String) -> Int64? {
    let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
    var digits = s.uppercased()
    var mult: Int64 = 1
    if let last = digits.last, let u = units[last] { mult = u; digits.removeLast() }
    if digits.hasSuffix("I") { digits.removeLast() }
    guard let n = Int64(digits), n > 0, n <= Int64.max / mult else { return nil }
    return n * mult
}
