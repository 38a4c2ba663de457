import Foundation

/// `--format markdown`: ready to paste into a bug ticket.
public enum MarkdownReport {
    public static func render(_ r: Report) -> String {
        let m = r.model
        var out: [String] = []
        out.append("## nvmetrace report")
        out.append("")
        out.append("| capture | size | SHA-256 | frames |")
        out.append("|---|---|---|---|")
        for f in r.files {
            out.append("| `\(f.name)` | \(f.bytes.map { "\($0) bytes" } ?? "-") | \(f.sha256.map { "`\($0)`" } ?? "-") | \(f.frames) |")
        }
        out.append("")
        if let start = m.captureStart {
            out.append("Span: \(Report.utc(start)) → \(Report.utc(m.captureEnd)) (\(formatSeconds(r.spanSeconds))). ")
        }
        out.append("Analysed with nvmetrace \(r.version): \(m.connections.count) NVMe/TCP connection\(m.connections.count == 1 ? "" : "s"), \(r.count(.error)) error\(r.count(.error) == 1 ? "" : "s"), \(r.count(.warning)) warning\(r.count(.warning) == 1 ? "" : "s").")
        out.append("Capture: \(escape(r.capture.summary(connections: m.connections.count))).")
        if r.decodeWarnings > 0 { out.append("\(r.decodeWarnings) decode warnings (gaps, resynchronisation, malformed packets).") }
        if let ev = r.evidence {
            out.append("Evidence attached: `\(ev.file)` — \(ev.packets) packets of connection\(ev.connections.count == 1 ? "" : "s") \(ev.connections.map(String.init).joined(separator: ", "))\(ev.snaplen.map { ", each cut to \($0) bytes" } ?? "") (frame numbers in it differ from the original capture's).")
        }
        out.append("")
        out.append("### Findings")
        out.append("")
        if r.findings.isEmpty { out.append("None.") }
        for f in r.findings {
            out.append("#### \(f.severity == .error ? "Error" : f.severity == .warning ? "Warning" : "Info"): `\(f.rule)` — \(escape(f.title))")
            out.append("")
            out.append("\(escape(f.detail))")
            out.append("")
            if !f.basis.isEmpty {
                out.append("*Rests on:*")
                out.append("")
                for b in f.basis { out.append("- " + (b.inferred ? "**inferred:** " : "") + escape(b.evidence)) }
                out.append("")
            }
            out.append("| frame | time (s) | connection | evidence |")
            out.append("|---|---|---|---|")
            for e in f.evidence {
                out.append("| \(e.ref.frame) | \(String(format: "%.6f", r.relative(e.ref))) | \(e.connection.map(String.init) ?? "-") | \(escape(e.what)) |")
            }
            out.append("")
            out.append("Wireshark display filter for the evidence: `\(displayFilter(f))`" + (f.connections.isEmpty ? "" : "; the whole connection\(f.connections.count == 1 ? "" : "s"): `\(streamFilter(f))`"))
            out.append("")
            out.append("*Why:* \(escape(f.explanation))")
            out.append("")
            out.append("*Fix:* \(escape(f.fix))")
            out.append("")
        }
        if !r.unjudged.isEmpty {
            out.append("### Not judged")
            out.append("")
            for u in r.unjudged { out.append("- `\(u.rule)` on connection \(u.connection): \(escape(u.reason))") }
            out.append("")
        }
        let latency = r.latencyRows
        if !latency.isEmpty {
            out.append("### Command latency")
            out.append("")
            out.append("Command capsule to completion as the capture point saw it, and under each command the phases the wire showed (NVMe/TCP 1.1 §3.3); figures exact up to 256 commands a row, HdrHistogram (within 1%) past them. Controllers by their admin queue's connection.")
            out.append("")
            out.append("| " + latency[0].joined(separator: " | ") + " |")
            out.append("|" + String(repeating: "---|", count: latency[0].count))
            for row in latency.dropFirst() { out.append("| " + row.joined(separator: " | ") + " |") }
            out.append("")
            if let note = r.untimedNote {
                out.append(escape(note))
                out.append("")
            }
            out.append("Slowest commands:")
            out.append("")
            out.append("| latency | command | controller | connection | CID | phases | frames | Wireshark display filter |")
            out.append("|---|---|---|---|---|---|---|---|")
            for v in r.slowestCommands() {
                let c = v.command
                out.append("| \(Report.milliseconds(c.latencyNs)) | \(v.group.command) (\(v.group.queueText)) | \(escape(r.latencyOwner(v.group))) | \(c.connection) | \(hexValue(c.cid, digits: 4)) | \(v.phases.isEmpty ? "-" : v.phases) | \(r.fileName(c.issued)) \(c.issued.frame)→\(c.completed.frame) | `\(v.filter)` |")
            }
            out.append("")
        }
        out.append("### Connections")
        out.append("")
        out.append("| # | host → target | qid | kind | KATO | Keep Alives | max gap | closed by | frames | TCP |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for c in m.connections {
            let persistent = c.isPersistent ? " (persistent)" : ""
            out.append("| \(c.id) | \(c.host) → \(c.target) | \(r.qidText(c)) | \(r.kindText(c))\(persistent) | \(r.katoText(c)) | \(c.keepAlives.count) | \(c.keepAliveSeries.maxGap.map { formatSeconds($0.seconds) } ?? "-") | \(r.closedText(c)) | \(c.firstRef.frame)–\(c.lastRef.frame) | \(r.tcpText(c)) |")
        }
        let inferences = r.inferences
        if !inferences.isEmpty {
            out.append("")
            out.append("`~` inferred, not read from the capture:")
            out.append("")
            for i in inferences { out.append("- connection \(i.connection): \(escape(i.what))") }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Shows exactly the evidence frames (and, for one connection, its TCP stream).
    /// Wireshark 4 separates set members with commas; `{1 2}` is rejected by its filter parser.
    public static func displayFilter(_ f: Finding) -> String {
        "frame.number in {\(f.frames.map { String($0.frame) }.joined(separator: ", "))}"
    }

    /// The TCP streams involved (connection ids are counted like Wireshark's tcp.stream).
    public static func streamFilter(_ f: Finding) -> String {
        "tcp.stream in {\(f.connections.map(String.init).joined(separator: ", "))}"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|")
    }
}
