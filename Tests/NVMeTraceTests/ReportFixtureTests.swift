import Foundation
import Testing
@testable import NVMeTrace

/// Every report a user sees, byte for byte as it was when these fixtures were written (issue #15's
/// safety net: restructuring the pipeline must change none of them). The fixtures in
/// `Tests/Fixtures/reports/` were produced by the binary of commit acdfd81, before any of that
/// work; their expected content was checked by the rest of the suite (ground truth, tshark, the
/// schemas), not here. A change that means to alter a report rewrites them with
/// `NVMETRACE_WRITE_FIXTURES=1 swift test --filter ReportFixtureTests` and says why in its commit.
@Suite struct ReportFixtureTests {
    static let fixtures = samplesDirectory.deletingLastPathComponent().appendingPathComponent("Tests/Fixtures/reports")

    /// A capture and the options it is analysed with.
    struct Input: CustomStringConvertible, Sendable {
        var name: String
        var arguments: [String] = []
        /// Sample name, or generator settings for synthetic traffic.
        var sample: String?
        var generated: (seed: UInt64, mss: Int, digests: Bool, loss: Double, reorder: Double)?
        var description: String { name }
    }

    static let inputs: [Input] = sampleNames.map { Input(name: $0, sample: $0) } + [
        Input(name: "generated-loss", generated: (seed: 5, mss: 1448, digests: false, loss: 0.01, reorder: 0)),
        Input(name: "generated-reorder", generated: (seed: 6, mss: 1448, digests: false, loss: 0, reorder: 0.05)),
        Input(name: "generated-digests", arguments: ["--verify-data-digests"],
              generated: (seed: 7, mss: 8948, digests: true, loss: 0, reorder: 0)),
    ]

    /// The outputs compared: the four report formats and `pdus` as JSON lines.
    static let outputs: [(ext: String, arguments: [String])] = [
        ("txt", ["--format", "text"]), ("json", ["--format", "json"]), ("md", ["--format", "markdown"]),
        ("html", ["--format", "html"]), ("pdus.jsonl", ["pdus", "--format", "json"]),
    ]

    @Test(arguments: inputs)
    func reportsAreUnchanged(_ input: Input) throws {
        let path: String, shown: String
        if let sample = input.sample {
            path = samplePath(sample)
            shown = "Samples/\(sample).pcap"
        } else {
            let g = try #require(input.generated)
            path = GeneratorTests.generate(seed: g.seed, steps: 120, mss: g.mss, digests: g.digests, loss: g.loss, reorder: g.reorder)
            shown = "generated/\(input.name).pcap"
        }
        defer { if input.sample == nil { try? FileManager.default.removeItem(atPath: path) } }
        let write = ProcessInfo.processInfo.environment["NVMETRACE_WRITE_FIXTURES"] == "1"
        for output in Self.outputs {
            let isPDUs = output.arguments.first == "pdus"
            let args = output.arguments + (isPDUs ? [] : ["--fail-on", "none", "-q"]) + input.arguments + [path]
            let run = try runCLI(args)
            #expect(run.status == 0, "\(input) \(output.ext): \(run.stderr)")
            // The capture's path as given on the command line is the one thing that depends on
            // where the repository lies.
            let text = run.stdout.replacingOccurrences(of: path, with: shown)
            let fixture = Self.fixtures.appendingPathComponent("\(input.name).\(output.ext)")
            if write {
                try FileManager.default.createDirectory(at: Self.fixtures, withIntermediateDirectories: true)
                try Data(text.utf8).write(to: fixture)
                continue
            }
            let expected = try #require(try? String(contentsOf: fixture, encoding: .utf8), "no fixture \(fixture.path)")
            if text != expected {
                let actual = temporaryFile("\(input.name).\(output.ext)")
                try Data(text.utf8).write(to: actual)
                Issue.record("\(input) \(output.ext) differs from its fixture: diff \(fixture.path) \(actual.path)")
            }
        }
    }

    /// Each fixture belongs to an input and output above: none is left unchecked.
    @Test func everyFixtureIsChecked() throws {
        let names = Set(Self.inputs.flatMap { i in Self.outputs.map { "\(i.name).\($0.ext)" } })
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path))
        #expect(files == names)
    }
}
