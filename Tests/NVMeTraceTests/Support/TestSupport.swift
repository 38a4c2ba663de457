import Foundation
@testable import NVMeTrace

/// The repository's Samples/ folder (tests never read ../shared).
let samplesDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Samples")

let sampleNames = [
    "A-persistent-discovery-kato0",
    "A0-persistent-discovery-kato0-unfixed-host",
    "B-persistent-discovery-healthy",
    "C-oneshot-discovery",
    "D-io-traffic",
    "D2-io-traffic-digests",
    "E-keepalive-stall",
    "K2-io-timeout-read-host-error-recovery",
]

func samplePath(_ name: String) -> String {
    samplesDirectory.appendingPathComponent(name + ".pcap").path
}

/// Everything one pipeline run produced.
struct AnalysisResult {
    var records: [PDURecord] = []
    var diagnostics: [Diagnostic] = []
    var error: CaptureError?
    var flows: [Flow] = []

    /// PDU counts by type name, per connection.
    var pduTypesByConnection: [Int: [String: Int]] {
        var out: [Int: [String: Int]] = [:]
        for r in records { out[r.connection, default: [:]][r.pdu.type.name, default: 0] += 1 }
        return out
    }

    /// Keep Alive commands (admin opcode 0x18 on queue 0) per connection.
    var keepAlivesByConnection: [Int: Int] {
        var out: [Int: Int] = [:]
        for r in records {
            if case .command(let c) = r.decoded.body, c.isKeepAlive, r.qid == 0 { out[r.connection, default: 0] += 1 }
        }
        return out
    }

    /// Connect commands per connection: (frame, qid, kato, subnqn, hostnqn).
    var connectsByConnection: [Int: [ConnectFact]] {
        var out: [Int: [ConnectFact]] = [:]
        for r in records {
            if case .command(let c) = r.decoded.body, case .connect(let cc) = c.detail {
                out[r.connection, default: []].append(ConnectFact(
                    frame: r.pdu.ref.frame, qid: cc.qid.map(Int.init) ?? -1, kato: cc.kato.map(Int.init) ?? -1, sqsize: cc.sqsize.map(Int.init) ?? -1,
                    subnqn: r.decoded.connectData?.subnqn, hostnqn: r.decoded.connectData?.hostnqn))
            }
        }
        return out
    }
}

struct ConnectFact: Equatable, CustomStringConvertible {
    var frame: Int
    var qid: Int
    var kato: Int
    var sqsize: Int
    var subnqn: String?
    var hostnqn: String?
    var description: String { "frame \(frame) qid \(qid) kato \(kato) sqsize \(sqsize) \(subnqn ?? "-") \(hostnqn ?? "-")" }
}

func analyze(paths: [String], options: AnalyzerOptions = AnalyzerOptions()) -> AnalysisResult {
    var result = AnalysisResult()
    let analyzer = Analyzer(options: options)
    analyzer.onPDU = { result.records.append($0) }
    analyzer.onDiagnostic = { result.diagnostics.append($0) }
    analyzer.onFlowEnd = { result.flows.append($0) }
    for p in paths {
        do { try analyzer.read(path: p) } catch { result.error = error }
    }
    analyzer.finish()
    return result
}

func analyze(_ path: String, options: AnalyzerOptions = AnalyzerOptions()) -> AnalysisResult {
    analyze(paths: [path], options: options)
}

/// Feeds raw bytes (a pcap file image) through the pipeline via a temporary file.
func analyze(bytes: [UInt8], options: AnalyzerOptions = AnalyzerOptions()) -> AnalysisResult {
    let url = temporaryFile("capture.pcap")
    try! Data(bytes).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return analyze(url.path, options: options)
}

func temporaryFile(_ name: String) -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nvmetrace-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(UUID().uuidString + "-" + name)
}

/// The ground truth recorded next to each sample: what tshark (with out-of-order reassembly)
/// decoded, cross-checked by an independent parser.
struct GroundTruth {
    struct Connection {
        var stream: Int
        var host: String
        var target: String
        var pduTypes: [String: Int]
        var keepAlives: Int
        var connects: [ConnectFact]
        var closedBy: String?
        var closeHow: String?
        var closeTime: Double?
        var hdgstOK: Int
        var ddgstOK: Int
        var keepAliveLast: Double?
        /// Seconds since the capture's first packet (tshark's frame.time_relative).
        var firstPacketTime: Double
        var lastPacketTime: Double
        /// "admin" or "io" (a discovery controller's queue is "admin").
        var queue: String
    }
    var packets: Int
    /// From the capture's first packet to its last, in seconds (capinfos).
    var duration: Double
    var connections: [Connection]
    /// Every PDU tshark decoded, over all connections.
    var totalPDUs: Int { connections.reduce(0) { $0 + $1.pduTypes.values.reduce(0, +) } }

    init(sample: String) throws {
        let url = samplesDirectory.appendingPathComponent(sample + ".json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        packets = (root["capture"] as! [String: Any])["packets"] as! Int
        let capinfos = (root["capture"] as! [String: Any])["capinfos"] as! [String: Any]
        // "100.784889 seconds"
        duration = Double((capinfos["Capture duration"] as! String).split(separator: " ")[0])!
        let tshark = root["tshark"] as! [String: Any]
        connections = (tshark["connections"] as! [[String: Any]]).map { c in
            let connects = (c["connects"] as! [[String: Any]]).map { x in
                ConnectFact(frame: x["frame"] as! Int, qid: x["qid"] as! Int, kato: x["kato_ms"] as! Int,
                            sqsize: x["sqsize"] as! Int, subnqn: x["subnqn"] as? String, hostnqn: x["hostnqn"] as? String)
            }
            let hd = c["hdgst_status"] as? [String: Int] ?? [:]
            let dd = c["ddgst_status"] as? [String: Int] ?? [:]
            return Connection(
                stream: c["tcp_stream"] as! Int, host: c["host"] as! String, target: c["target"] as! String,
                pduTypes: c["pdu_types"] as! [String: Int],
                keepAlives: (c["keep_alive"] as! [String: Any])["count"] as! Int,
                connects: connects, closedBy: c["closed_by"] as? String, closeHow: c["close_how"] as? String,
                closeTime: c["close_t"] as? Double, hdgstOK: hd["1"] ?? 0, ddgstOK: dd["1"] ?? 0,
                keepAliveLast: (c["keep_alive"] as! [String: Any])["last_t"] as? Double,
                firstPacketTime: c["first_packet_t"] as! Double, lastPacketTime: c["last_packet_t"] as! Double,
                queue: c["queue"] as! String)
        }
    }
}
