import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The rules at their edges: exactly at a threshold and one microsecond either side, every way a
/// teardown ends, each rule's documented severity.
@Suite struct RuleEdgeTests {
    /// Every rule has a scenario that sets it off, with the severity README documents.
    @Test(arguments: RuleScenario.all)
    func eachScenarioSetsOffItsRuleWithTheDocumentedSeverity(_ scenario: RuleScenario) throws {
        let documented = try documentedSeverities()
        let r = scenario.build().report(options: scenario.options)
        let found = r.findings(scenario.rule)
        #expect(found.count == 1, "\(scenario): \(r.findings.map(\.title))")
        let expected = try #require(documented[scenario.rule], "README documents no severity for \(scenario.rule)")
        // "warning/info": the rule's severity depends on what it found (outage: by length).
        for f in found { #expect(expected.split(separator: "/").contains(Substring(f.severity.rawValue)), "\(scenario.rule)") }
    }

    @Test func everyRuleHasAScenario() throws {
        let documented = try documentedSeverities()
        let ids = Set(RuleEngine.allRules.map(\.id))
        #expect(Set(RuleScenario.all.map(\.rule)) == ids)
        #expect(ids.isSubset(of: Set(documented.keys)), "rules README does not list: \(ids.subtracting(documented.keys))")
    }

    /// keep-alive-margin: a gap of more than 3/4 of KATO, not 3/4 itself. KATO 10 s: 7.5 s is on
    /// the edge and not flagged, 1 µs more is.
    @Test(arguments: [(-1_000, false), (0, false), (1_000, true)] as [(Int64, Bool)])
    func marginAtThreeQuartersOfKATO(offsetNs: Int64, flagged: Bool) throws {
        let s = SynthCapture()
        let a = RuleScenario.admin(s, keepAlives: [2.5, 5])
        a.keepAlive(at: s.t(12.5) + offsetNs)
        a.keepAlive(at: s.t(15) + offsetNs)
        a.tcp.fin(fromClient: true, at: s.t(16))
        let r = s.report()
        let f = r.findings("keep-alive-margin")
        #expect(f.count == (flagged ? 1 : 0), "\(offsetNs) ns: \(r.findings.map(\.title))")
        if let f = f.first {
            // The gap's two Keep Alives are the evidence.
            #expect(f.evidence.map { r.relative($0.ref) }.map { ($0 * 1e6).rounded() / 1e6 } == [5, 12.500001])
        }
        #expect(r.findings.allSatisfy { $0.rule == "keep-alive-margin" })
    }

    /// keep-alive-overdue: a silence of more than KATO at the end of the capture; exactly KATO is
    /// still within it.
    @Test(arguments: [(-1_000, false), (0, false), (1_000, true)] as [(Int64, Bool)])
    func overdueAtKATO(offsetNs: Int64, flagged: Bool) throws {
        let s = SynthCapture()
        _ = RuleScenario.admin(s, kato: 5_000, keepAlives: [2.5, 5])
        // The last packet of the capture, exactly KATO (5 s) after the last Keep Alive, ± 1 µs.
        s.packets.append((s.t(10) + offsetNs, PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
        let r = s.report()
        let f = r.findings("keep-alive-overdue")
        #expect(f.count == (flagged ? 1 : 0), "\(offsetNs) ns: \(r.findings.map(\.title))")
        #expect(r.findings("keep-alive-expired").isEmpty)
    }

    /// keep-alive-expired: silence of at least KATO before the target's teardown, however the
    /// teardown comes; 1 µs short of KATO is on time.
    @Test(arguments: ["FIN", "RST", "TermReq"], [(-1_000, false), (0, true), (1_000, true)] as [(Int64, Bool)])
    func expiryAtKATOEndingIn(how: String, edge: (offsetNs: Int64, flagged: Bool)) throws {
        let s = SynthCapture()
        let a = RuleScenario.admin(s, keepAlives: [5, 10, 15, 20])
        let end = s.t(30) + edge.offsetNs
        switch how {
        case "FIN": a.tcp.fin(fromClient: false, at: end)
        case "RST": a.tcp.rst(fromClient: false, at: end)
        default:
            a.termReq(fromHost: false, fes: 1, at: end)
            a.tcp.fin(fromClient: false, at: end + 1_000_000)
        }
        let r = s.report()
        #expect(r.model.connections[0].end?.by == .target)
        #expect(r.model.connections[0].end?.how.rawValue == how)
        let f = r.findings("keep-alive-expired")
        #expect(f.count == (edge.flagged ? 1 : 0), "\(how) \(edge.offsetNs) ns: \(r.findings.map(\.title))")
        if let f = f.first {
            #expect(f.severity == .error)
            #expect(f.evidence.map(\.what) == ["host's last Keep Alive", "target teardown (\(how))"])
            #expect(f.evidence.map { r.relative($0.ref) } == [20, Double(30 * 1_000_000_000 + edge.offsetNs) / 1e9])
        }
        // A TermReq is a finding of its own, whatever the timing.
        #expect(r.findings("termination-request").count == (how == "TermReq" ? 1 : 0))
    }

    @Test func hostSentTermReq() throws {
        let scenario = try #require(RuleScenario.all.first { $0.name == "H2CTermReq from the host" })
        let r = scenario.build().report()
        let f = try #require(r.findings("termination-request").first)
        #expect(f.title.contains("H2CTermReq from the host"), "\(f.title)")
        #expect(f.title.contains("Data Transfer Out of Range"), "\(f.title)")
        #expect(r.model.connections[0].end?.by == .host)
        #expect(r.findings("keep-alive-expired").isEmpty)
    }

    /// A data digest mismatch is found only when data digests are verified (they are not by
    /// default: that costs a CRC over every data byte).
    @Test func dataDigestMismatch() throws {
        let scenario = try #require(RuleScenario.all.first { $0.rule == "digest-error" })
        let r = scenario.build().report(options: scenario.options)
        let f = try #require(r.findings("digest-error").first)
        #expect(f.title.hasSuffix(": 0 header, 1 data"), "\(f.title)")
        #expect(scenario.build().report().findings("digest-error").isEmpty)
    }

    /// reconnect-loop groups associations by host and subsystem: two hosts (or two subsystems)
    /// with two torn-down associations each are no loop; three of one host are one.
    @Test func reconnectLoopGroupsByHostAndSubsystem() throws {
        let otherHost = "nqn.2014-08.org.nvmexpress:uuid:99999999-1111-2222-3333-444444444444"
        // Host NQNs alternate: each has 2 associations, both torn down.
        let two = SynthCapture()
        for i in 0..<4 {
            RuleScenario.kato0Discovery(two, hostnqn: i % 2 == 0 ? SynthCapture.hostnqn : otherHost, at: Double(i) * 250, teardown: 241)
        }
        let r2 = two.report()
        #expect(r2.findings("reconnect-loop").isEmpty, "\(r2.findings("reconnect-loop").map(\.title))")
        #expect(r2.model.chains.count == 2)

        // Subsystems alternate, one host: again two chains of two.
        let subs = SynthCapture()
        for i in 0..<4 {
            let c = subs.connection()
            c.connect(at: subs.t(Double(i) * 100), kato: 10_000, subnqn: i % 2 == 0 ? SynthCapture.subnqn : SynthCapture.subnqn + "-2",
                      hostnqn: SynthCapture.hostnqn)
            c.tcp.fin(fromClient: false, at: subs.t(Double(i) * 100 + 50))
        }
        let rs = subs.report()
        #expect(rs.findings("reconnect-loop").isEmpty, "\(rs.findings("reconnect-loop").map(\.title))")
        #expect(rs.model.chains.count == 2)

        // Three associations of one host among the other host's two: one loop, of those three.
        let mixed = SynthCapture()
        let hosts = [SynthCapture.hostnqn, otherHost, SynthCapture.hostnqn, otherHost, SynthCapture.hostnqn]
        for (i, h) in hosts.enumerated() { RuleScenario.kato0Discovery(mixed, hostnqn: h, at: Double(i) * 250, teardown: 241) }
        let rm = mixed.report()
        let loops = rm.findings("reconnect-loop")
        #expect(loops.count == 1)
        let loop = try #require(loops.first)
        #expect(loop.connections == [0, 2, 4])
        #expect(loop.title.contains(SynthCapture.hostnqn) && loop.title.contains("3 associations"), "\(loop.title)")
        #expect(loop.severity == .warning)
    }

    /// A Keep Alive the host sent (the target acknowledged it) but the capture lost.
    static func lostKeepAlive(_ a: NVMeScript, cid: UInt16, at t: Int64) {
        a.tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: cid)), at: t, drop: [0])
        a.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: cid), at: t + 300_000)
    }

    /// A gap that spans host bytes the capture lost is no evidence of a long gap: the lost bytes
    /// may have held a restart. The same gap with nothing lost is a finding.
    @Test(arguments: [false, true])
    func marginGapAcrossCaptureLoss(lost: Bool) throws {
        let s = SynthCapture()
        let a = RuleScenario.admin(s, keepAlives: [2.5, 5])
        if lost { Self.lostKeepAlive(a, cid: 900, at: s.t(8.5)) }
        a.keepAlive(at: s.t(13))  // 8 s after the last Keep Alive the capture shows
        a.tcp.fin(fromClient: true, at: s.t(14))
        let r = s.report()
        #expect(r.findings("keep-alive-margin").count == (lost ? 0 : 1), "\(r.findings.map(\.title))")
        let u = r.unjudged.filter { $0.rule == "keep-alive-margin" }
        #expect(u.count == (lost ? 1 : 0))
        if lost { #expect(u.first?.reason.contains("spans bytes the host sent that the capture lost") == true, "\(u)") }
    }

    /// Likewise a silence before a teardown, or at the end of the capture, after which host
    /// bytes were lost.
    @Test(arguments: [false, true], [false, true])
    func silenceAfterCaptureLoss(lost: Bool, teardown: Bool) throws {
        let s = SynthCapture()
        let a = RuleScenario.admin(s, keepAlives: [5, 10, 15, 20])
        if lost { Self.lostKeepAlive(a, cid: 900, at: s.t(25)) }
        if teardown {
            a.tcp.fin(fromClient: false, at: s.t(35))
        } else {
            s.packets.append((s.t(35), PacketBuilder.tcp(from: s.host, 1, to: s.target, 2, seq: 0, ack: 0, flags: PacketBuilder.syn)))
        }
        let rule = teardown ? "keep-alive-expired" : "keep-alive-overdue"
        let r = s.report()
        #expect(r.findings(rule).count == (lost ? 0 : 1), "\(r.findings.map(\.title))")
        let u = r.unjudged.filter { $0.rule == rule }
        #expect(u.count == (lost ? 1 : 0), "\(u.map(\.reason))")
        if lost { #expect(u.first?.reason.contains("were lost from the capture") == true, "\(u.map(\.reason))") }
    }
}
