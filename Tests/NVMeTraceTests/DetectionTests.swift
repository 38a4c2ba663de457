import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Which connections are decoded as NVMe/TCP.
@Suite struct DetectionTests {
    @Test func icReqOnAnyPortIsDecoded() {
        let s = SynthCapture()
        let c = s.connection(port: 5555)
        c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        c.keepAlive(at: s.t(2))
        c.tcp.fin(fromClient: true, at: s.t(3))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.pduTypesByConnection[0] == ["ICReq": 1, "ICResp": 1, "CapsuleCmd": 2, "CapsuleResp": 2])
        #expect(r.connectsByConnection[0]?.first?.kato == 5000)
    }

    @Test func otherTrafficOnOtherPortsIsIgnored() {
        let s = SynthCapture()
        let c = s.connection(port: 80)
        c.tcp.handshake(at: s.t(0))
        c.tcp.send(fromClient: true, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), at: s.t(0.1))
        c.tcp.send(fromClient: false, Array(repeating: 0x41, count: 5000), at: s.t(0.2))
        // A server that speaks first is not NVMe/TCP either.
        let d = s.connection(port: 6000)
        d.tcp.handshake(at: s.t(1))
        d.tcp.send(fromClient: false, PDUBuilder.icResp(), at: s.t(1.1))
        d.tcp.send(fromClient: true, PDUBuilder.icReq(), at: s.t(1.2))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.records.isEmpty)
        #expect(r.diagnostics.isEmpty)
    }

    @Test func extraPortsDecodeMidStreamConnections() {
        // No handshake, no ICReq: only --port makes this connection NVMe/TCP.
        let s = SynthCapture()
        let c = s.connection(port: 7777)
        c.keepAlive(at: s.t(0))
        c.keepAlive(at: s.t(1))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(analyze(path).records.isEmpty)
        var o = AnalyzerOptions()
        o.ports.insert(7777)
        let r = analyze(path, options: o)
        #expect(r.pduTypesByConnection[0] == ["CapsuleCmd": 2, "CapsuleResp": 2])
        #expect(r.keepAlivesByConnection.isEmpty)  // qid unknown mid-stream: not counted as admin KA...
        let kas = r.records.filter { if case .command(let cmd) = $0.body { cmd.isKeepAlive } else { false } }
        #expect(kas.count == 2)  // ...but decoded as Keep Alive (queue guessed admin)
    }
}
