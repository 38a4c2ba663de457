import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// `command-timeout` and `commands-lost` at their edges: the timeout to the microsecond, what
/// waits by design, what the capture cannot show, and a command delivered after its completion.
@Suite struct CommandRuleTests {
    static func report(_ s: SynthCapture, config: RuleConfig = RuleConfig()) -> Report {
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let analysis = CaptureAnalysis()
        analysis.read(paths: [path])
        return analysis.report(engine: RuleEngine(config: config))
    }

    /// An I/O queue with one read sent at 1 s, closed by the host `after` seconds later.
    static func readThenHostClose(after: Double) -> SynthCapture {
        let s = SynthCapture()
        let io = s.connection()
        io.connect(at: s.t(0), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 0x105C, nsid: 1, cdw12: 7)), at: s.t(1))
        io.tcp.fin(fromClient: true, at: s.t(1) + Int64((after * 1e9).rounded()))
        return s
    }

    @Test func theIOTimeoutToTheMicrosecond() throws {
        let at = Self.report(Self.readThenHostClose(after: 30))
        let f = try #require(at.findings("command-timeout").first)
        #expect(f.severity == .error && f.connection == 0)
        #expect(f.title == "I/O command timeout: Read (CID 4188) on 10.0.0.2:40001 → 10.0.0.1:4420 unanswered for 30 s (host I/O timeout 30 s)")
        #expect(f.evidence.map(\.what) == ["Read (CID 4188) sent", "host teardown (FIN)"])
        let before = Self.report(Self.readThenHostClose(after: 30 - 1e-6))
        #expect(before.findings("command-timeout").isEmpty)
        // Lost with its queue either way.
        #expect(at.findings("commands-lost").count == 1 && before.findings("commands-lost").count == 1)
        #expect(before.findings("commands-lost")[0].title == "1 command outstanding when 10.0.0.2:40001 → 10.0.0.1:4420 closed; the oldest, Read (CID 4188), sent 30.00 s before")
    }

    @Test func theTimeoutsAreTheHostsAndConfigurable() throws {
        var config = RuleConfig()
        config.ioTimeoutSeconds = 40
        #expect(Self.report(Self.readThenHostClose(after: 35), config: config).findings("command-timeout").isEmpty)
        config.ioTimeoutSeconds = 5
        #expect(Self.report(Self.readThenHostClose(after: 6), config: config).findings("command-timeout").count == 1)
        // The admin queue has its own (60 s by default).
        let s = SynthCapture()
        let a = s.connection()
        a.connect(at: s.t(0), kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        a.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x06, cid: 9, cdw10: 1)), at: s.t(1))
        a.tcp.fin(fromClient: true, at: s.t(50))
        let r = Self.report(s)
        #expect(r.findings("command-timeout").isEmpty)
        #expect(r.findings("commands-lost").first?.title.contains("Identify (CID 9)") == true)
    }

    /// Asynchronous Event Requests wait by design: left outstanding at a close, nothing.
    @Test func anOutstandingAERIsNotLost() {
        let s = SynthCapture()
        let a = s.connection()
        a.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        a.asyncEventRequest(at: s.t(0.1))
        a.keepAlive(at: s.t(5))
        a.tcp.fin(fromClient: true, at: s.t(100))
        let r = Self.report(s)
        #expect(r.findings("command-timeout").isEmpty && r.findings("commands-lost").isEmpty)
        #expect(!r.unjudged.contains { $0.rule == "command-timeout" || $0.rule == "commands-lost" })
    }

    /// Controller→host bytes lost after the read was sent: its completion may have been there.
    /// Not judged, with the reason; never a finding.
    @Test func aCompletionTheCaptureMayHaveMissed() throws {
        let s = SynthCapture()
        let io = s.connection()
        io.connect(at: s.t(0), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 7, nsid: 1, cdw12: 7)), at: s.t(1))
        // The target's segment is lost before the capture point (the host acknowledges it).
        io.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: 7), at: s.t(1.001), drop: [0])
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 8)), at: s.t(2))
        io.tcp.fin(fromClient: true, at: s.t(40))
        let r = Self.report(s)
        #expect(r.findings("command-timeout").isEmpty && r.findings("commands-lost").isEmpty, "\(r.findings.map(\.title))")
        let reasons = r.unjudged.filter { $0.connection == 0 }.map { "\($0.rule): \($0.reason)" }
        #expect(reasons.contains { $0.hasPrefix("command-timeout: a command waited") && $0.contains("went missing") }, "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("commands-lost: ") && $0.contains("went missing") }, "\(reasons)")
    }

    /// More waiting than the model names one by one (`Analyzer.waitingCommandsKept`): the count
    /// is all of them.
    @Test func notJudgedCountsEveryWaitingCommand() {
        let s = SynthCapture()
        let io = s.connection()
        io.connect(at: s.t(0), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        for k in 0..<12 {
            io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: UInt16(10 + k), nsid: 1, cdw12: 7)),
                   at: s.t(1 + Double(k) / 100))
        }
        io.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: 99), at: s.t(2), drop: [0])
        io.tcp.fin(fromClient: true, at: s.t(3))
        let r = Self.report(s)
        #expect(r.findings("commands-lost").isEmpty)
        let reason = r.unjudged.first { $0.rule == "commands-lost" }?.reason ?? ""
        #expect(reason.hasPrefix("12 command(s) had no completion"), "\(reason)")
    }

    /// A command whose segment sat behind a hole in the host's stream reaches the decoder after
    /// its own completion (with its own, earlier frame): answered, not waiting.
    @Test func aCommandDeliveredAfterItsCompletionWasAnswered() {
        let s = SynthCapture()
        let io = s.connection()
        io.connect(at: s.t(0), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        // A write's capsule lost before the capture point, then a read behind it, answered.
        io.tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x01, cid: 5, nsid: 1, cdw12: 7)),
                    at: s.t(1), drop: [0], ackAfter: false)
        io.tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 6, nsid: 1, cdw12: 7)), at: s.t(1.001))
        io.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: 6), at: s.t(1.002))
        io.tcp.fin(fromClient: true, at: s.t(45))
        let r = Self.report(s)
        #expect(r.findings("command-timeout").isEmpty && r.findings("commands-lost").isEmpty, "\(r.findings.map(\.title))")
    }

    /// The CLI's options reach the rule, and nonsense is refused.
    @Test func timeoutOptionsOnTheCommandLine() throws {
        let k2 = samplePath("K2-io-timeout-read-host-error-recovery")
        func rules(_ extra: [String]) throws -> [String] {
            let run = try runCLI(["--format", "json", "--fail-on", "none"] + extra + [k2])
            #expect(run.status == 0, "\(run.stderr)")
            let doc = try jsonDocument(run.stdout)
            return (doc["findings"] as? [[String: Any]] ?? []).compactMap { $0["rule"] as? String }
                .filter { $0.hasPrefix("command") }.sorted()
        }
        #expect(try rules([]) == ["command-timeout", "commands-lost"])
        // The read waited 31.74 s: a 32 s timeout was not reached; lost with its queue anyway.
        #expect(try rules(["--io-timeout", "32"]) == ["commands-lost"])
        #expect(try rules(["--io-timeout", "31", "--admin-timeout", "1"]) == ["command-timeout", "commands-lost"])
        for bad in [["--io-timeout", "0"], ["--admin-timeout=-5"], ["--io-timeout", "nan"]] {
            let run = try runCLI(bad + [k2])
            #expect(run.status == 64 || run.status == 2, "\(bad): \(run.status)")
            #expect(run.stderr.contains("must be a positive number of seconds"), "\(bad): \(run.stderr)")
        }
    }
}

