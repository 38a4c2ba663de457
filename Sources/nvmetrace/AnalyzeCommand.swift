import ArgumentParser
import Foundation
import NVMeTrace

#if canImport(Glibc)
import Glibc
#endif

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, markdown, html
}

enum FailOn: String, ExpressibleByArgument, CaseIterable {
    case error, warning, info, none

    var severity: Severity? {
        switch self {
        case .error: .error
        case .warning: .warning
        case .info: .info
        case .none: nil
        }
    }
}

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Report which NVMe/TCP connections broke, why, and the frames that prove it (the default).",
        discussion: """
            Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 for bad usage \
            or a capture that cannot be read.
            """
    )

    @OptionGroup var decode: DecodeOptions

    @Option(name: .long, help: "Report format: text, json, markdown or html.")
    var format: ReportFormat = .text

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the report to FILE instead of standard output.", valueName: "file"))
    var output: String?

    @Option(name: .long, help: "Exit 1 when a finding is at or above this severity: error, warning, info or none.")
    var failOn: FailOn = .error

    @Flag(name: .long, help: "List the rules and exit.")
    var rules = false

    @OptionGroup(title: "Rules") var ruleOptions: RuleOptions

    @Flag(name: .long, help: "Colour the text report even when not on a terminal.")
    var color = false

    @Option(help: ArgumentHelp("Write the packets of the connections involved in findings to this pcap.", valueName: "file"))
    var evidence: String?

    @Option(help: ArgumentHelp("Cut each evidence packet to this many bytes (drops I/O data, keeps headers).", valueName: "bytes"))
    var evidenceSnaplen: Int?

    @OptionGroup(title: "Live capture") var live: LiveOptions

    func validate() throws {
        if rules || live.listInterfaces { return }
        if let n = evidenceSnaplen, n < 1 || n > 262_144 { throw ValidationError("--evidence-snaplen takes 1 to 262144") }
        if evidenceSnaplen != nil && evidence == nil { throw ValidationError("--evidence-snaplen goes with --evidence FILE") }
        if live.interface != nil {
            if let c = live.count, c <= 0 { throw ValidationError("-c takes a positive number of packets.") }
            if let d = live.duration, !(d > 0 && d <= 1e9) { throw ValidationError("--duration takes a positive number of seconds.") }
            if let s = live.snaplen, s <= 0 || s > 262_144 { throw ValidationError("-s takes a snap length from 1 to 262144.") }
            return
        }
        if live.write != nil || live.count != nil || live.duration != nil || live.user != nil {
            throw ValidationError("-w, -c, --duration and -Z go with -i (live capture).")
        }
        if decode.files.isEmpty { throw ValidationError("Give at least one capture file ('-' for standard input), or -i INTERFACE.") }
    }

    func run() throws {
        // NVMETRACE_PEAK_RSS=1: report peak memory on stderr at exit (benchmark and flood tests).
        defer {
            if ProcessInfo.processInfo.environment["NVMETRACE_PEAK_RSS"] != nil, let kib = peakResidentKiB() {
                OutputStream.standardError().write("nvmetrace: peak RSS \(kib) KiB")
            }
        }
        if live.listInterfaces {
            do {
                for (i, dev) in try LivePcapSource.interfaces().enumerated() {
                    var line = "\(i + 1).\(dev.name)"
                    if let d = dev.description { line += " (\(d))" }
                    var flags: [String] = []
                    if dev.isUp { flags.append("Up") }
                    if dev.isLoopback { flags.append("Loopback") }
                    if !flags.isEmpty { line += " [\(flags.joined(separator: ", "))]" }
                    print(line)
                }
            } catch {
                OutputStream.standardError().write("nvmetrace: error: \(error)")
                throw ExitCode(2)
            }
            return
        }
        if let device = live.interface {
            try runLive(device: device)
            return
        }
        if rules {
            for r in RuleEngine.allRules {
                print("\(r.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(r.severities.padding(toLength: 12, withPad: " ", startingAt: 0)) \(r.summary)")
            }
            return
        }
        let err = OutputStream.standardError()
        let analysis = CaptureAnalysis(options: decode.analyzerOptions())
        if !decode.quiet {
            analysis.onWarning = { d in err.write("nvmetrace: warning[\(d.kind.rawValue)]: \(d)") }
        }
        let progress = Progress(enabled: !decode.quiet && isatty(2) == 1 && !decode.files.contains("-"), files: decode.files)
        if progress.enabled {
            analysis.analyzer.onProgress = { file, frames in progress.update(file: file, frames: frames) }
        }
        let readOK = analysis.read(paths: decode.files)
        progress.finish()
        for e in analysis.readErrors { err.write("nvmetrace: error: \(e)") }
        // Not one packet could be read (no file opened, or each ended inside its first record):
        // only the error, as tcpdump and tshark do. A report would say "0 frames … No findings.",
        // which a script or a person reading standard output takes for a result.
        if !readOK && analysis.analyzer.packets == 0 { throw ExitCode(2) }
        var report = analysis.report(engine: engine(), hashFiles: format == .markdown || format == .html)
        try writeEvidence(&report, inputs: decode.files)
        try emit(report)
        if !readOK { throw ExitCode(2) }
        if report.hasFindings(atOrAbove: failOn.severity) { throw ExitCode(1) }
    }

    /// `--evidence`: cut the packets of the connections behind the findings out of `inputs`.
    func writeEvidence(_ report: inout Report, inputs: [String]) throws {
        guard let evidence else { return }
        let err = OutputStream.standardError()
        let chosen = report.evidenceConnections()
        let attempts = report.evidenceAttempts()
        guard !chosen.isEmpty || !attempts.isEmpty else {
            if !decode.quiet { err.write("nvmetrace: no findings, so no evidence written to \(evidence)") }
            return
        }
        do {
            let written = try EvidenceWriter.write(files: inputs, connections: chosen.map(\.1) + attempts, to: evidence, snaplen: evidenceSnaplen)
            report.evidence = Report.EvidenceInfo(file: evidence, packets: written.packets, connections: chosen.map(\.0), snaplen: evidenceSnaplen)
            if written.clampedTimes > 0 && !decode.quiet {
                err.write("nvmetrace: warning: evidence: \(written.clampedTimes) packet(s) carry a time a pcap file cannot hold (before 1970 or after 2106), written as the nearest it can")
            }
        } catch {
            err.write("nvmetrace: error: evidence: \(error)")
            throw ExitCode(2)
        }
    }

    func engine() -> RuleEngine { ruleOptions.engine() }

    /// Writes the report in the chosen format to --output or standard output.
    func emit(_ report: Report) throws {
        let err = OutputStream.standardError()
        let text: String
        switch format {
        case .text:
            let tty = output == nil && isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
            text = TextReport.render(report, color: color || tty)
        case .json:
            text = JSONReport.render(report)
        case .markdown:
            text = MarkdownReport.render(report)
        case .html:
            text = HTMLReport.render(report)
        }
        if let output {
            do {
                try (text.hasSuffix("\n") ? text : text + "\n").write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                err.write("nvmetrace: error: cannot write \(output): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        } else {
            let out = OutputStream.standardOutput()
            out.write(text.hasSuffix("\n") ? String(text.dropLast()) : text)
            out.flush()
        }
    }
}

/// A progress line on stderr while large files are read on a terminal (never in pipes).
final class Progress {
    let enabled: Bool
    let sizes: [String: Int64]
    var lastDraw = Date.distantPast
    var drawn = false

    init(enabled: Bool, files: [String]) {
        self.enabled = enabled
        var s: [String: Int64] = [:]
        // Only when the line is drawn: FileManager.attributesOfItem costs ~0.5 million
        // instructions per process, most of it a run-time protocol conformance lookup.
        for f in files where enabled {
            if let a = try? FileManager.default.attributesOfItem(atPath: f), let n = a[.size] as? NSNumber { s[f] = n.int64Value }
        }
        sizes = s
    }

    func update(file: String, frames: Int) {
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        drawn = true
        let line = "\r\u{1B}[K\(file): \(frames) frames…"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
