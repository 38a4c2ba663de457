import ArgumentParser
import Foundation
import NVMeTrace

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// Options shared by the commands that decode captures.
struct DecodeOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("Capture files (pcap or pcapng); '-' reads standard input.", valueName: "file"))
    var files: [String] = []

    @Option(name: .customLong("port"), help: ArgumentHelp("Also decode TCP port N as NVMe/TCP (repeatable). 4420 and 8009 always are.", valueName: "N"))
    var ports: [UInt16] = []

    @Flag(help: "Verify data digests (CRC32C over every data PDU's payload).")
    var verifyDataDigests = false

    @Flag(name: .shortAndLong, help: "Do not print warnings about the capture.")
    var quiet = false

    @Option(help: ArgumentHelp("Most TCP connections tracked at once; past it the longest idle ones are dropped (default 200000).", valueName: "n"))
    var maxFlows: Int = AnalyzerOptions().maxFlows

    @Option(help: ArgumentHelp("Out-of-order bytes buffered per connection direction before a hole is given up as lost, each buffered piece counting 64 bytes more (default 4 MiB).", valueName: "bytes"))
    var reassemblyCap: Int = AnalyzerOptions().maxBufferedBytesPerDirection

    func validate() throws {
        guard maxFlows >= 1 else { throw ValidationError("--max-flows must be at least 1") }
        guard reassemblyCap >= 0 else { throw ValidationError("--reassembly-cap must not be negative") }
    }

    func analyzerOptions() -> AnalyzerOptions {
        var o = AnalyzerOptions()
        o.ports.formUnion(ports)
        o.verifyDataDigests = verifyDataDigests
        o.maxFlows = maxFlows
        o.maxBufferedBytesPerDirection = reassemblyCap
        return o
    }
}

struct PDUsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pdus",
        abstract: "List every NVMe/TCP PDU with its decoded command or completion.",
        discussion: """
            Text output: frame (where Wireshark shows the PDU), seconds since the file's first \
            packet, connection (Wireshark's tcp.stream), direction, PDU type, decoded fields.
            JSON output: one object per line; see README for the fields.
            Warnings about the capture (gaps, resynchronisation, digest errors) go to stderr.
            """
    )

    @OptionGroup var decode: DecodeOptions

    @Option(name: .long, help: "Output format: text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        if decode.files.isEmpty { throw ValidationError("Give at least one capture file ('-' for standard input).") }
    }

    func run() throws {
        let analyzer = Analyzer(options: decode.analyzerOptions())
        let out = OutputStream.standardOutput()
        let err = OutputStream.standardError()
        analyzer.consumer = PDUPrinter(analyzer: analyzer, format: format, multipleFiles: decode.files.count > 1,
                                       warnings: decode.quiet ? nil : err, out: out)
        var failed = false
        for file in decode.files {
            do {
                try analyzer.read(path: file)
            } catch {
                failed = true
                err.write("nvmetrace: error: \(error)")
            }
        }
        analyzer.finish()
        out.flush()
        if failed { throw ExitCode(2) }
    }
}

/// Prints each PDU as it is decoded (every one in full), and the decode warnings.
final class PDUPrinter: AnalyzerConsumer {
    /// The analyzer holds its consumer: the way back is not retained.
    unowned let analyzer: Analyzer
    let format: OutputFormat
    let multipleFiles: Bool
    let warnings: OutputStream?
    let out: OutputStream
    let encoder = PDUJSONEncoder()

    init(analyzer: Analyzer, format: OutputFormat, multipleFiles: Bool, warnings: OutputStream?, out: OutputStream) {
        self.analyzer = analyzer
        self.format = format
        self.multipleFiles = multipleFiles
        self.warnings = warnings
        self.out = out
    }

    var detail: RecordDetail { .full }

    func pdu(_ r: LentPDURecord) {
        let p = r.pdu
        switch format {
        case .text:
            var line = ""
            if multipleFiles { line += analyzer.fileName(p.ref.file) + " " }
            line += pad(String(p.ref.frame), 7) + " " + pad(String(format: "%.6f", analyzer.relativeSeconds(p.ref)), 12)
            line += "  #\(r.connection) \(r.src) → \(r.dst)  \(p.type.name)"
            if let q = r.qid { line += " q\(q)" }
            line += "  " + PDUDescription.summary(r)
            out.write(line)
        case .json:
            out.write(encoder.line(PDUJSON(r, fileName: analyzer.fileName(p.ref.file), time: analyzer.relativeSeconds(p.ref))))
        }
    }

    func diagnostic(_ d: Diagnostic) {
        warnings?.write("nvmetrace: warning[\(d.kind.rawValue)]: \(d)")
    }
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
