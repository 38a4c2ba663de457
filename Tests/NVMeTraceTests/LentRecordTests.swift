import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The pipeline lends each PDU record (`LentPDURecord`: header and data still in the framer's
/// buffers), and summarises plain I/O PDUs for a consumer that asks for no more
/// (`RecordDetail.summaryForPlainIO`). The session model, fed summaries and lent records or
/// owned copies of records decoded in full, must come out the same: same report, same findings,
/// on the real samples and on generated traffic with digests, loss and reordering.
@Suite struct LentRecordTests {
    static let samples = ["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host",
                          "B-persistent-discovery-healthy", "C-oneshot-discovery", "D-io-traffic",
                          "D2-io-traffic-digests", "E-keepalive-stall"]

    struct Outcome {
        var json: String
        var pdus: Int
        var records = 0
        var plain = 0
        var warnings: [String]
    }

    /// Stands between the analyzer and the analysis's own consumer: asks for `detail`, counts
    /// records and summaries, and with `owned` hands each record on as an owned copy lent again.
    final class Tap: AnalyzerConsumer {
        let inner: any AnalyzerConsumer
        let detail: RecordDetail
        let owned: Bool
        var records = 0, plain = 0
        init(_ inner: any AnalyzerConsumer, detail: RecordDetail, owned: Bool) {
            self.inner = inner
            self.detail = detail
            self.owned = owned
        }
        func pdu(_ record: LentPDURecord) {
            records += 1
            if case .ioSummary = record.body { plain += 1 }
            if owned { record.owned().lent { inner.pdu($0) } } else { inner.pdu(record) }
        }
        func diagnostic(_ d: Diagnostic) { inner.diagnostic(d) }
        func hostBytesLost(connection: Int, ref: FrameRef) { inner.hostBytesLost(connection: connection, ref: ref) }
        func commandsTimed(connection: Int, _ t: [CommandTiming]) { inner.commandsTimed(connection: connection, t) }
        func connectionClosed(_ s: ConnectionSummary) { inner.connectionClosed(s) }
        func connectionEnded(_ s: ConnectionSummary) { inner.connectionEnded(s) }
    }

    /// One analysis. `owned` decodes every PDU in full (`RecordDetail.full`) and feeds the
    /// session model owned copies; otherwise it is fed as `CaptureAnalysis` feeds it (lent
    /// records, plain I/O summarised).
    static func analyze(_ paths: [String], owned: Bool) -> Outcome {
        var o = AnalyzerOptions()
        o.verifyDataDigests = true
        let analysis = CaptureAnalysis(options: o)
        let tap = Tap(analysis.analyzer.consumer!, detail: owned ? .full : .summaryForPlainIO, owned: owned)
        analysis.analyzer.consumer = tap
        var warnings: [String] = []
        analysis.onWarning = { warnings.append($0.description) }
        analysis.read(paths: paths)
        return Outcome(json: JSONReport.render(analysis.report()), pdus: analysis.analyzer.pduCount,
                       records: owned ? tap.records : 0, plain: tap.plain, warnings: warnings)
    }

    static func report(_ paths: [String], owned: Bool) -> (String, Int, Int) {
        let r = analyze(paths, owned: owned)
        return (r.json, r.pdus, r.records)
    }

    @Test(arguments: samples)
    func samplesGiveTheSameModelEitherWay(_ name: String) throws {
        let path = samplePath(name)
        let (lent, count, _) = Self.report([path], owned: false)
        let (owned, count2, records) = Self.report([path], owned: true)
        #expect(count > 0 && count == count2 && records == count)
        #expect(lent == owned)
        // Not vacuous: the report describes the sample's connections.
        #expect(lent.contains("\"connections\""))
    }

    @Test(arguments: [(0.0, 0.0, false), (0.002, 0.02, true)])
    func generatedTrafficGivesTheSameModelEitherWay(loss: Double, reorder: Double, digests: Bool) throws {
        let path = GeneratorTests.generate(seed: 11, steps: 400, digests: digests, loss: loss, reorder: reorder)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (lent, count, _) = Self.report([path], owned: false)
        let (owned, _, records) = Self.report([path], owned: true)
        #expect(records == count && count > 1000)
        #expect(lent == owned)
    }

    /// Plain I/O PDUs are summarised only when nothing else is to be said of them: a reused CID,
    /// a completion or C2HData SUCCESS for no known command, a Fabrics command on an I/O queue,
    /// header and data digest mismatches, a PDU sent the wrong way, and lost bytes give the same
    /// warnings and the same model as when every PDU is decoded in full.
    @Test func ioQueueEdgeCasesGiveTheSameWarningsAndModel() throws {
        let cap = SynthCapture()
        let admin = cap.connection()
        admin.connect(at: cap.t(0), qid: 0, kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 7)
        admin.identify(at: cap.t(0.01), cntrltype: 1, tbkas: true)
        admin.keepAlive(at: cap.t(5))

        let io = cap.connection()
        io.hdgst = true
        io.ddgst = true
        io.connect(at: cap.t(0.02), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 7)
        io.read(at: cap.t(1), bytes: 8192, chunk: 4096)
        io.read(at: cap.t(1.1), bytes: 4096, successFlag: true)
        io.write(at: cap.t(1.2), bytes: 16384, inCapsuleLimit: 4096)
        io.write(at: cap.t(1.3), bytes: 1024)
        let sqe = { (cid: UInt16) in PDUBuilder.sqe(opcode: 0x02, cid: cid, nsid: 1, cdw12: 7) }
        // Reused CID, then its completion.
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(sqe(500), hdgst: true), at: cap.t(2))
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(sqe(500), hdgst: true), at: cap.t(2.01))
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 500, hdgst: true), at: cap.t(2.02))
        // A completion and a C2HData SUCCESS for commands never sent.
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 900, hdgst: true), at: cap.t(2.1))
        io.raw(fromHost: false, PDUBuilder.c2hData(cid: 901, data: [1, 2, 3, 4], success: true, hdgst: true, ddgst: true),
               at: cap.t(2.2))
        // A Fabrics command (Property Get) on the I/O queue and its completion.
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x7F, cid: 600, fctype: 0x04, cdw11: 0x1C), hdgst: true),
               at: cap.t(2.3))
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 600, dw0: 1, hdgst: true), at: cap.t(2.31))
        // A read whose C2HData fails its data digest, and one whose CapsuleResp fails its header digest.
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(sqe(700), hdgst: true), at: cap.t(3))
        var bad = PDUBuilder.c2hData(cid: 700, data: [UInt8](repeating: 5, count: 512), hdgst: true, ddgst: true)
        bad[bad.count - 1] ^= 0xFF
        io.raw(fromHost: false, bad + PDUBuilder.capsuleResp(cid: 700, hdgst: true), at: cap.t(3.01))
        io.raw(fromHost: true, PDUBuilder.capsuleCmd(sqe(701), hdgst: true), at: cap.t(3.1))
        var badHeader = PDUBuilder.capsuleResp(cid: 701, hdgst: true)
        badHeader[badHeader.count - 1] ^= 0xFF
        io.raw(fromHost: false, badHeader, at: cap.t(3.11))
        // An R2T sent by the host (the wrong way).
        io.raw(fromHost: true, PDUBuilder.r2t(cid: 702, ttag: 1, length: 512, hdgst: true), at: cap.t(3.2))
        io.read(at: cap.t(4), bytes: 4096)

        let path = cap.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lent = Self.analyze([path], owned: false)
        let owned = Self.analyze([path], owned: true)
        #expect(lent.plain > 10, "plain I/O path not taken")
        #expect(lent.pdus == owned.pdus && owned.records == owned.pdus)
        #expect(lent.warnings == owned.warnings)
        #expect(lent.json == owned.json)
        // Each case above was noticed (not silently summarised).
        for needle in ["reuses CID 500", "CID 900", "CID 901", "data digest mismatch", "header digest mismatch",
                       "R2T sent by the initiator"] {
            #expect(lent.warnings.contains { $0.contains(needle) }, "no warning with \(needle)")
        }
    }
}
