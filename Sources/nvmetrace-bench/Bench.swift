import ArgumentParser
import CPcap
import Foundation
import NVMeTrace
import NVMeTraceSynth

#if canImport(Glibc)
import Glibc
#endif

@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmetrace-bench",
        abstract: "Measure nvmetrace against the libpcap read floor and tshark, in one run.",
        subcommands: [Run.self],
        defaultSubcommand: Run.self)
}

struct Measurement {
    var name: String
    var file = ""
    var seconds: Double
    var maxRSSKiB: Int
    var status: Int32
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate captures and time the floor, nvmetrace and tshark on them (the default).",
        discussion: "Example: swift run -c release nvmetrace-bench --size 1G")

    @Option(help: "Size of the main capture (K, M, G).")
    var size = "1G"

    @Option(help: "Sizes for the memory-scaling comparison.")
    var scaling: [String] = ["256M", "2G"]

    @Option(help: "Directory for the generated captures.")
    var dir = FileManager.default.temporaryDirectory.path

    @Option(help: "Runs per measurement, interleaved with the others of its comparison (the fastest counts).")
    var repeats = 5

    @Flag(help: "Keep the generated captures.")
    var keep = false

    @Flag(help: "Skip tshark even when installed.")
    var noTshark = false

    @Option(help: "Concurrent connections for the connection-scaling run (0 to skip).")
    var connections = 100_000

    @Option(help: "CPU every measured command runs on; -1: the quickest of a short calibration, -2: not pinned.")
    var cpu = -1

    func run() throws {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let nvmetrace = here.appendingPathComponent("nvmetrace").path
        // The floor is a C program (Sources/nvmetrace-floor), so it starts as fast as a reader can.
        let floorTool = here.appendingPathComponent("nvmetrace-floor").path
        for tool in [nvmetrace, floorTool] where !FileManager.default.isExecutableFile(atPath: tool) {
            print("\(tool) not found; build with: swift build -c release")
            throw ExitCode(2)
        }
        var files: [String] = []
        defer { if !keep { files.forEach { try? FileManager.default.removeItem(atPath: $0) } } }
        func generate(_ name: String, size: String, digests: Bool = false, hosts: Int = 4, ioQueues: Int = 4,
                      totalIOs: Int = 0, ioBlockExponents: ClosedRange<Int> = 3...8) throws -> String {
            let path = (dir as NSString).appendingPathComponent("nvmetrace-bench-\(name).pcap")
            files.append(path)
            let limit = totalIOs > 0 ? nil : try Generator.parseSize(size)
            let writer = try PcapWriter(path: path)
            let sink = PacketSink(writer: writer, seed: 7)
            let gen = TrafficGenerator(sink: sink, hosts: hosts, ioQueues: ioQueues, mss: 1448, kato: 5000,
                                       digests: digests, readFraction: 0.7)
            gen.ioBlockExponents = ioBlockExponents
            if hosts > 100 { gen.connectSpacingNs = 20_000 }
            var rng = SplitMix64(seed: 42)
            gen.connectAll()
            var steps = 0
            while limit.map({ writer.bytesWritten + Int64(writer.pendingBytes) < $0 }) ?? (steps < totalIOs) {
                gen.step(&rng)
                steps += 1
            }
            gen.closeAll()
            sink.finish()
            writer.close()
            return path
        }

        print("generating captures in \(dir) …")
        let main = try generate("main-\(size)", size: size)
        let digest = try generate("digests-\(size)", size: size, digests: true)
        let scaled = try scaling.map { try generate("scale-\($0)", size: $0) }
        let fileSize = Double((try FileManager.default.attributesOfItem(atPath: main)[.size] as? NSNumber)?.int64Value ?? 0)
        let packets = Double(try countPackets(main))
        let placement = pinCPU(floorTool: floorTool, file: main)

        /// Runs the commands of one comparison in turn, `repeats` rounds, and keeps each one's
        /// fastest run. Interleaved rather than one after the other: on a shared VM a slow phase
        /// (seen here: the same run taking 36 ms or 59 ms minutes apart) then hits every side of a
        /// ratio alike instead of only one of them.
        func bestOf(_ runs: [(String, [String])]) -> [Measurement] {
            var all = runs.map { _ in [Measurement]() }
            for _ in 0..<max(1, repeats) {
                for (i, (name, argv)) in runs.enumerated() { all[i].append(measure(name, argv)) }
            }
            return zip(runs, all).map { run, ms in
                var m = ms.min { $0.seconds < $1.seconds }!
                m.file = run.1.last ?? ""
                return m
            }
        }
        func best(_ name: String, _ argv: [String]) -> Measurement { bestOf([(name, argv)])[0] }
        func bytes(_ path: String) -> Double {
            Double((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0)
        }
        let mainRuns = bestOf([("libpcap floor", [floorTool, main]),
                               ("libpcap floor, mapped file", [floorTool, "--mapped", main]),
                               ("nvmetrace", [nvmetrace, "-q", "--fail-on", "none", main])])
        let (floor, readingFloor, full) = (mainRuns[0], mainRuns[1], mainRuns[2])
        let digestRuns = bestOf([("libpcap floor (digests)", [floorTool, digest]),
                                 ("libpcap floor (digests), mapped", [floorTool, "--mapped", digest]),
                                 ("nvmetrace --verify-data-digests", [nvmetrace, "-q", "--fail-on", "none", "--verify-data-digests", digest])])
        let (digestFloor, readingDigestFloor, verify) = (digestRuns[0], digestRuns[1], digestRuns[2])
        var tshark: Measurement?
        if !noTshark, let t = which("tshark") {
            tshark = best("tshark -Y nvme-tcp -q", [t, "-r", main, "-Y", "nvme-tcp", "-q"])
            tshark?.file = main
        }
        let scaleRuns = zip(scaling, scaled).map { s, f in best("nvmetrace \(s)", [nvmetrace, "-q", "--fail-on", "none", f]) }
        // Small I/O: every I/O 4 KiB, so about one PDU per 2.5 packets (the main capture mixes
        // 4 KiB to 128 KiB: one per 12). The per-PDU work shows here.
        let small = try generate("small-io-256M", size: "256M", ioBlockExponents: 3...3)
        let smallRuns = bestOf([("libpcap floor, 4 KiB I/O", [floorTool, small]),
                                ("libpcap floor, 4 KiB I/O, mapped", [floorTool, "--mapped", small]),
                                ("nvmetrace, 4 KiB I/O", [nvmetrace, "-q", "--fail-on", "none", small])])
        let (smallFloor, smallReading, smallRun) = (smallRuns[0], smallRuns[1], smallRuns[2])

        print("")
        print("capture: \(main) — \(Int(fileSize)) bytes, \(Int(packets)) packets")
        print("every run \(placement)")
        print(pad("run", 38) + pad("seconds", 10) + pad("MB/s", 10) + pad("packets/s", 12) + "peak RSS")
        for m in [floor, readingFloor, full, digestFloor, readingDigestFloor, verify] + (tshark.map { [$0] } ?? []) + scaleRuns + [smallFloor, smallReading, smallRun] {
            let mbps = bytes(m.file) / 1e6 / m.seconds
            print(pad(m.name, 38) + pad(String(format: "%.3f", m.seconds), 10) + pad(String(format: "%.0f", mbps), 10)
                  + pad(m.file == main ? String(format: "%.0f", packets / m.seconds) : "", 12) + String(format: "%.1f MiB", Double(m.maxRSSKiB) / 1024)
                  + (m.status != 0 ? "  (exit \(m.status))" : ""))
        }
        print("")
        // nvmetrace maps a capture file and hands libpcap an fmemopen stream over it (no read(2);
        // PcapFileSource); the bare loop reads with stdio's default 4 KiB buffer, one read(2) per
        // 4 KiB. Both ratios are printed: the second is against a floor that reads the file the
        // way nvmetrace does, so it measures nvmetrace's own work.
        print(String(format: "nvmetrace / floor:                 %.2fx (target <= 1.25)", full.seconds / floor.seconds))
        print(String(format: "nvmetrace / floor, same reading:   %.2fx", full.seconds / readingFloor.seconds))
        print(String(format: "verify-data-digests / floor:       %.2fx (target <= 2)", verify.seconds / digestFloor.seconds))
        print(String(format: "verify-data-digests / floor, same reading: %.2fx", verify.seconds / readingDigestFloor.seconds))
        print(String(format: "4 KiB I/O: nvmetrace / floor %.2fx, / floor reading the same way %.2fx",
                     smallRun.seconds / smallFloor.seconds, smallRun.seconds / smallReading.seconds))
        if let tshark {
            print(String(format: "tshark / nvmetrace:                %.1fx", tshark.seconds / full.seconds))
            print(String(format: "tshark peak RSS / nvmetrace:       %.1fx", Double(tshark.maxRSSKiB) / Double(full.maxRSSKiB)))
        }
        for m in scaleRuns { print(String(format: "peak RSS %@: %.1f MiB (target <= 64)", m.name, Double(m.maxRSSKiB) / 1024)) }

        if connections > 0 {
            let hosts = max(1, min(connections / 2, 60_000))
            let many = try generate("connections-\(connections)", size: "1G", hosts: hosts, ioQueues: max(1, connections / hosts - 1), totalIOs: hosts)
            let m = best("nvmetrace \(connections) connections", [nvmetrace, "-q", "--fail-on", "none", many])
            let small = try generate("connections-\(connections / 10)", size: "1G", hosts: max(1, hosts / 10), ioQueues: max(1, connections / hosts - 1), totalIOs: max(1, hosts / 10))
            let s = best("nvmetrace \(connections / 10) connections", [nvmetrace, "-q", "--fail-on", "none", small])
            print(String(format: "%d connections: %.2f s, peak RSS %.1f MiB; %d connections: %.1f MiB (%.1f KiB per connection)",
                         connections, m.seconds, Double(m.maxRSSKiB) / 1024, connections / 10, Double(s.maxRSSKiB) / 1024,
                         Double(m.maxRSSKiB - s.maxRSSKiB) / Double(max(1, connections - connections / 10))))
        }
    }

    /// On a VM one vCPU can run the same work 1.5x slower than the other for minutes at a time
    /// (seen here: the same analysis in 40 ms on one, 60 ms on the other), so a ratio of two runs
    /// that landed on different CPUs measures placement, not work. This process is pinned, and
    /// every command it starts inherits the CPU.
    func pinCPU(floorTool: String, file: String) -> String {
        if cpu == -2 { return "not pinned" }
        var chosen = cpu
        var calibration = ""
        if cpu == -1 {
            let n = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            var best = Double.infinity
            var parts: [String] = []
            for c in 0..<n where nvmetrace_pin_to_cpu(Int32(c)) == 0 {
                let t = (0..<3).map { _ in measure("calibration", [floorTool, file]).seconds }.min()!
                parts.append(String(format: "CPU %d %.3f s", c, t))
                if t < best { best = t; chosen = c }
            }
            calibration = " (the bare floor on each: " + parts.joined(separator: ", ") + ")"
        }
        guard chosen >= 0, nvmetrace_pin_to_cpu(Int32(chosen)) == 0 else { return "not pinned (pinning failed)" }
        return "pinned to CPU \(chosen)\(calibration)"
    }

    func countPackets(_ path: String) throws -> Int {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_open_offline(path, &errbuf) else { return 0 }
        defer { pcap_close(h) }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        var n = 0
        while pcap_next_ex(h, &header, &data) == 1 { n += 1 }
        return n
    }

    func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }

    func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs a command with output discarded; wall time and peak RSS from wait4.
    func measure(_ name: String, _ argv: [String]) -> Measurement {
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-bench-\(getpid()).err").path
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var cargs = argv.map { strdup($0) }
        cargs.append(nil)
        defer { cargs.forEach { free($0) } }
        let start = DispatchTime.now()
        setenv("NVMETRACE_PEAK_RSS", "1", 1)
        guard posix_spawn(&pid, argv[0], &actions, nil, cargs, environ) == 0 else {
            return Measurement(name: name, seconds: .nan, maxRSSKiB: 0, status: -1)
        }
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        // The child's own figure when it reports one (wait4 also counts this process's memory from
        // before the child's exec); wait4's otherwise (tshark, whose memory dwarfs ours).
        var rss = usage.ru_maxrss
        if let err = try? String(contentsOfFile: errPath, encoding: .utf8),
           let line = err.split(separator: "\n").last(where: { $0.contains("nvmetrace: peak RSS") }),
           let kib = Int(line.split(separator: " ").dropLast().last ?? "") {
            rss = kib
        }
        try? FileManager.default.removeItem(atPath: errPath)
        return Measurement(name: name, seconds: seconds, maxRSSKiB: rss, status: (status >> 8) & 0xFF)
    }
}

/// Size options, as nvmetrace-gen takes them.
enum Generator {
    static func parseSize(_ s: String) throws -> Int64 {
        guard let n = parseByteSize(s) else { throw ValidationError("bad size '\(s)'") }
        return n
    }
}
