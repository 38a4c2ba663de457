import Foundation
@testable import NVMeTrace
import NVMeTraceSynth

/// Builds a synthetic capture with scripted NVMe/TCP conversations, writes it as pcap and
/// analyses it through the whole pipeline.
final class SynthCapture {
    var packets: [(Int64, [UInt8])] = []
    let base: Int64 = 1_700_000_000 * 1_000_000_000
    let host = PacketBuilder.Host.ip(10, 0, 0, 2)
    let target = PacketBuilder.Host.ip(10, 0, 0, 1)
    var nextPort: UInt16 = 40000
    static let hostnqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-1111-2222-3333-444444444444"
    static let subnqn = "nqn.2024-01.test:subsys"

    /// Seconds to capture nanoseconds.
    func t(_ s: Double) -> Int64 { base + Int64((s * 1e9).rounded()) }

    /// A new connection from the host to the target's port.
    func connection(port: UInt16 = 4420, mss: Int = 1448) -> NVMeScript {
        nextPort += 1
        let tcp = TCPConversation(client: host, clientPort: nextPort, server: target, serverPort: port, mss: mss) { [unowned self] t, b in
            packets.append((t, b))
        }
        return NVMeScript(tcp)
    }

    /// Writes the capture; with `snaplen`, each packet is stored cut to that many bytes, as
    /// `tcpdump -s` stores it (its wire length kept), and `dropFirst` packets are left out (a
    /// capture started late).
    func write(snaplen: Int? = nil, dropFirst: Int = 0) -> String {
        let url = temporaryFile("synth.pcap")
        let w = try! PcapWriter(path: url.path, snaplen: UInt32(snaplen ?? 262_144))
        for (t, b) in packets.sorted(by: { $0.0 < $1.0 }).dropFirst(dropFirst) {
            w.write(timeNs: t, bytes: Array(b.prefix(snaplen ?? b.count)), wireLength: b.count)
        }
        w.close()
        return url.path
    }

    func report(config: RuleConfig = RuleConfig(), disabled: Set<String> = [], snaplen: Int? = nil,
                dropFirst: Int = 0, options: AnalyzerOptions = AnalyzerOptions()) -> Report {
        let path = write(snaplen: snaplen, dropFirst: dropFirst)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let analysis = CaptureAnalysis(options: options)
        analysis.read(paths: [path])
        return analysis.report(engine: RuleEngine(config: config, disabled: disabled))
    }
}

extension Report {
    func findings(_ rule: String) -> [Finding] { findings.filter { $0.rule == rule } }
}
