import Foundation
import Testing
@testable import NVMeTrace

/// Report times (UTC, milliseconds) agree with capinfos' first and last packet times in each
/// sample's ground truth, rounded to the millisecond.
@Suite struct TimeFormatTests {
    /// "2026-11-24 23:52:34.004705" (capinfos, µs) → "2026-11-24T23:52:34.005Z", or nil when the
    /// rounding would carry into the seconds (not worth redoing calendar arithmetic here).
    static func expected(_ capinfos: String) -> String? {
        let parts = capinfos.split(separator: ".")
        guard parts.count == 2, let micros = Int(parts[1]), parts[1].count == 6 else { return nil }
        let millis = (micros + 500) / 1000
        guard millis < 1000 else { return nil }
        let ms = String(millis)
        return parts[0].replacingOccurrences(of: " ", with: "T") + "." + String(repeating: "0", count: 3 - ms.count) + ms + "Z"
    }

    @Test(arguments: sampleNames)
    func firstAndLastPacketTimes(_ sample: String) throws {
        let url = samplesDirectory.appendingPathComponent(sample + ".json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let capinfos = (root["capture"] as! [String: Any])["capinfos"] as! [String: Any]
        let analysis = CaptureAnalysis()
        analysis.read(paths: [samplePath(sample)])
        let first = try #require(analysis.analyzer.firstRef)
        if let want = Self.expected(capinfos["First packet time"] as! String) { #expect(Report.utc(first) == want) }
        if let want = Self.expected(capinfos["Last packet time"] as! String) { #expect(Report.utc(analysis.analyzer.lastRef) == want) }
    }

    @Test func roundingAndEdges() {
        func utc(_ ns: Int64) -> String { Report.utc(FrameRef(file: 0, frame: 1, timeNs: ns)) }
        #expect(utc(0) == "1970-01-01T00:00:00.000Z")
        #expect(utc(1_764_028_354_000_499_999) == "2025-11-24T23:52:34.000Z")
        #expect(utc(1_764_028_354_000_500_000) == "2025-11-24T23:52:34.001Z")
        #expect(utc(1_764_028_354_999_600_000) == "2025-11-24T23:52:35.000Z")  // carries into the second
        #expect(utc(-1_000_000) == "1969-12-31T23:59:59.999Z")
        #expect(utc(4_107_542_400_000_000_000) == "2100-03-01T00:00:00.000Z")  // 2100 is not a leap year
        _ = utc(.max)  // must not trap
        _ = utc(.min)
    }

    /// Live finding lines start with the UTC time of day of the finding's frame.
    @Test func liveLinesStartWithTheTimeOfDay() throws {
        let report = FindingsGroundTruthTests.report("A0-persistent-discovery-kato0-unfixed-host")
        let f = try #require(report.findings.first)
        let ms = (f.ref.timeNs + 500_000) / 1_000_000
        let day = ms % 86_400_000
        let want = String(format: "%02d:%02d:%02d.%03d", Int(day / 3_600_000), Int(day / 60_000 % 60), Int(day / 1000 % 60), Int(day % 1000))
        let line = TextReport.liveLine(f, report)
        #expect(line.hasPrefix(want + " "), "\(line)")
    }
}
