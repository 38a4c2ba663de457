import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Decode warnings carry stable ids: counted in the JSON report, printed on standard error,
/// listed in the schema and in docs/reports.md.
@Suite struct WarningIDTests {
    static let repository = samplesDirectory.deletingLastPathComponent()

    /// Every id is in the schema's enumeration and in the documentation's table, and nothing else is.
    @Test func idsAreDocumentedAndInTheSchema() throws {
        let ids = Set(Diagnostic.Kind.allCases.map(\.rawValue))
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.repository.appendingPathComponent("schemas/nvmetrace.report-1.schema.json"))) as! [String: Any]
        let warnings = ((schema["$defs"] as! [String: Any])["warnings"] as! [String: Any])["properties"] as! [String: Any]
        let names = ((warnings["counts"] as! [String: Any])["propertyNames"] as! [String: Any])["enum"] as! [String]
        #expect(Set(names) == ids)
        let docs = try String(contentsOf: Self.repository.appendingPathComponent("docs/reports.md"), encoding: .utf8)
        let table = docs.components(separatedBy: "### Warning ids")[1].components(separatedBy: "\n\n").dropFirst(2).first ?? ""
        let documented = Set(table.split(separator: "\n").dropFirst(2).flatMap { row in
            row.split(separator: "|")[0].split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
        })
        #expect(documented == ids)
    }

    /// A capture with a lost segment, a bad header digest and a completion without its command:
    /// each warning under its id, on standard error and in the JSON counts, which add up.
    @Test func warningsAreCountedByID() throws {
        let s = SynthCapture()
        let c = s.connection()
        c.hdgst = true
        c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        c.keepAlive(at: s.t(1))
        var bad = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 99), hdgst: true)
        bad[73] ^= 0x55  // the header digest no longer matches
        c.raw(fromHost: true, bad, at: s.t(2))
        // A Keep Alive the capture lost (acknowledged by the target), then its completion.
        c.tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 100), hdgst: true), at: s.t(3), drop: [0])
        c.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: 100, hdgst: true), at: s.t(3.001))
        c.keepAlive(at: s.t(4))
        c.tcp.fin(fromClient: true, at: s.t(5))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }

        let json = try runCLI(["--format", "json", "--fail-on", "none", path])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let warnings = try #require(doc["warnings"] as? [String: Any])
        let counts = try #require(warnings["counts"] as? [String: Int])
        #expect(counts["pdu.header-digest-mismatch"] == 1, "\(counts)")
        #expect(counts["tcp.bytes-missing"] == 1, "\(counts)")
        #expect(counts.values.reduce(0, +) == warnings["count"] as? Int)

        // Standard error: one line per warning, each with its id.
        let text = try runCLI(["--fail-on", "none", path])
        let lines = text.stderr.split(separator: "\n").filter { $0.hasPrefix("nvmetrace: warning[") }
        #expect(lines.count == warnings["count"] as? Int)
        var printed: [String: Int] = [:]
        for l in lines { printed[String(l.dropFirst("nvmetrace: warning[".count).prefix { $0 != "]" }), default: 0] += 1 }
        #expect(printed == counts)
        #expect(lines.contains { $0.hasPrefix("nvmetrace: warning[tcp.bytes-missing]: \(path): frame ") && $0.contains("bytes missing from the capture") })
    }
}
