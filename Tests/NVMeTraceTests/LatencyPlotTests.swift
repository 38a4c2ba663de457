import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import NVMeTrace

/// The HTML report's latency-over-time scatter: every point the JSON report's latency series and
/// slowest commands hold, where `HTMLLatencyPlot` documents it, the slowest ringed and linked to
/// their row of the slowest-commands table; and, photographed by Chromium, the points in their
/// colours where the geometry puts them.
@Suite struct LatencyPlotTests {
    struct Point: Hashable { var x: Double; var y: Double; var outlier: Bool; var href: String? }

    /// One expected plot per owner (controller, or connections without one), in report order.
    static func expectedPlots(_ doc: [String: Any]) throws -> [[Point]] {
        let groups = try #require(doc["latency"] as? [[String: Any]])
        let span = try #require((doc["capture"] as? [String: Any]).flatMap { $0["span"] as? [String: Any] }?["seconds"] as? Double)
        var owners: [String] = []
        var members: [String: [[String: Any]]] = [:]
        for g in groups {
            let owner = (g["controller"] as? Int).map { "c\($0)" } ?? "n\(g["connections"] ?? "")"
            if members[owner] == nil { owners.append(owner) }
            members[owner, default: []].append(g)
        }
        return owners.map { owner in
            let gs = members[owner]!
            func commands(_ g: [String: Any]) -> [[String: Any]] {
                ((g["timeline"] as? [String: Any])?["points"] as? [[String: Any]] ?? []) + (g["slowest"] as? [[String: Any]] ?? [])
            }
            // The decades: from the one at or below the smallest point (1 µs at least) to the one
            // at or above the largest, at least one, at most nine.
            let all = gs.flatMap(commands).map { max(($0["seconds"] as? Double ?? 0) * 1e9, 1_000) }
            var low = floor(log10(all.min()!)), high = ceil(log10(all.max()!))
            if high <= low { high = low + 1 }
            if high - low > 9 { low = high - 9 }
            var points = Set<Point>()
            func point(_ c: [String: Any], outlier: Bool) -> Point {
                let ns = max((c["seconds"] as? Double ?? 0) * 1e9, 1)
                let v = min(max(log10(ns), low), high)
                let x = 70 + min(max((c["time"] as? Double ?? 0) / span, -0.01), 1.01) * 1000
                let y = 14 + (1 - (v - low) / (high - low)) * 200
                return Point(x: x, y: y, outlier: outlier, href: nil)
            }
            for g in gs {
                // Each slice's worst, but where it is one of the slowest (drawn ringed instead).
                let slowest = (g["slowest"] as? [[String: Any]] ?? [])
                let key = { (c: [String: Any]) in "\(c["time"] as? Double ?? -1)/\(c["seconds"] as? Double ?? -1)" }
                let ringed = Set(slowest.map(key))
                for c in (g["timeline"] as? [String: Any])?["points"] as? [[String: Any]] ?? [] where !ringed.contains(key(c)) {
                    points.insert(point(c, outlier: false))
                }
                for c in slowest { points.insert(point(c, outlier: true)) }
            }
            return points.sorted { ($0.x, $0.y) < ($1.x, $1.y) }
        }
    }

    /// The circles of each `svg.lat`, with the link around each.
    final class PlotParser: NSObject, XMLParserDelegate {
        var plots: [[Point]] = []
        var href: String?
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            switch name {
            case "svg": plots.append([])
            case "a": href = attributes["href"]
            case "circle":
                plots[plots.count - 1].append(Point(x: Double(attributes["cx"] ?? "") ?? .nan, y: Double(attributes["cy"] ?? "") ?? .nan,
                                                    outlier: attributes["r"] == "5.0" || attributes["r"] == "5", href: href))
            default: break
            }
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "a" { href = nil }
        }
    }

    static func drawnPlots(_ html: String) throws -> [[Point]] {
        var out: [[Point]] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg class=\"lat\""), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            let parser = XMLParser(data: Data(rest[start.lowerBound..<end.upperBound].utf8))
            let p = PlotParser()
            parser.delegate = p
            #expect(parser.parse(), "malformed SVG: \(parser.parserError.map { "\($0)" } ?? "")")
            out += p.plots
            rest = rest[end.upperBound...]
        }
        return out
    }

    @Test(arguments: ["D-io-traffic", "D2-io-traffic-digests", "K2-io-timeout-read-host-error-recovery", "E-keepalive-stall"])
    func everyPointIsWhereTheGeometrySays(sample: String) throws {
        let doc = try jsonDocument(try runCLI(["--format", "json", "--fail-on", "none", samplePath(sample)]).stdout)
        let html = try runCLI(["--format", "html", "--fail-on", "none", samplePath(sample)]).stdout
        let expected = try Self.expectedPlots(doc)
        let drawn = try Self.drawnPlots(html)
        #expect(drawn.count == expected.count, "\(sample): \(drawn.count) plots, \(expected.count) owners of latency groups")
        for (i, (want, got)) in zip(expected, drawn).enumerated() {
            let sorted = got.sorted { ($0.x, $0.y) < ($1.x, $1.y) }
            #expect(sorted.count == want.count, "\(sample) plot \(i): \(sorted.count) points, expected \(want.count)")
            for (w, g) in zip(want, sorted) {
                #expect(abs(w.x - g.x) < 0.01 && abs(w.y - g.y) < 0.01 && w.outlier == g.outlier,
                        "\(sample) plot \(i): point at (\(g.x), \(g.y)) outlier \(g.outlier), expected (\(w.x), \(w.y)) \(w.outlier)")
            }
            // Every outlier links to a row of the slowest-commands table that exists.
            for p in got where p.outlier {
                guard let href = p.href else { continue }  // past the table's 50 rows: no link
                #expect(html.contains("<tr id=\"\(href.dropFirst())\">"), "\(sample): link \(href) to no row")
            }
            #expect(got.contains { $0.href != nil }, "\(sample) plot \(i): no outlier links to its frames")
        }
    }

    /// Chromium's drawing of D's scatter: each point that no other point crowds shows its
    /// command's colour at its centre, and each of the slowest its red ring, where the documented
    /// geometry puts them in the plot's box (found by its border).
    @Test func chromiumDrawsThePointsWhereTheGeometrySays() throws {
        let sample = "D-io-traffic"
        let doc = try jsonDocument(try runCLI(["--format", "json", "--fail-on", "none", samplePath(sample)]).stdout)
        let plot = try #require(try Self.expectedPlots(doc).first)
        let groups = try #require(doc["latency"] as? [[String: Any]])
        let shot = try HTMLReportTests.screenshot(sample, height: 4000)
        // The box: 1 px of #e4e4e4 around the 1,090 px wide drawing, its left edge at the body margin.
        let border = PNGImage.RGB(hex: 0xe4e4e4)
        let left = HTMLReportTests.Timeline.boxLeft
        let rows = (0..<shot.height).filter { y in stride(from: left, through: left + 1091, by: 7).allSatisfy { shot.pixel($0, y) == border } }
        try #require(rows.count == 2, "expected the top and bottom border of one plot box, found rows \(rows)")
        let top = Double(rows[0] + 1), svgLeft = Double(left + 1)
        #expect(rows[1] - rows[0] - 1 == 14 + 200 + 30, "plot box \(rows[1] - rows[0] - 1) px high")
        // The colour of each point by its command's kind (D: reads, writes, the rest grey).
        var colour: [String: PNGImage.RGB] = [:]
        let span = try #require((doc["capture"] as? [String: Any]).flatMap { $0["span"] as? [String: Any] }?["seconds"] as? Double)
        for g in groups {
            let c: PNGImage.RGB = g["queue"] as? String == "io" && g["command"] as? String == "Read" ? .init(hex: 0x1f77b4)
                : g["queue"] as? String == "io" && g["command"] as? String == "Write" ? .init(hex: 0xe67e22) : .init(hex: 0x7f7f7f)
            for p in ((g["timeline"] as? [String: Any])?["points"] as? [[String: Any]] ?? []) {
                let x = 70 + (p["time"] as? Double ?? 0) / span * 1000
                colour["\(Int(x.rounded()))"] = colour["\(Int(x.rounded()))"] == nil ? c : nil  // two at one x: not judged
            }
        }
        var judged = 0
        for p in plot {
            let crowded = plot.contains { $0 != p && abs($0.x - p.x) < 12 && abs($0.y - p.y) < 12 }
            guard !crowded, let want = colour["\(Int(p.x.rounded()))"] else { continue }
            let px = Int(svgLeft + p.x), py = Int(top + p.y)
            #expect(shot.pixel(px, py).isClose(to: want, within: 40), "point at (\(p.x), \(p.y)): \(shot.pixel(px, py)), expected \(want)")
            if p.outlier {
                // The ring: stroke 2 px on the 5 px circle, red.
                let ring = [(5, 0), (-5, 0), (0, 5), (0, -5)].filter { shot.pixel(px + $0.0, py + $0.1).isClose(to: .init(hex: 0xc62828), within: 70) }
                #expect(ring.count >= 3, "outlier at (\(p.x), \(p.y)) has no red ring")
            }
            judged += 1
        }
        #expect(judged >= 5, "only \(judged) points judged")
    }
}

/// The slowest commands' display filters, run through tshark: each selects exactly the command's
/// capsule and its completion, which carry the CID the report names, as far apart as the
/// latency it gives; and the HTML report prints the same ones.
@Suite struct SlowestCommandFilterTests {
    @Test(arguments: ["D-io-traffic", "D2-io-traffic-digests", "K2-io-timeout-read-host-error-recovery", "E-keepalive-stall"])
    func slowestCommandFiltersSelectTheCommandAndItsCompletion(sample: String) throws {
        let path = samplePath(sample)
        let markdown = try runCLI(["--format", "markdown", "--fail-on", "none", path]).stdout
        let html = try runCLI(["--format", "html", "--fail-on", "none", path]).stdout
        let lines = markdown.split(separator: "\n")
        let start = try #require(lines.firstIndex { $0 == "Slowest commands:" }, "\(sample): no slowest commands")
        let rows = lines[(start + 3)...].prefix { $0.hasPrefix("| ") }
        #expect(rows.count >= 5, "\(sample): \(rows.count) slowest commands")
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let filter = String(cells[7].dropFirst().dropLast())  // `…`
            let cid = try #require(Tshark.int(Substring(cells[4])), "\(row)")
            #expect(html.contains("<code>\(filter)</code>"), "\(sample): the HTML report lacks \(filter)")
            let frames = try Tshark.fields(path, filter: filter, ["frame.number", "frame.time_epoch", "nvme-tcp.type", "nvme.cmd.cid",
                                                                 "nvme.fabrics.cmd.cid", "nvme.cqe.cid", "nvme-tcp.cmd.cid"])
            #expect(frames.count == 2, "\(sample) \(filter): \(frames.count) frames")
            guard frames.count == 2 else { continue }
            func cids(_ f: [Substring], _ fields: [Int]) -> Set<Int> {
                Set(fields.flatMap { f[$0].split(separator: ",").compactMap { Tshark.int($0) } })
            }
            let types = frames.map { Set($0[2].split(separator: ",").compactMap { Int($0) }) }
            #expect(types[0].contains(4) && cids(frames[0], [3, 4]).contains(cid), "\(sample) \(filter): no command with CID \(cid) in the first frame")
            // The completion: a CapsuleResp with the CID, or a C2HData with SUCCESS for it.
            #expect((types[1].contains(5) && cids(frames[1], [5]).contains(cid)) || (types[1].contains(7) && cids(frames[1], [6]).contains(cid)),
                    "\(sample) \(filter): no completion of CID \(cid) in the second frame")
            // The latency printed is the time between them (to the report's rounding).
            let seconds = try #require(Double(frames[1][1])) - (try #require(Double(frames[0][1])))
            let printed = cells[0]
            let ms = try #require(Double(printed.split(separator: " ")[0]))
            let value = printed.hasSuffix(" s") ? ms : ms / 1000
            #expect(abs(value - seconds) <= max(seconds * 0.006, 6e-6), "\(sample) \(filter): printed \(printed), tshark \(seconds) s")
        }
    }
}
