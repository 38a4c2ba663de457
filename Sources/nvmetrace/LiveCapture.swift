import ArgumentParser
import Dispatch
import Foundation
import NVMeTrace
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// tcpdump-style options for `nvmetrace -i IFACE [BPF expression]`.
struct LiveOptions: ParsableArguments {
    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("Capture live on this interface; the arguments after the options are a BPF filter expression (default: tcp).", valueName: "interface"))
    var interface: String?

    @Flag(name: [.customShort("D"), .customLong("list-interfaces")], help: "List the interfaces libpcap can capture on and exit.")
    var listInterfaces = false

    @Option(name: .customShort("c"), help: ArgumentHelp("Stop after this many packets.", valueName: "count"))
    var count: Int?

    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(name: [.customShort("s"), .customLong("snaplen")], help: ArgumentHelp("Bytes to capture per packet (default 262144).", valueName: "snaplen"))
    var snaplen: Int32?

    @Option(name: .customShort("w"), help: ArgumentHelp("Also save the raw packets to this pcap file.", valueName: "file"))
    var write: String?

    @Option(name: .customShort("Z"), help: ArgumentHelp("After opening the device (and -w file), drop privileges to this user.", valueName: "user"))
    var user: String?

    @Flag(name: [.customShort("p"), .customLong("no-promiscuous-mode")], help: "Do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Flag(name: .customLong("immediate-mode"), help: "Deliver packets as they arrive rather than in 100 ms batches (libpcap 1.10 on Linux may drop packets of bursts in this mode).")
    var immediate = false

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp("With -i: serve Prometheus metrics at http://ADDR:PORT/metrics while capturing.", valueName: "addr:port"))
    var metricsListen: String?
}

/// Set from the signal thread, read by the capture loop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// Ctrl-C and SIGTERM, taken by a thread of their own with sigwait(3). They are blocked from
/// before the device is opened, so one that comes at any moment stays pending until that thread
/// takes it: it stops the capture, never is lost and never kills the process. (Dispatch signal
/// sources set up after "listening on" let a Ctrl-C sent right then kill the process, before
/// SIG_IGN, or vanish, between SIG_IGN and the source's registration: 4 in 10 such Ctrl-Cs left
/// the capture running.) Threads started later inherit the blocked mask.
final class StopSignals: Sendable {
    let stop = StopFlag()
    /// The capture loop's breaker while it runs; nil before and after (the pcap handle is closed).
    private let breaker = Mutex<LivePcapSource.LoopBreaker?>(nil)

    init() {
        var set = Self.signals
        pthread_sigmask(SIG_BLOCK, &set, nil)
        Thread { [self] in
            var set = Self.signals
            var sig: Int32 = 0
            while true {
                guard sigwait(&set, &sig) == 0 else { continue }
                stop.set()
                breaker.withLock { $0?.breakLoop() }
            }
        }.start()
    }

    private static var signals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        return set
    }

    func arm(_ b: LivePcapSource.LoopBreaker) { breaker.withLock { $0 = b } }
    func disarm() { breaker.withLock { $0 = nil } }
}

extension AnalyzeCommand {
    func runLive(device: String) throws {
        let err = OutputStream.standardError()
        var options = LiveCaptureOptions(device: device)
        if !decode.files.isEmpty { options.filter = decode.files.joined(separator: " ") }
        if let s = live.snaplen { options.snaplen = s }
        options.promiscuous = !live.noPromiscuous
        options.immediate = live.immediate
        // Ctrl-C / SIGTERM end the capture cleanly: the loop stops, -w is flushed, the report
        // printed. Taken from here on: one that comes while the device opens stops the capture
        // before its first packet.
        let signals = StopSignals()
        let source: LivePcapSource
        do {
            source = try LivePcapSource(options: options)
            if let w = live.write { try source.openDump(path: w) }
            if let user = live.user { try dropPrivileges(to: user) }
        } catch {
            err.write("nvmetrace: error: \(error)")
            throw ExitCode(2)
        }
        if !decode.quiet {
            err.write("nvmetrace: listening on \(device), link-type \(source.linkTypeName), snapshot length \(options.snaplen) bytes, filter '\(options.filter)'")
        }
        let liveAnalysis = LiveAnalysis(device: device, options: decode.analyzerOptions(), engine: engine())
        liveAnalysis.analysis.liveSnapLengths = [Int(options.snaplen)]
        if !decode.quiet {
            liveAnalysis.analysis.onWarning = { d in err.write("nvmetrace: warning[\(d.kind.rawValue)]: \(d)") }
        }
        let out = OutputStream.standardOutput()
        let streamJSON = format == .json
        liveAnalysis.onFinding = { f, report in
            if streamJSON {
                out.write(JSONReport.findingLine(f, report))
            } else {
                out.write(TextReport.liveLine(f, report))
            }
            out.flush()
        }

        // Prometheus metrics, served from their own thread while the capture runs.
        var server: MetricsServer?
        var metrics: MonitorMetrics?
        if let listen = live.metricsListen {
            guard let (host, port) = parseListen(listen) else {
                err.write("nvmetrace: error: --metrics-listen wants ADDR:PORT, e.g. 127.0.0.1:9464 (got '\(listen)')")
                throw ExitCode(2)
            }
            let m = MonitorMetrics()
            do {
                server = try MetricsServer(host: host, port: port, page: { m.page() })
            } catch {
                err.write("nvmetrace: error: cannot listen on \(listen) for metrics: \(error)")
                throw ExitCode(2)
            }
            metrics = m
            if !decode.quiet { err.write("nvmetrace: metrics at http://\(host):\(server!.port)/metrics") }
            let previous = liveAnalysis.onFinding
            liveAnalysis.onFinding = { f, report in
                m.findingReported(f)
                previous?(f, report)
            }
            liveAnalysis.onEvaluation = { report in m.update(from: report) }
        }
        defer { server?.close() }

        // The signal thread breaks the loop only while it runs: the handle is closed afterwards.
        signals.arm(source.loopBreaker)

        let started = LivePcapSource.now()
        let deadline = live.duration.map { started + Int64($0 * 1e9) }
        var failure: CaptureError?
        do {
            try source.run(
                maxPackets: live.count,
                onPacket: { p in liveAnalysis.packet(p) },
                onTick: { now in
                    liveAnalysis.tick(nowNs: now)
                    if let metrics, let stats = source.stats() {
                        metrics.capture(received: stats.received, droppedByKernel: stats.dropped, droppedByInterface: stats.ifDropped)
                    }
                    if let deadline, now >= deadline { signals.stop.set() }
                },
                shouldStop: { signals.stop.isSet })
        } catch {
            failure = error
        }
        signals.disarm()
        let stoppedAt = LivePcapSource.now()
        source.closeDump()
        var report = liveAnalysis.finish(nowNs: stoppedAt)
        metrics?.update(from: report)
        if streamJSON && output == nil { out.flush() }
        if evidence != nil {
            // Live evidence is cut from the -w file once the capture is closed.
            guard let saved = live.write else {
                err.write("nvmetrace: error: --evidence with -i needs -w FILE to cut the evidence from")
                throw ExitCode(2)
            }
            try writeEvidence(&report, inputs: [saved])
        }
        try emit(report)
        if let stats = source.stats(), !decode.quiet {
            err.write("\(source.framesRead) packets captured")
            err.write("\(stats.received) packets received by filter")
            err.write("\(stats.dropped) packets dropped by kernel")
            if stats.ifDropped > 0 { err.write("\(stats.ifDropped) packets dropped by interface") }
        }
        if let failure {
            err.write("nvmetrace: error: \(failure)")
            throw ExitCode(2)
        }
        if report.hasFindings(atOrAbove: failOn.severity) { throw ExitCode(1) }
    }
}
