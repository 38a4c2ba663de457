import Foundation
import Testing
@testable import NVMeTrace

/// Runs the built `nvmetrace` executable as a user would.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The executable sits next to the test bundle in SwiftPM's build directory.
func nvmetraceBinary() -> URL? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("nvmetrace")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}

/// Runs nvmetrace to its end; past `seconds` it is killed and the test fails (ChildProcess).
func runCLI(_ args: [String], stdin: Data? = nil, environment: [String: String] = [:], seconds: Double = 120) throws -> CLIRun {
    let binary = try #require(nvmetraceBinary(), "nvmetrace executable not found next to the tests")
    let r = try runChild(binary.path, args, environment: environment, stdin: stdin, seconds: seconds)
    return CLIRun(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

@Suite struct CLITests {
    @Test func jsonLinesCarryTheDocumentedFields() throws {
        let run = try runCLI(["pdus", "--format", "json", samplePath("A-persistent-discovery-kato0")])
        #expect(run.status == 0)
        let lines = run.stdout.split(separator: "\n")
        let truth = try GroundTruth(sample: "A-persistent-discovery-kato0")
        #expect(lines.count == truth.connections.reduce(0) { $0 + $1.pduTypes.values.reduce(0, +) })
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        for o in objects {
            for key in ["file", "frame", "firstFrame", "time", "connection", "src", "dst", "type", "plen"] {
                #expect(o[key] != nil, "missing \(key) in \(o)")
            }
        }
        // The first Connect as the ground truth has it: frame, time, KATO, QID, NQNs.
        let connect = try #require(objects.first { $0["fctype"] as? Int == 1 })
        let first = try #require(truth.connections.flatMap(\.connects).min { $0.frame < $1.frame })
        #expect(connect["frame"] as? Int == first.frame)
        #expect(abs((connect["time"] as? Double ?? 0) - (try #require(first.time))) < 1e-6)
        #expect(connect["kato"] as? Int == first.kato)
        #expect(connect["qid"] as? Int == first.qid)
        #expect(connect["cid"] != nil && connect["opcode"] as? Int == 0x7F && connect["name"] as? String == "Connect")
        #expect(connect["subnqn"] as? String == first.subnqn)
        #expect(connect["hostnqn"] as? String == first.hostnqn)
        let resp = try #require(objects.first { $0["type"] as? String == "CapsuleResp" })
        #expect(resp["status"] as? Int == 0)
        #expect(resp["latency"] is Double)
        #expect(resp["cid"] as? Int == connect["cid"] as? Int)
    }

    @Test func textOutputHasOneLinePerPDU() throws {
        let run = try runCLI(["pdus", samplePath("B-persistent-discovery-healthy")])
        #expect(run.status == 0)
        #expect(run.stderr.isEmpty)
        let lines = run.stdout.split(separator: "\n")
        let truth = try GroundTruth(sample: "B-persistent-discovery-healthy")
        #expect(lines.count == truth.totalPDUs)
        // Each Connect as the ground truth has it, and one line per Keep Alive it counts.
        for c in truth.connections.flatMap(\.connects) {
            #expect(lines.contains { $0.hasPrefix(String(format: "%7d", c.frame)) && $0.contains("Connect qid=\(c.qid) sqsize=\(c.sqsize) kato=\(c.kato)ms") },
                    "no line for \(c)")
        }
        #expect(lines.filter { $0.contains("Keep Alive") && $0.contains("CapsuleCmd") }.count == truth.connections.reduce(0) { $0 + $1.keepAlives })
    }

    @Test func standardInputAndSeveralFiles() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: samplePath("C-oneshot-discovery")))
        let run = try runCLI(["pdus", "--format", "json", "-"], stdin: data)
        #expect(run.status == 0)
        let c = try GroundTruth(sample: "C-oneshot-discovery").totalPDUs  // 76
        let b = try GroundTruth(sample: "B-persistent-discovery-healthy").totalPDUs  // 50
        #expect(run.stdout.split(separator: "\n").count == c)
        // Two files: frame numbers restart per file, as Wireshark numbers them.
        let two = try runCLI(["pdus", "--format", "json", samplePath("C-oneshot-discovery"), samplePath("B-persistent-discovery-healthy")])
        let objects = try two.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(objects.count == c + b)
        let firstOfB = try #require(objects.first { ($0["file"] as? String ?? "").hasSuffix("B-persistent-discovery-healthy.pcap") })
        #expect(firstOfB["type"] as? String == "ICReq")
        // B's frame numbers start again at 1: its ICReq is the frame tshark finds it in.
        let icreq = try Tshark.fields(samplePath("B-persistent-discovery-healthy"), filter: "nvme-tcp.type == 0", ["frame.number"])
        #expect(firstOfB["frame"] as? Int == icreq.first.flatMap { Int($0[0]) })
    }

    @Test func truncatedCaptureReportsFileAndFrameAndExits2AfterDecoding() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: samplePath("A-persistent-discovery-kato0")))
        let url = temporaryFile("truncated.pcap")
        try full.prefix(full.count - 30).write(to: url)  // cut inside the last record
        let run = try runCLI(["pdus", "--format", "json", url.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains(url.path))
        #expect(run.stderr.contains("frame 231"))
        // Everything decoded before the cut is still reported: every PDU tshark found (145), as
        // the frame cut, 231, is a RST without one (checked with tshark).
        #expect(run.stdout.split(separator: "\n").count == (try GroundTruth(sample: "A-persistent-discovery-kato0")).totalPDUs)
    }

    @Test func unreadableFilesExit2WithAClearMessage() throws {
        let missing = try runCLI(["pdus", "/nonexistent/capture.pcap"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/capture.pcap: cannot open capture"))
        #expect(missing.stderr.contains("No such file or directory"))
        let url = temporaryFile("garbage.pcap")
        try Data("this is not a capture file at all".utf8).write(to: url)
        let garbage = try runCLI(["pdus", url.path])
        #expect(garbage.status == 2)
        #expect(garbage.stderr.contains(url.path))
        #expect(!garbage.stderr.contains("Fatal error"))
    }

    @Test func helpAndVersion() throws {
        let help = try runCLI(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("pdus"))
        #expect(help.stdout.contains("Examples"))
        let version = try runCLI(["--version"])
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == NVMeTraceVersion.string)
    }
}
