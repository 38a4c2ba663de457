import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The daemon's JSON lines against schemas/nvmetrace.event-1.schema.json, by the same validator
/// as the reports (python3-jsonschema): every rule scenario's findings and every kind of event,
/// each field the schema defines written somewhere, and what the format forbids rejected.
@Suite struct EventSchemaTests {
    /// Event lines from every rule scenario, and from one with each kind of association event.
    static func corpus() -> [String] {
        var lines: [String] = []
        let ring = temporaryFile("ring").path
        defer { try? FileManager.default.removeItem(atPath: ring) }
        func run(_ s: SynthCapture) {
            let (m, box) = MonitorTests.monitor()
            // Findings with the evidence the ring cut for them.
            m.ring = try? EvidenceRing(directory: ring, linkType: 1)
            m.finish(nowNs: MonitorTests.play(s, into: m))
            lines += box.lines
        }
        for scenario in RuleScenario.all { run(scenario.build()) }
        // Up, down by the target, the outage, the reconnect; an orderly disconnect by the host.
        let s = SynthCapture()
        let first = RuleScenario.admin(s, kato: 10_000, keepAlives: [5])
        first.tcp.fin(fromClient: false, at: s.t(8))
        first.tcp.fin(fromClient: true, at: s.t(8.001))
        let second = RuleScenario.admin(s, kato: 10_000, keepAlives: [5], start: 20)
        second.propertySetCC(at: s.t(30), 0x4001)
        second.tcp.fin(fromClient: true, at: s.t(30.5))
        second.tcp.fin(fromClient: false, at: s.t(30.501))
        run(s)
        return lines
    }

    static func write(_ lines: [String]) -> String {
        let url = temporaryFile("events.json")
        try! (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func everyEventMatchesTheSchemaAndEveryFieldIsWritten() throws {
        let lines = Self.corpus()
        let path = Self.write(lines)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let v = try SchemaValidator.run(reports: [], pdus: [], events: [path], coverage: true)
        #expect(v.objects["events"] == lines.count)
        #expect(v.errors.isEmpty, "\(v.errors.prefix(20).joined(separator: "\n"))")
        #expect(v.unsorted.isEmpty, "\(v.unsorted.prefix(10))")
        #expect(v.uncovered["events"] == [], "no event has \(v.uncovered["events"] ?? [])")
        let kinds = Set(try jsonLines(lines.joined(separator: "\n")).compactMap { $0["event"] as? String })
        #expect(kinds == ["finding", "association-up", "association-down", "outage"])
    }

    /// The finding line of `nvmetrace -i --format json` is the daemon's finding event.
    @Test func theLiveFindingLineIsTheFindingEvent() throws {
        let s = RuleScenario.all[0].build()
        let r = s.report()
        let f = try #require(r.findings.first)
        #expect(JSONReport.findingLine(f, r) == MonitorEvent.finding(f, r).line())
    }

    @Test func theSchemaRejectsWhatTheFormatForbids() throws {
        let objects = try jsonLines(Self.corpus().joined(separator: "\n"))
        let up = try #require(objects.first { $0["event"] as? String == "association-up" })
        let down = try #require(objects.first { $0["event"] as? String == "association-down" })
        let finding = try #require(objects.first { $0["event"] as? String == "finding" })
        func text(_ o: Any) throws -> String { try sortedJSON(o) }
        func edit(_ o: [String: Any], _ change: (inout [String: Any]) -> Void) -> [String: Any] {
            var c = o
            change(&c)
            return c
        }
        func editAssociation(_ o: [String: Any], _ change: (inout [String: Any]) -> Void) -> [String: Any] {
            edit(o) { e in
                var a = e["association"] as! [String: Any]
                change(&a)
                e["association"] = a
            }
        }
        let mutants: [String: [String: Any]] = [
            "other schema": edit(up) { $0["schema"] = "nvmetrace.event/2" },
            "unknown event": edit(up) { $0["event"] = "association-sideways" },
            "timestamp without Z": edit(up) { $0["timestamp"] = ($0["timestamp"] as! String).replacingOccurrences(of: "Z", with: "") },
            "no frame": edit(up) { $0["frame"] = nil },
            "frame 0": edit(up) { $0["frame"] = 0 },
            "community ID of version 2": edit(up) { $0["communityId"] = ($0["communityId"] as! String).replacingOccurrences(of: "1:", with: "2:") },
            "up without src": edit(up) { $0["src"] = nil },
            "up that says who closed it": editAssociation(up) { $0["by"] = "target" },
            "down without who": editAssociation(down) { $0["by"] = nil },
            "down by the switch": editAssociation(down) { $0["by"] = "switch" },
            "an unknown kind": editAssociation(up) { $0["kind"] = "admin" },
            "a finding with an association": edit(finding) { $0["association"] = up["association"] },
            "a finding that is not the report's": edit(finding) { e in
                var f = e["finding"] as! [String: Any]
                f["rule"] = "no-such-rule"
                e["finding"] = f
            },
            "an extra key": edit(up) { $0["zeek"] = true },
        ]
        var paths: [String: String] = [:]
        for (name, o) in mutants { paths[name] = Self.write([try text(o)]) }
        defer { for p in paths.values { try? FileManager.default.removeItem(atPath: p) } }
        let unchanged = Self.write([try text(up), try text(down), try text(finding)])
        defer { try? FileManager.default.removeItem(atPath: unchanged) }
        #expect(try SchemaValidator.run(reports: [], pdus: [], events: [unchanged]).errors.isEmpty)
        for (name, path) in paths.sorted(by: { $0.key < $1.key }) {
            let v = try SchemaValidator.run(reports: [], pdus: [], events: [path])
            #expect(!v.errors.isEmpty, "the schema accepts \(name)")
        }
    }
}
