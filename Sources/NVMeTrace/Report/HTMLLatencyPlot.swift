import Foundation

/// The HTML report's latency-over-time scatter, one per controller (or connection without one):
/// a point per time slice and command kind at its longest latency (`LatencyTimeline`), and the
/// slowest commands ringed and linked to their row in the slowest-commands table (frames,
/// phases, display filter).
///
/// Geometry (SVG user units, drawn 1:1): a label column of `labelWidth`, then the plot,
/// `plotWidth` wide; a command sent t after the capture's first packet lies at
/// x = labelWidth + t / span × plotWidth (the span running to the capture's last packet).
/// Latency is on a log scale over whole decades, from the decade at or below the smallest point
/// (1 µs at least) to the one at or above the largest (at least one decade, at most nine, the
/// lowest dropped): latency v (clamped to them) lies at
/// y = top + (1 − (log10 v − low) / (high − low)) × plotHeight.
extension HTMLReport {
    static let latencyLabelWidth = 70.0
    static let latencyPlotWidth = 1000.0
    static let latencyTop = 14.0
    static let latencyPlotHeight = 200.0

    struct LatencyPlot {
        var title: String
        var svgWidth: Double
        var height: Double
        var xAxis: [Tick]
        var yAxis: [YTick]
        var points: [LatencyPoint]
        var legend: String
    }
    struct YTick { var y: Double; var textY: Double; var label: String; var x2: Double }
    struct LatencyPoint {
        var x: Double
        var y: Double
        var r: Double
        var kind: String
        var title: String
        /// The slowest-commands row it links to (outliers only).
        var href: String?
    }
    struct SlowRow {
        var anchor: String
        var latency: String
        var command: String
        var owner: String
        var connection: Int
        var cid: String
        var phases: String
        var frames: String
        var filter: String
    }

    /// "1 µs", "10 ms", "1 s", "100 s" for 10^d nanoseconds.
    static func decadeLabel(_ d: Int) -> String {
        let units = [(9, "s"), (6, "ms"), (3, "µs"), (0, "ns")]
        for (e, unit) in units where d >= e {
            return String(repeating: "0", count: d - e).isEmpty ? "1 \(unit)" : "1" + String(repeating: "0", count: d - e) + " \(unit)"
        }
        return "1 ns"
    }

    /// The class (colour) of a command's points.
    static func latencyKind(_ g: LatencyGroup) -> String {
        switch (g.queue, g.command) {
        case (.io, "Read"): "lat-read"
        case (.io, "Write"): "lat-write"
        default: "lat-other"
        }
    }

    /// Rows of the slowest-commands table, and the anchors they define.
    static func slowRows(_ r: Report) -> (rows: [SlowRow], anchors: Set<String>) {
        let views = r.slowestCommands(limit: 50)
        let rows = views.map { v in
            SlowRow(anchor: v.anchor, latency: Report.milliseconds(v.command.latencyNs), command: "\(v.group.command) (\(v.group.queueText))",
                    owner: r.latencyOwner(v.group), connection: v.command.connection, cid: hexValue(v.command.cid, digits: 4),
                    phases: v.phases.isEmpty ? "-" : v.phases,
                    frames: "\(r.fileName(v.command.issued)) \(v.command.issued.frame)→\(v.command.completed.frame)", filter: v.filter)
        }
        return (rows, Set(views.map(\.anchor)))
    }

    /// One plot per owner of latency groups, in the model's order. `since` gives nanoseconds
    /// after the capture's first packet; `spanNs` is at least 1.
    static func latencyPlots(_ r: Report, since: (Int64) -> Double, spanNs: Double, anchors: Set<String>) -> [LatencyPlot] {
        var owners: [(String, [LatencyGroup])] = []
        for g in r.model.latency {
            let o = r.latencyOwner(g)
            if let i = owners.firstIndex(where: { $0.0 == o }) { owners[i].1.append(g) } else { owners.append((o, [g])) }
        }
        let span = spanNs / 1e9
        return owners.map { owner, groups in
            let values = groups.flatMap { $0.timeline.map(\.latencyNs) + $0.slowest.map(\.latencyNs) }.map { max($0, 1_000) }
            var low = floor(log10(Double(values.min() ?? 1_000)))
            var high = ceil(log10(Double(values.max() ?? 1_000_000)))
            if high <= low { high = low + 1 }
            if high - low > 9 { low = high - 9 }  // 1 s to 1 ns is as far as a plot goes
            func y(_ ns: Int64) -> Double {
                let v = min(max(log10(Double(max(ns, 1))), low), high)
                return latencyTop + (1 - (v - low) / (high - low)) * latencyPlotHeight
            }
            func x(_ ns: Int64) -> Double {
                latencyLabelWidth + min(max(since(ns) / spanNs, -0.01), 1.01) * latencyPlotWidth
            }
            var points: [LatencyPoint] = []
            for g in groups {
                let kind = latencyKind(g)
                let slice = Report.milliseconds(g.sliceNs)
                // Each slice's worst, but where that is one of the slowest commands, drawn below.
                let slowest = Set(g.slowest.map { "\($0.issued.timeNs)/\($0.latencyNs)" })
                for p in g.timeline where !slowest.contains("\(p.issuedNs)/\(p.latencyNs)") {
                    let title = "\(g.command): \(Report.milliseconds(p.latencyNs)), the longest of the commands sent in the \(slice) "
                        + "from \(String(format: "%.3f s", since(p.issuedNs) / 1e9))"
                    points.append(LatencyPoint(x: x(p.issuedNs), y: y(p.latencyNs), r: 3, kind: kind, title: title, href: nil))
                }
                // The slowest commands, ringed, linked to their frames.
                for p in g.slowest {
                    let anchor = "cmd-\(p.issued.file)-\(p.issued.frame)-\(p.cid)"
                    let title = "\(g.command) CID \(hexValue(p.cid, digits: 4)) on connection \(p.connection): \(Report.milliseconds(p.latencyNs)), "
                        + "sent \(String(format: "%.3f s", r.relative(p.issued))), frames \(p.issued.frame)→\(p.completed.frame) "
                        + "(frame.number in {\(p.issued.frame), \(p.completed.frame)})"
                    points.append(LatencyPoint(x: x(p.issued.timeNs), y: y(p.latencyNs), r: 5, kind: "\(kind) lat-slow", title: title,
                                               href: anchors.contains(anchor) ? "#" + anchor : nil))
                }
            }
            var xAxis: [Tick] = []
            let step = niceStep(span / 10)
            var s = 0.0
            let height = latencyTop + latencyPlotHeight + 30
            while s <= span + 1e-9 && xAxis.count < 40 {
                xAxis.append(Tick(x: latencyLabelWidth + s / max(span, 1e-9) * latencyPlotWidth, label: formatSeconds(s), height: height))
                s += step
            }
            var yAxis: [YTick] = []
            var d = low
            while d <= high {
                let yy = latencyTop + (1 - (d - low) / (high - low)) * latencyPlotHeight
                yAxis.append(YTick(y: yy, textY: yy + 4, label: decadeLabel(Int(d)), x2: latencyLabelWidth + latencyPlotWidth))
                d += 1
            }
            let names = groups.map { "\($0.command) (\($0.queueText))" }.joined(separator: ", ")
            return LatencyPlot(title: owner.prefix(1).uppercased() + owner.dropFirst(), svgWidth: latencyLabelWidth + latencyPlotWidth + 20,
                               height: height, xAxis: xAxis, yAxis: yAxis, points: points, legend: names)
        }
    }
}
