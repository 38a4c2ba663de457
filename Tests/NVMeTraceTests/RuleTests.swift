import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Each rule's edges on synthetic captures built through the whole pipeline.
@Suite struct RuleTests {
    /// Admin queue with KATO 10 s, Keep Alives every 5 s up to `lastKA`, target FIN at `teardown`.
    func stall(lastKA: Double, teardown: Double) -> Report {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.identify(at: s.t(0.01), cntrltype: 1, tbkas: false)
        var k = 5.0
        while k <= lastKA { admin.keepAlive(at: s.t(k)); k += 5 }
        admin.tcp.fin(fromClient: false, at: s.t(teardown))
        return s.report()
    }

    @Test func silenceOfExactlyKATOIsAnExpiry() throws {
        let r = stall(lastKA: 20, teardown: 30)
        let f = try #require(r.findings("keep-alive-expired").first)
        #expect(f.severity == .error)
        #expect(f.detail.contains("10 s of silence"))
        // Evidence: the last Keep Alive (t=20) and the FIN (t=30).
        #expect(f.evidence.map { r.relative($0.ref) }.contains { abs($0 - 20) < 1e-6 })
        #expect(f.evidence.map { r.relative($0.ref) }.contains { abs($0 - 30) < 1e-6 })
    }

    @Test func teardownJustBeforeKATOIsNotAnExpiry() {
        let r = stall(lastKA: 20, teardown: 29.999)
        #expect(r.findings("keep-alive-expired").isEmpty)
    }

    @Test func teardownWithKeepAlivesOnTimeIsNotAnExpiry() {
        // An administrative teardown 3 s after a Keep Alive: the target's doing, not a timeout.
        let r = stall(lastKA: 20, teardown: 23)
        #expect(r.findings.filter { $0.severity >= .warning }.map(\.rule) == ["target-teardown"])
        #expect(r.findings("target-teardown").first?.detail.contains("was 3 s before it") == true)
    }

    @Test func katoUnknownWhenTheCaptureStartsMidConnection() throws {
        let s = SynthCapture()
        let admin = s.connection()
        // No handshake, no Connect: the capture starts with Keep Alives already flowing.
        admin.keepAlive(at: s.t(0))
        admin.keepAlive(at: s.t(5))
        admin.tcp.fin(fromClient: false, at: s.t(200))
        let r = s.report()
        #expect(r.findings("keep-alive-expired").isEmpty)
        let u = try #require(r.unjudged.first { $0.rule == "keep-alive-expired" })
        #expect(u.reason.contains("KATO"))
        #expect(r.model.connections.first?.connect == nil)
        #expect(r.model.connections.first?.keepAlives.count == 2)
    }

    /// Under TBKAS, I/O commands restart the timer: no Keep Alive for 30 s is healthy while
    /// reads complete every 2 s. Without TBKAS the same traffic leaves a 35 s Keep Alive gap.
    @Test(arguments: [true, false])
    func trafficBasedKeepAlive(tbkas: Bool) {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.identify(at: s.t(0.01), cntrltype: 1, tbkas: tbkas)
        admin.keepAlive(at: s.t(4))
        let io = s.connection()
        io.connect(at: s.t(0.1), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 1)
        var t = 1.0
        while t < 40 { io.read(at: s.t(t), bytes: 8192); t += 2 }
        admin.keepAlive(at: s.t(39))
        admin.tcp.fin(fromClient: true, at: s.t(41))
        io.tcp.fin(fromClient: true, at: s.t(41))
        let r = s.report()
        #expect(r.model.controllers.count == 1)
        #expect(r.model.controllers[0].ioConnections == [1])
        #expect(r.model.controllers[0].tbkas == tbkas)
        #expect(r.findings("keep-alive-expired").isEmpty)
        if tbkas {
            #expect(r.findings.isEmpty, "\(r.findings.map(\.title))")
        } else {
            let f = r.findings("keep-alive-margin")
            #expect(f.count == 1)
            #expect(f.first?.title.contains("35 s") == true)
        }
    }

    @Test func reconnectWithNonZeroKATOAfterAKATOZeroOne() throws {
        let s = SynthCapture()
        let first = s.connection(port: 8009)
        first.connect(at: s.t(0), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
        first.discoveryLog(at: s.t(0.1))
        first.asyncEventRequest(at: s.t(0.2))
        first.tcp.fin(fromClient: false, at: s.t(240))
        let second = s.connection(port: 8009)
        second.connect(at: s.t(250), kato: 30_000, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
        second.discoveryLog(at: s.t(250.1))
        for k in stride(from: 265.0, through: 355, by: 15) { second.keepAlive(at: s.t(k)) }
        second.tcp.fin(fromClient: true, at: s.t(360))
        let r = s.report()
        let kz = r.findings("discovery-kato-zero")
        #expect(kz.count == 1)
        let f = try #require(kz.first)
        #expect(f.connection == 0)
        #expect(f.detail.contains("carries KATO 30000 ms"))
        #expect(f.detail.contains("outstanding"))
        #expect(r.model.connections[1].persistence.contains(.reconnect))
        #expect(r.model.connections[1].persistence.contains(.sendsKeepAlives))
        // The KATO 0 association's teardown is a (120 s) keep-alive expiry; the second is healthy.
        #expect(r.findings("keep-alive-expired").map(\.connection) == [0])
        #expect(r.findings("reconnect-loop").isEmpty)
    }

    @Test func oneShotDiscoveryIsNotPersistent() {
        let s = SynthCapture()
        let c = s.connection(port: 8009)
        c.connect(at: s.t(0), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
        c.discoveryLog(at: s.t(0.05))
        c.tcp.fin(fromClient: true, at: s.t(0.3))
        let r = s.report()
        #expect(r.findings.isEmpty)
        #expect(r.model.connections[0].isDiscovery && !r.model.connections[0].isPersistent)
    }

    @Test func discoveryKATOOptionChangesTheEffectiveTimeout() {
        let s = SynthCapture()
        let c = s.connection(port: 8009)
        c.connect(at: s.t(0), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
        c.discoveryLog(at: s.t(0.05))
        c.tcp.fin(fromClient: false, at: s.t(100))
        #expect(s.report().findings("keep-alive-expired").isEmpty)  // 100 s < 120 s default
        var config = RuleConfig()
        config.discoveryKATOms = 60_000
        #expect(s.report(config: config).findings("keep-alive-expired").count == 1)
    }

    @Test func overdueAtCaptureEnd() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 5_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.keepAlive(at: s.t(2.5))
        admin.keepAlive(at: s.t(5))
        // An unrelated packet 15 s after the last Keep Alive ends the capture.
        s.packets.append((s.t(20), PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
        let r = s.report()
        let f = try #require(r.findings("keep-alive-overdue").first)
        #expect(f.severity == .warning)
        #expect(f.title.contains("silent 15 s"))
        #expect(r.findings("keep-alive-expired").isEmpty)
    }

    @Test func reconnectLoop() throws {
        let s = SynthCapture()
        for i in 0..<4 {
            let c = s.connection(port: 8009)
            let start = Double(i) * 250
            c.connect(at: s.t(start), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
            c.discoveryLog(at: s.t(start + 0.1))
            c.asyncEventRequest(at: s.t(start + 0.2))
            if i < 3 { c.tcp.fin(fromClient: false, at: s.t(start + 241)) }
        }
        let r = s.report()
        let loop = try #require(r.findings("reconnect-loop").first)
        #expect(loop.title.contains("4 associations") && loop.title.contains("3 torn down"))
        #expect(loop.connections == [0, 1, 2, 3])
        #expect(r.findings("discovery-kato-zero").count == 4)
    }

    @Test func connectRejected() throws {
        let s = SynthCapture()
        let c = s.connection()
        // SCT 1 (command specific) SC 0x82: Connect Invalid Parameters.
        c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, status: 0x182)
        c.tcp.fin(fromClient: true, at: s.t(0.1))
        let f = try #require(s.report().findings("connect-rejected").first)
        #expect(f.title.contains("Connect Invalid Parameters"))
    }

    @Test func terminationRequestDigestErrorAndFailedKeepAlive() throws {
        let s = SynthCapture()
        let c = s.connection()
        c.hdgst = true
        c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        c.keepAlive(at: s.t(1), status: 0x19)  // Keep Alive Timer Expired
        var bad = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 99), hdgst: true)
        bad[73] ^= 0x55
        c.raw(fromHost: true, bad, at: s.t(2))
        c.termReq(fromHost: false, fes: 3, at: s.t(2.1))
        c.tcp.fin(fromClient: false, at: s.t(2.2))
        let r = s.report()
        #expect(r.findings("keep-alive-failed").first?.title.contains("Keep Alive Timer Expired") == true)
        #expect(r.findings("digest-error").first?.title.contains("1 header") == true)
        let term = try #require(r.findings("termination-request").first)
        #expect(term.title.contains("C2HTermReq from the target") && term.title.contains("Header Digest Error"))
        #expect(r.model.connections[0].end?.how == .termReq)
        // Disabled rules stay silent.
        let quiet = s.report(disabled: ["digest-error", "termination-request"])
        #expect(quiet.findings("digest-error").isEmpty && quiet.findings("termination-request").isEmpty)
        #expect(!quiet.findings("keep-alive-failed").isEmpty)
    }
}
