import Foundation
import Mustache

/// `--format html`: one self-contained page (inline CSS, SVG and a few lines of script; nothing
/// fetched) with the summary, the findings and, per reconnect chain, a timeline: a bar per
/// connection from its first to its last packet, Keep Alive ticks, the KATO window after the last
/// timer restart, teardowns and reconnects, findings pinned where they happen; frame numbers on
/// hover. Geometry is computed here; the Mustache template only lays it out.
///
/// Timeline geometry (SVG user units, drawn 1:1 in CSS pixels; HTMLReportTests checks a screenshot
/// against it): a label column of `labelWidth`, then the plot, `width` wide, or 4 px per second of
/// capture for long ones (at most 20,000). Time t after the capture's first packet lies at
/// x = labelWidth + t / span × plot width, the span running to the capture's last packet. Row i
/// (a connection; per chain, each association's admin queue and then its I/O queues) has its bar
/// at y = 30 + i × `rowHeight`, 16 high; the drawing is 30 + rows × `rowHeight` + 10 high. A
/// teardown by the target is a ✕ ±5 around the middle of the bar at the FIN or RST, a close by the
/// host a line over the bar there. The page's style puts the drawing 22 px from the left edge
/// (body margin 1.5em of 14 px, the box's 1 px border).
public enum HTMLReport {
    static let width = 1000.0
    static let rowHeight = 26.0
    static let labelWidth = 230.0

    struct Page {
        var title: String
        var version: String
        var files: [FileRow]
        var span: String
        var summary: String
        var errors: Int
        var warnings: Int
        var findings: [FindingView]
        var hasFindings: Bool
        var timelines: [Timeline]
        var connections: [ConnectionRow]
        /// The command latency table: a row of cells each (the first its header).
        var latency: [LatencyRow]
        var latencyHeader: [String]
        var hasLatency: Bool
        var latencyPlots: [LatencyPlot]
        var slowest: [SlowRow]
        var untimed: String?
        var evidence: String?
        var unjudged: [String]
        var capture: String
        var inferences: [String]
    }
    struct LatencyRow { var cells: [String] }
    struct FileRow { var name: String; var bytes: String; var sha256: String; var frames: Int }
    struct FindingView {
        var severity: String
        var rule: String
        var title: String
        var detail: String
        var frames: String
        var fix: String
        var filter: String
        var basis: String
    }
    struct Timeline {
        var title: String
        var height: Double
        var svgWidth: Double
        var axis: [Tick]
        var rows: [Row]
        var marks: [Mark]
    }
    struct Tick { var x: Double; var label: String; var height: Double }
    struct Row {
        var y: Double
        var textY: Double
        var label: String
        var barX: Double
        var barW: Double
        var barClass: String
        var barTitle: String
        var window: Window?
    }
    struct Window { var x: Double; var w: Double; var title: String }
    /// A tick (line) or, with `path`, a drawn symbol.
    struct Mark { var kind: String; var x: Double; var y: Double; var y2: Double; var title: String; var path: String? }
    struct ConnectionRow {
        var id: Int; var endpoints: String; var qid: String; var kind: String; var kato: String
        var keepAlives: Int; var maxGap: String; var closed: String; var frames: String; var tcp: String
    }

    public static func render(_ r: Report) -> String {
        let m = r.model
        let config = r.ruleConfig
        // Times relative to the start, as Int64 differences (exact) where they fit and in Double
        // where they do not: capture timestamps are untrusted and can be as far apart as Int64
        // allows (a 64-bit pcapng timestamp scaled to nanoseconds wraps). Absolute times stay out
        // of Double: near today's 1.7e18 ns its spacing is 256 ns, so `start + 1` is `start`.
        let start = m.captureStart?.timeNs ?? m.connections.map(\.firstRef.timeNs).min() ?? 0
        func since(_ ns: Int64) -> Double {
            let (d, overflow) = ns.subtractingReportingOverflow(start)
            return overflow ? Double(ns) - Double(start) : Double(d)
        }
        // At least 1 ns: every packet can carry the same timestamp (or time can run backwards).
        let spanNs = max(since(m.captureEnd.timeNs), 1)
        let span = spanNs / 1e9
        // Long captures get a wider drawing (scrolls, and the zoom control scales it).
        let plotWidth = max(width, min(20_000, span * 4))
        func x(_ ns: Int64) -> Double { xd(since(ns)) }
        // Clamped to the drawing: packets out of time order must not put marks miles away.
        func xd(_ sinceStart: Double) -> Double {
            labelWidth + min(max(sinceStart / spanNs, -0.01), 1.01) * plotWidth
        }
        func t(_ ref: FrameRef) -> String { String(format: "%.3f s", r.relative(ref)) }

        var timelines: [Timeline] = []
        var drawn = Set<Int>()
        var groups: [(String, [ConnectionModel])] = []
        for chain in m.chains {
            var conns: [ConnectionModel] = []
            for ctl in chain.controllers {
                let c = m.controllers[ctl]
                for id in [c.adminConnection] + c.ioConnections { if let cm = m.connection(id) { conns.append(cm); drawn.insert(id) } }
            }
            let who = chain.hostnqn ?? "host \(chain.host) (host NQN not captured)"
            let what = chain.subnqn ?? "subsystem NQN not captured"
            groups.append(("\(who) → \(what) at \(chain.target) (\(chain.controllers.count) association\(chain.controllers.count == 1 ? "" : "s"))", conns))
        }
        let rest = m.connections.filter { !drawn.contains($0.id) }
        if !rest.isEmpty { groups.append(("Connections without a known controller", rest)) }

        for (title, conns) in groups {
            var rows: [Row] = []
            var marks: [Mark] = []
            for (i, c) in conns.enumerated() {
                let y = 30 + Double(i) * rowHeight
                let mid = y + 8
                let kind = r.kind(c)
                var window: Window?
                if c.isAdmin, let ctl = c.controller, m.controllers[ctl].adminConnection == c.id {
                    let controller = m.controllers[ctl]
                    if case .known(let kato, _) = EffectiveKATO.of(controller, admin: c, config: config), let last = controller.timerSeries.last {
                        let from = x(last.ref.timeNs)
                        let to = xd(since(last.ref.timeNs) + Double(kato) * 1e6)
                        window = Window(x: from, w: max(1, min(to, labelWidth + plotWidth) - from),
                                        title: "KATO window after the last timer restart (\(last.what), frame \(last.ref.frame)): \(kato) ms")
                    }
                }
                rows.append(Row(
                    y: y, textY: y + 12,
                    label: "#\(c.id) \(r.kindText(c)) \(c.host.port)→\(c.target.port)",
                    barX: x(c.firstRef.timeNs), barW: max(2, x(c.lastRef.timeNs) - x(c.firstRef.timeNs)),
                    barClass: kind == "?" ? "unknown" : kind,
                    barTitle: "connection \(c.id) \(c.host) → \(c.target), frames \(c.firstRef.frame)–\(c.lastRef.frame), \(t(c.firstRef)) to \(t(c.lastRef)), closed: \(r.closedText(c))",
                    window: window))
                if let cr = c.connectRef {
                    marks.append(Mark(kind: "connect", x: x(cr.timeNs), y: y, y2: y + 16,
                                      title: "Connect, frame \(cr.frame), \(t(cr)), KATO \(c.connect?.kato.map { "\($0) ms" } ?? "not captured")", path: nil))
                }
                // A long connection's Keep Alives are an even sample (KeepAliveLog); say so.
                let every = c.keepAlives.isThinned ? " (1 in \(c.keepAlives.stride) of the \(c.keepAlives.count) Keep Alives drawn)" : ""
                for ka in c.keepAlives.sample {
                    marks.append(Mark(kind: "ka", x: x(ka.command.timeNs), y: y + 2, y2: y + 14,
                                      title: "Keep Alive, frame \(ka.command.frame), \(t(ka.command))\(every)", path: nil))
                }
                if let e = c.end, let by = e.by {
                    let ex = x(e.ref.timeNs)
                    let title = "\(by.rawValue) \(e.how.rawValue), frame \(e.ref.frame), \(t(e.ref))"
                    let path = by == .target
                        ? "M\(ex - 5),\(mid - 5) L\(ex + 5),\(mid + 5) M\(ex - 5),\(mid + 5) L\(ex + 5),\(mid - 5)"
                        : "M\(ex),\(mid - 7) L\(ex),\(mid + 7)"
                    marks.append(Mark(kind: by == .target ? "teardown" : "hostclose", x: ex, y: mid, y2: mid, title: title, path: path))
                }
                for f in r.findings where f.connection == c.id {
                    let fx = x(f.ref.timeNs)
                    marks.append(Mark(kind: "finding-\(f.severity.rawValue)", x: fx, y: y - 4, y2: y,
                                      title: "\(f.rule): \(f.title) (frames \(f.frames.map { String($0.frame) }.joined(separator: ", ")))",
                                      path: "M\(fx),\(y - 8) L\(fx + 5),\(y - 3) L\(fx),\(y + 2) L\(fx - 5),\(y - 3) Z"))
                }
            }
            let height = 30 + Double(max(conns.count, 1)) * rowHeight + 10
            var axis: [Tick] = []
            let step = niceStep(span / 10)
            var s = 0.0
            while s <= span + 1e-9 && axis.count < 400 {
                axis.append(Tick(x: labelWidth + s / span * plotWidth, label: formatSeconds(s), height: height))
                s += step
            }
            timelines.append(Timeline(title: title, height: height, svgWidth: labelWidth + plotWidth + 20,
                                      axis: axis, rows: rows, marks: marks))
        }

        let slow = slowRows(r)
        let page = Page(
            title: "nvmetrace — " + r.files.map(\.name).joined(separator: ", "),
            version: r.version,
            files: r.files.map { FileRow(name: $0.name, bytes: $0.bytes.map { "\($0) bytes" } ?? "-", sha256: $0.sha256 ?? "-", frames: $0.frames) },
            span: m.captureStart.map { "\(Report.utc($0)) → \(Report.utc(m.captureEnd)) (\(formatSeconds(r.spanSeconds)))" } ?? "-",
            summary: "\(m.packets) frames, \(m.connections.count) NVMe/TCP connection\(m.connections.count == 1 ? "" : "s")",
            errors: r.count(.error), warnings: r.count(.warning),
            findings: r.findings.map { f in
                FindingView(severity: f.severity.rawValue, rule: f.rule, title: f.title, detail: f.detail,
                            frames: f.evidence.map { "\($0.ref.frame) \($0.what)" }.joined(separator: "; "), fix: f.fix,
                            filter: MarkdownReport.displayFilter(f), basis: Report.basisText(f))
            },
            hasFindings: !r.findings.isEmpty,
            timelines: timelines,
            connections: m.connections.map { c in
                ConnectionRow(id: c.id, endpoints: "\(c.host) → \(c.target)", qid: r.qidText(c),
                              kind: r.kindText(c) + (c.isPersistent ? " (persistent)" : ""), kato: r.katoText(c),
                              keepAlives: c.keepAlives.count, maxGap: c.keepAliveSeries.maxGap.map { formatSeconds($0.seconds) } ?? "-",
                              closed: r.closedText(c), frames: "\(c.firstRef.frame)–\(c.lastRef.frame)", tcp: r.tcpText(c))
            },
            latency: r.latencyRows.dropFirst().map { LatencyRow(cells: $0) },
            latencyHeader: r.latencyRows.first ?? [],
            hasLatency: !r.latencyRows.isEmpty,
            latencyPlots: latencyPlots(r, since: since, spanNs: spanNs, anchors: slow.anchors),
            slowest: slow.rows,
            untimed: r.untimedNote,
            evidence: r.evidence.map { "\($0.file): \($0.packets) packets of connections \($0.connections.map(String.init).joined(separator: ", "))" },
            unjudged: r.unjudged.map { "\($0.rule) on connection \($0.connection): \($0.reason)" },
            capture: r.capture.summary(connections: m.connections.count),
            inferences: r.inferences.map { "connection \($0.connection): \($0.what)" })
        guard let template = try? MustacheTemplate(string: templateText) else { return "" }
        return template.render(page)
    }

    /// 1, 2 or 5 times a power of ten.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let p = pow(10, floor(log10(raw)))
        for k in [1.0, 2.0, 5.0, 10.0] where k * p >= raw { return k * p }
        return 10 * p
    }

    static let templateText = """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
    h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}
    table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
    .finding{border-left:5px solid #999;padding:.3em .8em;margin:.6em 0;background:#fafafa}
    .finding.error{border-color:#c62828}.finding.warning{border-color:#ef8f00}
    .rule{font-family:monospace;font-weight:bold}.muted{color:#666}code{font-size:12px}
    .scroll{overflow-x:auto;border:1px solid #ddd}
    svg text{font:11px monospace;fill:#333}
    .admin{fill:#6fa8dc}.io{fill:#b4a7d6}.discovery{fill:#93c47d}.unknown{fill:#ccc}
    .window{fill:#f4cccc;opacity:.55}.ka{stroke:#1c4587;stroke-width:1}.connect{stroke:#000;stroke-width:2}
    .teardown{stroke:#c62828;stroke-width:2.5;fill:none}.hostclose{stroke:#444;stroke-width:2;fill:none}
    .finding-error{fill:#c62828}.finding-warning{fill:#ef8f00}.finding-info{fill:#666}
    .axis{stroke:#eee}.legend span{margin-right:1.2em}
    .lat-read{fill:#1f77b4}.lat-write{fill:#e67e22}.lat-other{fill:#7f7f7f}.lat-slow{stroke:#c62828;stroke-width:2}
    .plotbox{display:inline-block;max-width:100%;overflow-x:auto;border:1px solid #e4e4e4}.plotbox svg{display:block}
    .lr{color:#1f77b4}.lw{color:#e67e22}.lo{color:#7f7f7f}tr:target{background:#fff3b0}
    @media print{.scroll{overflow:visible}svg{width:100%;height:auto}.zoom{display:none}}
    </style></head><body>
    <h1>{{title}}</h1>
    <p>nvmetrace {{version}} · {{summary}} · {{span}} · <b>{{errors}}</b> errors, <b>{{warnings}}</b> warnings</p>
    <p>Capture: {{capture}}</p>
    <table><tr><th>capture</th><th>size</th><th>SHA-256</th><th>frames</th></tr>
    {{#files}}<tr><td>{{name}}</td><td>{{bytes}}</td><td><code>{{sha256}}</code></td><td>{{frames}}</td></tr>{{/files}}</table>
    {{#evidence}}<p>Evidence capture: {{.}}</p>{{/evidence}}
    <h2>Findings</h2>
    {{^hasFindings}}<p>No findings.</p>{{/hasFindings}}
    {{#findings}}<div class="finding {{severity}}"><div><span class="rule">{{rule}}</span> ({{severity}}) — {{title}}</div>
    <div>{{detail}}</div>{{#basis}}<div class="muted">rests on: {{basis}}</div>{{/basis}}<div class="muted">frames: {{frames}}</div>
    <div class="muted">Wireshark: <code>{{filter}}</code></div><div class="muted">fix: {{fix}}</div></div>{{/findings}}
    {{#unjudged.first}}<h3>Not judged</h3>{{/unjudged.first}}<ul>{{#unjudged}}<li>{{.}}</li>{{/unjudged}}</ul>
    <h2>Timelines</h2>
    <p class="legend"><span>▬ connection (first to last packet; hover for frames)</span><span>| Keep Alive</span>
    <span style="color:#c62828">✕ torn down by the target</span><span>┃ closed by the host</span>
    <span style="background:#f4cccc">KATO window after the last timer restart</span><span style="color:#c62828">◆ finding</span></p>
    <p class="zoom">Zoom <input type="range" min="1" max="20" value="1" oninput="document.querySelectorAll('svg.tl').forEach(function(s){s.style.width=(s.getAttribute('width')*this.value)+'px'},this)"></p>
    {{#timelines}}<h3>{{title}}</h3><div class="scroll">
    <svg class="tl" xmlns="http://www.w3.org/2000/svg" width="{{svgWidth}}" height="{{height}}" viewBox="0 0 {{svgWidth}} {{height}}" preserveAspectRatio="none">
    {{#axis}}<line class="axis" x1="{{x}}" y1="16" x2="{{x}}" y2="{{height}}"/><text x="{{x}}" y="12">{{label}}</text>{{/axis}}
    {{#rows}}<text x="4" y="{{textY}}">{{label}}</text><rect class="{{barClass}}" x="{{barX}}" y="{{y}}" width="{{barW}}" height="16" rx="3"><title>{{barTitle}}</title></rect>{{#window}}<rect class="window" x="{{x}}" y="{{y}}" width="{{w}}" height="16"><title>{{title}}</title></rect>{{/window}}{{/rows}}
    {{#marks}}{{#path}}<path class="{{kind}}" d="{{path}}"><title>{{title}}</title></path>{{/path}}{{^path}}<line class="{{kind}}" x1="{{x}}" y1="{{y}}" x2="{{x}}" y2="{{y2}}"><title>{{title}}</title></line>{{/path}}{{/marks}}
    </svg></div>{{/timelines}}
    {{#hasLatency}}<h2>Command latency</h2>
    <p>Command capsule to completion as the capture point saw it, and under each command the phases the wire showed (NVMe/TCP 1.1 §3.3); figures exact up to 256 commands a row, HdrHistogram (within 1%) past them. Controllers by their admin queue's connection.</p>
    <table><tr>{{#latencyHeader}}<th>{{.}}</th>{{/latencyHeader}}</tr>
    {{#latency}}<tr>{{#cells}}<td>{{.}}</td>{{/cells}}</tr>{{/latency}}
    </table>
    {{#untimed}}<p class="muted">{{.}}</p>{{/untimed}}
    <p class="legend"><span class="lr">● Read</span><span class="lw">● Write</span><span class="lo">● other</span><span>◯ one of the slowest (click: its frames)</span> · each point the longest latency among the commands sent in its time slice; hover for times, click a ringed one for its frames</p>
    {{#latencyPlots}}<h3>{{title}}: {{legend}}</h3><div class="plotbox">
    <svg class="lat" xmlns="http://www.w3.org/2000/svg" width="{{svgWidth}}" height="{{height}}" viewBox="0 0 {{svgWidth}} {{height}}">
    {{#yAxis}}<line class="axis" x1="70" y1="{{y}}" x2="{{x2}}" y2="{{y}}"/><text x="4" y="{{textY}}">{{label}}</text>{{/yAxis}}
    {{#xAxis}}<text x="{{x}}" y="{{height}}">{{label}}</text>{{/xAxis}}
    {{#points}}{{#href}}<a href="{{href}}">{{/href}}<circle class="{{kind}}" cx="{{x}}" cy="{{y}}" r="{{r}}"><title>{{title}}</title></circle>{{#href}}</a>{{/href}}{{/points}}
    </svg></div>{{/latencyPlots}}
    <h3>Slowest commands</h3>
    <table><tr><th>latency</th><th>command</th><th>of</th><th>connection</th><th>CID</th><th>phases</th><th>frames</th><th>Wireshark</th></tr>
    {{#slowest}}<tr id="{{anchor}}"><td>{{latency}}</td><td>{{command}}</td><td>{{owner}}</td><td>{{connection}}</td><td>{{cid}}</td><td>{{phases}}</td><td>{{frames}}</td><td><code>{{filter}}</code></td></tr>{{/slowest}}
    </table>{{/hasLatency}}
    <h2>Connections</h2>
    <table><tr><th>#</th><th>host → target</th><th>qid</th><th>kind</th><th>KATO</th><th>Keep Alives</th><th>max gap</th><th>closed by</th><th>frames</th><th>TCP</th></tr>
    {{#connections}}<tr><td>{{id}}</td><td>{{endpoints}}</td><td>{{qid}}</td><td>{{kind}}</td><td>{{kato}}</td><td>{{keepAlives}}</td><td>{{maxGap}}</td><td>{{closed}}</td><td>{{frames}}</td><td>{{tcp}}</td></tr>{{/connections}}
    </table>
    {{#inferences.first}}<p>~ inferred, not read from the capture:</p>{{/inferences.first}}<ul>{{#inferences}}<li>{{.}}</li>{{/inferences}}</ul>
    </body></html>
    """
}
