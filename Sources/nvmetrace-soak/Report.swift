import Foundation

#if canImport(Glibc)
import Glibc
#endif

// What the soak measures and how it is written: the samples and their table, the summary and
// checks, the rate steps, and the whole result as JSON (--json).

/// One sample of the soak, every --sample seconds.
struct Sample: Codable {
    var t: Double                 // seconds since the traffic started
    var rssKiB: Int               // the daemon's VmRSS
    var tracked: Int              // nvmetrace_tracked_connections
    var open: Int                 // nvmetrace_connections{state="open"}, every kind
    var received: Double          // nvmetrace_capture_packets_received_total (2 per packet on lo)
    var packetsPerSecond: Double  // packets (received / 2) per second since the previous sample
    var droppedKernel: Double
    var droppedInterface: Double
    var retired: Double           // nvmetrace_retired_connections_total
    var cpuPercent: Double        // the daemon's CPU (user + system) since the previous sample, % of one core
    var keepAlives: Int           // Keep Alives the hosts sent so far
    var associations: Int         // associations up in the generator
    var load1: Double             // the machine's 1-minute load average (other work on the 2 cores shows here)
}

struct Check: Codable {
    var name: String
    var pass: Bool
    var detail: String
}

struct SoakSummary: Codable {
    var connections: Int
    var seconds: Double
    var warmupSeconds: Double
    var rssStartKiB: Int
    var rssWarmupEndKiB: Int
    var rssWarmupWindowKiB: Int     // mean over --window seconds from the end of warm-up
    var rssEndWindowKiB: Int        // mean over the last --window seconds
    var rssPeakAfterWarmupKiB: Int
    var rssEndKiB: Int
    var vmHWMKiB: Int?
    var growthKiB: Int              // rssEndWindowKiB - rssWarmupWindowKiB
    var growthPercent: Double
    /// Least-squares slope of RSS over the samples after warm-up.
    var slopeKiBPerMinute: Double
    var droppedKernel: Double
    var droppedInterface: Double
    var trackedMaxAfterWarmup: Int
    var trackedBound: Int
    var retired: Double
    var keepAlivesSent: Int
    var keepAliveIntervalsCounted: Double
    var associationsCreated: Int
    var teardowns: Int
    var generatorErrors: Int
    var daemonCPUPercentAfterWarmup: Double
    var findings: [String: Double]
    var events: [String: Int]
    var exitCode: Int32?
    var stopLine: String?
    var daemonWarnings: Int
}

struct SoakResult: Codable {
    var command: String
    var samples: [Sample]
    var summary: SoakSummary
    var checks: [Check]
}

struct RateStep: Codable {
    var offeredPDUsPerSecond: Double
    var seconds: Double
    var pdusPerSecond: Double       // PDUs the generator actually sent (Keep Alives + responses)
    var packetsPerSecond: Double    // packets the daemon's filter received (libpcap ps_recv / 2 on lo)
    var pcapReceivedPerSecond: Double // ps_recv itself
    var loPacketsPerSecond: Double  // all packets on lo (/sys/class/net/lo/statistics/tx_packets)
    var droppedKernel: Double
    var droppedInterface: Double
    var daemonCPUPercent: Double
    var daemonRSSKiB: Int           // at the end of the step
    var load1: Double               // 1-minute load average at the end of the step
    var generatorLimited: Bool      // sent < 90 % of offered
    var good: Bool                  // no drops
}

struct RateResult: Codable {
    var command: String
    var connections: Int
    var steps: [RateStep]
    var bestPacketsPerSecond: Double?
    var bestPDUsPerSecond: Double?
    var lowerBound: Bool            // the generator, not the daemon, was the limit
    var firstBadOfferedPDUsPerSecond: Double?
    var exitCode: Int32?
    var stopLine: String?
    var checks: [Check]
}

struct SoakReport: Codable {
    var date: String
    var cpus: Int
    var kernel: String
    var options: [String: String]
    var soak: SoakResult?
    var rate: RateResult?
    var pass: Bool
}

enum Format {
    static func mib(_ kib: Int) -> String { String(format: "%.1f", Double(kib) / 1024) }
    static func num(_ v: Double) -> String { v >= 1e6 ? String(format: "%.2fM", v / 1e6) : v >= 1e4 ? String(format: "%.1fk", v / 1e3) : String(format: "%.0f", v) }

    static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }

    static let sampleHeader = ["t(s)", "RSS MiB", "tracked", "open", "pkt/s", "drop kern", "drop if", "retired", "CPU %", "assoc", "load"]
    static let widths = [6, 8, 8, 6, 8, 9, 8, 8, 6, 6, 5]

    static func sampleRow(_ s: Sample) -> String {
        let cells = [String(format: "%.0f", s.t), mib(s.rssKiB), "\(s.tracked)", "\(s.open)", String(format: "%.0f", s.packetsPerSecond),
                     String(format: "%.0f", s.droppedKernel), String(format: "%.0f", s.droppedInterface), String(format: "%.0f", s.retired),
                     String(format: "%.1f", s.cpuPercent), "\(s.associations)", String(format: "%.1f", s.load1)]
        return zip(cells, widths).map { pad($0, $1) }.joined(separator: " ")
    }

    static func header() -> String {
        zip(sampleHeader, widths).map { pad($0, $1) }.joined(separator: " ")
    }

    static let rateHeader = "  offered PDU/s   sent PDU/s   daemon pkt/s   lo pkt/s   drops k/if   daemon CPU %   RSS MiB   load   result"
    static func rateRow(_ r: RateStep) -> String {
        pad(num(r.offeredPDUsPerSecond), 15) + pad(num(r.pdusPerSecond), 13) + pad(num(r.packetsPerSecond), 15)
            + pad(num(r.loPacketsPerSecond), 11) + pad("\(Int(r.droppedKernel))/\(Int(r.droppedInterface))", 13)
            + pad(String(format: "%.0f", r.daemonCPUPercent), 15) + pad(mib(r.daemonRSSKiB), 10) + pad(String(format: "%.1f", r.load1), 7) + "   "
            + (r.good ? "ok" : "DROPS") + (r.generatorLimited ? " (generator limit)" : "")
    }

    static func checkLine(_ c: Check) -> String { "\(c.pass ? "PASS" : "FAIL") \(c.name): \(c.detail)" }
}

/// Least-squares slope of y over x.
func slope(_ xs: [Double], _ ys: [Double]) -> Double {
    let n = Double(xs.count)
    guard xs.count >= 2 else { return 0 }
    let mx = xs.reduce(0, +) / n, my = ys.reduce(0, +) / n
    var sxy = 0.0, sxx = 0.0
    for (x, y) in zip(xs, ys) {
        sxy += (x - mx) * (y - my)
        sxx += (x - mx) * (x - mx)
    }
    return sxx == 0 ? 0 : sxy / sxx
}

/// Writes a line to standard output at once (the output may be a pipe or a file).
func say(_ s: String = "") {
    print(s)
    fflush(nil)  // every stream: standard output may be a pipe or a file
}

func writeJSON(_ r: SoakReport, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try enc.encode(r).write(to: URL(fileURLWithPath: path))
}
