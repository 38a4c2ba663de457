import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

// Every JSON report and every `pdus --format json` line nvmetrace prints for the samples, for cut
// and mid-stream variants of each, for runs over several files, standard input, evidence files, a
// file cut inside a record, a synthetic capture holding what the samples lack (an AER completion, a termination request, a
// digest mismatch, a C2HData that completes its command, every rule), an empty capture and IPv6,
// validated by a real JSON Schema validator (python3-jsonschema, draft 2020-12) against the
// schemas kept in schemas/ (issue #14). The validator runs once, over all of them.

/// The outputs the schema tests validate, made once per test process by the built executable.
enum JSONOutputCorpus {
    enum Kind: String, Sendable { case report, pdus }
    struct Output: Sendable {
        var label: String
        var kind: Kind
        var path: String
        var lines: Int
    }
    struct Built: Sendable {
        var outputs: [Output]
        /// Runs that did not exit as expected or printed no report.
        var problems: [String]
        var seconds: Double
        var reports: [String] { outputs.filter { $0.kind == .report }.map(\.path) }
        var pdus: [String] { outputs.filter { $0.kind == .pdus }.map(\.path) }
    }
    struct NoExecutable: Error, CustomStringConvertible {
        var description: String { "nvmetrace executable not found next to the tests (swift build --build-tests)" }
    }

    static let built: Result<Built, any Error> = Result { try build() }
    /// schemas/validate.py over every output, with the schema fields no output used.
    static let validation: Result<SchemaValidation, any Error> = Result {
        let b = try built.get()
        return try SchemaValidator.run(reports: b.reports, pdus: b.pdus, coverage: true)
    }

    private struct Run: Sendable {
        var label: String
        var kind: Kind
        var args: [String]
        var stdin: Data? = nil
        var status: Int32 = 0
    }

    private final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var outputs: [Int: Output] = [:]
        var problems: [String] = []
        func add(_ i: Int, _ o: Output?, problem: String?) {
            lock.lock(); defer { lock.unlock() }
            if let o { outputs[i] = o }
            if let problem { problems.append(problem) }
        }
    }

    private static func build() throws -> Built {
        guard nvmetraceBinary() != nil else { throw NoExecutable() }
        let start = Date()
        let dir = temporaryFile("json-corpus")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func write(_ c: StoredCapture, _ name: String, snaplen: Int? = nil) -> String {
            let url = dir.appendingPathComponent(name + ".pcap")
            try! Data(pcapFile(c, snaplen: snaplen)).write(to: url)
            return url.path
        }
        let report = ["--format", "json", "--fail-on", "none"]
        let pdus = ["pdus", "--format", "json"]
        var runs: [Run] = []
        func both(_ label: String, _ files: [String], _ extra: [String] = []) {
            runs.append(Run(label: label, kind: .report, args: report + extra + files))
            runs.append(Run(label: label, kind: .pdus, args: pdus + extra + files))
        }
        for s in sampleNames {
            both(s, [samplePath(s)])
            let full = try readPcapIndependently(samplePath(s))
            // Headers only: every packet cut to 120 bytes (54 bytes of NVMe/TCP payload after
            // Ethernet, IPv4 and TCP with timestamps): Connect headers keep QID and SQSIZE, lose KATO.
            both("\(s), snap length 120", [write(truncated(full, to: 120), "\(s)-snap120", snaplen: 120)])
            // Mid-stream: the capture starts right after the first Connect.
            let firstConnect = try GroundTruth(sample: s).connections.compactMap { $0.connects.first?.frame }.min() ?? 1
            both("\(s), from frame \(firstConnect + 1)",
                 [write(StoredCapture(linkType: full.linkType, packets: Array(full.packets.dropFirst(firstConnect))), "\(s)-mid")])
        }
        both("D2 with --verify-data-digests", [samplePath("D2-io-traffic-digests")], ["--verify-data-digests"])
        both("C then B, two files", [samplePath("C-oneshot-discovery"), samplePath("B-persistent-discovery-healthy")])
        let e = try readPcapIndependently(samplePath("E-keepalive-stall"))
        both("E rotated into two files at frame 150",
             [write(StoredCapture(linkType: e.linkType, packets: Array(e.packets.prefix(150))), "E-rot0"),
              write(StoredCapture(linkType: e.linkType, packets: Array(e.packets.dropFirst(150))), "E-rot1")])
        runs.append(Run(label: "C on standard input", kind: .report, args: report + ["-"],
                        stdin: try Data(contentsOf: URL(fileURLWithPath: samplePath("C-oneshot-discovery")))))
        runs.append(Run(label: "E with --evidence --evidence-snaplen 200", kind: .report,
                        args: report + ["--evidence", dir.appendingPathComponent("E-evidence.pcap").path, "--evidence-snaplen", "200",
                                        samplePath("E-keepalive-stall")]))
        runs.append(Run(label: "A with --evidence", kind: .report,
                        args: report + ["--evidence", dir.appendingPathComponent("A-evidence.pcap").path, samplePath("A-persistent-discovery-kato0")]))
        // A file that ends inside its last record: exit status 2, a read error in the report.
        let a = try Data(contentsOf: URL(fileURLWithPath: samplePath("A-persistent-discovery-kato0")))
        let truncatedFile = dir.appendingPathComponent("A-truncated.pcap")
        try a.prefix(a.count - 30).write(to: truncatedFile)
        runs.append(Run(label: "A cut inside its last record", kind: .report, args: report + [truncatedFile.path], status: 2))
        let synthetic = syntheticCapture()
        both("synthetic capture", [synthetic])
        both("synthetic capture, data digests verified", [synthetic], ["--verify-data-digests"])
        both("empty capture", [write(StoredCapture(linkType: LinkTypeValue.ethernet, packets: []), "empty")])
        both("C over IPv6", [write(toIPv6(try readPcapIndependently(samplePath("C-oneshot-discovery"))), "C-ipv6")])

        let collected = Collected()
        let frozen = runs
        DispatchQueue.concurrentPerform(iterations: frozen.count) { i in
            let r = frozen[i]
            do {
                let run = try runCLI(r.args, stdin: r.stdin)
                let path = dir.appendingPathComponent("\(i)-\(r.kind.rawValue).json").path
                try Data(run.stdout.utf8).write(to: URL(fileURLWithPath: path))
                let lines = run.stdout.split(separator: "\n").count
                var problem: String?
                if run.status != r.status { problem = "\(r.label) (\(r.kind)): exit status \(run.status): \(run.stderr.prefix(500))" }
                if r.kind == .report && lines == 0 { problem = "\(r.label): no report printed" }
                collected.add(i, Output(label: r.label, kind: r.kind, path: path, lines: lines), problem: problem)
            } catch {
                collected.add(i, nil, problem: "\(r.label) (\(r.kind)): \(error)")
            }
        }
        return Built(outputs: (0..<frozen.count).compactMap { collected.outputs[$0] }, problems: collected.problems,
                     seconds: Date().timeIntervalSince(start))
    }

    /// What the samples lack: a discovery-free I/O controller with header and data digests whose
    /// Asynchronous Event Request completes, whose Keep Alive fails, with a PDU whose header digest
    /// is wrong and a C2HTermReq; a rejected Connect; a margin, an overdue silence, a target
    /// teardown, a reconnect loop; a read whose C2HData completes the command (SUCCESS).
    static func syntheticCapture() -> String {
        let s = SynthCapture()
        let a = s.connection()
        a.hdgst = true
        a.ddgst = true
        a.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)  // CID 1
        a.identify(at: s.t(0.1), cntrltype: 1, tbkas: false)                                          // CID 2
        a.asyncEventRequest(at: s.t(0.2))                                                             // CID 3
        // Notice (type 2), discovery log changed (info 0xF0), log page 0x70.
        a.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 3, dw0: 0x0070_F002, hdgst: true), at: s.t(0.5))
        a.keepAlive(at: s.t(1), status: 0x19)  // Keep Alive Timer Expired
        var bad = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 99), hdgst: true)
        bad[73] ^= 0x55
        a.raw(fromHost: true, bad, at: s.t(2))
        a.termReq(fromHost: false, fes: 3, at: s.t(2.1))
        a.tcp.fin(fromClient: false, at: s.t(2.2))

        let rejected = s.connection()
        rejected.connect(at: s.t(3), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, status: 0x182)
        rejected.tcp.fin(fromClient: true, at: s.t(3.1))

        // An association whose Keep Alives come late (4 s of a 5 s KATO), with an I/O queue whose
        // read completes in its C2HData.
        let admin = s.connection()
        admin.connect(at: s.t(4), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 2)
        admin.identify(at: s.t(4.1), cntrltype: 1, tbkas: false)
        let io = s.connection()
        io.connect(at: s.t(4.2), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 2)
        io.read(at: s.t(4.5), bytes: 4096, successFlag: true)
        for k in 1...3 { admin.keepAlive(at: s.t(4 + 4 * Double(k))) }
        io.tcp.fin(fromClient: true, at: s.t(16.5))
        admin.tcp.fin(fromClient: true, at: s.t(16.6))

        // Three associations of one host to one discovery subsystem, the first two torn down by the
        // target after their KATO (a reconnect loop); the last silent past its KATO at the end.
        for k in 0..<3 {
            let d = s.connection(port: 8009)
            let t0 = 17.0 + Double(k) * 8
            d.connect(at: s.t(t0), kato: 2000, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn, cntlid: UInt16(3 + k))
            d.identify(at: s.t(t0 + 0.1), cntrltype: 2, tbkas: false)
            d.discoveryLog(at: s.t(t0 + 0.2))
            if k < 2 { d.tcp.fin(fromClient: false, at: s.t(t0 + 5)) }
        }
        // A last association, so that the capture ends 6.8 s after the third one's last command.
        s.connection().connect(at: s.t(40), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 9)
        return s.write()
    }
}

@Suite struct JSONSchemaTests {
    @Test func everyReportAndPDULineMatchesItsSchema() throws {
        let built = try JSONOutputCorpus.built.get()
        for p in built.problems { Issue.record(Comment(rawValue: p)) }
        let v = try JSONOutputCorpus.validation.get()
        #expect(v.errors.isEmpty, "\(v.errors.count) schema errors:\n\(v.errors.prefix(40).joined(separator: "\n"))")
        // The validator saw every document and every line (none skipped).
        #expect(v.objects["report"] == built.reports.count)
        #expect(v.objects["pdus"] == built.outputs.filter { $0.kind == .pdus }.reduce(0) { $0 + $1.lines })
        for s in sampleNames {
            #expect(built.outputs.contains { $0.label == s && $0.kind == .report && $0.lines > 0 }, "no report of \(s)")
            #expect(built.outputs.contains { $0.label == s && $0.kind == .pdus && $0.lines > 0 }, "no PDU lines of \(s)")
        }
    }

    /// README: "Keys are sorted, so reports diff cleanly". Checked on the raw text of every object
    /// (python's json parser hands the validator each object's keys in the order they were written).
    @Test func everyObjectHasItsKeysInSortedOrder() throws {
        let v = try JSONOutputCorpus.validation.get()
        #expect(v.unsorted.isEmpty, "\(v.unsorted.count) objects with unsorted keys:\n\(v.unsorted.prefix(20).joined(separator: "\n"))")
    }

    /// Every field the schemas define, optional ones included, appears in some output: the corpus
    /// exercises them all, and the schemas define no field nvmetrace never writes.
    @Test func everyFieldTheSchemasDefineIsWritten() throws {
        let v = try JSONOutputCorpus.validation.get()
        for (kind, paths) in v.uncovered.sorted(by: { $0.key < $1.key }) {
            #expect(paths.isEmpty, "\(kind): no output has \(paths.joined(separator: ", "))")
        }
        #expect(Set(v.uncovered.keys) == ["report", "pdus"])
    }

    /// The schema's rule ids and severities are the rules `nvmetrace --rules` lists, and README's.
    @Test func ruleIdsAndSeveritiesAreTheRules() throws {
        let schema = try jsonDocument(String(contentsOf: schemasDirectory.appendingPathComponent("nvmetrace.report-1.schema.json"),
                                             encoding: .utf8))
        let defs = try #require(schema["$defs"] as? [String: Any])
        let ruleIds = try #require((defs["ruleId"] as? [String: Any])?["enum"] as? [String])
        let finding = try #require((defs["finding"] as? [String: Any])?["properties"] as? [String: Any])
        let severities = try #require((finding["severity"] as? [String: Any])?["enum"] as? [String])
        let listed = try runCLI(["--rules"])
        #expect(listed.status == 0)
        let rows = listed.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(Set(ruleIds) == Set(rows.map { String($0[0]) }))
        #expect(ruleIds.count == rows.count)
        // "warning/info": a rule whose findings' severity depends on what it found (outage).
        #expect(Set(rows.flatMap { $0[1].split(separator: "/").map(String.init) }).isSubset(of: Set(severities)))
        // README's table says the same severities as --rules.
        let documented = try documentedSeverities()
        for row in rows { #expect(documented[String(row[0])] == String(row[1]), "\(row[0]): README \(documented[String(row[0])] ?? "-"), --rules \(row[1])") }
        #expect(Set(severities) == ["info", "warning", "error"])
        let readme = try String(contentsOf: samplesDirectory.deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        for id in ruleIds { #expect(readme.contains("| `\(id)` |"), "README's rule table lacks \(id)") }
    }

    /// Without the jsonschema module the tests fail, saying what to install; they never skip.
    @Test func aMissingValidatorFailsWithWhatToInstall() throws {
        let built = try JSONOutputCorpus.built.get()
        // python -S leaves out site and dist-packages, where the module lives.
        let error = #expect(throws: SchemaValidatorError.self) {
            _ = try SchemaValidator.run(reports: Array(built.reports.prefix(1)), pdus: [], pythonOptions: ["-S"])
        }
        #expect(error?.description.contains("apt-get install python3-jsonschema") == true, "\(String(describing: error))")
        if case .unavailable = error {} else { Issue.record("not reported as a missing validator: \(String(describing: error))") }
    }

    /// The schemas are strict: what nvmetrace must never print is rejected, each change on its own.
    @Test func theSchemasRejectWhatTheFormatForbids() throws {
        let e = try runCLI(["--format", "json", "--fail-on", "none", samplePath("E-keepalive-stall")])
        let p = try runCLI(["pdus", "--format", "json", samplePath("D2-io-traffic-digests")])
        let report = try jsonDocument(e.stdout)
        let lines = try jsonLines(p.stdout)
        let dir = temporaryFile("schema-mutants")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Keys in code point order, as nvmetrace writes them (JSONSerialization's .sortedKeys
        // orders "closeFrame" after "closedBy": not the order of the format).
        func text(_ o: Any) throws -> String { try sortedJSON(o) }
        func edited(_ change: (inout [String: Any]) -> Void) -> [String: Any] {
            var r = report
            change(&r)
            return r
        }
        func editedConnection(_ change: (inout [String: Any]) -> Void) -> [String: Any] {
            edited { r in
                var cs = r["connections"] as! [[String: Any]]
                change(&cs[0])
                r["connections"] = cs
            }
        }
        func editedFinding(_ change: (inout [String: Any]) -> Void) -> [String: Any] {
            edited { r in
                var fs = r["findings"] as! [[String: Any]]
                change(&fs[0])
                r["findings"] = fs
            }
        }
        let connect = try #require(lines.first { $0["connectQid"] != nil })
        let c2h = try #require(lines.first { $0["type"] as? String == "C2HData" })
        let connectLine = try text(connect)
        // The same document with its first two keys swapped: valid JSON, same content, unsorted.
        let keys = report.keys.sorted()
        let swapped = "{" + (try ([keys[1], keys[0]] + keys.dropFirst(2)).map { try text($0) + ":" + text(report[$0]!) })
            .joined(separator: ",") + "}"
        let reportMutants: [String: String] = [
            "unchanged report": try text(report),
            "unjudged dropped": try text(edited { $0["unjudged"] = nil }),
            "controllers dropped": try text(edited { $0["controllers"] = nil }),
            "undocumented top-level field": try text(edited { $0["extra"] = 1 }),
            "schema version changed": try text(edited { $0["schema"] = "nvmetrace.report/2" }),
            "connection field renamed": try text(editedConnection { $0["keepAliveCount"] = $0.removeValue(forKey: "keepAlives") }),
            "undocumented connection field": try text(editedConnection { $0["retries"] = 0 }),
            "unknown key left out instead of null": try text(editedConnection { $0["maxKeepAliveGap"] = nil }),
            "kato as a string": try text(editedConnection { $0["kato"] = "10000" }),
            "closedBy unknown value": try text(editedConnection { $0["closedBy"] = "switch" }),
            "closed without a close frame": try text(editedConnection { $0["closeFrame"] = NSNull() }),
            "io kind on an admin queue": try text(editedConnection { $0["kind"] = "io" }),
            "severity not in the enum": try text(editedFinding { $0["severity"] = "fatal" }),
            "rule id not in the enum": try text(editedFinding { $0["rule"] = "keep-alive-late" }),
            "frame 0 cited": try text(editedFinding { $0["frames"] = [0] }),
            "empty fix": try text(editedFinding { $0["fix"] = "" }),
            "evidence without a frame": try text(editedFinding { f in
                var ev = f["evidence"] as! [[String: Any]]
                ev[0]["frame"] = nil
                f["evidence"] = ev
            }),
            "inferred without an inferred basis": try text(editedFinding { $0["inferred"] = true }),
            "warnings count negative": try text(edited { r in
                var w = r["warnings"] as! [String: Any]
                w["count"] = -1
                r["warnings"] = w
            }),
            "two keys swapped": swapped,
        ]
        let pdusMutants: [String: String] = [
            "unchanged PDU line": connectLine,
            "PDU without frame": try text(connect.filter { $0.key != "frame" }),
            "undocumented PDU field": try text(connect.merging(["retransmitted": true]) { _, new in new }),
            "ICReq field on a CapsuleCmd": try text(connect.merging(["maxr2t": 0]) { _, new in new }),
            "completion field on a command": try text(connect.merging(["latency": 0.1, "commandFrame": 3]) { _, new in new }),
            "incomplete written as false": try text(connect.merging(["incomplete": false]) { _, new in new }),
            "digest status unknown": try text(connect.merging(["hdgst": "good"]) { _, new in new }),
            "unknown flag": try text(connect.merging(["flags": ["HDGSTF", "URGENT"]]) { _, new in new }),
            "null instead of absent": try text(connect.merging(["status": NSNull()]) { _, new in new }),
            "wrong header length for the type": try text(c2h.merging(["hlen": 72]) { _, new in new }),
            "transfer fields without cccid's companions": try text(c2h.filter { $0.key != "datal" }),
            "type not a PDU type": try text(c2h.merging(["type": "KeepAlive"]) { _, new in new }),
            "keys out of order": String(connectLine.replacingOccurrences(of: "{\"cid\":0,", with: "{").dropLast()) + ",\"cid\":0}",
        ]
        #expect(connectLine.hasPrefix("{\"cid\":0,"))
        // Files: one mutant each.
        var files: [String: String] = [:]
        for (kind, mutants) in [("report", reportMutants), ("pdus", pdusMutants)] {
            for (name, body) in mutants {
                let url = dir.appendingPathComponent("\(kind)-\(files.count).json")
                try Data(body.utf8).write(to: url)
                files[url.path] = name
            }
        }
        let v = try SchemaValidator.run(reports: files.keys.filter { $0.contains("/report-") }.sorted(),
                                        pdus: files.keys.filter { $0.contains("/pdus-") }.sorted())
        for (path, name) in files.sorted(by: { $0.value < $1.value }) {
            let flagged = (v.errors + v.unsorted).filter { $0.hasPrefix(path + ":") }
            if name.hasPrefix("unchanged") {
                #expect(flagged.isEmpty, "\(name): \(flagged)")
            } else {
                #expect(!flagged.isEmpty, "the validator accepted: \(name)")
            }
        }
    }
}
