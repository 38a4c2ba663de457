import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `nvmetrace monitor` as a child process: standard output discarded, standard error kept in a
/// file; its memory and CPU time read from /proc, its metrics page scraped over HTTP.
final class Daemon {
    let pid: pid_t
    let argv: [String]
    let metricsPort: UInt16
    let stderrPath: String
    let eventsPath: String
    private(set) var waitStatus: Int32?

    /// Starts `binary monitor -i lo --metrics-listen 127.0.0.1:PORT --events FILE --retain R
    /// [-q] [-s N] 'tcp port P'`.
    init(binary: String, capturePort: UInt16, retain: Double, snaplen: Int?, quiet: Bool, cpus: String?, tag: String) throws {
        metricsPort = Sock.freePort()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-soak-\(getpid())-\(tag)").path
        stderrPath = base + ".stderr"
        eventsPath = base + ".events"
        // taskset execs the daemon: the child's pid is the daemon's.
        var args = cpus.map { ["/usr/bin/taskset", "-c", $0] } ?? []
        args += [binary, "monitor", "-i", "lo"]
        if quiet { args.append("-q") }
        args += ["--metrics-listen", "127.0.0.1:\(metricsPort)", "--events", eventsPath, "--retain", "\(retain)"]
        if let snaplen { args += ["-s", "\(snaplen)"] }
        args.append("tcp port \(capturePort)")
        argv = args

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var cargs = args.map { strdup($0) }
        cargs.append(nil)
        defer { cargs.forEach { free($0) } }
        var p: pid_t = 0
        let rc = posix_spawn(&p, args[0], &actions, nil, cargs, environ)
        guard rc == 0 else { throw SoakError("cannot start \(binary): \(String(cString: strerror(rc)))") }
        pid = p
    }

    /// The command line, shell-quoted where needed.
    var commandLine: String {
        argv.map { $0.contains(" ") || $0.contains("'") ? "'\($0)'" : $0 }.joined(separator: " ")
    }

    /// Still running (reaps it when it has exited).
    var isRunning: Bool {
        if waitStatus != nil { return false }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid { waitStatus = st; return false }
        return r == 0
    }

    /// Waits until the metrics page answers (and, unless -q, the "monitoring" line is out).
    func waitReady(seconds: Double, quiet: Bool) throws -> Metrics {
        let deadline = monoNs() + Int64(seconds * 1e9)
        while monoNs() < deadline {
            guard isRunning else { throw SoakError("the daemon exited (\(exitDescription)) before it was ready:\n\(stderrText())") }
            if let m = scrape(), quiet || stderrText().contains("nvmetrace: monitoring lo") { return m }
            usleep(200_000)
        }
        throw SoakError("the daemon's metrics did not answer within \(Int(seconds)) s:\n\(stderrText())")
    }

    /// SIGTERM, then waits up to `seconds` (SIGKILL after that). Returns the exit code, nil when
    /// it did not exit by itself.
    func terminate(seconds: Double) -> Int32? {
        if isRunning {
            kill(pid, SIGTERM)
            let deadline = monoNs() + Int64(seconds * 1e9)
            while isRunning && monoNs() < deadline { usleep(50_000) }
            if isRunning {
                kill(pid, SIGKILL)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                waitStatus = st
                return nil
            }
        }
        return exitCode
    }

    /// The exit code when it exited normally.
    var exitCode: Int32? {
        guard let st = waitStatus, st & 0x7F == 0 else { return nil }
        return (st >> 8) & 0xFF
    }

    var exitDescription: String {
        guard let st = waitStatus else { return "running" }
        if st & 0x7F == 0 { return "exit status \((st >> 8) & 0xFF)" }
        return "killed by signal \(st & 0x7F)"
    }

    func stderrText() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Packets the daemon says it captured, from its "stopped" line.
    var packetsCaptured: Double? {
        stopLine.flatMap { line in line.split(separator: " ").dropFirst(2).first.flatMap { Double($0) } }
    }

    /// The "nvmetrace: stopped: …" line, when printed.
    var stopLine: String? {
        stderrText().split(separator: "\n").last { $0.hasPrefix("nvmetrace: stopped:") }.map(String.init)
    }

    /// Lines of standard error that are warnings or errors.
    var warningLines: [String] {
        stderrText().split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }.map(String.init)
    }

    /// Events written, by their "event" field.
    func eventCounts() -> [String: Int] {
        guard let text = try? String(contentsOfFile: eventsPath, encoding: .utf8) else { return [:] }
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let r = line.range(of: "\"event\":\"") else { continue }
            let rest = line[r.upperBound...]
            counts[String(rest.prefix { $0 != "\"" }), default: 0] += 1
        }
        return counts
    }

    func removeFiles() {
        try? FileManager.default.removeItem(atPath: stderrPath)
        try? FileManager.default.removeItem(atPath: eventsPath)
    }

    // MARK: /proc

    /// VmRSS (or another field of /proc/PID/status) in KiB.
    func statusKiB(_ field: String = "VmRSS") -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// User + system CPU seconds so far (/proc/PID/stat fields 14 and 15).
    func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After "pid (comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12.
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    // MARK: Metrics

    /// `GET /metrics`, parsed; nil when it does not answer.
    func scrape() -> Metrics? {
        guard let fd = Sock.connect(port: metricsPort, timeoutSeconds: 10) else { return nil }
        defer { close(fd) }
        guard Sock.sendAll(fd, Array("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)) else { return nil }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard text.hasPrefix("HTTP/1."), text.split(separator: " ").dropFirst().first == "200",
              let split = text.range(of: "\r\n\r\n") else { return nil }
        return Metrics(page: String(text[split.upperBound...]))
    }
}

/// A Prometheus text page: each series ("name{labels}") and its value.
struct Metrics {
    var series: [String: Double] = [:]

    init(page: String) {
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            series[String(line[..<space])] = v
        }
    }

    subscript(_ key: String) -> Double? { series[key] }
    func value(_ key: String) -> Double { series[key] ?? 0 }

    /// Whether a metric of this name (any labels) is on the page.
    func has(_ name: String) -> Bool {
        series.keys.contains { $0 == name || $0.hasPrefix(name + "{") }
    }

    /// The series of a metric with nonzero values, by labels.
    func nonzero(_ name: String) -> [String: Double] {
        series.filter { ($0.key == name || $0.key.hasPrefix(name + "{")) && $0.value != 0 }
    }

    var received: Double { value("nvmetrace_capture_packets_received_total") }
    var droppedKernel: Double { value(#"nvmetrace_capture_packets_dropped_total{by="kernel"}"#) }
    var droppedInterface: Double { value(#"nvmetrace_capture_packets_dropped_total{by="interface"}"#) }
    var tracked: Double { value("nvmetrace_tracked_connections") }
    /// Open connections, whatever their kind label: here all are admin queues, which the daemon
    /// labels kind="unknown" when the Connect data's SUBNQN (discovery or not) is cut by -s.
    var open: Double {
        series.filter { $0.key.hasPrefix("nvmetrace_connections{") && $0.key.hasSuffix("state=\"open\"}") }.values.reduce(0, +)
    }

    /// libpcap's received counter counts each packet on lo twice: the kernel hands the socket the
    /// outgoing copy and the incoming one, and libpcap discards the outgoing copy itself. Packets
    /// are this counter over 2 (checked against the daemon's own count when it stops).
    static let loCopies = 2.0
    var packets: Double { received / Self.loCopies }
    var retired: Double { value("nvmetrace_retired_connections_total") }
    var keepAliveIntervals: Double { value("nvmetrace_keep_alive_interval_seconds_count") }

    /// The metrics the soak reads; all must be on the page.
    static let required = [
        "nvmetrace_capture_packets_received_total", "nvmetrace_capture_packets_dropped_total",
        "process_resident_memory_bytes", "nvmetrace_tracked_connections", "nvmetrace_connections",
        "nvmetrace_findings_total", "nvmetrace_keep_alive_interval_seconds_count", "nvmetrace_retired_connections_total",
    ]

    func missing() -> [String] {
        var out = Self.required.filter { !has($0) }
        for by in ["kernel", "interface"] where self["nvmetrace_capture_packets_dropped_total{by=\"\(by)\"}"] == nil {
            out.append("nvmetrace_capture_packets_dropped_total{by=\"\(by)\"}")
        }
        return out
    }
}
