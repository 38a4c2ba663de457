import ArgumentParser
import Foundation
import NVMeTrace

@main
struct NVMeTraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmetrace",
        abstract: "Analyze NVMe/TCP packet captures.",
        discussion: """
            Reads pcap or pcapng captures with libpcap, reassembles TCP, frames NVMe/TCP PDUs, \
            decodes the NVMe commands inside them, models connections, controllers and reconnect \
            chains, and reports what broke: persistent discovery connections with KATO 0, \
            keep-alive timeouts, rejected Connects, termination requests, digest errors.

            Examples:
              nvmetrace capture.pcap                      findings and connection table
              nvmetrace --format markdown -o ticket.md capture.pcap
              nvmetrace --format json capture.pcap | jq '.findings[] | .rule'
              nvmetrace --rules                           list the rules
              nvmetrace pdus capture.pcap                 every PDU, one line each
              nvmetrace pdus --format json capture.pcap   one JSON object per PDU
              tcpdump -w - port 4420 | nvmetrace pdus -   read standard input
              nvmetrace pdus --port 4421 a.pcap b.pcapng  several files, an extra target port
            """,
        version: NVMeTraceVersion.string,
        subcommands: [AnalyzeCommand.self, PDUsCommand.self, MonitorCommand.self],
        defaultSubcommand: AnalyzeCommand.self
    )

    /// As ParsableCommand's own, except that bad usage exits 2 (tcpdump's and this tool's
    /// documented code) rather than 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                OutputStream.standardError().write(fullMessage(for: error))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
