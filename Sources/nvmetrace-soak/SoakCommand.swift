import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `nvmetrace-soak`: the daemon's soak benchmark (issue #17). Keep-alives of thousands of
/// NVMe/TCP associations played over lo to `nvmetrace monitor` for minutes, its memory, drops
/// and counters sampled; then, with a fresh daemon, the highest packet rate it takes without
/// kernel drops. See docs/soak.md.
@main
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmetrace-soak",
        abstract: "Soak `nvmetrace monitor` on lo with keep-alive traffic; then search its highest drop-free packet rate.",
        discussion: """
            Runs as root (the daemon captures on lo). The daemon is started as a child: \
            monitor -i lo --metrics-listen 127.0.0.1:PORT --events TMPFILE --retain R 'tcp port P', \
            P being the one listener that plays every target. Exit status 0 when every check passes, \
            1 when one fails.

            Example: swift build --scratch-path /tmp/soakbuild -c release --product nvmetrace && \
            swift build --scratch-path /tmp/soakbuild -c release --product nvmetrace-soak && \
            /tmp/soakbuild/release/nvmetrace-soak --connections 2000 --minutes 3 --json soak.json
            """)

    @Option(help: ArgumentHelp("The nvmetrace binary (default: the one next to this executable).", valueName: "path"))
    var nvmetrace: String?

    // Soak phase.
    @Option(help: "Associations (admin queues) kept up during the soak.")
    var connections = 2000

    @Option(help: "KATO in seconds: each host sends a Keep Alive every KATO/2 (±10 %).")
    var kato = 10.0

    @Option(help: "Length of the soak in minutes (from the first association).")
    var minutes = 3.0

    @Option(help: "Fraction of the associations torn down (FIN) and re-made per KATO.")
    var churn = 0.02

    @Option(help: "The daemon's --retain, in seconds (short, so retirement happens within the run).")
    var retain = 60.0

    @Option(help: "Seconds between samples.")
    var sample = 5.0

    @Option(help: ArgumentHelp("Warm-up in seconds (default: the first third of the run, at least --retain + 20 s: the model's steady state, what ended has begun to be retired).", valueName: "seconds"))
    var warmup: Double?

    @Option(help: "Seconds of samples averaged for the RSS at the end of warm-up and at the end (the allocator's RSS moves by several MiB between samples).")
    var window = 30.0

    @Option(help: "Largest RSS growth from the end of warm-up to the end, in %, that counts as flat.")
    var maxGrowth = 5.0

    @Option(help: "Distinct Keep Alive CIDs per association: CIDs cycle through 2 ..< 2+N (default: all 65518; a Linux host's admin queue uses a few).")
    var cidRange = 0xFFF0 - 2

    @Option(help: "Associations made per second at the start.")
    var setupRate = 500.0

    @Option(help: "Generator threads (each runs an epoll loop over its share of the associations).")
    var threads = 2

    @Option(help: ArgumentHelp("The daemon's -s (default: its own, 256).", valueName: "snaplen"))
    var snaplen: Int?

    @Option(help: ArgumentHelp("Run the daemon under taskset -c LIST (e.g. 1; run this tool under taskset -c 0 then).", valueName: "list"))
    var daemonCpus: String?

    @Flag(help: "Pass -q to the daemon (it then prints neither its 'monitoring' nor its 'stopped' line).")
    var daemonQuiet = false

    @Flag(help: "Skip the soak phase.")
    var skipSoak = false

    // Rate phase.
    @Flag(help: "Run the rate search (the default; --skip-rate skips it).")
    var rateSearch = false

    @Flag(help: "Skip the rate search.")
    var skipRate = false

    @Option(help: "Associations the rate search's Keep Alives go round-robin over.")
    var rateConnections = 1000

    @Option(help: "KATO (seconds) of the rate search's associations: longer than their setup and the pauses between steps.")
    var rateKato = 120.0

    @Option(help: "First offered rate, in PDUs per second (one PDU per TCP segment); doubled each step.")
    var rateStart = 5000.0

    @Option(help: "Highest offered rate tried, PDUs per second.")
    var rateMax = 2_000_000.0

    @Option(help: "Seconds each rate step sends for.")
    var rateStep = 10.0

    @Option(help: "Bisection steps between the last good and the first bad rate.")
    var rateBisect = 3

    @Option(help: ArgumentHelp("Also write the results as JSON to this file.", valueName: "file"))
    var json: String?

    @Flag(help: "Keep the daemon's standard error and events files (in the temporary directory).")
    var keepFiles = false

    func validate() throws {
        if connections < 1 || rateConnections < 1 { throw ValidationError("--connections and --rate-connections take 1 or more.") }
        if !(kato >= 1) { throw ValidationError("--kato takes 1 second or more.") }
        if !(minutes > 0) || !(sample > 0) || !(rateStep > 0) { throw ValidationError("durations must be positive.") }
        if !(churn >= 0 && churn < 1) { throw ValidationError("--churn takes a fraction from 0 to 1.") }
        if skipSoak && skipRate { throw ValidationError("--skip-soak and --skip-rate leave nothing to do.") }
    }

    func run() throws {
        let binary = nvmetrace ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("nvmetrace").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw SoakError("no nvmetrace at \(binary): build it (swift build -c release --product nvmetrace) or pass --nvmetrace PATH")
        }
        guard Wire.selfCheck() else { throw SoakError("PDUBuilder's layout is not the one this tool patches CIDs into") }
        let fds = raiseFileLimit()
        let need = 2 * max(skipSoak ? 0 : connections, skipRate ? 0 : rateConnections) + 200
        guard fds >= need else { throw SoakError("the file descriptor limit is \(fds); \(need) are needed") }
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let date = ISO8601DateFormatter().string(from: Date())
        say("nvmetrace-soak: \(date), \(cpus) CPUs (generator and daemon share them), Linux \(kernel), load average \(loadAverage())")
        say("daemon: \(binary); this process on CPUs \(affinity()), the daemon on \(daemonCpus ?? "any")")

        var result = SoakReport(date: date, cpus: cpus, kernel: kernel, options: options(), soak: nil, rate: nil, pass: true)
        var checks: [Check] = []
        if !skipSoak {
            let s = try runSoak(binary: binary)
            result.soak = s
            checks += s.checks
        }
        if !skipRate {
            let r = try runRate(binary: binary)
            result.rate = r
            checks += r.checks
        }
        say()
        say("== checks")
        for c in checks { say(Format.checkLine(c)) }
        result.pass = checks.allSatisfy(\.pass)
        say(result.pass ? "PASS: all \(checks.count) checks" : "FAIL: \(checks.filter { !$0.pass }.count) of \(checks.count) checks failed")
        if let json {
            try writeJSON(result, to: json)
            say("results: \(json)")
        }
        if !result.pass { throw ExitCode(1) }
    }

    // MARK: Soak

    func runSoak(binary: String) throws -> SoakResult {
        let seconds = minutes * 60
        // A connection that ended leaves the model max(--retain, the flow table's 60-s linger for
        // closed flows) after its last packet, at the next retirement pass (every 10 s): only then
        // is the model in its steady state.
        let hold = max(retain, Self.closedLinger)
        let warm = min(warmup ?? max(seconds / 3, hold + 20), seconds * 0.75)
        say()
        say("== soak: \(connections) associations, KATO \(fmt(kato)) s (a Keep Alive every \(fmt(kato / 2)) s ±10 %), churn \(fmt(churn * 100)) % per KATO, \(fmt(minutes)) min, warm-up \(fmt(warm)) s")
        let traffic = try Traffic(threads: threads, katoSeconds: kato, cidRange: cidRange)
        defer { traffic.shutdown() }
        let daemon = try Daemon(binary: binary, capturePort: traffic.port, retain: retain, snaplen: snaplen, quiet: daemonQuiet, cpus: daemonCpus, tag: "soak")
        defer { if !keepFiles { daemon.removeFiles() } }
        say("daemon: \(daemon.commandLine)")
        defer { _ = daemon.terminate(seconds: 5) }  // on an error below
        let ready = try daemon.waitReady(seconds: 60, quiet: daemonQuiet)
        var checks: [Check] = []
        let missing = ready.missing()
        checks.append(Check(name: "soak: metrics present", pass: missing.isEmpty,
                            detail: missing.isEmpty ? "all \(Metrics.required.count) metrics the soak reads are on /metrics" : "missing: \(missing.joined(separator: ", "))"))

        traffic.setMode(.soak(katoNs: Int64(kato * 1e9), churn: churn))
        let t0 = monoNs()
        traffic.open(count: connections, perSecond: setupRate)
        var samples: [Sample] = []
        var prev: (t: Double, received: Double, cpu: Double) = (0, ready.received, daemon.cpuSeconds() ?? 0)
        var scrapeFailures = 0
        var last = ready
        say(Format.header())
        var k = 0
        while true {
            let t = Double(k) * sample
            if t > seconds + 0.001 { break }
            sleepUntil(t0 + Int64(t * 1e9))
            guard daemon.isRunning else { break }
            let rss = daemon.statusKiB() ?? 0
            let cpu = daemon.cpuSeconds() ?? prev.cpu
            if let m = daemon.scrape() { last = m } else { scrapeFailures += 1 }
            let now = Double(monoNs() - t0) / 1e9
            let dt = max(0.001, now - prev.t)
            let g = traffic.totals()
            let s = Sample(t: now, rssKiB: rss, tracked: Int(last.tracked), open: Int(last.open), received: last.received,
                           packetsPerSecond: k == 0 ? 0 : (last.received - prev.received) / Metrics.loCopies / dt,
                           droppedKernel: last.droppedKernel, droppedInterface: last.droppedInterface, retired: last.retired,
                           cpuPercent: k == 0 ? 0 : (cpu - prev.cpu) / dt * 100, keepAlives: g.keepAlives, associations: g.live,
                           load1: load1())
            samples.append(s)
            say(Format.sampleRow(s))
            prev = (now, last.received, cpu)
            k += 1
        }
        // The last sample's counters are the final ones. The Keep Alives go on until the daemon
        // has stopped: stopping them first would end the run with silences (keep-alive-overdue
        // findings at the daemon's final evaluation) that are the tool's, not the daemon's.
        let hwm = daemon.statusKiB("VmHWM")
        let final = last
        let g = traffic.totals()
        let running = daemon.isRunning
        let exit = daemon.terminate(seconds: 60)
        traffic.setMode(.idle)
        let stopLine = daemon.stopLine
        say("daemon \(running ? "stopped by SIGTERM: \(daemon.exitDescription)" : "had exited by itself: \(daemon.exitDescription)")")
        if let stopLine { say(stopLine) }
        let warnings = daemon.warningLines
        for w in warnings.prefix(5) { say("daemon stderr: \(w)") }
        if warnings.count > 5 { say("daemon stderr: … \(warnings.count - 5) more warning/error lines") }

        // Memory after warm-up.
        let after = samples.filter { $0.t >= warm }
        guard let warmEnd = after.first, let end = samples.last, let start = samples.first else {
            throw SoakError("the soak produced no sample after warm-up (daemon: \(daemon.exitDescription))\n\(daemon.stderrText())")
        }
        // RSS at the end of warm-up and at the end: each the mean of --window seconds of samples
        // (the first after warm-up, the last of the run), so that one sample's swing of the
        // allocator is not taken for growth.
        func mean(_ s: [Sample]) -> Int { s.isEmpty ? 0 : s.map(\.rssKiB).reduce(0, +) / s.count }
        let warmWindow = after.filter { $0.t < warmEnd.t + window - 0.5 }
        let endWindow = after.filter { $0.t > end.t - window + 0.5 }
        let rssWarm = mean(warmWindow), rssEnd = mean(endWindow)
        let growth = rssEnd - rssWarm
        let growthPct = rssWarm > 0 ? Double(growth) / Double(rssWarm) * 100 : 0
        let closedPerSecond = churn * Double(connections) / kato
        let trackedBound = connections + Int((closedPerSecond * (hold + 20) * 1.25).rounded(.up)) + 20
        let cpuAfter = after.count > 1 ? after.dropFirst().map(\.cpuPercent).reduce(0, +) / Double(after.count - 1) : 0
        let summary = SoakSummary(
            connections: connections, seconds: end.t, warmupSeconds: warm, rssStartKiB: start.rssKiB, rssWarmupEndKiB: warmEnd.rssKiB,
            rssWarmupWindowKiB: rssWarm, rssEndWindowKiB: rssEnd,
            rssPeakAfterWarmupKiB: after.map(\.rssKiB).max() ?? 0, rssEndKiB: end.rssKiB, vmHWMKiB: hwm,
            growthKiB: growth, growthPercent: growthPct,
            slopeKiBPerMinute: slope(after.map(\.t), after.map { Double($0.rssKiB) }) * 60,
            droppedKernel: final.droppedKernel, droppedInterface: final.droppedInterface,
            trackedMaxAfterWarmup: after.map(\.tracked).max() ?? 0, trackedBound: trackedBound, retired: final.retired,
            keepAlivesSent: g.keepAlives, keepAliveIntervalsCounted: final.keepAliveIntervals, associationsCreated: g.created,
            teardowns: g.teardowns, generatorErrors: g.errors, daemonCPUPercentAfterWarmup: cpuAfter,
            findings: final.nonzero("nvmetrace_findings_total"), events: daemon.eventCounts(), exitCode: exit, stopLine: stopLine,
            daemonWarnings: warnings.count)

        say()
        say("RSS: \(Format.mib(start.rssKiB)) MiB at start, \(Format.mib(warmEnd.rssKiB)) MiB at the end of warm-up (t=\(fmt(warmEnd.t)) s), peak after warm-up \(Format.mib(summary.rssPeakAfterWarmupKiB)) MiB, \(Format.mib(end.rssKiB)) MiB at the end (t=\(fmt(end.t)) s); VmHWM \(hwm.map { Format.mib($0) } ?? "?") MiB")
        say("RSS growth after warm-up: \(growth) KiB (\(String(format: "%+.2f", growthPct)) %): mean of t=\(fmt(warmEnd.t))-\(fmt(warmWindow.last?.t.rounded() ?? 0)) s \(Format.mib(rssWarm)) MiB, of t=\(fmt(endWindow.first?.t.rounded() ?? 0))-\(fmt(end.t.rounded())) s \(Format.mib(rssEnd)) MiB; sample to sample \(end.rssKiB - warmEnd.rssKiB) KiB; trend \(String(format: "%+.0f", summary.slopeKiBPerMinute)) KiB/min over \(after.count) samples")
        say("drops: \(Int(final.droppedKernel)) by the kernel, \(Int(final.droppedInterface)) by the interface, of \(Int(final.packets)) packets (libpcap's received counter \(Int(final.received)); the daemon's own count \(daemon.packetsCaptured.map { String(Int($0)) } ?? "?"))")
        say("connections by kind at the end: " + final.series.filter { $0.key.hasPrefix("nvmetrace_connections{") && $0.value > 0 }
            .sorted { $0.key < $1.key }.map { "\($0.key.dropFirst("nvmetrace_connections".count)) \(Int($0.value))" }.joined(separator: ", "))
        say("tracked connections after warm-up: at most \(summary.trackedMaxAfterWarmup) (bound \(trackedBound) = \(connections) live + ended within \(fmt(hold)) s at \(fmt(closedPerSecond))/s, +25 %); retired \(Int(final.retired))")
        say(String(format: "per connection: %.1f KiB of RSS above the idle daemon's per tracked connection at the end; %.1f Keep Alives per association made",
                   Double(end.rssKiB - start.rssKiB) / Double(max(1, end.tracked)), Double(g.keepAlives) / Double(max(1, g.created))))
        say("generator: \(g.created) associations made, \(g.teardowns) torn down by churn, \(g.keepAlives) Keep Alives sent, \(g.responses) answered, \(g.errors) socket errors, \(g.failedConnects) failed connects")
        say("daemon: \(Int(final.keepAliveIntervals)) keep-alive intervals counted, CPU \(String(format: "%.1f", cpuAfter)) % of a core after warm-up, scrape failures \(scrapeFailures)")
        say("findings: \(summary.findings.isEmpty ? "none" : summary.findings.sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value))" }.joined(separator: ", "))")
        say("events: \(summary.events.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")

        // Checks.
        let drops = final.droppedKernel + final.droppedInterface
        checks.append(Check(name: "soak: daemon ran to the end", pass: samples.count > 1 && running && scrapeFailures == 0,
                            detail: running ? "\(samples.count) samples, \(scrapeFailures) scrape failures" : "it exited early: \(daemon.exitDescription)"))
        checks.append(Check(name: "soak: RSS flat", pass: growthPct < maxGrowth,
                            detail: String(format: "%+ld KiB (%+.2f %%), mean of %.0f s after warm-up (t=%.0f s) to mean of the last %.0f s (t=%.0f s); flat means < %.1f %%",
                                           growth, growthPct, window, warmEnd.t, window, end.t, maxGrowth)))
        checks.append(Check(name: "soak: no drops", pass: drops == 0,
                            detail: "\(Int(final.droppedKernel)) by the kernel, \(Int(final.droppedInterface)) by the interface"))
        let maxOpen = after.map(\.open).max() ?? 0
        checks.append(Check(name: "soak: associations seen", pass: Double(maxOpen) >= 0.95 * Double(connections),
                            detail: "up to \(maxOpen) open connections in the daemon after warm-up, \(connections) admin queues kept up"))
        checks.append(Check(name: "soak: tracked connections bounded", pass: summary.trackedMaxAfterWarmup <= trackedBound,
                            detail: "at most \(summary.trackedMaxAfterWarmup) after warm-up, bound \(trackedBound)"))
        if churn > 0 && seconds > hold + 30 {
            checks.append(Check(name: "soak: retirement", pass: final.retired > 0,
                                detail: "\(Int(final.retired)) connections retired (--retain \(fmt(retain)) s, closed flows linger \(fmt(Self.closedLinger)) s); \(g.teardowns) torn down"))
        }
        let expectedIntervals = Double(g.keepAlives - g.created)
        checks.append(Check(name: "soak: keep-alives decoded", pass: final.keepAliveIntervals >= 0.95 * expectedIntervals,
                            detail: String(format: "%.0f intervals counted for %d Keep Alives on %d associations (%.1f %%)",
                                           final.keepAliveIntervals, g.keepAlives, g.created, expectedIntervals > 0 ? final.keepAliveIntervals / expectedIntervals * 100 : 0)))
        checks.append(Check(name: "soak: generator healthy", pass: g.errors == 0 && g.responses >= g.keepAlives - g.live * 8,
                            detail: "\(g.errors) socket errors, \(g.responses) of \(g.keepAlives) Keep Alives answered"))
        checks.append(cleanStop("soak", exit: exit, stopLine: stopLine))
        return SoakResult(command: daemon.commandLine, samples: samples, summary: summary, checks: checks)
    }

    // MARK: Rate search

    func runRate(binary: String) throws -> RateResult {
        say()
        say("== rate search: Keep Alives round-robin over \(rateConnections) associations (KATO \(fmt(rateKato)) s), steps of \(fmt(rateStep)) s from \(Format.num(rateStart)) PDU/s, doubling, then \(rateBisect) bisections")
        // The associations' KATO outlasts the setup and the pauses between steps, when no Keep
        // Alive is sent: no keep-alive-overdue finding adds work the rate would be charged for.
        let traffic = try Traffic(threads: threads, katoSeconds: rateKato, cidRange: cidRange)
        defer { traffic.shutdown() }
        let daemon = try Daemon(binary: binary, capturePort: traffic.port, retain: retain, snaplen: snaplen, quiet: daemonQuiet, cpus: daemonCpus, tag: "rate")
        defer { if !keepFiles { daemon.removeFiles() } }
        defer { _ = daemon.terminate(seconds: 5) }
        say("daemon: \(daemon.commandLine)")
        _ = try daemon.waitReady(seconds: 60, quiet: daemonQuiet)
        traffic.setMode(.idle)
        traffic.open(count: rateConnections, perSecond: setupRate)
        let deadline = monoNs() + Int64((Double(rateConnections) / setupRate + 30) * 1e9)
        while traffic.totals().live < rateConnections && monoNs() < deadline { usleep(100_000) }
        usleep(3_000_000)

        var checks: [Check] = []
        var steps: [RateStep] = []
        var daemonDied = false
        func step(_ offered: Double) -> RateStep? {
            guard daemon.isRunning, let m0 = daemon.scrape() else { daemonDied = true; return nil }
            let c0 = traffic.totals(), cpu0 = daemon.cpuSeconds() ?? 0, lo0 = loPackets(), t0 = monoNs()
            traffic.setMode(.paced(keepAlivesPerSecond: offered / 2 / Double(traffic.workers.count)))
            usleep(UInt32(rateStep * 1e6))
            traffic.setMode(.idle)
            let t1 = monoNs()
            let c1 = traffic.totals()
            usleep(2_000_000)  // the daemon reads what its buffer still holds; its counters follow
            guard daemon.isRunning, let m1 = daemon.scrape() else { daemonDied = true; return nil }
            let cpu1 = daemon.cpuSeconds() ?? cpu0, lo1 = loPackets()
            let dt = Double(t1 - t0) / 1e9
            let pdus = Double(c1.pdus - c0.pdus) / dt
            let dk = m1.droppedKernel - m0.droppedKernel, di = m1.droppedInterface - m0.droppedInterface
            let s = RateStep(offeredPDUsPerSecond: offered, seconds: dt, pdusPerSecond: pdus,
                             packetsPerSecond: (m1.packets - m0.packets) / dt, pcapReceivedPerSecond: (m1.received - m0.received) / dt,
                             loPacketsPerSecond: Double(lo1 - lo0) / dt,
                             droppedKernel: dk, droppedInterface: di, daemonCPUPercent: (cpu1 - cpu0) / (Double(monoNs() - t0) / 1e9) * 100,
                             daemonRSSKiB: daemon.statusKiB() ?? 0, load1: load1(),
                             generatorLimited: pdus < 0.9 * offered, good: dk + di == 0)
            steps.append(s)
            say(Format.rateRow(s))
            return s
        }
        say(Format.rateHeader)
        var offered = rateStart
        var lastGood: RateStep?
        var firstBad: RateStep?
        var generatorLimited = false
        while offered <= rateMax, let s = step(offered) {
            if !s.good { firstBad = s; break }
            lastGood = s
            if s.generatorLimited { generatorLimited = true; break }
            offered *= 2
        }
        if let bad = firstBad {
            var lo = lastGood?.offeredPDUsPerSecond ?? 0, hi = bad.offeredPDUsPerSecond
            for _ in 0..<rateBisect where hi - lo > 0.05 * hi {
                let mid = ((lo + hi) / 2).rounded()
                guard let s = step(mid) else { break }
                if s.good { lo = mid; if s.generatorLimited { generatorLimited = true } } else { hi = mid }
            }
        }
        let best = steps.filter(\.good).max { $0.packetsPerSecond < $1.packetsPerSecond }
        let lowerBound = firstBad == nil || (best?.generatorLimited ?? false) || (generatorLimited && best != nil && firstBad == nil)
        let running = daemon.isRunning
        let exit = daemon.terminate(seconds: 60)
        let stopLine = daemon.stopLine
        if let stopLine { say(stopLine) }
        say("events: \(daemon.eventCounts().sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        say()
        if let best {
            say("highest drop-free rate: \(Format.num(best.packetsPerSecond)) packets/s received by the daemon, \(Format.num(best.pdusPerSecond)) PDUs/s sent (offered \(Format.num(best.offeredPDUsPerSecond)) PDU/s), daemon CPU \(String(format: "%.0f", best.daemonCPUPercent)) %"
                + (lowerBound ? " — a lower bound: " + (firstBad == nil ? "no step dropped (the generator's ceiling or --rate-max was reached first)" : "the generator could not offer more") : ""))
        } else {
            say("no drop-free rate: the first step (\(Format.num(rateStart)) PDU/s) already dropped")
        }
        if let firstBad { say("first rate with drops: offered \(Format.num(firstBad.offeredPDUsPerSecond)) PDU/s, \(Format.num(firstBad.packetsPerSecond)) packets/s, \(Int(firstBad.droppedKernel)) dropped by the kernel") }

        checks.append(Check(name: "rate: daemon survived the search", pass: !daemonDied && running,
                            detail: daemonDied || !running ? "it stopped answering or exited: \(daemon.exitDescription)" : "\(steps.count) steps"))
        checks.append(Check(name: "rate: drop-free at the starting rate", pass: steps.first?.good ?? false,
                            detail: steps.first.map { "\(Format.num($0.packetsPerSecond)) packets/s, \(Int($0.droppedKernel + $0.droppedInterface)) drops" } ?? "no step ran"))
        checks.append(cleanStop("rate", exit: exit, stopLine: stopLine))
        return RateResult(command: daemon.commandLine, connections: rateConnections, steps: steps,
                          bestPacketsPerSecond: best?.packetsPerSecond, bestPDUsPerSecond: best?.pdusPerSecond, lowerBound: lowerBound,
                          firstBadOfferedPDUsPerSecond: firstBad?.offeredPDUsPerSecond, exitCode: exit, stopLine: stopLine, checks: checks)
    }

    // MARK: Helpers

    /// FlowTable.closedLingerSeconds: a closed TCP flow stays in the pipeline this long.
    static let closedLinger = 60.0

    func cleanStop(_ phase: String, exit: Int32?, stopLine: String?) -> Check {
        let lineOK = daemonQuiet || stopLine != nil
        return Check(name: "\(phase): clean stop on SIGTERM", pass: exit == 0 && lineOK,
                     detail: "exit status \(exit.map(String.init) ?? "none (killed or crashed)")" + (daemonQuiet ? "" : lineOK ? ", printed its 'stopped' line" : ", no 'stopped' line"))
    }

    func options() -> [String: String] {
        ["connections": "\(connections)", "kato": fmt(kato), "minutes": fmt(minutes), "churn": fmt(churn), "retain": fmt(retain),
         "threads": "\(threads)", "cidRange": "\(cidRange)", "rateConnections": "\(rateConnections)", "rateKato": fmt(rateKato), "rateStep": fmt(rateStep), "maxGrowth": fmt(maxGrowth), "window": fmt(window),
         "snaplen": snaplen.map(String.init) ?? "default", "daemonQuiet": "\(daemonQuiet)",
         "daemonCpus": daemonCpus ?? "any", "affinity": affinity()]
    }
}

func fmt(_ v: Double) -> String { v == v.rounded() ? String(format: "%.0f", v) : String(format: "%g", v) }

func sleepUntil(_ ns: Int64) {
    let d = ns - monoNs()
    if d > 0 { usleep(UInt32(min(d / 1000, Int64(UInt32.max)))) }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
func raiseFileLimit() -> Int {
    var rl = rlimit()
    let res = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(res, &rl) == 0 else { return 1024 }
    rl.rlim_cur = rl.rlim_max
    _ = setrlimit(res, &rl)
    getrlimit(res, &rl)
    return Int(clamping: rl.rlim_cur)
}

/// This process's CPU affinity, as /proc shows it.
func affinity() -> String {
    ((try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? "").split(separator: "\n")
        .first { $0.hasPrefix("Cpus_allowed_list:") }.map { $0.split(separator: "\t").last.map(String.init) ?? "?" } ?? "?"
}

/// Packets sent on lo so far (every packet on lo, whatever the filter).
func loPackets() -> Int {
    Int(((try? String(contentsOfFile: "/sys/class/net/lo/statistics/tx_packets", encoding: .utf8)) ?? "0")
        .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}

func load1() -> Double {
    Double(loadAverage().split(separator: " ").first ?? "") ?? 0
}

func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
}
