import Foundation
import Testing
@testable import NVMeTrace

let independentGeneratorPython: String? = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// Captures from `Benchmarks/independent-gen.py`, a generator written apart from nvmetrace and
/// its own generator (it coalesces PDUs into segments as the Linux host does, so headers straddle
/// segments, or sends TSO-sized segments): nvmetrace must find exactly the PDUs and Keep Alives
/// the generator says it wrote, and nothing wrong with healthy traffic.
/// python3 is on every machine CI runs on: without it these tests fail, not skip.
@Suite struct IndependentCaptureTests {
    static let script = samplesDirectory.deletingLastPathComponent()
        .appendingPathComponent("Benchmarks/independent-gen.py").path

    struct Shape: CustomStringConvertible, Sendable {
        var segmentation: String
        var ioSize: String
        var digests = false
        var description: String { "\(segmentation) \(ioSize)\(digests ? " digests" : "")" }
    }

    /// Writes a capture; returns its path and the generator's summary of what it wrote.
    static func generate(_ shape: Shape) throws -> (String, [String: Any]) {
        let out = temporaryFile("independent.pcap").path
        let summaryPath = out + ".json"
        defer { try? FileManager.default.removeItem(atPath: summaryPath) }
        let python = try #require(independentGeneratorPython, "python3 not found (apt-get install python3): it runs Benchmarks/independent-gen.py")
        let run = try runChild(python, [
            script, "-o", out, "--size", "3M", "--seed", "11", "--hosts", "2", "--io-queues", "2",
            "--segmentation", shape.segmentation, "--io-size", shape.ioSize, "--summary", summaryPath,
        ] + (shape.digests ? ["--digests"] : []), seconds: 300)
        try #require(run.status == 0, "\(run.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: summaryPath))
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (out, summary)
    }

    @Test(arguments: [Shape(segmentation: "kernel", ioSize: "mixed"), Shape(segmentation: "kernel", ioSize: "512"),
                      Shape(segmentation: "tso", ioSize: "128k"), Shape(segmentation: "mss", ioSize: "4k"),
                      Shape(segmentation: "kernel", ioSize: "4k", digests: true)])
    func decodesWhatTheGeneratorWrote(shape: Shape) throws {
        let (path, summary) = try Self.generate(shape)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = AnalyzerOptions()
        options.verifyDataDigests = shape.digests
        let result = analyze(path, options: options)
        #expect(result.error == nil)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.prefix(3))")

        // PDUs by type, and Keep Alives, exactly as written.
        var byType: [String: Int] = [:]
        for r in result.records { byType[r.pdu.type.name, default: 0] += 1 }
        let written = try #require(summary["pdus_by_type"] as? [String: Int])
        #expect(byType == written)
        #expect(result.keepAlivesByConnection.values.reduce(0, +) == summary["keep_alives"] as? Int)
        #expect(Set(result.records.map(\.connection)).count == summary["connections"] as? Int)
        // Every command completed, nothing lost or misframed.
        #expect(result.records.allSatisfy { !$0.pdu.incomplete })
        if shape.digests {
            // Every PDU but ICReq/ICResp (which never carry digests) has a good header digest.
            let headers = result.records.filter { $0.pdu.type != .icReq && $0.pdu.type != .icResp }
            #expect(!headers.isEmpty && headers.allSatisfy { $0.pdu.headerDigest == .ok })
            let data = result.records.filter { $0.pdu.dataDigest != .absent }
            #expect(!data.isEmpty && data.allSatisfy { $0.pdu.dataDigest == .ok })
        }

        // The report: healthy traffic, so no finding and no warning.
        let analysis = CaptureAnalysis(options: options)
        analysis.read(paths: [path])
        let report = analysis.report()
        #expect(report.findings.isEmpty, "\(report.findings.map(\.title))")
        #expect(report.decodeWarnings == 0)
        let admins = report.model.connections.filter { $0.qid == 0 }
        #expect(admins.count == 2 && admins.allSatisfy { $0.connect?.kato == 5000 })
    }
}
