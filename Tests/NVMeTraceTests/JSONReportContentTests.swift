import Foundation
import Testing
@testable import NVMeTrace

// The JSON report (`--format json`) of every sample against its ground truth (issue #14):
// connections, controllers, chains, findings with the frames they cite, unjudged entries, warnings
// and the capture's facts. Expected values come from the ground truth JSON next to each sample
// (tshark, the independent parser, the labels from the kernel logs), from README's rule table, or
// from the capture itself read by the tests' own pcap reader and reference PDU walk; never from
// nvmetrace. Then the same for captures cut by a snap length and started mid-stream.

/// One sample: its ground truth, its packets (read without NVMeTrace), the reference PDU walk, and
/// the report nvmetrace printed.
struct ReportSample: @unchecked Sendable {
    var name: String
    var truth: GroundTruth
    var capture: StoredCapture
    var full: FullCapture
    var doc: [String: Any]

    var connections: [[String: Any]] { doc["connections"] as? [[String: Any]] ?? [] }
    var controllers: [[String: Any]] { doc["controllers"] as? [[String: Any]] ?? [] }
    var chains: [[String: Any]] { doc["chains"] as? [[String: Any]] ?? [] }
    var findings: [[String: Any]] { doc["findings"] as? [[String: Any]] ?? [] }
    var unjudged: [[String: Any]] { doc["unjudged"] as? [[String: Any]] ?? [] }

    func time(_ frame: Int) -> Double { capture.relativeTime(frame: frame) }
}

/// Each sample's report, made once per test process.
final class ReportSamples: @unchecked Sendable {
    static let shared = ReportSamples()
    private let lock = NSLock()
    private var cache: [String: ReportSample] = [:]

    func get(_ name: String) throws -> ReportSample {
        lock.lock()
        if let s = cache[name] { lock.unlock(); return s }
        lock.unlock()
        let run = try runCLI(["--format", "json", "--fail-on", "none", samplePath(name)])
        #expect(run.status == 0, "\(name): \(run.stderr)")
        let capture = try readPcapIndependently(samplePath(name))
        let s = ReportSample(name: name, truth: try GroundTruth(sample: name), capture: capture, full: fullCaptureFacts(capture),
                             doc: try jsonDocument(run.stdout))
        lock.lock(); cache[name] = s; lock.unlock()
        return s
    }
}

// MARK: - expectations from the ground truth alone

extension GroundTruth.Connection {
    var hostAddress: String { String(host.split(separator: ":")[0]) }
    var subnqn: String? { connects.first?.subnqn }
    var hostnqn: String? { connects.first?.hostnqn }
    var isDiscovery: Bool { subnqn == "nqn.2014-08.org.nvmexpress.discovery" }
}

extension GroundTruth {
    /// Admin queues in order: one controller (association) each.
    var admins: [Connection] { connections.filter { $0.queue == "admin" } }

    /// The admin queue an I/O queue belongs to: same host address and target, the CNTLID its
    /// Connect data names is the one the admin Connect's response gave, opened after it.
    func owner(of io: Connection) -> Connection? {
        admins.last {
            $0.hostAddress == io.hostAddress && $0.target == io.target && $0.firstPacketTime <= io.firstPacketTime
                && $0.connectDetails.first?.responseCntlid == io.connectDetails.first?.cntlid
        }
    }

    /// Reconnect chains: associations of one host to one subsystem at one target, in order.
    var chains: [[Connection]] {
        var out: [[Connection]] = []
        for a in admins {
            if let i = out.firstIndex(where: {
                $0[0].hostnqn == a.hostnqn && $0[0].subnqn == a.subnqn && $0[0].hostAddress == a.hostAddress && $0[0].target == a.target
            }) {
                out[i].append(a)
            } else {
                out.append([a])
            }
        }
        return out
    }

    /// "rule@connection" of every finding the labels call for: a persistent discovery connection
    /// with KATO 0, a teardown by the target's keep-alive timer (on the admin queue), and README's
    /// reconnect loop (3 or more associations of one chain, 2 or more torn down by the target).
    var expectedFindings: Set<String> {
        var out = Set<String>()
        for c in connections {
            if c.label?.flagKATO0PersistentDiscovery == true { out.insert("discovery-kato-zero@\(c.stream)") }
            // Judged per controller: an I/O queue's teardown is its admin queue's finding.
            if c.label?.tornDownByKeepAliveExpiry == true {
                out.insert("keep-alive-expired@\((c.queue == "io" ? owner(of: c)?.stream : c.stream) ?? -1)")
            }
        }
        for chain in chains where chain.count >= 3 && chain.filter({ $0.closedBy == "target" }).count >= 2 {
            out.insert("reconnect-loop@\(chain[0].stream)")
        }
        // A command the host kernel timed out, on the I/O queue it names: open when the line was
        // logged, and closed by the host's error recovery with the command still waiting. (Queue
        // 0's lines are Keep Alives timed out by KATO; in E the host's egress was dropped before
        // the capture point, so that Keep Alive is not on the wire.)
        // An association the host lost (it logged a reconnect after it went down) is an outage,
        // until the chain's next association.
        for chain in chains {
            for (a, next) in zip(chain, chain.dropFirst().map(Optional.some) + [nil]) {
                guard let closed = a.closeTime else { continue }
                let until = next?.firstPacketTime ?? .infinity
                if hostReconnects.contains(where: { $0 >= closed - 2 && $0 <= until }) { out.insert("outage@\(a.stream)") }
            }
        }
        // tcp-loss: tshark's retransmissions, at least 3 and 0.5% of the connection's packets.
        for c in connections where c.retransmissions >= 3 && Double(c.retransmissions) >= 0.005 * Double(c.packets) {
            out.insert("tcp-loss@\(c.stream)")
        }
        for timeout in ioTimeouts {
            for c in connections where c.connects.first?.qid == timeout.qid && c.firstPacketTime < timeout.t
                && (c.closeTime ?? .infinity) >= timeout.t - 1 {
                out.insert("command-timeout@\(c.stream)")
                if c.closeTime != nil { out.insert("commands-lost@\(c.stream)") }
            }
        }
        return out
    }
}

extension GroundTruth {
    /// README: an outage is a warning for an I/O controller down 10 s or more (close to the next
    /// association's first packet, which comes just before its Connect), information otherwise.
    func outageSeverity(_ stream: Int) -> String {
        guard let a = connections.first(where: { $0.stream == stream }), let closed = a.closeTime,
              let chain = chains.first(where: { $0.contains { $0.stream == stream } }) else { return "?" }
        let next = chain.first { $0.firstPacketTime > closed }
        return !a.isDiscovery && (next?.firstPacketTime ?? .infinity) - closed >= 10 ? "warning" : "info"
    }
}

/// README's rule table: rule id → severity.
let readmeSeverities: [String: String] = {
    let readme = (try? String(contentsOf: samplesDirectory.deletingLastPathComponent().appendingPathComponent("README.md"),
                              encoding: .utf8)) ?? ""
    var out: [String: String] = [:]
    for line in readme.split(separator: "\n") where line.hasPrefix("| `") {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        if cells.count >= 2, ["error", "warning", "info"].contains(cells[1]) { out[cells[0].trimmingCharacters(in: ["`"])] = cells[1] }
    }
    return out
}()

/// The Identify Controller data's CTRATT.TBKAS bit, read from the admin queue's stream: the data
/// of the C2HData answering Identify CNS 1 (nil when the capture holds no such Identify).
func referenceTBKAS(_ c: FullConnection) -> Bool? {
    guard let identify = c.pdus[0].first(where: { f in
        f.isCommand && f.opcode == 0x06 && f.pdu.offset + 72 <= c.bytes[0].count && c.bytes[0][f.pdu.offset + 48] == 0x01
    }), let cid = identify.cid else { return nil }
    guard let data = c.pdus[1].first(where: { $0.pdu.type == 7 && $0.cccid == cid }) else { return nil }
    let at = data.pdu.offset + data.pdu.dataStart + 96
    return at < c.bytes[1].count ? c.bytes[1][at] & 0x40 != 0 : nil
}

/// "2026-11-24T23:52:36.879Z" for "2026-11-24T23:52:36.879102+00:00": milliseconds, rounded.
func utcMilliseconds(_ iso: String) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
    let base = f.date(from: String(iso.prefix(19)))!
    let micros = Int(iso.dropFirst(20).prefix(6))!
    let ms = (micros + 500) / 1000
    let date = base.addingTimeInterval(Double(ms / 1000))
    return f.string(from: date) + String(format: ".%03dZ", ms % 1000)
}

// MARK: - field checks

func expectInt(_ o: [String: Any], _ key: String, _ expected: Int?, _ context: String,
               sourceLocation: SourceLocation = #_sourceLocation) {
    if let expected {
        #expect(o[key] as? Int == expected, "\(context): \(key) is \(String(describing: o[key])), expected \(expected)",
                sourceLocation: sourceLocation)
    } else {
        #expect(o.keys.contains(key) && o[key] is NSNull, "\(context): \(key) is \(String(describing: o[key])), expected null",
                sourceLocation: sourceLocation)
    }
}

func expectString(_ o: [String: Any], _ key: String, _ expected: String?, _ context: String,
                  sourceLocation: SourceLocation = #_sourceLocation) {
    if let expected {
        #expect(o[key] as? String == expected, "\(context): \(key) is \(String(describing: o[key])), expected \(expected)",
                sourceLocation: sourceLocation)
    } else {
        #expect(o.keys.contains(key) && o[key] is NSNull, "\(context): \(key) is \(String(describing: o[key])), expected null",
                sourceLocation: sourceLocation)
    }
}

func expectBool(_ o: [String: Any], _ key: String, _ expected: Bool?, _ context: String,
                sourceLocation: SourceLocation = #_sourceLocation) {
    if let expected {
        #expect(o[key] as? Bool == expected, "\(context): \(key) is \(String(describing: o[key])), expected \(expected)",
                sourceLocation: sourceLocation)
    } else {
        #expect(o.keys.contains(key) && o[key] is NSNull, "\(context): \(key) is \(String(describing: o[key])), expected null",
                sourceLocation: sourceLocation)
    }
}

func expectSeconds(_ o: [String: Any], _ key: String, _ expected: Double?, _ context: String, tolerance: Double = 1.5e-6,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    if let expected {
        let v = o[key] as? Double
        #expect(v.map { abs($0 - expected) <= tolerance } == true,
                "\(context): \(key) is \(String(describing: o[key])), expected \(expected)", sourceLocation: sourceLocation)
    } else {
        #expect(o.keys.contains(key) && o[key] is NSNull, "\(context): \(key) is \(String(describing: o[key])), expected null",
                sourceLocation: sourceLocation)
    }
}

func basisEntries(_ v: Any?) -> [[String: Any]] {
    if let one = v as? [String: Any] { return [one] }
    return v as? [[String: Any]] ?? []
}

// MARK: - the samples

@Suite struct JSONReportContentTests {
    @Test(arguments: sampleNames) func connectionsAreTheGroundTruths(_ name: String) throws {
        let s = try ReportSamples.shared.get(name)
        let conns = s.connections
        #expect(conns.map { $0["id"] as? Int } == s.truth.connections.map(\.stream), "\(name): connection ids")
        let controllerOf: [Int: Int] = Dictionary(uniqueKeysWithValues: s.truth.admins.enumerated().map { ($1.stream, $0) })
        for t in s.truth.connections {
            let what = "\(name) connection \(t.stream)"
            guard let c = conns.first(where: { $0["id"] as? Int == t.stream }) else {
                Issue.record("\(what) missing")
                continue
            }
            let connect = try #require(t.connects.first, "\(what): ground truth without a Connect")
            let detail = try #require(t.connectDetails.first)
            let ref = s.full.connections[t.stream]
            #expect(ref.key == "\(t.host) → \(t.target)", "\(what): the reference walk numbers connections otherwise")
            expectString(c, "src", t.host, what)
            expectString(c, "dst", t.target, what)
            expectInt(c, "qid", connect.qid, what)
            expectString(c, "queue", t.queue, what)
            expectString(c, "kind", t.queue == "io" ? "io" : t.isDiscovery ? "discovery" : "admin", what)
            if t.queue == "admin" { expectBool(c, "discovery", t.isDiscovery, what) }
            expectBool(c, "midStream", false, what)
            expectInt(c, "kato", connect.kato, what)
            expectInt(c, "controller", t.queue == "admin" ? controllerOf[t.stream] : s.truth.owner(of: t).flatMap { controllerOf[$0.stream] },
                      what)
            expectInt(c, "cntlid", detail.responseCntlid, what)
            expectString(c, "subnqn", connect.subnqn, what)
            expectString(c, "hostnqn", connect.hostnqn, what)
            expectInt(c, "keepAlives", t.keepAlives, what)
            let gaps = zip(t.keepAliveTimes.dropFirst(), t.keepAliveTimes).map { $0 - $1 }
            expectSeconds(c, "maxKeepAliveGap", gaps.max(), what)
            expectString(c, "closedBy", t.closedBy, what)
            expectString(c, "closedHow", t.closeHow ?? "capture-end", what)
            let closeFrame = t.closedBy == "host" ? ref.hostClose : t.closedBy == "target" ? ref.targetClose : nil
            expectInt(c, "closeFrame", closeFrame, what)
            if let closeFrame, let closeTime = t.closeTime {
                #expect(abs(s.time(closeFrame) - closeTime) < 1e-6, "\(what): frame \(closeFrame) is not at tshark's close time")
            }
            expectInt(c, "firstFrame", ref.frames.first?.frame, what)
            expectInt(c, "lastFrame", ref.frames.last?.frame, what)
            expectSeconds(c, "start", t.firstPacketTime, what)
            expectSeconds(c, "end", t.lastPacketTime, what)
            expectString(c, "file", samplePath(name), what)
            expectBool(c, "headerDigest", t.icResp?.hdgst, what)
            expectBool(c, "dataDigest", t.icResp?.ddgst, what)
            let persistent = t.label?.persistentDiscovery == true
            expectBool(c, "persistent", persistent, what)
            #expect((c["persistenceReasons"] as? [String])?.isEmpty == !persistent, "\(what): persistenceReasons")
            // Everything was captured: no basis is inferred.
            for key in ["queueBasis", "discoveryBasis", "controllerBasis"] {
                for b in basisEntries(c[key]) { #expect(b["inferred"] as? Bool == false, "\(what): \(key) inferred: \(b)") }
            }
            let captured = try #require(c["captured"] as? [String: Any])
            expectInt(captured, "capturedBytes", ref.bytes[0].count + ref.bytes[1].count, what)
            expectInt(captured, "notCapturedBytes", t.bytesNotCaptured, what)
            if t.segmentsNotCaptured == 0 { expectInt(captured, "lostBytes", 0, what) }
            expectInt(captured, "unframedBytes", 0, what)
            expectInt(captured, "pduHeadersCut", t.pdusPartlyCaptured, what)
        }
    }

    @Test(arguments: sampleNames) func controllersAndChainsAreTheGroundTruths(_ name: String) throws {
        let s = try ReportSamples.shared.get(name)
        let admins = s.truth.admins
        let chains = s.truth.chains
        #expect(s.controllers.count == admins.count, "\(name): controllers")
        #expect(s.chains.count == chains.count, "\(name): chains")
        for (i, a) in admins.enumerated() {
            let what = "\(name) controller \(i)"
            guard i < s.controllers.count else { break }
            let c = s.controllers[i]
            expectInt(c, "id", i, what)
            expectInt(c, "adminConnection", a.stream, what)
            let ios = s.truth.connections.filter { $0.queue == "io" && s.truth.owner(of: $0)?.stream == a.stream }.map(\.stream)
            #expect(c["ioConnections"] as? [Int] == ios, "\(what): ioConnections \(String(describing: c["ioConnections"])), expected \(ios)")
            expectInt(c, "cntlid", a.connectDetails.first?.responseCntlid, what)
            expectBool(c, "discovery", a.isDiscovery, what)
            expectBool(c, "connectSeen", true, what)
            expectInt(c, "kato", a.connects.first?.kato, what)
            expectBool(c, "tbkas", referenceTBKAS(s.full.connections[a.stream]), what)
            expectInt(c, "chain", chains.firstIndex { $0.contains { $0.stream == a.stream } }, what)
            for key in ["discoveryBasis", "chainBasis"] {
                for b in basisEntries(c[key]) { #expect(b["inferred"] as? Bool == false, "\(what): \(key) inferred: \(b)") }
            }
        }
        for (i, chain) in chains.enumerated() where i < s.chains.count {
            let what = "\(name) chain \(i)"
            let c = s.chains[i]
            expectInt(c, "id", i, what)
            expectString(c, "hostnqn", chain[0].hostnqn, what)
            expectString(c, "subnqn", chain[0].subnqn, what)
            expectString(c, "host", chain[0].hostAddress, what)
            expectString(c, "target", chain[0].target, what)
            let expected = chain.compactMap { a in admins.firstIndex { $0.stream == a.stream } }
            #expect(c["controllers"] as? [Int] == expected, "\(what): controllers \(String(describing: c["controllers"])), expected \(expected)")
        }
    }

    @Test(arguments: sampleNames) func findingsCiteFramesThatShowWhatTheySay(_ name: String) throws {
        let s = try ReportSamples.shared.get(name)
        let findings = try #require(s.doc["findings"] as? [[String: Any]], "\(name): no findings array")
        let got = findings.map { "\($0["rule"] as? String ?? "?")@\($0["connection"] as? Int ?? -1)" }
        #expect(got.sorted() == s.truth.expectedFindings.sorted(), "\(name): findings")
        for f in findings {
            let rule = f["rule"] as? String ?? "?"
            let connection = f["connection"] as? Int
            let what = "\(name) \(rule) on connection \(connection.map(String.init) ?? "-")"
            expectString(f, "severity", rule == "outage" ? s.truth.outageSeverity(connection ?? -1) : readmeSeverities[rule], what)
            expectString(f, "file", samplePath(name), what)
            for key in ["title", "detail", "explanation", "fix"] {
                #expect((f[key] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty == false, "\(what): empty \(key)")
            }
            let evidence = f["evidence"] as? [[String: Any]] ?? []
            #expect(!evidence.isEmpty, "\(what): no evidence")
            var times: [Double] = []
            for e in evidence {
                let frame = try #require(e["frame"] as? Int, "\(what): evidence without frame")
                #expect((1...s.truth.packets).contains(frame), "\(what): frame \(frame) does not exist")
                guard (1...s.truth.packets).contains(frame) else { continue }
                expectString(e, "file", samplePath(name), what)
                expectSeconds(e, "time", s.time(frame), "\(what) frame \(frame)")
                times.append(s.time(frame))
                if let c = e["connection"] as? Int {
                    #expect(c < s.full.connections.count && s.full.connections[c].frames.contains { $0.frame == frame },
                            "\(what): frame \(frame) is not a packet of connection \(c)")
                }
                #expect((e["what"] as? String)?.isEmpty == false, "\(what): frame \(frame) says nothing")
            }
            let frames = evidence.compactMap { $0["frame"] as? Int }
            #expect(f["frames"] as? [Int] == Array(Set(frames)).sorted(), "\(what): frames are not the evidence frames in order")
            #expect(times.contains { abs($0 - (f["time"] as? Double ?? -1)) < 1.5e-6 }, "\(what): time is no evidence frame's")
            let connections = f["connections"] as? [Int] ?? []
            #expect(connection.map { connections.first == $0 } ?? true, "\(what): connections \(connections)")
            #expect(f["inferred"] as? Bool == false, "\(what): inferred on a whole capture")
            for b in basisEntries(f["basis"]) { #expect(b["inferred"] as? Bool == false, "\(what): basis \(b)") }
            // The frames the ground truth names are among the evidence.
            guard let c = connection, let t = s.truth.connections.first(where: { $0.stream == c }) else { continue }
            switch rule {
            case "discovery-kato-zero":
                #expect(frames.contains(t.connects.first?.frame ?? -1), "\(what): the Connect (tshark frame) is not cited")
            case "keep-alive-expired":
                let closeTime = try #require(t.closeTime)
                #expect(frames.contains { abs(s.time($0) - closeTime) < 1e-6 }, "\(what): the teardown tshark saw is not cited")
                // The host's last timer restart: its last Keep Alive, or its Connect when it sent none.
                let restart = t.keepAliveLast ?? s.time(t.connects.first?.frame ?? 1)
                #expect(frames.contains { abs(s.time($0) - restart) < 1e-6 }, "\(what): the last timer restart is not cited")
            default:
                break
            }
        }
    }

    @Test(arguments: sampleNames) func captureWarningsAndUnjudgedAreTheGroundTruths(_ name: String) throws {
        let s = try ReportSamples.shared.get(name)
        let what = name
        expectString(s.doc, "schema", "nvmetrace.report/1", what)
        expectString(s.doc, "version", NVMeTraceVersion.string, what)
        for key in ["connections", "controllers", "chains", "findings", "unjudged"] {
            #expect(s.doc[key] is [Any], "\(name): \(key) is \(String(describing: s.doc[key])), not an array")
        }
        // Every Connect and every byte was captured: no rule has a reason not to judge.
        #expect(s.truth.connections.allSatisfy { !$0.connects.isEmpty && $0.bytesNotCaptured == 0 })
        #expect(s.doc["unjudged"] as? [Any] != nil && s.unjudged.isEmpty, "\(name): unjudged \(String(describing: s.doc["unjudged"]))")
        let warnings = try #require(s.doc["warnings"] as? [String: Any])
        expectInt(warnings, "count", 0, what)
        #expect((warnings["first"] as? [Any])?.isEmpty == true && (warnings["readErrors"] as? [Any])?.isEmpty == true, "\(name): \(warnings)")
        let capture = try #require(s.doc["capture"] as? [String: Any])
        let files = capture["files"] as? [[String: Any]] ?? []
        #expect(files.count == 1)
        if let f = files.first {
            expectString(f, "name", samplePath(name), what)
            expectInt(f, "bytes", s.truth.fileBytes, what)
            expectInt(f, "frames", s.truth.packets, what)
        }
        expectInt(capture, "frames", s.truth.packets, what)
        let span = try #require(capture["span"] as? [String: Any])
        expectString(span, "start", utcMilliseconds(s.truth.firstPacketUTC), what)
        expectString(span, "end", utcMilliseconds(s.truth.lastPacketUTC), what)
        expectSeconds(span, "seconds", s.truth.duration, what)
        let q = try #require(capture["quality"] as? [String: Any])
        #expect(q["snapLengths"] as? [Int] == [s.truth.snapLength], "\(name): snapLengths")
        expectInt(q, "packetsCut", s.truth.packetsCutBySnapLength, what)
        expectInt(q, "cutTo", 0, what)
        expectInt(q, "capturedBytes", s.full.connections.reduce(0) { $0 + $1.bytes[0].count + $1.bytes[1].count }, what)
        expectInt(q, "notCapturedBytes", s.truth.connections.reduce(0) { $0 + $1.bytesNotCaptured }, what)
        expectInt(q, "lostBytes", 0, what)
        expectInt(q, "unframedBytes", 0, what)
        expectInt(q, "pduHeadersCut", s.truth.connections.reduce(0) { $0 + $1.pdusPartlyCaptured }, what)
        #expect(q["midStreamConnections"] as? [Int] == [], "\(name): midStreamConnections")
        expectBool(q, "whole", true, what)
        #expect(s.doc["evidence"] == nil, "\(name): evidence without --evidence")
    }

    /// A file that ends inside its last record: the report is still printed (exit status 2), its
    /// read error names the file and the frame, and what came before was analysed.
    @Test func aFileCutInsideARecordIsAReadError() throws {
        let name = "A-persistent-discovery-kato0"
        let truth = try GroundTruth(sample: name)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: samplePath(name)))
        let url = temporaryFile("truncated.pcap")
        try bytes.prefix(bytes.count - 30).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let run = try runCLI(["--format", "json", "--fail-on", "none", url.path])
        #expect(run.status == 2)
        let doc = try jsonDocument(run.stdout)
        let warnings = try #require(doc["warnings"] as? [String: Any])
        let readErrors = warnings["readErrors"] as? [String] ?? []
        #expect(readErrors.count == 1 && readErrors.allSatisfy { $0.contains(url.path) && $0.contains("frame \(truth.packets)") },
                "\(readErrors)")
        let capture = try #require(doc["capture"] as? [String: Any])
        expectInt(capture, "frames", truth.packets - 1, "truncated \(name)")
        #expect((doc["connections"] as? [Any])?.count == truth.connections.count)
    }

    // MARK: cut and mid-stream

    /// Every packet cut to 120 bytes: the Connect's KATO (PDU bytes 56-59) is cut wherever the
    /// Connect starts a packet. The report says how much was not captured, leaves what was cut
    /// unknown (null), and skips no connection the full capture has a finding on.
    @Test(arguments: sampleNames) func headersOnlyReportsSaySoAndSkipNoConnection(_ name: String) throws {
        let truth = try GroundTruth(sample: name)
        let full = try readPcapIndependently(samplePath(name))
        let cut = truncated(full, to: 120)
        let path = writeTemporaryCapture(cut, snaplen: 120, name: "snap120")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try runCLI(["--format", "json", "--fail-on", "none", path])
        #expect(run.status == 0)
        let doc = try jsonDocument(run.stdout)
        let what = "\(name) cut to 120 bytes"
        let reference = fullCaptureFacts(full).connections
        let held = referenceConnections(cut)
        let q = try #require((doc["capture"] as? [String: Any])?["quality"] as? [String: Any])
        #expect(q["snapLengths"] as? [Int] == [120], "\(what): snapLengths")
        let cutPackets = full.packets.filter { $0.bytes.count > 120 }.count
        expectInt(q, "packetsCut", cutPackets, what)
        expectInt(q, "cutTo", cutPackets > 0 ? 120 : 0, what)
        expectBool(q, "whole", cutPackets == 0, what)
        let total = reference.reduce(0) { $0 + $1.bytes[0].count + $1.bytes[1].count }
        let kept = held.reduce(0) { $0 + $1.streams.reduce(0) { $0 + $1.captured.reduce(0) { $0 + $1.count } } }
        expectInt(q, "capturedBytes", kept, what)
        expectInt(q, "notCapturedBytes", total - kept, what)
        #expect(q["midStreamConnections"] as? [Int] == [], "\(what): midStreamConnections")

        let conns = try #require(doc["connections"] as? [[String: Any]])
        #expect(conns.count == truth.connections.count)
        for (t, (c, h)) in zip(truth.connections, zip(conns, held)) {
            let cw = "\(what) connection \(t.stream)"
            expectString(c, "src", t.host, cw)
            let connect = try #require(reference[t.stream].connect)
            let katoHeld = h.streams[0].isCaptured((connect.pdu.offset + 56)..<(connect.pdu.offset + 60))
            expectInt(c, "kato", katoHeld ? t.connects.first?.kato : nil, cw)
            expectBool(c, "midStream", false, cw)
        }
        try expectNoConnectionSkipped(doc, truth: truth, what)

        // A header digest whose header or digest was cut cannot be checked: said per connection.
        let unjudged = try #require(doc["unjudged"] as? [[String: Any]])
        for (i, c) in reference.enumerated() {
            let unchecked = c.pdus.joined().filter { f in
                f.pdu.type > 1 && f.pdu.flags & 0x01 != 0
                    && !held[i].streams[f.dir].isCaptured(f.pdu.offset..<(f.pdu.offset + f.pdu.headerBytes))
            }.count
            let entry = unjudged.first { $0["rule"] as? String == "digest-error" && $0["connection"] as? Int == i }
            #expect((entry != nil) == (unchecked > 0), "\(what) connection \(i): \(unchecked) header digests cut, entry \(String(describing: entry))")
            if let reason = entry?["reason"] as? String {
                #expect(reason.hasPrefix("\(unchecked) header digest"), "\(what) connection \(i): \(reason)")
            }
        }
    }

    /// The capture starts right after the first Connect: that connection is marked mid-stream, its
    /// KATO is unknown, and a finding on it is still reported or listed as not judged.
    @Test(arguments: sampleNames) func midStreamReportsSaySoAndSkipNoConnection(_ name: String) throws {
        let truth = try GroundTruth(sample: name)
        let full = try readPcapIndependently(samplePath(name))
        let connectFrames = truth.connections.compactMap { $0.connects.first?.frame }
        let k = try #require(connectFrames.min())
        let variant = StoredCapture(linkType: full.linkType, packets: Array(full.packets.dropFirst(k)))
        let path = writeTemporaryCapture(variant, name: "mid")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try runCLI(["--format", "json", "--fail-on", "none", path])
        #expect(run.status == 0)
        let doc = try jsonDocument(run.stdout)
        let what = "\(name) from frame \(k + 1)"
        let reference = fullCaptureFacts(full).connections
        let conns = try #require(doc["connections"] as? [[String: Any]])
        // Connections with a packet left, and those of them whose ICReq is gone.
        let present = reference.filter { $0.frames.contains { $0.frame > k } }
        #expect(conns.map { "\($0["src"] as? String ?? "?") → \($0["dst"] as? String ?? "?")" } == present.map(\.key), "\(what): connections")
        let icReqGone = present.enumerated().filter { _, c in
            let icReq = c.pdus[0].first { $0.pdu.type == 0 }
            return icReq.map { $0.firstFrame <= k } ?? true
        }.map(\.offset)
        let q = try #require((doc["capture"] as? [String: Any])?["quality"] as? [String: Any])
        #expect(q["midStreamConnections"] as? [Int] == icReqGone, "\(what): midStreamConnections")
        #expect(!icReqGone.isEmpty)
        expectBool(q, "whole", false, what)
        for (i, c) in conns.enumerated() {
            let gone = icReqGone.contains(i)
            expectBool(c, "midStream", gone, "\(what) connection \(i)")
            if gone { expectInt(c, "kato", nil, "\(what) connection \(i)") }
        }
        try expectNoConnectionSkipped(doc, truth: truth, what)
    }

    /// README: "No connection is skipped silently". Each finding the full capture's ground truth
    /// calls for is reported on the same connection (by its endpoints) or that connection is listed
    /// as not judged by that rule; and no finding appears that the ground truth does not call for.
    func expectNoConnectionSkipped(_ doc: [String: Any], truth: GroundTruth, _ what: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        let conns = try #require(doc["connections"] as? [[String: Any]])
        let key = { (id: Int?) -> String in
            guard let id, let c = conns.first(where: { $0["id"] as? Int == id }) else { return "?" }
            return "\(c["src"] as? String ?? "?") → \(c["dst"] as? String ?? "?")"
        }
        let truthKey = { (stream: Int) in truth.connections.first { $0.stream == stream }.map { "\($0.host) → \($0.target)" } ?? "?" }
        let expected = Set(truth.expectedFindings.map { e -> String in
            let parts = e.split(separator: "@")
            return "\(parts[0])@\(truthKey(Int(parts[1])!))"
        })
        let found = Set((doc["findings"] as? [[String: Any]] ?? []).map { "\($0["rule"] as? String ?? "?")@\(key($0["connection"] as? Int))" })
        let unjudged = (doc["unjudged"] as? [[String: Any]] ?? [])
        let notJudged = Set(unjudged.map { "\($0["rule"] as? String ?? "?")@\(key($0["connection"] as? Int))" })
        #expect(found.isSubset(of: expected), "\(what): findings the full capture lacks: \(found.subtracting(expected))",
                sourceLocation: sourceLocation)
        for e in expected.sorted() {
            #expect(found.contains(e) || notJudged.contains(e), "\(what): \(e) neither found nor listed as not judged",
                    sourceLocation: sourceLocation)
        }
        for u in unjudged {
            #expect(key(u["connection"] as? Int) != "?" && (u["reason"] as? String)?.isEmpty == false, "\(what): \(u)",
                    sourceLocation: sourceLocation)
        }
        // A persistent discovery connection whose KATO the capture does not show is not judged.
        for t in truth.connections where t.label?.persistentDiscovery == true {
            let c = conns.first { "\($0["src"] as? String ?? "") → \($0["dst"] as? String ?? "")" == "\(t.host) → \(t.target)" }
            guard let c, c["kato"] is NSNull else { continue }
            let e = "discovery-kato-zero@\(t.host) → \(t.target)"
            #expect(found.contains(e) || notJudged.contains(e), "\(what): KATO unknown and \(e) not listed", sourceLocation: sourceLocation)
        }
    }
}
