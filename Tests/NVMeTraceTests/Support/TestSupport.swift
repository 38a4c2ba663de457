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
    var records: [OwnedPDURecord] = []
    var diagnostics: [Diagnostic] = []
    var error: CaptureError?
    var flows: [ConnectionSummary] = []

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
            if case .command(let c) = r.body, c.isKeepAlive, r.qid == 0 { out[r.connection, default: 0] += 1 }
        }
        return out
    }

    /// Connect commands per connection: (frame, qid, kato, subnqn, hostnqn).
    var connectsByConnection: [Int: [ConnectFact]] {
        var out: [Int: [ConnectFact]] = [:]
        for r in records {
            if case .command(let c) = r.body, case .connect(let cc) = c.detail {
                out[r.connection, default: []].append(ConnectFact(
                    frame: r.pdu.ref.frame, qid: cc.qid.map(Int.init) ?? -1, kato: cc.kato.map(Int.init) ?? -1, sqsize: cc.sqsize.map(Int.init) ?? -1,
                    subnqn: r.connectData?.subnqn, hostnqn: r.connectData?.hostnqn))
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
    /// Seconds since the first packet, where the ground truth gives it (not compared).
    var time: Double? = nil
    static func == (a: ConnectFact, b: ConnectFact) -> Bool {
        (a.frame, a.qid, a.kato, a.sqsize, a.subnqn, a.hostnqn) == (b.frame, b.qid, b.kato, b.sqsize, b.subnqn, b.hostnqn)
    }
    var description: String { "frame \(frame) qid \(qid) kato \(kato) sqsize \(sqsize) \(subnqn ?? "-") \(hostnqn ?? "-")" }
}

func analyze(paths: [String], options: AnalyzerOptions = AnalyzerOptions()) -> AnalysisResult {
    var result = AnalysisResult()
    let analyzer = Analyzer(options: options)
    let collector = Collector()
    collector.onPDU = { result.records.append($0) }
    collector.onDiagnostic = { result.diagnostics.append($0) }
    collector.onEnd = { result.flows.append($0) }
    analyzer.consumer = collector
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
        /// Packets of the connection, as tshark counts them.
        var packets: Int
        var finTargetTime: Double?
        var keepAliveMaxGap: Double?
        // The JSON output tests (issue #14) read these too.
        /// Times of the first and last packet (seconds since the capture's first packet).
        var firstPacketTime = 0.0
        var lastPacketTime = 0.0
        /// "admin" or "io" (from the Connect's QID).
        var queue: String
        /// tshark's tcp.analysis.retransmission count.
        var retransmissions = 0
        /// Every Keep Alive command's time.
        var keepAliveTimes: [Double] = []
        /// The independent parser's view of each Connect (same order as `connects`).
        var connectDetails: [ConnectDetail] = []
        /// ICReq and ICResp as the independent parser read them.
        var icReq: ICFacts?
        var icResp: ICFacts?
        /// Stream bytes not captured (both directions) and PDUs only partly captured.
        var bytesNotCaptured = 0
        var pdusPartlyCaptured = 0
        /// tshark's "previous segment not captured" count (bytes lost before the capture point).
        var segmentsNotCaptured = 0
        /// Labels derived from the kernel logs (`ground_truth_labels`).
        var label: Label?
    }
    struct ConnectDetail {
        var hostid: String
        /// CNTLID in the Connect data (0xFFFF: any, on an admin queue) and in the response.
        var cntlid: Int
        var responseStatus: Int
        var responseCntlid: Int?
    }
    /// ICReq (HPDA, MAXR2T) or ICResp (CPDA, MAXH2CDATA) fields.
    struct ICFacts {
        var hdgst: Bool
        var ddgst: Bool
        var pda: Int
        var max: Int
    }
    struct Label {
        var role: String
        var persistentDiscovery: Bool?
        var flagKATO0PersistentDiscovery: Bool
        var tornDownByKeepAliveExpiry: Bool
    }
    var packets: Int
    /// The capture file's SHA-256.
    var sha256: String
    var connections: [Connection]
    /// The host kernel's command timeouts ("nvme nvmeN: queue Q: timeout request 0xTAG type T"):
    /// capture time, queue id and tag (a Linux host's CID is `genctr << 12 | tag`, so the tag is
    /// the CID's low 12 bits).
    var hostTimeouts: [(t: Double, qid: Int, tag: Int)] = []
    /// Those on I/O queues.
    var ioTimeouts: [(t: Double, qid: Int, tag: Int)] { hostTimeouts.filter { $0.qid > 0 } }
    /// When the host kernel logged "Reconnecting in N seconds...": an association it lost (not
    /// one it disconnected), capture time.
    var hostReconnects: [Double] = []
    /// File size and the file header's snap length (capinfos).
    var fileBytes = 0
    var snapLength = 0
    /// Seconds from the first to the last packet, and the first packet's time (UTC, ISO 8601).
    var duration = 0.0
    var firstPacketUTC = ""
    var lastPacketUTC = ""
    /// Packets the independent parser found cut by the snap length.
    var packetsCutBySnapLength = 0
    /// Every PDU tshark decoded, over all connections.
    var totalPDUs: Int { connections.reduce(0) { $0 + $1.pduTypes.values.reduce(0, +) } }

    init(sample: String) throws {
        let url = samplesDirectory.appendingPathComponent(sample + ".json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let capture = root["capture"] as! [String: Any]
        for line in root["kernel_log"] as? [[String: Any]] ?? [] {
            guard let text = line["line"] as? String, let t = line["t"] as? Double,
                  let m = text.firstMatch(of: /nvme nvme\d+: queue (\d+): timeout request 0x([0-9a-f]+)/) else {
                if let text = line["line"] as? String, let t = line["t"] as? Double,
                   text.contains(/nvme nvme\d+: Reconnecting in \d+ seconds/) { hostReconnects.append(t) }
                continue
            }
            hostTimeouts.append((t, Int(m.1)!, Int(m.2, radix: 16)!))
        }
        packets = capture["packets"] as! Int
        sha256 = capture["sha256"] as! String
        let tshark = root["tshark"] as! [String: Any]
        connections = (tshark["connections"] as! [[String: Any]]).map { c in
            let connects = (c["connects"] as! [[String: Any]]).map { x in
                ConnectFact(frame: x["frame"] as! Int, qid: x["qid"] as! Int, kato: x["kato_ms"] as! Int,
                            sqsize: x["sqsize"] as! Int, subnqn: x["subnqn"] as? String, hostnqn: x["hostnqn"] as? String,
                            time: x["t"] as? Double)
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
                packets: c["packets"] as! Int, finTargetTime: c["fin_target_t"] as? Double,
                keepAliveMaxGap: (c["keep_alive"] as! [String: Any])["max_gap_s"] as? Double, queue: c["queue"] as! String,
                retransmissions: c["tcp_retransmissions"] as? Int ?? 0)
        }
        fileBytes = capture["bytes"] as! Int
        duration = capture["duration_s"] as! Double
        firstPacketUTC = capture["first_packet_time"] as! String
        lastPacketUTC = capture["last_packet_time"] as! String
        let limit = (capture["capinfos"] as! [String: Any])["Packet size limit"] as! String  // "file hdr: 262144 bytes"
        snapLength = Int(limit.split(separator: " ").first { Int($0) != nil }!)!
        let parser = root["independent_parser"] as! [String: Any]
        packetsCutBySnapLength = parser["packets_cut_by_snaplen"] as! Int
        let parsed = parser["connections"] as! [[String: Any]]
        let labels = root["ground_truth_labels"] as? [[String: Any]] ?? []
        let tsharkConnections = tshark["connections"] as! [[String: Any]]
        for i in connections.indices {
            let t = tsharkConnections[i]
            connections[i].firstPacketTime = t["first_packet_t"] as! Double
            connections[i].lastPacketTime = t["last_packet_t"] as! Double
            connections[i].keepAliveTimes = (t["keep_alive"] as! [String: Any])["times_t"] as? [Double] ?? []
            connections[i].segmentsNotCaptured = t["tcp_previous_segment_not_captured"] as? Int ?? 0
            let host = connections[i].host, target = connections[i].target
            if let p = parsed.first(where: { $0["host"] as? String == host && $0["target"] as? String == target }) {
                connections[i].connectDetails = (p["connects"] as! [[String: Any]]).map { x in
                    ConnectDetail(hostid: x["hostid"] as! String, cntlid: x["cntlid"] as! Int,
                                  responseStatus: x["response_status"] as! Int, responseCntlid: x["response_cntlid"] as? Int)
                }
                if let q = p["icreq"] as? [String: Any] {
                    connections[i].icReq = ICFacts(hdgst: q["hdgst"] as! Bool, ddgst: q["ddgst"] as! Bool, pda: q["hpda"] as! Int,
                                                   max: q["maxr2t"] as! Int)
                }
                if let r = p["icresp"] as? [String: Any] {
                    connections[i].icResp = ICFacts(hdgst: r["hdgst"] as! Bool, ddgst: r["ddgst"] as! Bool, pda: r["cpda"] as! Int,
                                                    max: r["maxh2cdata"] as! Int)
                }
                let notCaptured = p["bytes_not_captured"] as? [String: Int] ?? [:]
                connections[i].bytesNotCaptured = notCaptured.values.reduce(0, +)
                connections[i].pdusPartlyCaptured = p["pdus_partly_captured"] as? Int ?? 0
            }
            if let l = labels.first(where: { $0["host"] as? String == host && $0["target"] as? String == target }) {
                connections[i].label = Label(role: l["role"] as! String, persistentDiscovery: l["persistent_discovery"] as? Bool,
                                             flagKATO0PersistentDiscovery: l["flag_kato0_persistent_discovery"] as? Bool ?? false,
                                             tornDownByKeepAliveExpiry: l["torn_down_by_target_keepalive_expiry"] as? Bool ?? false)
            }
        }
    }
}

/// The number of the frame captured `seconds` after the file's first packet (to the microsecond
/// the ground truth gives), read with libpcap: how the ground truth's times become frame numbers.
func frameNumber(_ sample: String, at seconds: Double) throws -> Int {
    let packets = try loadCapture(samplePath(sample)).packets
    let first = packets[0].timeNs
    let matches = packets.indices.filter { abs(Double(packets[$0].timeNs - first) / 1e9 - seconds) < 5e-7 }
    guard matches.count == 1 else { throw GroundTruthError("\(matches.count) frames at \(seconds) s in \(sample)") }
    return matches[0] + 1
}

struct GroundTruthError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
