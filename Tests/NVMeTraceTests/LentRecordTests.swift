import Foundation
import Testing
@testable import NVMeTrace

/// The pipeline lends each PDU (`PDURecordView`: header and data still in the framer's buffers)
/// and copies it into an owned `PDURecord` only for consumers that keep records. The session
/// model, fed either way, must come out the same: same report, same findings, on the real
/// samples and on generated traffic with digests, loss and reordering.
@Suite struct LentRecordTests {
    static let samples = ["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host",
                          "B-persistent-discovery-healthy", "C-oneshot-discovery", "D-io-traffic",
                          "D2-io-traffic-digests", "E-keepalive-stall"]

    /// JSON report and PDU count of one analysis; `owned` feeds the session model through owned
    /// records instead of the lent views.
    static func report(_ paths: [String], owned: Bool) -> (String, Int, Int) {
        var o = AnalyzerOptions()
        o.verifyDataDigests = true
        let analysis = CaptureAnalysis(options: o)
        var records = 0
        if owned {
            let tracker = analysis.tracker
            analysis.analyzer.onPDUView = nil
            analysis.analyzer.onPDU = { r in
                records += 1
                tracker.record(r)
            }
        }
        analysis.read(paths: paths)
        let r = analysis.report()
        return (JSONReport.render(r), analysis.analyzer.pduCount, records)
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
}
