import ArgumentParser
import Foundation
import NVMeTraceSynth

/// Writes realistic NVMe/TCP traffic to a pcap file, deterministically from a seed: hosts with an
/// admin queue (Connect, Keep Alive at KATO/2) and I/O queues doing reads (C2HData) and writes
/// (in-capsule when small, R2T + H2CData otherwise), 4 KiB to 128 KiB each, until the file has
/// the requested size.
@main
struct Generator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmetrace-gen",
        abstract: "Generate a synthetic NVMe/TCP capture (pcap) for tests and benchmarks.",
        discussion: """
            Examples:
              nvmetrace-gen -o big.pcap --size 1G
              nvmetrace-gen -o digests.pcap --size 256M --digests
              nvmetrace-gen -o lossy.pcap --size 64M --loss 0.001 --reorder 0.01 --mss 8948
              nvmetrace-gen -o small-io.pcap --size 256M --io-size 4K
              nvmetrace-gen -o many.pcap --hosts 50000 --io-queues 1 --ios-per-queue 1
            """)

    @Option(name: [.short, .long], help: "Output pcap file.")
    var output: String

    @Option(help: "Stop once the file reaches this size (K, M, G suffixes); default: when --ios-per-queue is reached.")
    var size: String?

    @Option(help: "Seed for every random choice.")
    var seed: UInt64 = 1

    @Option(help: "Number of hosts, each with its own controller.")
    var hosts = 2

    @Option(help: "I/O queues (connections) per host.")
    var ioQueues = 2

    @Option(help: "I/O commands per I/O queue when no --size is given.")
    var iosPerQueue = 1000

    @Option(help: "TCP maximum segment size (1448 for MTU 1500, 8948 for MTU 9000).")
    var mss = 1448

    @Option(help: "Keep Alive Timeout in ms in the admin Connect; Keep Alive is sent every KATO/2.")
    var kato: UInt32 = 5000

    @Flag(help: "Negotiate header and data digests (CRC32C on every PDU).")
    var digests = false

    @Option(help: "Probability that a data segment is missing from the capture (lost before the capture point).")
    var loss = 0.0

    @Option(help: "Probability that a data segment is captured after the next one.")
    var reorder = 0.0

    @Option(help: "Fraction of I/O that are reads.")
    var readFraction = 0.7

    @Option(help: "I/O sizes: one size or MIN-MAX, powers of two from 512 bytes to 1M (each I/O picks one at random).")
    var ioSize = "4K-128K"

    /// `--io-size` as exponents of 512-byte blocks.
    func ioBlockExponents() throws -> ClosedRange<Int> {
        let parts = ioSize.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count) else { throw ValidationError("--io-size takes SIZE or MIN-MAX") }
        let exponents = try parts.map { part -> Int in
            guard let bytes = parseByteSize(part), bytes >= 512, bytes <= 1 << 20, bytes & (bytes - 1) == 0 else {
                throw ValidationError("--io-size: '\(part)' is not a power of two from 512 to 1M")
            }
            return (bytes / 512).trailingZeroBitCount
        }
        guard exponents[0] <= exponents[exponents.count - 1] else { throw ValidationError("--io-size: MIN above MAX") }
        return exponents[0]...exponents[exponents.count - 1]
    }

    func validate() throws {
        guard hosts >= 1, hosts <= 60_000 else { throw ValidationError("--hosts takes 1 to 60000") }
        guard ioQueues >= 0, ioQueues <= 64 else { throw ValidationError("--io-queues takes 0 to 64") }
        guard mss >= 536, mss <= 65_000 else { throw ValidationError("--mss takes 536 to 65000") }
        guard (0...0.5).contains(loss), (0...0.5).contains(reorder) else { throw ValidationError("--loss and --reorder take 0 to 0.5") }
        if let size { _ = try Self.parseSize(size) }
        _ = try ioBlockExponents()
    }

    static func parseSize(_ s: String) throws -> Int64 {
        guard let n = parseByteSize(s) else { throw ValidationError("bad size '\(s)'") }
        return n
    }

    func run() throws {
        let writer = try PcapWriter(path: output)
        let sizeLimit = try size.map(Self.parseSize)
        var rng = SplitMix64(seed: seed)
        let sink = PacketSink(writer: writer, loss: loss, reorder: reorder, seed: seed &+ 0x5EED)
        let gen = TrafficGenerator(sink: sink, hosts: hosts, ioQueues: ioQueues, mss: mss, kato: kato,
                                   digests: digests, readFraction: readFraction)
        if hosts > 100 { gen.connectSpacingNs = 20_000 }  // keep the connect phase short
        gen.ioBlockExponents = try ioBlockExponents()
        gen.connectAll()
        var done = 0
        let totalIOs = hosts * max(ioQueues, 1) * iosPerQueue
        while true {
            if let sizeLimit { if writer.bytesWritten + Int64(writer.pendingBytes) >= sizeLimit { break } }
            else if done >= totalIOs { break }
            gen.step(&rng)
            done += 1
        }
        gen.closeAll()
        sink.finish()
        writer.close()
        FileHandle.standardError.write(Data("nvmetrace-gen: \(writer.packets) packets, \(writer.bytesWritten) bytes, \(gen.connections) connections, \(done) I/O steps\n".utf8))
    }
}
