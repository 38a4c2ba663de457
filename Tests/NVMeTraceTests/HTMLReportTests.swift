import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import NVMeTrace

/// The HTML report: self-contained, its SVG well-formed, the timeline drawing what the model holds.
@Suite struct HTMLReportTests {
    static func html(_ sample: String) throws -> String {
        let run = try runCLI(["--format", "html", "--fail-on", "none", samplePath(sample)])
        #expect(run.status == 0)
        return run.stdout
    }

    /// Counts elements by name and class in an SVG fragment, failing on malformed XML.
    final class SVGCounter: NSObject, XMLParserDelegate {
        var counts: [String: Int] = [:]
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            counts[name + "." + (attributes["class"] ?? ""), default: 0] += 1
        }
    }

    static func svgCounts(_ html: String) -> [[String: Int]] {
        var out: [[String: Int]] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg"), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            let fragment = String(rest[start.lowerBound..<end.upperBound])
            let parser = XMLParser(data: Data(fragment.utf8))
            let counter = SVGCounter()
            parser.delegate = counter
            #expect(parser.parse(), "malformed SVG: \(parser.parserError.map { "\($0)" } ?? "")")
            out.append(counter.counts)
            rest = rest[end.upperBound...]
        }
        return out
    }

    @Test(arguments: sampleNames)
    func timelinesAreWellFormedAndComplete(sample: String) throws {
        let html = try Self.html(sample)
        let truth = try GroundTruth(sample: sample)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        // Self-contained: no fetched resources.
        #expect(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<link"))
        let svgs = Self.svgCounts(html)
        #expect(!svgs.isEmpty)
        let total = svgs.reduce(into: [String: Int]()) { acc, c in c.forEach { acc[$0.key, default: 0] += $0.value } }
        // One bar per connection, one tick per Keep Alive (counts from the ground truth).
        let bars = ["admin", "io", "discovery", "unknown"].map { total["rect." + $0] ?? 0 }.reduce(0, +)
        #expect(bars == truth.connections.count)
        #expect(total["line.ka"] ?? 0 == truth.connections.map(\.keepAlives).reduce(0, +))
        #expect(total["line.connect"] ?? 0 == truth.connections.map(\.connects.count).reduce(0, +))
        let targetCloses = truth.connections.filter { $0.closedBy == "target" }.count
        #expect(total["path.teardown"] ?? 0 == targetCloses)
    }

    @Test func findingsArePinnedAndFramesShowOnHover() throws {
        let html = try Self.html("E-keepalive-stall")
        let total = Self.svgCounts(html).first ?? [:]
        #expect(total["path.finding-error"] == 1)
        #expect(html.contains("keep-alive-expired"))
        #expect(html.contains("<title>Keep Alive, frame 191,"))           // the last Keep Alive
        #expect(html.contains("<title>target FIN, frame 194,"))          // the teardown
        #expect(html.contains("KATO window after the last timer restart"))
        #expect(html.contains("1a42f24b3c599934e3092288ae341aa33296b7531b3fdfeb7cb2343a974583f8"))
    }

    /// Every number in the SVG geometry (coordinates, sizes, path data, view boxes).
    static func svgNumbers(_ html: String) -> [String] {
        let attribute = /\s(?:x|y|x1|x2|y1|y2|width|height|d|viewBox)="([^"]*)"/
        var numbers: [String] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg"), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            for match in rest[start.lowerBound..<end.upperBound].matches(of: attribute) {
                numbers += match.1.split { " ,MLZ".contains($0) }.map(String.init)
            }
            rest = rest[end.upperBound...]
        }
        return numbers
    }

    /// Every packet at one epoch timestamp (a clock that did not advance, or a tool that stamped
    /// them all alike): the timeline still has a width. Near 1.7e18 ns a Double's spacing is 256 ns,
    /// so `start + 1` was `start`, the span 0 and every position NaN.
    @Test func timelineWithOneTimestampForEveryPacket() throws {
        var capture = SampleCaptures.named("E-keepalive-stall")
        for i in capture.packets.indices { capture.packets[i].timeNs = 1_700_000_000_123_456_789 }
        let path = writeTemporaryCapture(capture, format: .pcap(nanoseconds: true), name: "one-timestamp")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let analysis = CaptureAnalysis()
        analysis.read(paths: [path])
        let html = HTMLReport.render(analysis.report(engine: RuleEngine()))
        let total = Self.svgCounts(html).reduce(into: [String: Int]()) { acc, c in c.forEach { acc[$0.key, default: 0] += $0.value } }
        // Still the whole drawing: a bar per connection.
        let bars = ["admin", "io", "discovery", "unknown"].map { total["rect." + $0] ?? 0 }.reduce(0, +)
        #expect(bars == (try GroundTruth(sample: "E-keepalive-stall")).connections.count)
        let numbers = Self.svgNumbers(html)
        #expect(numbers.count > 50)
        let bad = numbers.filter { Double($0)?.isFinite != true }
        #expect(bad.isEmpty, "not finite numbers in the SVG: \(Set(bad))")
        #expect(!html.contains("nan") && !html.contains("NaN") && !html.contains("inf\""), "NaN or infinity in the page")
    }

    /// Renders the page in headless Chromium when it is installed, saving screenshots for a person
    /// to look at (in the test output directory printed below).
    @Test(.enabled(if: chromium() != nil, "needs chromium for screenshots (apt-get install chromium)"))
    func screenshotsRender() throws {
        let browser = try #require(chromium())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-screenshots")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for sample in ["A0-persistent-discovery-kato0-unfixed-host", "E-keepalive-stall"] {
            let page = dir.appendingPathComponent(sample + ".html")
            try Data(try Self.html(sample).utf8).write(to: page)
            let png = dir.appendingPathComponent(sample + ".png")
            try? FileManager.default.removeItem(at: png)
            _ = try runChild(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1200",
                                       "--screenshot=\(png.path)", page.path], seconds: 120)
            let size = (try? FileManager.default.attributesOfItem(atPath: png.path)[.size] as? NSNumber)?.intValue ?? 0
            #expect(size > 10_000, "screenshot \(png.path) is \(size) bytes")
        }
        print("screenshots in \(dir.path)")
    }
}

func chromium() -> String? {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
}
