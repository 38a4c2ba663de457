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

    // MARK: screenshots

    /// The timeline drawing's geometry as HTMLReport documents it, in CSS pixels (device pixels at
    /// scale factor 1), and the colours of the page's style sheet.
    enum Timeline {
        /// The SVG's left edge on the page: body margin 1.5em of 14px, then the 1px border of its box.
        static let boxLeft = 21
        static let svgLeft = 22.0
        static let labelWidth = 230.0
        static let firstRow = 30.0
        static let rowHeight = 26.0
        static let barHeight = 16
        /// 1000 px for the capture, or 4 px per second for long ones (at most 20,000).
        static func plotWidth(span: Double) -> Double { max(1000, min(20_000, span * 4)) }
        static func height(rows: Int) -> Int { 30 + rows * 26 + 10 }

        static let admin = PNGImage.RGB(hex: 0x6fa8dc)
        static let io = PNGImage.RGB(hex: 0xb4a7d6)
        static let discovery = PNGImage.RGB(hex: 0x93c47d)
        /// The KATO window, drawn over the bar at opacity .55.
        static let window = PNGImage.RGB(hex: 0xf4cccc)
        static let teardown = PNGImage.RGB(hex: 0xc62828)
        static let hostClose = PNGImage.RGB(hex: 0x444444)
        static let box = PNGImage.RGB(hex: 0xdddddd)
        static let white = PNGImage.RGB(hex: 0xffffff)
    }

    /// Window size for every screenshot: wide enough for the widest sample's drawing (A0's 540 s
    /// are 2,168 px of plot) without a scroll bar, tall enough for the page down to the timeline.
    static let window = (width: 2600, height: 2400)

    /// The CLI's HTML report of a sample, photographed by headless Chromium (killed after a time
    /// limit). The page and the PNG stay in the directory printed, for a person to look at.
    static func screenshot(_ sample: String, height: Int = window.height) throws -> PNGImage {
        let browser = try #require(chromium(), """
            Chromium not found (chromium, chromium-browser or google-chrome in PATH or /usr/bin): the HTML \
            report's screenshot test needs it. Install it: apt-get install chromium (.ci/run does)
            """)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-screenshots-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let page = dir.appendingPathComponent(sample + ".html")
        try Data(try Self.html(sample).utf8).write(to: page)
        let png = dir.appendingPathComponent(sample + ".png")
        let profile = dir.appendingPathComponent(sample + ".profile")
        try? FileManager.default.removeItem(at: png)
        defer { try? FileManager.default.removeItem(at: profile) }
        let limit = 90.0
        let run = try runChild(browser, [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
            "--window-size=\(window.width),\(height)", "--user-data-dir=\(profile.path)",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--screenshot=\(png.path)", page.absoluteString,
        ], seconds: limit)
        try #require(run.status == 0, "chromium exited with \(run.status); its output:\n\(String((run.stdout + run.stderr).suffix(2000)))")
        print("screenshot of \(sample): \(png.path)")
        return try PNGImage(contentsOf: png)
    }

    /// The report's timeline as Chromium draws it shows, for every connection of the sample (ground
    /// truth: tshark's connections, their first and last packet, who closed them and when), a bar
    /// of its kind's colour from its first to its last packet in its row, a red ✕ where the target
    /// tore it down and no ✕ elsewhere, a dark line where the host closed it, and nothing of a
    /// bar's colour anywhere else in the drawing. Positions: the documented geometry
    /// (`Timeline`), the box of the timeline found by its border. Each sample holds one host and
    /// one subsystem (one timeline), every association's admin queue connecting before its I/O
    /// queues and before the next association: the rows are the connections in stream order.
    @Test(.serialized, arguments: ["A0-persistent-discovery-kato0-unfixed-host", "E-keepalive-stall",
                                   "K2-io-timeout-read-host-error-recovery", "D-io-traffic"])
    func screenshotShowsBarsAndTeardowns(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let shot = try Self.screenshot(sample)
        typealias T = Timeline
        #expect(shot.width == Self.window.width && shot.height == Self.window.height, "screenshot \(shot.width)x\(shot.height)")
        #expect(shot.pixel(0, 0) == Timeline.white, "the page's corner is \(shot.pixel(0, 0)), not white")

        // The timeline's box: the two rows its border (#ddd) spans from one side to the other.
        let boxRight = shot.width - T.boxLeft
        let borderRows = (0..<shot.height).filter { y in
            stride(from: T.boxLeft, to: boxRight, by: 3).allSatisfy { shot.pixel($0, y) == T.box }
        }
        try #require(borderRows.count == 2, "expected the top and bottom border of one timeline box, found rows \(borderRows)")
        let svgTop = borderRows[0] + 1
        let svgBottom = svgTop + T.height(rows: truth.connections.count)
        try #require(svgBottom <= borderRows[1], "the drawing (\(svgTop)..<\(svgBottom)) overruns its box (bottom border \(borderRows[1]))")
        #expect(shot.pixel(T.boxLeft, svgTop + 10) == T.box && shot.pixel(T.boxLeft - 1, svgTop + 10) == T.white,
                "the box's left border is not at x = \(T.boxLeft)")

        let plot = T.plotWidth(span: truth.duration)
        func x(_ t: Double) -> Double { T.svgLeft + T.labelWidth + t / truth.duration * plot }
        let fills = [T.admin, T.io, T.discovery]
        func isBar(_ p: PNGImage.RGB, _ fill: PNGImage.RGB) -> Bool {
            p.isClose(to: fill, within: 3) || p.isClose(to: T.window.over(fill, opacity: 0.55), within: 3)
        }
        var expectedBars: [(top: Int, left: Double, right: Double)] = []
        let connections = truth.connections.sorted { $0.stream < $1.stream }
        for (i, c) in connections.enumerated() {
            let what = "\(sample) connection \(c.stream) (row \(i))"
            let top = svgTop + Int(T.firstRow + Double(i) * T.rowHeight)
            let mid = top + T.barHeight / 2
            let fill = c.queue == "io" ? T.io
                : c.connects.first?.subnqn == "nqn.2014-08.org.nvmexpress.discovery" ? T.discovery : T.admin
            let left = x(c.firstPacketTime), right = max(x(c.lastPacketTime), left + 2)
            expectedBars.append((top, left, right))

            // The bar: the columns of its colour in any of its rows but the edges its rounded
            // corners cut (Keep Alive ticks leave its second and second-last row alone, the Connect
            // mark and the host's close line cross it whole; the KATO window tints it).
            let band = (top + 1)...(top + T.barHeight - 2)
            let columns = (0..<shot.width).filter { px in band.contains { isBar(shot.pixel(px, $0), fill) } }
            guard let first = columns.first, let last = columns.last else {
                Issue.record("\(what): no bar of colour \(fill) in rows \(band)")
                continue
            }
            // The Connect's mark (2 px, at the Connect a few milliseconds in) hides the bar's first
            // columns, the host's close line (2 px, at the FIN just before the last packet) its last.
            #expect(Double(first) >= left - 1 && Double(first) <= left + 4,
                    "\(what): bar starts at x \(first), expected \(left) (first packet \(c.firstPacketTime) s)")
            #expect(Double(last + 1) >= right - 3 && Double(last + 1) <= right + 1,
                    "\(what): bar ends at x \(last + 1), expected \(right) (last packet \(c.lastPacketTime) s)")
            #expect(Double(columns.count) >= 0.8 * Double(last + 1 - first), "\(what): bar broken: \(columns.count) of \(last + 1 - first) columns")
            // Its height: the rows where most of its columns show its colour.
            let rows = ((top - 8)..<(top + T.barHeight + 8)).filter { y in
                (first...last).filter { isBar(shot.pixel($0, y), fill) }.count * 2 > last + 1 - first
            }
            #expect(rows.first == top && rows.last == top + T.barHeight - 1 && rows.count == T.barHeight,
                    "\(what): bar rows \(rows.first ?? -1)...\(rows.last ?? -1) (\(rows.count)), expected \(top)...\(top + T.barHeight - 1)")

            // The target's teardown: a red ✕ (±5 px) centred on the close; no red in the row otherwise.
            // (A finding's diamond sits above the bar's fourth row.)
            var reds: [(x: Int, y: Int)] = []
            for y in (top + 4)...(top + 13) {
                for px in 0..<shot.width {
                    // The ✕'s red (#c62828), also where its edges blend into the bar.
                    if shot.pixel(px, y).isClose(to: T.teardown, within: 60) { reds.append((px, y)) }
                }
            }
            if c.closedBy == "target", let closed = c.closeTime {
                let ex = x(closed)
                guard !reds.isEmpty else { Issue.record("\(what): no teardown mark (expected at x \(ex))"); continue }
                let cx = Double(reds.map(\.x).reduce(0, +)) / Double(reds.count) + 0.5
                #expect(abs(cx - ex) <= 1.5, "\(what): teardown mark centred at x \(cx), expected \(ex) (target \(c.closeHow ?? "") at \(closed) s)")
                let spread = reds.map(\.x).max()! - reds.map(\.x).min()!
                #expect((8...14).contains(spread), "\(what): teardown mark \(spread) px wide")
                // A cross: red in all four quadrants around its centre.
                let e = Int(ex)
                for (dx, dy) in [(-1, -1), (1, -1), (-1, 1), (1, 1)] {
                    #expect(reds.contains { ($0.x - e) * dx >= 3 && ($0.y - mid) * dy >= 2 },
                            "\(what): the teardown mark is not a cross (quadrant \(dx), \(dy) empty)")
                }
            } else {
                #expect(reds.isEmpty, "\(what): red marks at x \(Set(reds.map(\.x)).sorted().prefix(10)) on a connection the target did not tear down")
            }
            // The host's close: a dark line over the bar's height at the close.
            if c.closedBy == "host", let closed = c.closeTime {
                let hx = Int(x(closed))
                let line = ((hx - 2)...(hx + 2)).contains { px in
                    ((top + 2)...(top + 13)).filter { shot.pixel(px, $0).isClose(to: T.hostClose, within: 12) }.count >= 10
                }
                #expect(line, "\(what): no host-close line at x \(hx) (host \(c.closeHow ?? "") at \(closed) s)")
            }
        }
        // Nothing of a bar's colour outside the bars: no bar drawn twice, in the wrong row or place.
        var stray: [(Int, Int)] = []
        for y in svgTop..<borderRows[1] {
            for px in T.boxLeft + 1..<boxRight where fills.contains(where: { isBar(shot.pixel(px, y), $0) }) {
                let inBar = expectedBars.contains { y >= $0.top && y < $0.top + T.barHeight && Double(px) >= $0.left - 3 && Double(px) <= $0.right + 3 }
                if !inBar { stray.append((px, y)) }
            }
        }
        #expect(stray.isEmpty, "\(sample): \(stray.count) pixels of a bar's colour outside the bars, first at \(stray.prefix(5))")
    }
}

/// Where `chromium()` looks: the names .ci/run installs or accepts, in PATH and /usr/bin.
let chromiumPaths: [String] = {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
    return ["chromium", "chromium-browser", "google-chrome"].flatMap { name in dirs.map { $0 + "/" + name } }
}()

func chromium() -> String? {
    chromiumPaths.first { FileManager.default.isExecutableFile(atPath: $0) }
}
