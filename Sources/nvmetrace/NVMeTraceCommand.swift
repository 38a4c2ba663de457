import ArgumentParser
import NVMeTrace

@main
struct NVMeTraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvmetrace",
        abstract: "Analyze NVMe/TCP packet captures.",
        discussion: """
            Reads pcap or pcapng captures with libpcap, reassembles TCP, frames NVMe/TCP PDUs and \
            decodes the NVMe commands inside them.

            Examples:
              nvmetrace pdus capture.pcap                 every PDU, one line each
              nvmetrace pdus --format json capture.pcap   one JSON object per PDU
              tcpdump -w - port 4420 | nvmetrace pdus -   read standard input
              nvmetrace pdus --port 4421 a.pcap b.pcapng  several files, an extra target port
            """,
        version: NVMeTraceVersion.string,
        subcommands: [PDUsCommand.self]
    )
}
