import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Per-connection state stays bounded however long the capture runs: a soak test's capture can
/// hold a connection's Keep Alives for days, or an error on every PDU.
@Suite struct LongCaptureStateTests {
    /// 20,000 Keep Alives every 5 s (28 hours of a healthy admin queue, KATO 10 s): all counted,
    /// at most `KeepAliveLog.capacity` kept, and the kept ones an even sample of the whole span.
    @Test func keepAlivesOfADayLongConnectionAreCountedAndSampled() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.identify(at: s.t(0.01), cntrltype: 1, tbkas: false)
        let total = 20_000
        for k in 1...total { admin.keepAlive(at: s.t(Double(k) * 5)) }
        admin.tcp.fin(fromClient: true, at: s.t(Double(total) * 5 + 1))
        let r = s.report()

        let c = try #require(r.model.connections.first)
        #expect(c.keepAlives.count == total)
        let kept = c.keepAlives.sample
        #expect(kept.count <= KeepAliveLog.capacity && kept.count >= KeepAliveLog.capacity / 2)
        // Every `stride`-th Keep Alive, from the first: evenly spread over the 28 hours.
        let stride = c.keepAlives.stride
        #expect(stride > 1 && stride.nonzeroBitCount == 1)
        for (i, ka) in kept.enumerated() {
            #expect(abs(r.relative(ka.command) - Double(i * stride + 1) * 5) < 1e-6)
            // Its own completion, 0.3 ms after it (as the script sends it).
            #expect(ka.completion.map { r.relative($0) - r.relative(ka.command) }.map { abs($0 - 0.0003) < 1e-6 } == true)
            #expect(ka.status?.isSuccess == true)
        }
        #expect(Double(total) * 5 - r.relative(kept.last!.command) <= Double(stride) * 5)
        // The gap is judged from every Keep Alive, not from the sample.
        #expect(c.keepAliveSeries.maxGap.map { abs($0.seconds - 5) < 1e-6 } == true)
        #expect(r.findings.filter { $0.severity >= .warning }.isEmpty)
        // Reports count all of them.
        let json = try JSONSerialization.jsonObject(with: Data(JSONReport.render(r).utf8)) as! [String: Any]
        let conns = json["connections"] as! [[String: Any]]
        #expect(conns[0]["keepAlives"] as? Int == total)
        // The timeline draws the sample and says it is one.
        let html = HTMLReport.render(r)
        #expect(html.components(separatedBy: "class=\"ka\"").count - 1 == kept.count)
        #expect(html.contains("1 in \(stride) of the \(total) Keep Alives drawn"))
    }

    /// A target failing every Keep Alive: all counted, the first ones cited, the rest summed up
    /// instead of one finding each.
    @Test func failedKeepAlivesAreCountedNotListedWithoutEnd() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        let failures = 300
        // Status 0x0006: Internal Error.
        for k in 1...failures { admin.keepAlive(at: s.t(Double(k)), status: 0x0006) }
        let r = s.report()
        let c = try #require(r.model.connections.first)
        #expect(c.failedKeepAlives.total == failures)
        #expect(c.failedKeepAlives.kept.count == FirstEvents<(ref: FrameRef, status: NVMeStatus)>.limit)
        let found = r.findings("keep-alive-failed")
        #expect(found.count == FirstEvents<(ref: FrameRef, status: NVMeStatus)>.limit)
        #expect(found.last?.detail.contains("\(failures) Keep Alives failed on this connection in all") == true)
        #expect(abs(r.relative(found[0].ref) - 1.0003) < 1e-6)
    }

    /// A header digest error on every response: counted in full, the first 20 cited.
    @Test func digestErrorsAreCountedInFull() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        let bad = 500
        for k in 1...bad {
            var resp = PDUBuilder.capsuleResp(cid: UInt16(k), hdgst: true)
            resp[resp.count - 1] ^= 0xFF  // the header digest's last byte
            admin.raw(fromHost: false, resp, at: s.t(Double(k)))
        }
        let r = s.report()
        let c = try #require(r.model.connections.first)
        #expect(c.digestErrors.total == bad && c.headerDigestErrors == bad)
        #expect(c.digestErrors.kept.count == FirstEvents<(ref: FrameRef, type: PDUType, header: Bool)>.limit)
        let f = try #require(r.findings("digest-error").first)
        #expect(f.title.contains("\(bad) header, 0 data"))
        #expect(f.detail.contains("the first 20 of \(bad) are cited"))
    }
}
