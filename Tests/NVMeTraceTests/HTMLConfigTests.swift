import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

@Suite struct HTMLConfigTests {
    /// The timeline's KATO window is the one the rules judged with: `--discovery-kato` reaches the
    /// HTML report (it once built a configuration of its own, which every new option had to copy).
    @Test func katoWindowFollowsTheDiscoveryKATOOption() throws {
        let s = SynthCapture()
        RuleScenario.kato0Discovery(s, at: 0, teardown: nil)
        s.packets.append((s.t(300), PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        func window(_ extra: [String]) throws -> String? {
            let run = try runCLI(["--format", "html", "--fail-on", "none"] + extra + [path])
            return run.stdout.components(separatedBy: "<title>KATO window after the last timer restart").dropFirst().first?
                .components(separatedBy: "</title>").first
        }
        let byDefault = try window([]), shorter = try window(["--discovery-kato", "60"])
        #expect(byDefault?.hasSuffix(": 120000 ms") == true, "\(String(describing: byDefault))")
        #expect(shorter?.hasSuffix(": 60000 ms") == true, "\(String(describing: shorter))")
    }
}
