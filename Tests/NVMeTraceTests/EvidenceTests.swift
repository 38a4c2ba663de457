import Foundation
import Testing
@testable import NVMeTrace

/// `--evidence`: the packets behind the findings, which analyse to the same findings.
@Suite struct EvidenceTests {
    /// Findings as (rule, host endpoint of the finding's connection): connection numbers change in
    /// the evidence file, endpoints do not.
    static func findings(_ json: String) throws -> Set<String> {
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let conns = doc["connections"] as! [[String: Any]]
        let hostOf = Dictionary(uniqueKeysWithValues: conns.map { ($0["id"] as! Int, $0["src"] as! String) })
        return Set((doc["findings"] as! [[String: Any]]).map { f in
            "\(f["rule"]!)@\((f["connection"] as? Int).flatMap { hostOf[$0] } ?? "-")"
        })
    }

    @Test(arguments: ["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host", "E-keepalive-stall"],
          [nil, 128] as [Int?])
    func evidenceAnalysesToTheSameFindings(sample: String, snaplen: Int?) throws {
        let out = temporaryFile("evidence.pcap")
        var args = ["--format", "json", "--fail-on", "none", "--evidence", out.path]
        if let snaplen { args += ["--evidence-snaplen", String(snaplen)] }
        let run = try runCLI(args + [samplePath(sample)])
        #expect(run.status == 0)
        let original = try Self.findings(run.stdout)
        #expect(!original.isEmpty)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let ev = try #require(doc["evidence"] as? [String: Any])
        #expect(ev["file"] as? String == out.path)
        let again = try runCLI(["--format", "json", "--fail-on", "none", out.path])
        #expect(try Self.findings(again.stdout) == original)
        // Only the involved connections' packets, with the original timestamps and link type.
        let evidence = try loadCapture(out.path)
        let whole = try loadCapture(samplePath(sample))
        #expect(evidence.packets.count == ev["packets"] as? Int)
        #expect(evidence.packets.count < whole.packets.count)
        #expect(evidence.linkType == whole.linkType)
        let times = Set(whole.packets.map(\.timeNs))
        #expect(evidence.packets.allSatisfy { times.contains($0.timeNs) })
        if let snaplen {
            #expect(evidence.packets.allSatisfy { $0.bytes.count <= max(snaplen, 54 + EvidenceWriter.keepWholeBelow) })
        }
    }

    @Test func noFindingsNoEvidence() throws {
        let out = temporaryFile("none.pcap")
        let run = try runCLI(["--evidence", out.path, samplePath("B-persistent-discovery-healthy")])
        #expect(run.status == 0)
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(run.stderr.contains("no evidence written"))
    }
}
