import Foundation
import Testing
@testable import NVMeTrace

/// The decode of every real capture must match what tshark (out-of-order reassembly on) and an
/// independent parser recorded in the sample's ground-truth JSON.
@Suite struct GroundTruthTests {
    @Test(arguments: sampleNames)
    func pduCountsConnectsAndKeepAlivesMatchTshark(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let result = analyze(samplePath(sample), options: {
            var o = AnalyzerOptions(); o.verifyDataDigests = true; return o
        }())
        #expect(result.error == nil)
        #expect(result.diagnostics.isEmpty, "unexpected warnings: \(result.diagnostics)")
        let types = result.pduTypesByConnection
        let kas = result.keepAlivesByConnection
        let connects = result.connectsByConnection
        for c in truth.connections {
            #expect(types[c.stream] ?? [:] == c.pduTypes, "\(sample) stream \(c.stream) PDU types")
            #expect(kas[c.stream] ?? 0 == c.keepAlives, "\(sample) stream \(c.stream) keep-alives")
            #expect(connects[c.stream] ?? [] == c.connects, "\(sample) stream \(c.stream) connects")
        }
        // No NVMe/TCP PDUs on connections tshark did not see as NVMe/TCP.
        let known = Set(truth.connections.map(\.stream))
        #expect(Set(types.keys).isSubset(of: known))
    }

    @Test(arguments: sampleNames)
    func endpointsAndTeardownMatch(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let result = analyze(samplePath(sample))
        let flows = Dictionary(result.flows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for c in truth.connections {
            let flow = try #require(flows[c.stream], "\(sample): no connection \(c.stream)")
            #expect(flow.client.description == c.host)
            #expect(flow.server.description == c.target)
            if let by = c.closedBy, let how = c.closeHow {
                let close = try #require(flow.firstClose)
                #expect((close.byClient ? "host" : "target") == by, "\(sample) stream \(c.stream) closed by")
                #expect(close.kind.rawValue == how)
            }
        }
    }

    @Test func digestsVerifyAsTsharkChecked() throws {
        let sample = "D2-io-traffic-digests"
        let truth = try GroundTruth(sample: sample)
        var o = AnalyzerOptions()
        o.verifyDataDigests = true
        let result = analyze(samplePath(sample), options: o)
        for c in truth.connections {
            let recs = result.records.filter { $0.connection == c.stream }
            #expect(recs.filter { $0.pdu.headerDigest == .ok }.count == c.hdgstOK)
            #expect(recs.filter { $0.pdu.dataDigest == .ok }.count == c.ddgstOK)
            #expect(!recs.contains { if case .mismatch = $0.pdu.headerDigest { true } else { false } })
        }
        // Without verification, data digests are reported as present but not checked.
        let plain = analyze(samplePath(sample))
        #expect(plain.records.contains { $0.pdu.dataDigest == .notVerified })
        #expect(!plain.records.contains { $0.pdu.dataDigest == .ok })
    }
}
