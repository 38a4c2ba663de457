import Foundation
import Testing

/// tshark, the second opinion on every capture (CI installs it; a test needing it fails without).
enum Tshark {
    /// As the ground truth ran it: NVMe/TCP on the discovery port too, out-of-order segments
    /// reassembled, digests checked.
    static let options = ["-n", "-o", "tcp.reassemble_out_of_order:TRUE", "-d", "tcp.port==8009,nvme-tcp",
                          "-o", "nvme-tcp.check_hdgst:TRUE", "-o", "nvme-tcp.check_ddgst:TRUE"]

    static func binary() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let found = (path.split(separator: ":").map { "\($0)/tshark" } + ["/usr/bin/tshark"])
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        return try #require(found, "tshark is not installed (apt-get install tshark)")
    }

    /// The `fields` of every frame `filter` selects, one row per frame; several occurrences of a
    /// field in one frame are joined by commas. Records an issue when tshark rejects the filter.
    static func fields(_ path: String, filter: String?, _ fields: [String], options: [String] = options) throws -> [[Substring]] {
        var args = ["-r", path] + options
        if let filter { args += ["-Y", filter] }
        args += ["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields { args += ["-e", f] }
        let run = try runChild(try binary(), args, seconds: 60)
        let complaints = run.stderr.split(separator: "\n").filter { !$0.hasPrefix("Running as user") }
        #expect(run.status == 0 && complaints.isEmpty, "tshark -Y '\(filter ?? "")': \(run.stderr)")
        return run.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
    }

    /// "0x1a" or "26" as a number.
    static func int(_ s: Substring) -> Int? {
        s.hasPrefix("0x") ? Int(s.dropFirst(2), radix: 16) : Int(s)
    }
}
