import Foundation

/// The default terminal report: summary, findings by severity, connection table. Fits 100
/// columns; colour only when asked (on a TTY).
public enum TextReport {
    public static func render(_ r: Report, color: Bool) -> String {
        let m = r.model
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        var out: [String] = []
        let names = r.files.map(\.name).joined(separator: ", ")
        out.append(paint("nvmetrace \(r.version)", "1") + " — " + names)
        var span = "\(m.packets) frames"
        if let start = m.captureStart {
            span += ", \(formatSeconds(r.spanSeconds)) (\(Report.utc(start)) → \(Report.utc(m.captureEnd)))"
        }
        out.append(span)
        let kinds = Dictionary(grouping: m.connections, by: r.kind)
        var parts: [String] = []
        for k in ["discovery", "admin", "io", "?"] {
            guard let cs = kinds[k] else { continue }
            var s = "\(cs.count) \(k == "?" ? "of unknown kind" : k)"
            if k == "discovery" {
                let p = cs.filter(\.isPersistent).count
                if p > 0 { s += " (\(p) persistent)" }
            }
            parts.append(s)
        }
        out.append("\(m.connections.count) NVMe/TCP connection\(m.connections.count == 1 ? "" : "s")" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", ")))
        out.append(contentsOf: wrap("Capture: " + r.capture.summary(connections: m.connections.count), indent: 0))
        if r.decodeWarnings > 0 { out.append("\(r.decodeWarnings) decode warning\(r.decodeWarnings == 1 ? "" : "s") (gaps, resynchronisation, malformed packets)") }
        for e in r.readErrors { out.append(paint("read error: ", "31") + e) }
        if let ev = r.evidence {
            out.append("Evidence: \(ev.file) (\(ev.packets) packets of connection\(ev.connections.count == 1 ? "" : "s") \(ev.connections.map(String.init).joined(separator: ", "))\(ev.snaplen.map { ", cut to \($0) bytes" } ?? ""))")
        }
        out.append("")

        if r.findings.isEmpty {
            out.append(paint("No findings.", "32"))
        }
        for sev in [Severity.error, .warning, .info] {
            let fs = r.findings.filter { $0.severity == sev }
            guard !fs.isEmpty else { continue }
            let code = sev == .error ? "1;31" : sev == .warning ? "1;33" : "1"
            out.append(paint("\(sev.rawValue.uppercased())S (\(fs.count))", code))
            for f in fs {
                let title = wrap(f.rule + "  " + f.title, indent: 2)
                if let first = title.first {
                    out.append(first.replacingOccurrences(of: f.rule, with: paint(f.rule, code), options: .anchored,
                                                          range: first.range(of: f.rule)))
                    out.append(contentsOf: title.dropFirst())
                }
                out.append(contentsOf: wrap("at \(String(format: "%.3f", r.relative(f.ref))) s: \(f.detail)", indent: 4))
                if !f.basis.isEmpty { out.append(contentsOf: wrap("rests on: " + Report.basisText(f), indent: 4)) }
                let ev = f.evidence.map { "\($0.ref.frame) \($0.what)" }.joined(separator: ", ")
                out.append(contentsOf: wrap("frames: " + ev, indent: 4))
                out.append(contentsOf: wrap("fix: " + f.fix, indent: 4))
            }
            out.append("")
        }
        if !r.unjudged.isEmpty {
            out.append("NOT JUDGED (\(r.unjudged.count))")
            for u in r.unjudged { out.append(contentsOf: wrap("\(u.rule) on connection \(u.connection): \(u.reason)", indent: 2)) }
            out.append("")
        }
        if !m.connections.isEmpty {
            let latency = r.latencyRows
            if !latency.isEmpty {
                out.append(paint("COMMAND LATENCY", "1") + " (command capsule to completion at the capture point; controller by its admin queue's connection)")
                // A terminal gets the first rows; the files list every one.
                out.append(contentsOf: table(Array(latency.prefix(Self.latencyRowsShown + 1))))
                if latency.count > Self.latencyRowsShown + 1 {
                    out.append("  … \(latency.count - 1 - Self.latencyRowsShown) more rows (all of them: --format markdown, html or json)")
                }
                if let note = r.untimedNote { out.append(contentsOf: wrap(note, indent: 2)) }
            }
            out.append(paint("CONNECTIONS", "1"))
            // The TCP column only when some connection's TCP shows trouble (the handshake RTT of
            // each is in the other formats): a report of thousands of healthy connections stays
            // as narrow, and as quick to make, as it was.
            let tcp = r.anyTCPTrouble
            var rows = [["#", "host → target", "qid", "kind", "KATO", "KAs", "max gap", "closed by", "frames"] + (tcp ? ["TCP"] : [])]
            for c in m.connections {
                var kind = r.kindText(c)
                if c.isPersistent { kind += "*" }
                rows.append([
                    String(c.id), describe(c), r.qidText(c), kind,
                    r.katoText(c), String(c.keepAlives.count),
                    c.keepAliveSeries.maxGap.map { formatSeconds($0.seconds) } ?? "-",
                    r.closedText(c), "\(c.firstRef.frame)-\(c.lastRef.frame)",
                ] + (tcp ? [r.tcpText(c, rtt: false)] : []))
            }
            out.append(contentsOf: table(rows))
            if m.connections.contains(where: \.isPersistent) { out.append("  * persistent discovery connection") }
            let inferences = r.inferences
            if !inferences.isEmpty {
                out.append("  ~ inferred, not read from the capture:")
                for i in inferences { out.append(contentsOf: wrap("#\(i.connection) \(i.what)", indent: 4)) }
            }
        }
        return out.joined(separator: "\n")
    }

    /// One line per finding for live output: wall-clock time, severity, rule, connection, title.
    public static func liveLine(_ f: Finding, _ r: Report) -> String {
        // The time of day of the report's UTC timestamp ("…THH:MM:SS.mmmZ"), without loading ICU.
        let utc = Report.utc(f.ref)
        let time = utc.split(separator: "T").last.map { String($0.dropLast()) } ?? utc
        let frames = f.frames.map { String($0.frame) }.joined(separator: ",")
        return "\(time) \(f.severity.rawValue) \(f.rule) #\(f.connection.map(String.init) ?? "-") \(f.title) [frames \(frames)]"
    }

    /// Left-aligned columns as wide as their widest cell (the first column right-aligned).
    static func table(_ rows: [[String]]) -> [String] {
        guard let n = rows.first?.count else { return [] }
        let widths = (0..<n).map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { cols in
            var s = "  "
            for (i, c) in cols.enumerated() {
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                if i == 0 { s += pad + c } else if i == n - 1 { s += c } else { s += c + pad }
                if i < n - 1 { s += "  " }
            }
            return s
        }
    }

    /// Word-wraps to 100 columns.
    /// Rows of the command latency table a text report prints (a capture of thousands of
    /// connections has hundreds).
    static let latencyRowsShown = 48

    static func wrap(_ text: String, indent: Int, width: Int = 100) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        var line = pad
        // The line's length kept as a count: `String.count` walks the whole string, once per
        // word it was, which a report of thousands of findings paid for quadratically.
        var length = indent
        var continuation = false  // the line is a fresh continuation ("  " after the indent)
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            let wordLength = word.count
            if length + wordLength + 1 > width && length > indent {
                lines.append(line)
                line = pad + "  "
                length = indent + 2
                continuation = true
            }
            if length > indent && !continuation { line += " "; length += 1 }
            line += word
            length += wordLength
            continuation = false
        }
        if length > indent { lines.append(line) }
        return lines
    }
}
