import Foundation
@testable import NVMeTrace
import NVMeTraceSynth

/// One synthetic capture per way a rule fires, shared by the rule-edge tests and the test that
/// runs every printed display filter through tshark. Each names the rule it must set off and the
/// severity README documents for that rule (not the rule's own `severity`).
struct RuleScenario: CustomStringConvertible, Sendable {
    var name: String
    /// The rule this capture must set off.
    var rule: String
    /// Options the rule needs (data digests are verified only on request).
    var arguments: [String] = []
    var build: @Sendable () -> SynthCapture

    var description: String { name }

    var options: AnalyzerOptions {
        var o = AnalyzerOptions()
        o.verifyDataDigests = arguments.contains("--verify-data-digests")
        return o
    }

    /// An admin queue with KATO `kato` ms and no TBKAS, Keep Alives at `keepAlives` seconds.
    /// `start`: seconds the Connect comes at (Keep Alive times are after it).
    static func admin(_ s: SynthCapture, kato: UInt32 = 10_000, keepAlives: [Double], start: Double = 0) -> NVMeScript {
        let admin = s.connection()
        admin.connect(at: s.t(start), kato: kato, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.identify(at: s.t(start + 0.01), cntrltype: 1, tbkas: false)
        for k in keepAlives { admin.keepAlive(at: s.t(start + k)) }
        return admin
    }

    /// A persistent discovery association with KATO 0 (a discovery log read, then an AER left
    /// outstanding), torn down by the target `teardown` seconds after its Connect when given.
    static func kato0Discovery(_ s: SynthCapture, hostnqn: String = SynthCapture.hostnqn, at start: Double,
                               teardown: Double?) {
        let c = s.connection(port: 8009)
        c.connect(at: s.t(start), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: hostnqn)
        c.discoveryLog(at: s.t(start + 0.1))
        c.asyncEventRequest(at: s.t(start + 0.2))
        if let teardown { c.tcp.fin(fromClient: false, at: s.t(start + teardown)) }
    }

    static let all: [RuleScenario] = [
        RuleScenario(name: "expiry ending in FIN", rule: "keep-alive-expired") {
            let s = SynthCapture()
            admin(s, keepAlives: [5, 10, 15, 20]).tcp.fin(fromClient: false, at: s.t(30))
            return s
        },
        RuleScenario(name: "expiry ending in RST", rule: "keep-alive-expired") {
            let s = SynthCapture()
            admin(s, keepAlives: [5, 10, 15, 20]).tcp.rst(fromClient: false, at: s.t(31))
            return s
        },
        RuleScenario(name: "expiry ending in a C2HTermReq", rule: "keep-alive-expired") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [5, 10, 15, 20])
            a.termReq(fromHost: false, fes: 1, at: s.t(32))
            a.tcp.fin(fromClient: false, at: s.t(32.001))
            return s
        },
        RuleScenario(name: "persistent discovery with KATO 0", rule: "discovery-kato-zero") {
            let s = SynthCapture()
            kato0Discovery(s, at: 0, teardown: 241)
            return s
        },
        RuleScenario(name: "overdue at capture end", rule: "keep-alive-overdue") {
            let s = SynthCapture()
            _ = admin(s, kato: 5_000, keepAlives: [2.5, 5])
            // An unrelated packet 15 s after the last Keep Alive ends the capture.
            s.packets.append((s.t(20), PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
            return s
        },
        RuleScenario(name: "gap of 8 s at KATO 10 s", rule: "keep-alive-margin") {
            let s = SynthCapture()
            admin(s, keepAlives: [5, 10, 18, 23]).tcp.fin(fromClient: true, at: s.t(24))
            return s
        },
        RuleScenario(name: "three KATO 0 associations torn down", rule: "reconnect-loop") {
            let s = SynthCapture()
            for i in 0..<3 { kato0Discovery(s, at: Double(i) * 250, teardown: i < 2 ? 241 : nil) }
            return s
        },
        RuleScenario(name: "Connect rejected", rule: "connect-rejected") {
            let s = SynthCapture()
            let c = s.connection()
            // SCT 1 (command specific) SC 0x82: Connect Invalid Parameters.
            c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, status: 0x182)
            c.tcp.fin(fromClient: true, at: s.t(0.1))
            return s
        },
        RuleScenario(name: "H2CTermReq from the host", rule: "termination-request") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [5])
            // FES 4: Data Transfer Out of Range (NVMe/TCP 1.1 §3.6.2.9).
            a.termReq(fromHost: true, fes: 4, at: s.t(6))
            a.tcp.fin(fromClient: true, at: s.t(6.001))
            return s
        },
        RuleScenario(name: "data digest mismatch", rule: "digest-error", arguments: ["--verify-data-digests"]) {
            let s = SynthCapture()
            let io = s.connection()
            io.ddgst = true
            io.connect(at: s.t(0), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
            io.read(at: s.t(1), bytes: 4096)
            // A read whose data is flipped after its digest was computed.
            let cmd = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 77, nsid: 1, cdw12: 7))
            io.raw(fromHost: true, cmd, at: s.t(2))
            var data = PDUBuilder.c2hData(cid: 77, data: [UInt8](repeating: 0x33, count: 4096), ddgst: true)
            data[100] ^= 0x01
            io.raw(fromHost: false, data + PDUBuilder.capsuleResp(cid: 77), at: s.t(2.001))
            io.tcp.fin(fromClient: true, at: s.t(3))
            return s
        },
        RuleScenario(name: "read unanswered past the I/O timeout", rule: "command-timeout") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [5, 10, 15, 20, 25, 30])
            let io = s.connection()
            io.connect(at: s.t(0.02), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
            io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 92, nsid: 1, cdw12: 7)), at: s.t(1))
            io.tcp.fin(fromClient: true, at: s.t(31.5))
            a.tcp.fin(fromClient: true, at: s.t(31.6))
            return s
        },
        RuleScenario(name: "reads outstanding when the target closes", rule: "commands-lost") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [1, 2])
            let io = s.connection()
            io.connect(at: s.t(0.02), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
            io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 40, nsid: 1, cdw12: 7)), at: s.t(2.5))
            io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x01, cid: 41, nsid: 1, cdw12: 7)), at: s.t(2.6))
            io.tcp.fin(fromClient: false, at: s.t(3))
            a.tcp.fin(fromClient: false, at: s.t(3.1))
            return s
        },
        RuleScenario(name: "discovery log change, teardown and reconnect", rule: "async-event") {
            let s = SynthCapture()
            let d = s.connection(port: 8009)
            d.connect(at: s.t(0), kato: 30_000, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
            d.discoveryLog(at: s.t(0.1))
            // Notice (2), Discovery Log Page Change (F0h), log page 70h.
            d.asyncEvent(at: s.t(0.2), completed: s.t(5), type: 2, info: 0xF0, logPage: 0x70)
            d.discoveryLog(at: s.t(5.001))
            d.tcp.fin(fromClient: false, at: s.t(5.01))
            let again = s.connection(port: 8009)
            again.connect(at: s.t(25), kato: 30_000, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
            again.tcp.fin(fromClient: true, at: s.t(26))
            return s
        },
        RuleScenario(name: "target closes while Keep Alives are on time", rule: "target-teardown") {
            let s = SynthCapture()
            admin(s, keepAlives: [5, 10, 15]).tcp.fin(fromClient: false, at: s.t(17))
            return s
        },
        RuleScenario(name: "SYNs answered by RST", rule: "connect-refused") {
            let s = SynthCapture()
            for k in 0..<3 { s.connection().tcp.refusedSYN(at: s.t(Double(k) * 10)) }
            return s
        },
        RuleScenario(name: "SYNs never answered", rule: "connect-refused") {
            let s = SynthCapture()
            s.connection().tcp.unansweredSYN(at: s.t(0), retries: 3)
            s.connection().tcp.unansweredSYN(at: s.t(20), retries: 1)
            return s
        },
        RuleScenario(name: "target teardown, refused reconnects, a new association", rule: "outage") {
            let s = SynthCapture()
            admin(s, keepAlives: [5, 10]).tcp.fin(fromClient: false, at: s.t(12))
            s.connection().tcp.refusedSYN(at: s.t(22))
            _ = admin(s, keepAlives: [5], start: 32)
            return s
        },
        RuleScenario(name: "retransmissions", rule: "tcp-loss") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [5, 10, 15])
            let ka = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 500))
            a.raw(fromHost: true, ka, at: s.t(16))
            for k in 1...3 { a.tcp.resend(fromClient: true, ka, at: s.t(16 + 0.2 * Double(k))) }
            a.tcp.fin(fromClient: true, at: s.t(18))
            return s
        },
        RuleScenario(name: "zero window", rule: "tcp-loss") {
            let s = SynthCapture()
            let a = admin(s, keepAlives: [5, 10, 15])
            a.tcp.zeroWindow(fromClient: false, at: s.t(15.5), until: s.t(18.5))
            a.tcp.fin(fromClient: true, at: s.t(19))
            return s
        },
        RuleScenario(name: "Keep Alive failed", rule: "keep-alive-failed") {
            let s = SynthCapture()
            let c = s.connection()
            c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
            c.keepAlive(at: s.t(1), status: 0x19)  // Keep Alive Timer Expired
            c.tcp.fin(fromClient: true, at: s.t(2))
            return s
        },
    ]
}

/// Severity of each rule as README's rules table documents it.
func documentedSeverities() throws -> [String: String] {
    let readme = try String(contentsOf: samplesDirectory.deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
    var out: [String: String] = [:]
    for line in readme.split(separator: "\n") where line.hasPrefix("| `") {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 3 else { continue }
        out[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
    }
    return out
}
