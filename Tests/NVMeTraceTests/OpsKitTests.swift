import Foundation
import Testing
@testable import NVMeTrace

/// The operations kit in ops/: the systemd unit, the Prometheus alerts and their unit tests, the
/// Grafana dashboard. Each file is judged by the tool that reads it (promtool, systemd-analyze,
/// the dashboard's own checker); those tools fail the tests when missing, never skip them. And
/// since promtool accepts any metric name, the names the rules and the dashboard use are checked
/// against the real metrics page, and the rule ids against the rule engine.
@Suite struct OpsKitTests {
    static let repository = samplesDirectory.deletingLastPathComponent()
    static let promtool = "/usr/bin/promtool"
    static let systemdAnalyze = "/usr/bin/systemd-analyze"
    static let alerts = repository.appendingPathComponent("ops/prometheus/nvmetrace-alerts.yml")
    static let alertTests = repository.appendingPathComponent("ops/prometheus/nvmetrace-alerts.test.yml")
    static let dashboard = repository.appendingPathComponent("ops/grafana/nvmetrace-dashboard.json")
    static let dashboardCheck = repository.appendingPathComponent("ops/grafana/check-dashboard.py")
    static let unit = repository.appendingPathComponent("ops/systemd/nvmetrace-monitor@.service")
    /// Where the unit expects the executable; the tests point a copy at the built one.
    static let installedBinary = "/usr/local/bin/nvmetrace"

    static func requirePromtool() throws {
        try #require(FileManager.default.isExecutableFile(atPath: promtool),
                     "promtool not found at \(promtool): apt-get install prometheus")
    }

    static func requireSystemdAnalyze() throws {
        try #require(FileManager.default.isExecutableFile(atPath: systemdAnalyze),
                     "systemd-analyze not found at \(systemdAnalyze): apt-get install systemd")
    }

    @Test func alertRulesPassPromtoolCheck() throws {
        try Self.requirePromtool()
        let run = try runChild(Self.promtool, ["check", "rules", Self.alerts.path], seconds: 60)
        #expect(run.status == 0, "promtool check rules: \(run.stdout)\(run.stderr)")
    }

    @Test func alertRulesPassTheirUnitTests() throws {
        try Self.requirePromtool()
        let run = try runChild(Self.promtool, ["test", "rules", Self.alertTests.path], seconds: 60)
        #expect(run.status == 0, "promtool test rules: \(run.stdout)\(run.stderr)")
    }

    @Test func dashboardExpressionsParse() throws {
        let python = try #require(independentGeneratorPython, "python3 not found: apt-get install python3")
        try Self.requirePromtool()
        let run = try runChild(python, [Self.dashboardCheck.path, Self.dashboard.path],
                               environment: ["PROMTOOL": Self.promtool], seconds: 60)
        #expect(run.status == 0, "check-dashboard.py: \(run.stdout)\(run.stderr)")
    }

    /// `systemd-analyze verify` on a copy of the unit whose ExecStart is the built nvmetrace (it
    /// checks the command exists). It warns about unknown keys and bad values but still exits 0,
    /// so any line naming the unit fails the test too. The unit grants exactly two capabilities.
    @Test func systemdUnitVerifies() throws {
        try Self.requireSystemdAnalyze()
        let binary = try #require(nvmetraceBinary(), "nvmetrace executable not found next to the tests")
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        #expect(text.contains("ExecStart=\(Self.installedBinary) monitor "))
        let dir = temporaryFile("systemd")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent(Self.unit.lastPathComponent)
        try text.replacingOccurrences(of: "ExecStart=\(Self.installedBinary) ", with: "ExecStart=\(binary.path) ")
            .write(to: copy, atomically: true, encoding: .utf8)

        let run = try runChild(Self.systemdAnalyze, ["verify", copy.path], seconds: 60)
        let output = run.stdout + run.stderr
        #expect(run.status == 0, "systemd-analyze verify: \(output)")
        let complaints = output.split(separator: "\n").filter { $0.contains("nvmetrace-monitor") }
        #expect(complaints.isEmpty, "systemd-analyze verify: \(output)")

        for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
            let values = text.split(separator: "\n").filter { $0.hasPrefix(key + "=") }
                .flatMap { $0.dropFirst(key.count + 1).split(separator: " ").map(String.init) }
            #expect(Set(values) == ["CAP_NET_RAW", "CAP_NET_ADMIN"], "\(key): \(values)")
        }
    }

    /// `systemd-analyze security` rates the unit's sandbox: 1.8 (systemd 252) when written. Loosening it past
    /// 3.0 (--threshold counts tenths) fails.
    @Test func systemdUnitStaysHardened() throws {
        try Self.requireSystemdAnalyze()
        let run = try runChild(Self.systemdAnalyze, ["security", "--offline=yes", "--threshold=30", Self.unit.path], seconds: 60)
        #expect(run.status == 0, "systemd-analyze security: \(run.stdout.suffix(3000))\(run.stderr)")
        #expect(run.stdout.contains("Overall exposure level"), "\(run.stdout.suffix(3000))\(run.stderr)")
    }

    // MARK: - Names

    /// Series names on the metrics page (histograms as _bucket, _sum, _count) and the metric
    /// families of its `# TYPE` lines.
    static func metricsPage() -> (series: Set<String>, families: Set<String>) {
        let page = String(decoding: MonitorMetrics().page(), as: UTF8.self)
        var series: Set<String> = []
        var families: Set<String> = []
        for line in page.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count >= 3 { families.insert(String(parts[2])) }
            } else if !line.hasPrefix("#") {
                series.insert(String(line.prefix { $0 != "{" && $0 != " " }))
            }
        }
        return (series, families)
    }

    /// The `expr` of each rule in a Prometheus rules file written as ops/ writes it: on one line
    /// (maybe quoted) or as a block scalar (`>-`) on the lines indented under it.
    static func ruleExpressions(_ text: String) -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var out: [String] = []
        var i = 0
        while i < lines.count {
            let line = lines[i]
            let trimmed = line.drop { $0 == " " }
            i += 1
            guard trimmed.hasPrefix("expr:") else { continue }
            let indent = line.count - trimmed.count
            var expr = trimmed.dropFirst("expr:".count).trimmingCharacters(in: .whitespaces)
            if expr.hasPrefix(">") || expr.hasPrefix("|") {
                var parts: [String] = []
                while i < lines.count {
                    let next = lines[i].drop { $0 == " " }
                    if !next.isEmpty && lines[i].count - next.count <= indent { break }
                    parts.append(String(next))
                    i += 1
                }
                expr = parts.joined(separator: " ")
            } else if expr.count >= 2, let q = expr.first, q == "'" || q == "\"", expr.last == q {
                expr = String(expr.dropFirst().dropLast())
            }
            out.append(expr)
        }
        return out
    }

    /// Every `expr` string anywhere in a Grafana dashboard (rows nest their panels).
    static func dashboardExpressions(_ json: Any) -> [String] {
        if let object = json as? [String: Any] {
            return object.flatMap { entry -> [String] in
                (entry.key == "expr" ? [entry.value as? String].compactMap { $0 } : []) + dashboardExpressions(entry.value)
            }
        }
        if let array = json as? [Any] { return array.flatMap { dashboardExpressions($0) } }
        return []
    }

    /// The metric names a PromQL expression selects: identifiers left once strings, label
    /// matchers, ranges and label lists are gone, that are not numbers or durations, function or
    /// aggregation calls, or keywords.
    static func metricNames(in expr: String) -> Set<String> {
        var s = expr
        s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/, with: "\"\"")
        s.replace(/\{[^}]*\}/, with: " ")
        s.replace(/\[[^\]]*\]/, with: " ")
        s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/, with: " ")
        let keywords: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                                     "and", "or", "unless", "offset", "atan2", "inf", "nan"]
        var names: Set<String> = []
        for m in s.matches(of: /(\d[0-9A-Za-z_.]*)|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/) {
            guard let name = m.output.2, m.output.3 == nil, !keywords.contains(name.lowercased()) else { continue }
            names.insert(String(name))
        }
        return names
    }

    @Test func metricNamesParse() {
        #expect(Self.metricNames(in: #"60 * sum by (rule, severity) (rate(nvmetrace_findings_total{instance=~".*", rule!~"a|b"}[5m]))"#)
            == ["nvmetrace_findings_total"])
        #expect(Self.metricNames(in: #"histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) / ignoring(le) y offset 1h"#)
            == ["x_bucket", "y"])
        #expect(Self.metricNames(in: #"max_over_time(up{job="a"}[1h]) unless on (instance, job) up > 1e3"#) == ["up"])
        let rules = Self.ruleExpressions("""
              - alert: A
                expr: 'a > 0'
                for: 5m
              - alert: B
                expr: >-
                  sum(b{x="1",
                  y="2"}) > 0
                labels:
            """)
        #expect(rules == ["a > 0", #"sum(b{x="1", y="2"}) > 0"#])
    }

    /// Every metric the alert rules and the dashboard select is on the metrics page (histograms
    /// by their _bucket/_sum/_count series), or is Prometheus's `up`, or the per-controller gap
    /// gauge (on the page only once a controller is open). Metric names written in annotations and
    /// panel descriptions must be real families too.
    @Test func metricNamesAreReal() throws {
        let (series, families) = Self.metricsPage()
        #expect(series.contains("nvmetrace_findings_total") && series.contains("nvmetrace_outage_seconds_bucket"))
        let selectable = series.union(["up", "nvmetrace_keep_alive_gap_over_kato"])

        let alertText = try String(contentsOf: Self.alerts, encoding: .utf8)
        let alertExprs = Self.ruleExpressions(alertText)
        #expect(alertExprs.count == alertText.components(separatedBy: "- alert:").count - 1)
        let dashboardText = try String(contentsOf: Self.dashboard, encoding: .utf8)
        var dashboardExprs = Self.dashboardExpressions(try JSONSerialization.jsonObject(with: Data(dashboardText.utf8)))
        dashboardExprs += dashboardText.matches(of: /label_values\(\s*([^,)]+)/).map { String($0.output.1) }
        #expect(dashboardExprs.count >= 20)

        for (file, exprs) in [("alerts", alertExprs), ("dashboard", dashboardExprs)] {
            var used: Set<String> = []
            for expr in exprs {
                let names = Self.metricNames(in: expr)
                #expect(!names.isEmpty, "\(file): no metric found in \(expr)")
                #expect(names.isSubset(of: selectable), "\(file): unknown metric \(names.subtracting(selectable).sorted()) in \(expr)")
                used.formUnion(names)
            }
            #expect(used.count >= 5, "\(file): \(used.sorted())")
        }

        let mentionable = selectable.union(families)
        for (file, text) in [("alerts", alertText), ("dashboard", dashboardText)] {
            let mentioned = Set(text.matches(of: /\b(?:nvmetrace|process)_[a-z0-9_]+/).map { String($0.output) })
            #expect(mentioned.isSubset(of: mentionable), "\(file) names unknown metrics: \(mentioned.subtracting(mentionable).sorted())")
        }
    }

    /// `rule` matchers name real rules and `severity` matchers real severities, in both files.
    @Test func ruleIDsAreReal() throws {
        let rules = Set(RuleEngine.allRules.map { $0.id })
        var seen: Set<String> = []
        for url in [Self.alerts, Self.dashboard] {
            let text = try String(contentsOf: url, encoding: .utf8)
            for m in text.matches(of: /\b(rule|severity)\s*(?:=~|!~|!=|=)\s*\\?"([^"\\]*)\\?"/) {
                for value in m.output.2.split(separator: "|").map(String.init) {
                    if m.output.1 == "rule" {
                        #expect(rules.contains(value), "\(url.lastPathComponent): no rule '\(value)' (nvmetrace --rules lists them)")
                        seen.insert(value)
                    } else {
                        #expect(Severity(rawValue: value) != nil, "\(url.lastPathComponent): no severity '\(value)'")
                    }
                }
            }
        }
        #expect(seen.isSuperset(of: ["keep-alive-expired", "target-teardown", "outage", "command-timeout", "commands-lost", "tcp-loss"]),
                "rules the alerts match: \(seen.sorted())")
    }
}
