import ArgumentParser
import Foundation
import NVMeTrace

#if canImport(Glibc)
import Glibc
#endif

/// `nvmetrace monitor -i IFACE [BPF expression]`: the daemon (issue #17).
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Watch an interface for weeks: findings and association events as JSON lines, Prometheus metrics.",
        discussion: """
            Captures headers only (-s 256 by default: every link, IP, TCP and NVMe/TCP header and \
            a command's SQE), runs the same pipeline and rules as a capture file, and writes one \
            JSON object per line for each finding, association up or down and outage (schema \
            nvmetrace.event/1) to standard output or --events FILE. Memory is bounded by the live \
            connections: what ended more than --retain seconds ago is dropped, having been \
            counted and reported. SIGTERM or Ctrl-C stops it cleanly. Exit status: 0 after a \
            clean stop, 2 for bad usage or a capture that fails.

            Examples:
              nvmetrace monitor -i eth0 --metrics-listen :9464
              nvmetrace monitor -i eth0 --events /var/log/nvmetrace/events.json 'tcp port 4420'
            """
    )

    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("The interface to capture on.", valueName: "interface"))
    var interface: String

    @Argument(help: ArgumentHelp("BPF filter expression (default: tcp port 4420 or tcp port 8009, and each --port).", valueName: "expression"))
    var expression: [String] = []

    @Option(name: .customLong("port"), help: ArgumentHelp("Also decode TCP port N as NVMe/TCP (repeatable). 4420 and 8009 always are.", valueName: "N"))
    var ports: [UInt16] = []

    @Option(name: [.customShort("s"), .customLong("snaplen")], help: ArgumentHelp("Bytes to capture per packet (default 256: headers only; 1024 keeps the Connect data's NQNs).", valueName: "snaplen"))
    var snaplen: Int32 = 256

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp("Serve Prometheus metrics at http://ADDR:PORT/metrics.", valueName: "addr:port"))
    var metricsListen: String?

    @Option(name: .customLong("events"), help: ArgumentHelp("Write the JSON lines to FILE, rotated by size ('-': standard output, the default).", valueName: "file"))
    var events: String?

    @Option(name: .customLong("events-max-bytes"), help: ArgumentHelp("Rotate --events FILE when it would pass this size (default 100 MiB).", valueName: "bytes"))
    var eventsMaxBytes: Int = 100 << 20

    @Option(name: .customLong("events-keep"), help: ArgumentHelp("Rotated event files kept: FILE.1 (newest) to FILE.N (default 5).", valueName: "n"))
    var eventsKeep: Int = 5

    @Option(name: .customLong("ring"), help: ArgumentHelp("Keep the last --ring-minutes of captured packets in rotating pcap files in DIR, and cut each finding's evidence pcap from them into DIR/evidence when it fires.", valueName: "dir"))
    var ring: String?

    @Option(name: .customLong("ring-minutes"), help: ArgumentHelp("Minutes of packets the ring keeps (default 10).", valueName: "minutes"))
    var ringMinutes: Double = 10

    @Option(name: .customLong("ring-file-seconds"), help: ArgumentHelp("Seconds of packets per ring file (default 60).", valueName: "seconds"))
    var ringFileSeconds: Int = 60

    @Option(name: .customLong("retain"), help: ArgumentHelp("Seconds a connection that ended stays in the session model (default 600): rules judge reconnects and outages within it.", valueName: "seconds"))
    var retain: Double = 600

    @Option(name: .customLong("max-controller-series"), help: ArgumentHelp("Most controllers with a series of their own in nvmetrace_keep_alive_gap_over_kato; the rest share one labelled _other (default 64).", valueName: "n"))
    var maxControllerSeries: Int = 64

    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(name: .customShort("Z"), help: ArgumentHelp("After opening the device (and the events file), drop privileges to this user.", valueName: "user"))
    var user: String?

    @Flag(name: [.customShort("p"), .customLong("no-promiscuous-mode")], help: "Do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Flag(name: .customLong("immediate-mode"), help: "Deliver packets as they arrive rather than in 100 ms batches.")
    var immediate = false

    @Flag(name: .shortAndLong, help: "Do not print warnings about the capture.")
    var quiet = false

    @OptionGroup(title: "Rules") var ruleOptions: RuleOptions

    func validate() throws {
        if snaplen <= 0 || snaplen > 262_144 { throw ValidationError("-s takes a snap length from 1 to 262144.") }
        if let d = duration, !(d > 0 && d <= 1e9) { throw ValidationError("--duration takes a positive number of seconds.") }
        if !(retain >= 1 && retain <= 1e7) { throw ValidationError("--retain takes 1 to 10000000 seconds.") }
        if !(ringMinutes > 0 && ringMinutes <= 10_080) { throw ValidationError("--ring-minutes takes more than 0 and at most 10080 (a week).") }
        if !(1...86_400).contains(ringFileSeconds) { throw ValidationError("--ring-file-seconds takes 1 to 86400.") }
        if ring == nil && (ringMinutes != 10 || ringFileSeconds != 60) { throw ValidationError("--ring-minutes and --ring-file-seconds go with --ring DIR.") }
        if eventsMaxBytes < 4096 { throw ValidationError("--events-max-bytes takes 4096 or more.") }
        if !(1...1000).contains(eventsKeep) { throw ValidationError("--events-keep takes 1 to 1000.") }
        if maxControllerSeries < 0 || maxControllerSeries > 100_000 { throw ValidationError("--max-controller-series takes 0 to 100000.") }
        if let m = metricsListen, parseListen(m) == nil { throw ValidationError("--metrics-listen wants ADDR:PORT, e.g. 127.0.0.1:9464 (got '\(m)')") }
    }

    func run() throws {
        let err = OutputStream.standardError()
        var options = LiveCaptureOptions(device: interface)
        options.filter = expression.isEmpty
            ? ([4420, 8009] + ports.filter { $0 != 4420 && $0 != 8009 }).map { "tcp port \($0)" }.joined(separator: " or ")
            : expression.joined(separator: " ")
        options.snaplen = snaplen
        options.promiscuous = !noPromiscuous
        options.immediate = immediate
        let signals = StopSignals()
        let source: LivePcapSource
        let log: EventLog
        var evidenceRing: EvidenceRing?
        do {
            source = try LivePcapSource(options: options)
            log = try EventLog(path: events == "-" ? nil : events, maxBytes: eventsMaxBytes, keep: eventsKeep)
            if let ring {
                evidenceRing = try EvidenceRing(directory: ring, linkType: source.linkType, fileSeconds: Int64(ringFileSeconds),
                                                keepSeconds: Int64(ringMinutes * 60))
            }
            if let user {
                try dropPrivileges(to: user)
                // Ring files are made, and the events file rotated, as that user from now on.
                for dir in [ring, ring.map { $0 + "/evidence" }, events.flatMap { $0 == "-" ? nil : ($0 as NSString).deletingLastPathComponent }].compactMap({ $0 }) {
                    let d = dir.isEmpty ? "." : dir
                    guard access(d, W_OK) == 0 else {
                        err.write("nvmetrace: error: \(d) is not writable by \(user) (-Z): the ring and the events file's rotation need it")
                        throw ExitCode(2)
                    }
                }
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            err.write("nvmetrace: error: \(error)")
            throw ExitCode(2)
        }
        var analyzerOptions = AnalyzerOptions()
        analyzerOptions.ports.formUnion(ports)
        let metrics = MonitorMetrics(maxControllerSeries: maxControllerSeries)
        let monitor = Monitor(device: interface, options: analyzerOptions, engine: ruleOptions.engine(), metrics: metrics)
        monitor.retainNs = Int64(retain * 1e9)
        monitor.ring = evidenceRing
        monitor.live.analysis.liveSnapLengths = [Int(snaplen)]
        if !quiet {
            monitor.live.analysis.onWarning = { d in err.write("nvmetrace: warning[\(d.kind.rawValue)]: \(d)") }
        }
        var eventCount = 0
        monitor.onEvent = { [quiet, unowned monitor] e in
            log.write(e.line())
            eventCount += 1
            if !quiet, case .finding = e, let why = monitor.ringError { err.write("nvmetrace: warning: evidence ring: \(why)") }
        }
        var server: MetricsServer?
        if let listen = metricsListen, let (host, port) = parseListen(listen) {
            do {
                server = try MetricsServer(host: host, port: port, page: { metrics.page() })
            } catch {
                err.write("nvmetrace: error: cannot listen on \(listen) for metrics: \(error)")
                throw ExitCode(2)
            }
            if !quiet { err.write("nvmetrace: metrics at http://\(host):\(server!.port)/metrics") }
        }
        defer { server?.close() }
        if !quiet {
            err.write("nvmetrace: monitoring \(interface), link-type \(source.linkTypeName), snapshot length \(snaplen) bytes, filter '\(options.filter)'")
        }

        signals.arm(source.loopBreaker)
        let deadline = duration.map { LivePcapSource.now() + Int64($0 * 1e9) }
        var failure: CaptureError?
        do {
            try source.run(
                maxPackets: nil,
                onPacket: { p in monitor.packet(p) },
                onTick: { now in
                    monitor.tick(nowNs: now)
                    if let stats = source.stats() {
                        metrics.capture(received: stats.received, droppedByKernel: stats.dropped, droppedByInterface: stats.ifDropped)
                    }
                    if let deadline, now >= deadline { signals.stop.set() }
                },
                shouldStop: { signals.stop.isSet })
        } catch {
            failure = error
        }
        signals.disarm()
        monitor.finish(nowNs: LivePcapSource.now())
        if let stats = source.stats() {
            metrics.capture(received: stats.received, droppedByKernel: stats.dropped, droppedByInterface: stats.ifDropped)
        }
        if !quiet {
            let stats = source.stats()
            err.write("nvmetrace: stopped: \(source.framesRead) packets captured, \(stats.map { "\($0.dropped)" } ?? "?") dropped by kernel, \(eventCount) events\(log.rotations > 0 ? ", \(log.rotations) rotations" : "")")
        }
        if let failure {
            err.write("nvmetrace: error: \(failure)")
            throw ExitCode(2)
        }
    }
}
