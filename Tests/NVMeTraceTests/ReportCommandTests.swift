import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// What README's Usage section promises of the report command, run as a user runs it: several
/// files as one continuing capture, standard input, exit status 2 on a file cut inside a record
/// (after reporting what was read), `--fail-on`, and no report at all when nothing could be read.
/// Expected values come from the samples' ground truth (tshark and the kernel logs) or from how a
/// capture was built, not from nvmetrace.
@Suite struct ReportCommandTests {
    static func json(_ run: CLIRun) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "stdout: \(run.stdout.prefix(500)) stderr: \(run.stderr)")
    }

    static func connection(_ doc: [String: Any], src: String) -> [String: Any]? {
        (doc["connections"] as? [[String: Any]])?.first { $0["src"] as? String == src }
    }

    static func findings(_ doc: [String: Any], _ rule: String) -> [[String: Any]] {
        (doc["findings"] as? [[String: Any]] ?? []).filter { $0["rule"] as? String == rule }
    }

    /// Whether a finding cites `frame` of `file`.
    static func cites(_ finding: [String: Any], file: String, frame: Int) -> Bool {
        (finding["evidence"] as? [[String: Any]] ?? []).contains { $0["file"] as? String == file && $0["frame"] as? Int == frame }
    }

    /// Sample A cut into three files (frames 1-50, 51-150, 151-231), as a `tcpdump -C` rotation
    /// cuts a capture: connection 0 (frames 3-55) runs from the first file into the second,
    /// connection 1 (60-231) from the second into the third. Read together they are the capture
    /// the ground truth describes, and a frame is numbered within its own file.
    @Test func severalFilesAreOneContinuingCapture() throws {
        let sample = "A-persistent-discovery-kato0"
        let whole = SampleCaptures.a
        let truth = try GroundTruth(sample: sample)
        let labels = try FindingsGroundTruthTests.labels(sample)
        #expect(whole.packets.count == truth.packets)
        let cuts = [0, 50, 150, whole.packets.count]
        let parts = (0..<3).map { i in
            writeTemporaryCapture(StoredCapture(linkType: whole.linkType, packets: Array(whole.packets[cuts[i]..<cuts[i + 1]])),
                                  name: "part\(i + 1)")
        }
        defer { parts.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        /// Original frame number → (file, frame number in that file).
        func place(_ frame: Int) -> (String, Int) {
            let i = (0..<3).last { cuts[$0] < frame }!
            return (parts[i], frame - cuts[i])
        }

        let run = try runCLI(["--format", "json", "--fail-on", "none"] + parts)
        #expect(run.status == 0, "\(run.stderr)")
        let doc = try Self.json(run)
        let capture = try #require(doc["capture"] as? [String: Any])
        #expect(capture["frames"] as? Int == truth.packets)
        #expect((capture["files"] as? [[String: Any]])?.map { $0["frames"] as? Int } == [50, 100, 81])
        // One connection per labelled connection: none split in two at a file boundary.
        #expect((doc["connections"] as? [[String: Any]])?.count == labels.count)
        for l in labels {
            let c = try #require(Self.connection(doc, src: l.host), "\(l.host)")
            let t = try #require(truth.connections.first { $0.host == l.host })
            #expect(c["keepAlives"] as? Int == l.keepAlives, "\(l.host)")
            #expect(c["closedBy"] as? String == l.closedBy, "\(l.host)")
            let id = try #require(c["id"] as? Int)
            // discovery-kato-zero cites the Connect where that file has it.
            let kz = Self.findings(doc, "discovery-kato-zero").filter { $0["connection"] as? Int == id }
            #expect(kz.count == (l.flagKATO0 ? 1 : 0), "\(l.host)")
            if let f = kz.first {
                let (file, frame) = place(t.connects[0].frame)
                #expect(Self.cites(f, file: file, frame: frame), "\(l.host): Connect at \(file) frame \(frame); \(f["evidence"] ?? "")")
            }
            // keep-alive-expired cites the target's FIN, which tshark timed: in the second file.
            let ke = Self.findings(doc, "keep-alive-expired").filter { ($0["connections"] as? [Int])?.contains(id) == true }
            #expect(ke.count == (l.tornDownByExpiry ? 1 : 0), "\(l.host)")
            if let f = ke.first, let closeT = t.closeTime {
                let t0 = whole.packets[0].timeNs
                let fin = try #require(whole.packets.firstIndex { abs(Double($0.timeNs - t0) / 1e9 - closeT) < 1e-5 }) + 1
                let (file, frame) = place(fin)
                #expect(file == parts[1])
                #expect(Self.cites(f, file: file, frame: frame), "\(l.host): FIN at \(file) frame \(frame); \(f["evidence"] ?? "")")
            }
        }
    }

    /// `-` reads the capture from standard input: sample E piped in gives its ground truth.
    @Test func standardInputIsACapture() throws {
        let sample = "E-keepalive-stall"
        let truth = try GroundTruth(sample: sample)
        let labels = try FindingsGroundTruthTests.labels(sample)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: samplePath(sample)))
        let run = try runCLI(["--format", "json", "-"], stdin: bytes)
        #expect(run.status == 1, "\(run.stderr)")  // E's keep-alive expiry is an error
        let doc = try Self.json(run)
        #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == truth.packets)
        #expect((doc["connections"] as? [[String: Any]])?.count == labels.count)
        let expiredIDs = Set(Self.findings(doc, "keep-alive-expired").flatMap { $0["connections"] as? [Int] ?? [] })
        for l in labels {
            let c = try #require(Self.connection(doc, src: l.host), "\(l.host)")
            #expect(c["keepAlives"] as? Int == l.keepAlives, "\(l.host)")
            #expect(c["closedBy"] as? String == l.closedBy, "\(l.host)")
            #expect(expiredIDs.contains(c["id"] as? Int ?? -1) == l.tornDownByExpiry, "\(l.host)")
        }
        // The expiry finding cites the host's last Keep Alive, as tshark timed it.
        let stalled = try #require(labels.first { $0.flagStoppedThenTeardown })
        let lastKA = try #require(truth.connections.first { $0.host == stalled.host }?.keepAliveLast)
        let finding = try #require(Self.findings(doc, "keep-alive-expired").first)
        #expect((finding["evidence"] as? [[String: Any]] ?? []).contains { abs(($0["time"] as? Double ?? -1) - lastKA) < 1e-5 })
    }

    /// A file cut inside its last record: exit 2, the error names file and frame, and the report
    /// of everything before the cut is still printed.
    @Test func fileEndingMidRecordExits2AfterTheReport() throws {
        let sample = "A-persistent-discovery-kato0"
        let truth = try GroundTruth(sample: sample)
        let labels = try FindingsGroundTruthTests.labels(sample)
        let full = try Data(contentsOf: URL(fileURLWithPath: samplePath(sample)))
        let url = temporaryFile("cut.pcap")
        try full.prefix(full.count - 30).write(to: url)  // inside the last record (frame 231)
        defer { try? FileManager.default.removeItem(at: url) }
        let run = try runCLI(["--format", "json", url.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains(url.path) && run.stderr.contains("frame \(truth.packets)"), "\(run.stderr)")
        let doc = try Self.json(run)
        #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == truth.packets - 1)
        #expect(((doc["warnings"] as? [String: Any])?["readErrors"] as? [Any])?.count == 1)
        // Both KATO 0 discovery connections are flagged: their Connects precede the cut.
        for l in labels where l.flagKATO0 {
            let c = try #require(Self.connection(doc, src: l.host))
            #expect(Self.findings(doc, "discovery-kato-zero").contains { $0["connection"] as? Int == c["id"] as? Int }, "\(l.host)")
        }
    }

    /// `--fail-on` sets the lowest severity that makes the exit status 1. The capture below has
    /// one warning by construction (an association with KATO 5 s silent for the last 15 s:
    /// keep-alive-overdue, a warning in README's table) and nothing else.
    @Test func failOnThresholds() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 5_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.keepAlive(at: s.t(2.5))
        admin.keepAlive(at: s.t(5))
        s.packets.append((s.t(20), PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
        let warningOnly = s.write()
        defer { try? FileManager.default.removeItem(atPath: warningOnly) }
        let doc = try Self.json(try runCLI(["--format", "json", warningOnly]))
        #expect((doc["findings"] as? [[String: Any]])?.map { "\($0["rule"] ?? "") \($0["severity"] ?? "")" } == ["keep-alive-overdue warning"])

        let expected: [(String, String, Int32)] = [
            (warningOnly, "default", 0), (warningOnly, "error", 0), (warningOnly, "warning", 1),
            (warningOnly, "info", 1), (warningOnly, "none", 0),
            // No finding at all (ground truth: nothing to flag): 0 at every threshold.
            (samplePath("B-persistent-discovery-healthy"), "info", 0),
            (samplePath("B-persistent-discovery-healthy"), "warning", 0),
            // An error is at or above every threshold but none.
            (samplePath("E-keepalive-stall"), "warning", 1), (samplePath("E-keepalive-stall"), "info", 1),
            (samplePath("E-keepalive-stall"), "none", 0),
        ]
        for (file, threshold, status) in expected {
            let run = try runCLI((threshold == "default" ? [] : ["--fail-on", threshold]) + [file])
            #expect(run.status == status, "--fail-on \(threshold) \(file): \(run.stderr)")
            #expect(!run.stdout.isEmpty)
        }
    }

    /// When not one packet could be read there is no report, in any format, on standard output
    /// or in -o's file: only the error (as tcpdump and tshark do). "0 frames … No findings." would
    /// read as a result.
    @Test(arguments: ["text", "json", "markdown", "html"])
    func nothingReadMeansNoReport(format: String) throws {
        let garbage = temporaryFile("garbage.pcap")
        try Data("this is not a capture file at all".utf8).write(to: garbage)
        // A pcap file header and the first 10 bytes of a record header.
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: samplePath("B-persistent-discovery-healthy"))))
        let cutFirst = temporaryFile("cut-first.pcap")
        try Data(b.prefix(24 + 10)).write(to: cutFirst)
        defer { [garbage, cutFirst].forEach { try? FileManager.default.removeItem(at: $0) } }
        let cases: [([String], String)] = [
            (["/nonexistent/capture.pcap"], "/nonexistent/capture.pcap: cannot open capture"),
            ([garbage.path], garbage.path),
            ([cutFirst.path], "ends in the middle of frame 1"),
            (["/nonexistent/a.pcap", "/nonexistent/b.pcap"], "/nonexistent/b.pcap: cannot open capture"),
        ]
        for (files, message) in cases {
            let run = try runCLI(["--format", format] + files)
            #expect(run.status == 2, "\(files)")
            #expect(run.stdout.isEmpty, "\(format) \(files): \(run.stdout.prefix(300))")
            #expect(run.stderr.contains(message), "\(run.stderr)")
            let out = temporaryFile("report.out")
            let toFile = try runCLI(["--format", format, "-o", out.path] + files)
            #expect(toFile.status == 2)
            #expect(!FileManager.default.fileExists(atPath: out.path), "\(format) \(files): -o file written")
        }
    }

    /// Where something was read, its report is printed and the error follows (exit 2); an empty
    /// but well-formed capture is a result (0 frames, no findings, exit 0).
    @Test func partReadStillReports() throws {
        let healthy = samplePath("B-persistent-discovery-healthy")
        let truth = try GroundTruth(sample: "B-persistent-discovery-healthy")
        let run = try runCLI(["--format", "json", "/nonexistent/capture.pcap", healthy])
        #expect(run.status == 2)
        #expect(run.stderr.contains("/nonexistent/capture.pcap: cannot open capture"))
        let doc = try Self.json(run)
        #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == truth.packets)
        #expect(((doc["warnings"] as? [String: Any])?["readErrors"] as? [Any])?.count == 1)

        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: healthy)))
        let empty = temporaryFile("empty.pcap")
        try Data(b.prefix(24)).write(to: empty)
        defer { try? FileManager.default.removeItem(at: empty) }
        let none = try runCLI([empty.path])
        #expect(none.status == 0, "\(none.stderr)")
        #expect(none.stdout.contains("0 frames") && none.stdout.contains("No findings."), "\(none.stdout)")
    }
}
