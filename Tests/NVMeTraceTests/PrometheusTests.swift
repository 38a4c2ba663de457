import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The metrics endpoint as Prometheus meets it (issue #17): nvmetrace captures on `lo` with
/// `--metrics-listen`, a real Prometheus server (Debian's `prometheus`) scrapes it every second,
/// real sockets play a persistent discovery connection with KATO 0 and an admin queue whose Keep
/// Alives stop, and Prometheus's HTTP API must show the finding counters and the keep-alive gauge.
/// `promtool check metrics` judges a scraped page.
@Suite(.serialized) struct PrometheusTests {
    static let prometheus = "/usr/bin/prometheus"
    static let promtool = "/usr/bin/promtool"

    /// A port nothing listens on now.
    static func freePort() -> UInt16 {
        let (s, port) = LoopbackSocket.listener()
        _ = s
        return port
    }

    /// `GET path` on 127.0.0.1:port, HTTP/1.0: the status line's code and the body.
    static func get(port: UInt16, _ path: String) -> (Int, String)? {
        let s = LoopbackSocket.connect(port: port)
        s.send(Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(s.fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let code = Int(text.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return (code, String(text[split.upperBound...]))
    }

    /// The value of a Prometheus instant query, nil while it has none.
    static func query(port: UInt16, _ promql: String) -> Double? {
        let q = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        guard let (code, body) = get(port: port, "/api/v1/query?query=\(q)"), code == 200,
              let doc = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let result = (doc["data"] as? [String: Any])?["result"] as? [[String: Any]], let first = result.first,
              let value = first["value"] as? [Any], value.count == 2, let s = value[1] as? String else { return nil }
        return Double(s)
    }

    /// A real Prometheus server scraping 127.0.0.1:`port` every second, its data in `dir`.
    static func startPrometheus(scraping port: UInt16, in dir: URL) throws -> (ChildProcess, UInt16) {
        let config = dir.appendingPathComponent("prometheus.yml")
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: nvmetrace
                static_configs:
                  - targets: ['127.0.0.1:\(port)']
            """.write(to: config, atomically: true, encoding: .utf8)
        let promPort = freePort()
        let prom = try ChildProcess(prometheus, ["--config.file=\(config.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("data").path)",
                                                 "--web.listen-address=127.0.0.1:\(promPort)"])
        return (prom, promPort)
    }

    /// The value of `promql` once `ok` holds, or as it is after `seconds`.
    static func waitFor(_ promPort: UInt16, _ promql: String, _ ok: (Double) -> Bool, seconds: Double) -> Double? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let v = query(port: promPort, promql), ok(v) { return v }
            usleep(500_000)
        }
        return query(port: promPort, promql)
    }

    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo (root or CAP_NET_RAW and CAP_NET_ADMIN)"))
    func prometheusScrapesTheFindingsAndTheKeepAliveGap() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.prometheus),
                     "Prometheus not found at \(Self.prometheus): apt-get install prometheus (.ci/run does)")
        let (discoveryListener, discoveryPort) = LoopbackSocket.listener()
        let (adminListener, adminPort) = LoopbackSocket.listener()
        let metricsPort = Self.freePort()
        let p = try LiveCaptureTests.startLive(["-i", "lo", "--format", "json", "--metrics-listen", "127.0.0.1:\(metricsPort)",
                                                "tcp port \(discoveryPort) or tcp port \(adminPort)"])
        // Prometheus, scraping it every second.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-prometheus-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (prom, promPort) = try Self.startPrometheus(scraping: metricsPort, in: dir)
        defer { prom.send(signal: SIGTERM); _ = try? prom.wait(seconds: 20) }

        // A persistent discovery connection with KATO 0 (log read, an AER left outstanding).
        let (dHost, dTarget) = LiveCaptureTests.playKATO0Discovery(discoveryListener, port: discoveryPort)
        // An admin queue with KATO 1 s whose Keep Alives stop after two.
        let (aHost, aTarget) = LiveCaptureTests.connectAdmin(adminListener, port: adminPort)
        for cid: UInt16 in [10, 11] {
            usleep(400_000)
            aHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: cid)))
            aTarget.send(PDUBuilder.capsuleResp(cid: cid))
        }

        // Prometheus sees the silence past KATO, then the KATO 0 finding (10 s after the log read).
        func waitFor(_ promql: String, _ ok: (Double) -> Bool, seconds: Double) -> Double? {
            Self.waitFor(promPort, promql, ok, seconds: seconds)
        }
        let gap = waitFor("nvmetrace_keep_alive_gap_over_kato_max", { $0 >= 1 }, seconds: 30)
        #expect((gap ?? 0) >= 1, "the keep-alive gauge in Prometheus: \(String(describing: gap))")
        let overdue = waitFor(#"nvmetrace_findings_total{rule="keep-alive-overdue",severity="warning"}"#, { $0 >= 1 }, seconds: 30)
        #expect(overdue == 1, "keep-alive-overdue in Prometheus: \(String(describing: overdue))")
        let kato0 = waitFor(#"nvmetrace_findings_total{rule="discovery-kato-zero",severity="error"}"#, { $0 >= 1 }, seconds: 40)
        #expect(kato0 == 1, "discovery-kato-zero in Prometheus: \(String(describing: kato0))")
        let discovery = waitFor(#"nvmetrace_discovery_kato_zero_controllers"#, { $0 >= 1 }, seconds: 10)
        #expect(discovery == 1)
        #expect(waitFor(#"nvmetrace_connections{kind="discovery",state="open"}"#, { $0 >= 1 }, seconds: 5) == 1)
        #expect((waitFor("nvmetrace_capture_packets_received_total", { $0 >= 20 }, seconds: 5) ?? 0) >= 20)

        // promtool judges the page Prometheus scraped.
        let page = try #require(Self.get(port: metricsPort, "/metrics"))
        #expect(page.0 == 200)
        let pageFile = dir.appendingPathComponent("metrics.txt")
        try page.1.write(to: pageFile, atomically: true, encoding: .utf8)
        let check = try runChild("/bin/sh", ["-c", "\(Self.promtool) check metrics < '\(pageFile.path)'"], seconds: 30)
        #expect(check.status == 0, "promtool check metrics: \(check.stdout)\(check.stderr)")
        #expect(Self.get(port: metricsPort, "/other")?.0 == 404)

        p.send(signal: SIGINT)
        _ = try p.wait(seconds: 15)
        _ = (dHost, dTarget, aHost, aTarget)
    }
}

extension PrometheusTests {
    /// The daemon as an operator runs it (issue #17): `nvmetrace monitor` on `lo` with its
    /// defaults (headers only, -s 256), events to a file, a real Prometheus scraping it every
    /// second. Real sockets play a persistent discovery connection with KATO 0, and an admin queue
    /// whose Keep Alives stop and which the target then closes. Prometheus must show the findings,
    /// the per-controller gap, the associations made and torn down and the keep-alive intervals;
    /// SIGTERM must stop the daemon with status 0 and the events file hold each event.
    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo (root or CAP_NET_RAW and CAP_NET_ADMIN)"))
    func theDaemonUnderPrometheus() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.prometheus),
                     "Prometheus not found at \(Self.prometheus): apt-get install prometheus (.ci/run does)")
        let (discoveryListener, discoveryPort) = LoopbackSocket.listener()
        let (adminListener, adminPort) = LoopbackSocket.listener()
        let metricsPort = Self.freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-daemon-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let events = dir.appendingPathComponent("events.json")
        let binary = try #require(nvmetraceBinary())
        let ring = dir.appendingPathComponent("ring")
        let daemon = try ChildProcess(binary.path, ["monitor", "-i", "lo", "--metrics-listen", "127.0.0.1:\(metricsPort)", "--events", events.path,
                                                    "--ring", ring.path,
                                                    "--port", "\(discoveryPort)", "--port", "\(adminPort)",
                                                    "tcp port \(discoveryPort) or tcp port \(adminPort)"])
        try daemon.waitFor("monitoring lo", in: daemon.stderr, seconds: 30)
        #expect(daemon.stderr.text.contains("snapshot length 256 bytes"))
        let (prom, promPort) = try Self.startPrometheus(scraping: metricsPort, in: dir)
        defer { prom.send(signal: SIGTERM); _ = try? prom.wait(seconds: 20) }

        let (dHost, dTarget) = LiveCaptureTests.playKATO0Discovery(discoveryListener, port: discoveryPort)
        let (aHost, aTarget) = LiveCaptureTests.connectAdmin(adminListener, port: adminPort)
        for cid: UInt16 in [10, 11, 12] {
            usleep(300_000)
            aHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: cid)))
            aTarget.send(PDUBuilder.capsuleResp(cid: cid))
        }

        func waitFor(_ promql: String, _ ok: (Double) -> Bool, seconds: Double) -> Double? {
            Self.waitFor(promPort, promql, ok, seconds: seconds)
        }
        // The admin queue's silence, per controller: the Connect data (its NQN) is past the
        // 256-byte snap length, so the label says so by being empty.
        let gap = waitFor(#"nvmetrace_keep_alive_gap_over_kato{target="127.0.0.1:\#(adminPort)"}"#, { $0 >= 1 }, seconds: 30)
        #expect((gap ?? 0) >= 1, "the per-controller gap in Prometheus: \(String(describing: gap))")
        #expect(waitFor(#"nvmetrace_findings_total{rule="keep-alive-overdue",severity="warning"}"#, { $0 >= 1 }, seconds: 30) == 1)
        // Two Keep Alive intervals of about 300 ms.
        #expect(waitFor("nvmetrace_keep_alive_interval_seconds_count", { $0 >= 2 }, seconds: 10) == 2)
        #expect(waitFor(#"nvmetrace_keep_alive_interval_seconds_bucket{le="0.5"}"#, { $0 >= 2 }, seconds: 10) == 2)
        #expect(waitFor(#"sum(nvmetrace_associations_created_total)"#, { $0 >= 2 }, seconds: 10) == 2)
        // The target closes the admin queue; the host follows.
        shutdown(aTarget.fd, Int32(SHUT_WR))
        shutdown(aHost.fd, Int32(SHUT_WR))
        #expect(waitFor(#"sum(nvmetrace_associations_ended_total{by="target",how="fin"})"#, { $0 >= 1 }, seconds: 20) == 1)
        #expect(waitFor(#"nvmetrace_findings_total{rule="discovery-kato-zero",severity="error"}"#, { $0 >= 1 }, seconds: 40) == 1)
        #expect(waitFor("nvmetrace_discovery_kato_zero_controllers", { $0 >= 1 }, seconds: 10) == 1)
        #expect((waitFor("process_resident_memory_bytes", { $0 > 0 }, seconds: 5) ?? 0) > 1_000_000)
        let page = try #require(Self.get(port: metricsPort, "/metrics"))
        let pageFile = dir.appendingPathComponent("metrics.txt")
        try page.1.write(to: pageFile, atomically: true, encoding: .utf8)
        let check = try runChild("/bin/sh", ["-c", "\(Self.promtool) check metrics < '\(pageFile.path)'"], seconds: 30)
        #expect(check.status == 0, "promtool check metrics: \(check.stdout)\(check.stderr)")

        daemon.send(signal: SIGTERM)
        let stopped = try daemon.wait(seconds: 20)
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(stopped.stderr.contains("nvmetrace: stopped: "))
        let lines = try jsonLines(String(contentsOf: events, encoding: .utf8))
        func count(_ event: String, _ match: ([String: Any]) -> Bool = { _ in true }) -> Int {
            lines.filter { $0["event"] as? String == event && match($0) }.count
        }
        #expect(count("association-up") == 2, "\(lines)")
        #expect(count("association-down") { ($0["association"] as? [String: Any])?["by"] as? String == "target" } == 1)
        #expect(count("finding") { ($0["finding"] as? [String: Any])?["rule"] as? String == "discovery-kato-zero" } == 1)
        #expect(count("finding") { ($0["finding"] as? [String: Any])?["rule"] as? String == "keep-alive-overdue" } == 1)
        for l in lines { #expect(l["schema"] as? String == "nvmetrace.event/1") }
        // The KATO 0 finding's evidence, cut from the ring: its Connect, KATO 0, is in it.
        let kato0 = try #require(lines.first { ($0["finding"] as? [String: Any])?["rule"] as? String == "discovery-kato-zero" })
        let evidence = try #require((kato0["evidence"] as? [String: Any])?["file"] as? String, "\(kato0)")
        #expect(evidence.hasPrefix(ring.path + "/evidence/"))
        let pdus = try runChild(binary.path, ["pdus", "--port", "\(discoveryPort)", evidence], seconds: 30)
        #expect(pdus.status == 0, "\(pdus.stderr)")
        #expect(pdus.stdout.contains("Connect qid=0 sqsize=31 kato=0ms"), "\(pdus.stdout)")
        #expect(!pdus.stdout.contains("127.0.0.1:\(adminPort)"), "only the finding's connection")
        _ = (dHost, dTarget, aHost, aTarget)
    }
}

/// The metrics computed from a report: checked against the synthetic capture's own times.
@Suite struct MonitorMetricsTests {
    /// libpcap's cumulative counters become Prometheus counters, increased by each difference,
    /// across the 32-bit wrap.
    @Test func captureCountersFollowLibpcapsAcrossTheWrap() {
        let m = MonitorMetrics()
        m.capture(received: 10, droppedByKernel: 0, droppedByInterface: 0)
        m.capture(received: UInt32.max - 4, droppedByKernel: 2, droppedByInterface: 1)
        m.capture(received: 5, droppedByKernel: 2, droppedByInterface: 1)  // wrapped: 10 more
        let page = String(decoding: m.page(), as: UTF8.self)
        #expect(Self.value(page, "nvmetrace_capture_packets_received_total") == Double(UInt32.max - 4) + 10)
        #expect(Self.value(page, #"nvmetrace_capture_packets_dropped_total{by="kernel"}"#) == 2)
        #expect(Self.value(page, #"nvmetrace_capture_packets_dropped_total{by="interface"}"#) == 1)
    }

    static func value(_ page: String, _ series: String) -> Double? {
        page.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// An admin queue with KATO 10 s whose last Keep Alive is 20 s before the capture's end, and a
    /// persistent discovery connection with KATO 0.
    @Test func gaugesFollowTheModel() throws {
        let s = SynthCapture()
        let admin = RuleScenario.admin(s, kato: 10_000, keepAlives: [5, 10])
        RuleScenario.kato0Discovery(s, at: 1, teardown: nil)
        RuleScenario.kato0Discovery(s, at: 2, teardown: 3)  // closed by the target
        admin.tcp.send(fromClient: false, [], at: s.t(30))  // the capture's last packet, 20 s after the last Keep Alive
        let r = s.report()
        let m = MonitorMetrics()
        m.update(from: r)
        for f in r.findings { m.findingReported(f) }
        let page = String(decoding: m.page(), as: UTF8.self)
        let gap = try #require(Self.value(page, "nvmetrace_keep_alive_gap_over_kato_max"), "\(page)")
        #expect(abs(gap - 2.0) < 0.01, "\(gap)")
        #expect(Self.value(page, "nvmetrace_discovery_kato_zero_controllers") == 1)
        #expect(Self.value(page, #"nvmetrace_connections{kind="discovery",state="open"}"#) == 1)
        #expect(Self.value(page, #"nvmetrace_connections{kind="discovery",state="closed"}"#) == 1)
        #expect(Self.value(page, #"nvmetrace_connections{kind="admin",state="open"}"#) == 1)
        for f in r.findings {
            #expect(Self.value(page, "nvmetrace_findings_total{rule=\"\(f.rule)\",severity=\"\(f.severity.rawValue)\"}") ?? 0 >= 1, "\(f.rule)")
        }
    }
}
