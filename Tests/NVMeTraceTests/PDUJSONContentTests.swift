import Foundation
import Testing
@testable import NVMeTrace

// `nvmetrace pdus --format json` against the samples (issue #14): every PDU carries exactly the
// fields docs/pdus.md lists for what its bytes hold (the optional ones present exactly where they
// apply), with the values the bytes and the ground truth give. Expected values come from the tests'
// own pcap reader and reference PDU walk (CaptureTransforms.swift), the NVMe/TCP and NVMe layouts,
// and the ground truth JSON (tshark and the independent parser); never from nvmetrace.

/// What a field should hold; `.present` when only its presence is checked.
enum Want: CustomStringConvertible {
    case int(Int)
    case string(String)
    case bool(Bool)
    case seconds(Double)
    case strings([String])
    case present

    var description: String {
        switch self {
        case .int(let v): "\(v)"
        case .string(let v): "\"\(v)\""
        case .bool(let v): "\(v)"
        case .seconds(let v): "\(v) s"
        case .strings(let v): "\(v)"
        case .present: "(any)"
        }
    }

    func matches(_ v: Any) -> Bool {
        switch self {
        case .int(let e): v as? Int == e
        case .string(let e): v as? String == e
        case .bool(let e): v as? Bool == e
        case .seconds(let e): (v as? Double).map { abs($0 - e) < 1.5e-6 } == true
        case .strings(let e): v as? [String] == e
        case .present: true
        }
    }
}

/// Fabrics property offsets (NVMe Base 2.1, Figure 33).
let propertyNames: [Int: String] = [0x00: "CAP", 0x08: "VS", 0x0C: "INTMS", 0x10: "INTMC", 0x14: "CC", 0x1C: "CSTS", 0x20: "NSSR"]

/// CRC32C (Castagnoli, reflected), bit by bit: the NVMe/TCP digest.
func crc32c<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

/// A NUL-padded ASCII field.
func asciiField(_ b: ArraySlice<UInt8>) -> String {
    String(decoding: b.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
}

/// Computes, PDU by PDU in the order nvmetrace completes them, the fields each should carry.
struct ExpectedPDUFields {
    let capture: StoredCapture
    let file: String
    let verifyDataDigests: Bool
    /// Per connection: the Connect's QID once seen, commands waiting for completion by CID, and
    /// the data transferred for each (C2HData), by CID.
    private var qid: [Int: Int] = [:]
    private var outstanding: [Int: [Int: LocatedPDU]] = [:]
    private var data: [Int: [Int: [UInt8]]] = [:]
    private var connectData: [Int: [Int: ArraySlice<UInt8>]] = [:]
    /// AER completions: frame → the log page their DW0 names (bits 23:16).
    private(set) var events: [Int: Int] = [:]

    init(capture: StoredCapture, file: String, verifyDataDigests: Bool = false) {
        self.capture = capture
        self.file = file
        self.verifyDataDigests = verifyDataDigests
    }

    mutating func fields(_ p: LocatedPDU, host: String, target: String) -> [String: Want] {
        let c = p.connection
        var w: [String: Want] = [
            "file": .string(file), "frame": .int(p.lastFrame), "firstFrame": .int(p.firstFrame),
            "time": .seconds(capture.relativeTime(frame: p.lastFrame)), "epoch": .seconds(capture.epochTime(frame: p.lastFrame)),
            "connection": .int(c), "src": .string(p.dir == 0 ? host : target), "dst": .string(p.dir == 0 ? target : host),
            "type": .string(referencePDUTypeNames[p.type] ?? "?"), "plen": .int(p.fact.pdu.plen), "hlen": .int(p.hlen), "pdo": .int(p.pdo),
        ]
        let flagNames = [(0x01, "HDGSTF"), (0x02, "DDGSTF"), (0x04, "LAST"), (0x08, "SUCCESS")].filter { Int(p.flags) & $0.0 != 0 }.map(\.1)
        if !flagNames.isEmpty { w["flags"] = .strings(flagNames) }
        let hd = p.type > 1 && p.flags & 0x01 != 0 ? 4 : 0
        var trusted = true
        if hd == 4 {
            trusted = crc32c(p.bytes[0..<p.hlen]) == UInt32(p.le32(p.hlen))
            w["hdgst"] = .string(trusted ? "ok" : "mismatch")
        }
        if [2, 3, 4, 6, 7].contains(p.type) && p.flags & 0x02 != 0 && p.fact.pdu.plen > p.hlen + hd {
            let ok = crc32c(p.data) == UInt32(p.le32(p.fact.pdu.plen - 4))
            w["ddgst"] = .string(verifyDataDigests ? (ok ? "ok" : "mismatch") : "not-verified")
        }
        // README: a PDU whose header digest does not match is reported and its fields are not trusted.
        if !trusted {
            if let q = qid[c] { w["qid"] = .int(q) }
            return w
        }
        switch p.type {
        case 0, 1:
            w["pfv"] = .int(p.le16(8)); w["pda"] = .int(p.u8(10))
            w["hdgstEnabled"] = .bool(p.u8(11) & 1 != 0); w["ddgstEnabled"] = .bool(p.u8(11) & 2 != 0)
            w[p.type == 0 ? "maxr2t" : "maxh2cdata"] = .int(p.le32(12))
        case 4:
            command(p, &w)
        case 5:
            completion(p, cid: p.le16(20), status: p.le16(22), dw0: p.le64(8), &w)
        case 2, 3:  // TermReq: FES (bytes 8-9), FEI (10-13)
            w["fes"] = .int(p.le16(8)); w["fei"] = .int(p.le32(10)); w["fesName"] = .present
        case 6, 7, 9:
            w["cccid"] = .int(p.le16(8)); w["ttag"] = .int(p.le16(10)); w["datao"] = .int(p.le32(12)); w["datal"] = .int(p.le32(16))
            if p.type == 7 { data[c, default: [:]][p.le16(8), default: []] += Array(p.data) }
            // A C2HData with SUCCESS completes its command (successfully) without a CapsuleResp.
            if p.type == 7 && p.flags & 0x08 != 0 { completion(p, cid: p.le16(8), status: 0, dw0: 0, &w) }
        default:
            break
        }
        if let q = qid[c] { w["qid"] = .int(q) }
        return w
    }

    private mutating func command(_ p: LocatedPDU, _ w: inout [String: Want]) {
        let c = p.connection
        let opcode = p.u8(8), cid = p.le16(10)
        w["cid"] = .int(cid); w["opcode"] = .int(opcode); w["name"] = .present
        outstanding[c, default: [:]][cid] = p
        data[c, default: [:]][cid] = []
        if opcode == 0x7F {
            let fctype = p.u8(12)
            w["fctype"] = .int(fctype)
            switch fctype {
            case 0x01:  // Connect: QID, SQSIZE, KATO (SQE bytes 42, 44, 48); its data in the capsule.
                w["connectQid"] = .int(p.le16(50)); w["sqsize"] = .int(p.le16(52)); w["kato"] = .int(p.le32(56))
                qid[c] = p.le16(50)
                let d = p.data
                if d.count >= 768 {
                    connectData[c, default: [:]][cid] = d
                    connectDataFields(d, &w)
                }
            case 0x00:
                w["property"] = propertyNames[p.le32(52)].map(Want.string) ?? .present
                w["value"] = .int(Int(truncatingIfNeeded: p.u8(48) & 7 == 1 ? p.le64(56) : UInt64(p.le32(56))))
            case 0x04:
                w["property"] = propertyNames[p.le32(52)].map(Want.string) ?? .present
            default:
                break
            }
            return
        }
        if p.le32(12) != 0 { w["nsid"] = .int(p.le32(12)) }
        if qid[c] == 0 {
            switch opcode {
            case 0x06: w["cns"] = .int(p.u8(48))
            case 0x02: w["lid"] = .int(p.u8(48))
            case 0x09: w["fid"] = .int(p.u8(48)); w["value"] = .int(p.le32(52))
            case 0x0A: w["fid"] = .int(p.u8(48))
            default: break
            }
        } else if [0x01, 0x02].contains(opcode) {  // Write, Read: SLBA (CDW10-11), NLB (CDW12, 0's based)
            w["slba"] = .int(Int(truncatingIfNeeded: p.le64(48))); w["nlb"] = .int(p.le16(56) + 1)
        }
    }

    private func connectDataFields(_ d: ArraySlice<UInt8>, _ w: inout [String: Want]) {
        let b = Array(d)
        let hex = b[0..<16].map { String(format: "%02x", $0) }.joined()
        let uuid = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        w["hostid"] = .string(uuid.joined(separator: "-"))
        w["cntlid"] = .int(Int(b[16]) | Int(b[17]) << 8)
        w["subnqn"] = .string(asciiField(b[256..<512]))
        w["hostnqn"] = .string(asciiField(b[512..<768]))
    }

    private mutating func completion(_ p: LocatedPDU, cid: Int, status raw: Int, dw0: UInt64, _ w: inout [String: Want]) {
        let c = p.connection
        w["cid"] = .int(cid)
        // CQE status field: phase (bit 0), SC (bits 1-8), SCT (bits 9-11); reported SCT << 8 | SC.
        let status = (raw >> 1) & 0xFF | ((raw >> 9) & 0x7) << 8
        w["status"] = .int(status); w["statusName"] = .present
        guard let cmd = outstanding[c]?.removeValue(forKey: cid) else { return }
        let opcode = cmd.u8(8)
        w["opcode"] = .int(opcode); w["name"] = .present
        w["commandFrame"] = .int(cmd.lastFrame)
        w["latency"] = .seconds(capture.relativeTime(frame: p.lastFrame) - capture.relativeTime(frame: cmd.lastFrame))
        if opcode == 0x7F { w["fctype"] = .int(cmd.u8(12)) }
        if let d = connectData[c]?.removeValue(forKey: cid) { connectDataFields(d, &w) }
        guard status == 0 else { return }
        let transferred = data[c]?[cid] ?? []
        if opcode == 0x7F {
            switch cmd.u8(12) {
            case 0x01:
                w["cntlid"] = .int(Int(dw0 & 0xFFFF)); w["authreq"] = .int(Int(dw0 >> 16 & 0xFFFF))
            case 0x04:
                w["property"] = propertyNames[cmd.le32(52)].map(Want.string) ?? .present
                w["value"] = .int(Int(truncatingIfNeeded: cmd.u8(48) & 7 == 1 ? dw0 : dw0 & 0xFFFF_FFFF))
            default:
                break
            }
            return
        }
        guard qid[c] == 0 else { return }
        switch opcode {
        case 0x06 where cmd.u8(48) == 0x01 && transferred.count >= 4096:
            w["identify"] = .present
        case 0x02 where cmd.u8(48) == 0x70 && cmd.le64(56) == 0 && transferred.count >= 16:
            w["discoveryLog"] = .present
        case 0x09:
            w["fid"] = .int(cmd.u8(48)); w["value"] = .int(cmd.le32(52))
        case 0x0A:
            w["fid"] = .int(cmd.u8(48)); w["value"] = .int(Int(dw0 & 0xFFFF_FFFF))
        case 0x0C:
            w["event"] = .present
            events[p.lastFrame] = Int(dw0 >> 16 & 0xFF)
        default:
            break
        }
    }

    /// The data the command with this CID transferred (C2HData), for checking decoded content.
    func transferred(connection: Int, cid: Int) -> [UInt8] { data[connection]?[cid] ?? [] }
}

/// The lines of `nvmetrace pdus --format json`, grouped by connection, in output order.
func pduLines(_ args: [String]) throws -> [Int: [[String: Any]]] {
    let run = try runCLI(["pdus", "--format", "json"] + args)
    #expect(run.status == 0, "\(run.stderr)")
    return Dictionary(grouping: try jsonLines(run.stdout)) { $0["connection"] as? Int ?? -1 }
}

/// Compares each connection's lines with the fields its PDUs' bytes call for.
func expectFields(_ lines: [Int: [[String: Any]]], _ located: [[LocatedPDU]], _ full: FullCapture,
                  _ expected: inout ExpectedPDUFields, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    for (ci, pdus) in located.enumerated() {
        let objects = lines[ci] ?? []
        let ref = full.connections[ci].ref
        #expect(objects.count == pdus.count, "\(what) connection \(ci): \(objects.count) lines, \(pdus.count) PDUs",
                sourceLocation: sourceLocation)
        var mismatches = 0
        for (o, p) in zip(objects, pdus) {
            let want = expected.fields(p, host: ref.host, target: ref.target)
            let at = "\(what) connection \(ci) frame \(p.lastFrame) \(referencePDUTypeNames[p.type] ?? "?")"
            let extra = Set(o.keys).subtracting(want.keys), missing = Set(want.keys).subtracting(o.keys)
            var wrong = want.filter { key, w in o[key] != nil && !w.matches(o[key]!) }.map { "\($0.key) is \(o[$0.key]!), expected \($0.value)" }
            if !extra.isEmpty || !missing.isEmpty { wrong.append("fields not expected \(extra.sorted()), missing \(missing.sorted())") }
            guard !wrong.isEmpty else { continue }
            mismatches += 1
            if mismatches <= 10 {
                Issue.record("\(at): \(wrong.sorted().joined(separator: "; "))", sourceLocation: sourceLocation)
            }
        }
        if mismatches > 10 { Issue.record("\(what) connection \(ci): \(mismatches) PDUs differ in all", sourceLocation: sourceLocation) }
    }
}

@Suite struct PDUJSONContentTests {
    /// The synthetic capture with what the samples lack (JSONOutputCorpus.syntheticCapture): an
    /// AER completion, a failed Keep Alive, a PDU whose header digest is wrong, a C2HTermReq, a
    /// rejected Connect, a C2HData that completes its read.
    @Test func theSyntheticCapturesPDUsCarryExactlyTheFieldsTheirBytesHold() throws {
        let path = JSONOutputCorpus.syntheticCapture()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let capture = try readPcapIndependently(path)
        let full = fullCaptureFacts(capture)
        let lines = try pduLines(["--verify-data-digests", path])
        var expected = ExpectedPDUFields(capture: capture, file: path, verifyDataDigests: true)
        expectFields(lines, locatedPDUs(full), full, &expected, "synthetic capture")
        let all = lines.values.joined()
        // What the capture was made to hold is there (so the comparison above covered it).
        #expect(all.contains { $0["hdgst"] as? String == "mismatch" })
        #expect(all.contains { $0["type"] as? String == "C2HTermReq" && $0["fes"] as? Int == 3 })
        #expect(all.contains { $0["type"] as? String == "CapsuleResp" && $0["status"] as? Int == 0x182 })  // SCT 1, SC 0x82
        #expect(all.contains { $0["type"] as? String == "CapsuleResp" && $0["status"] as? Int == 0x19 && $0["opcode"] as? Int == 0x18 })
        #expect(all.contains { $0["type"] as? String == "C2HData" && $0["status"] as? Int == 0 && $0["latency"] != nil })
        let events = all.compactMap { o in (o["event"] as? [String: Any]).map { (o["frame"] as? Int ?? 0, $0) } }
        #expect(events.count == 1 && events.count == expected.events.count)
        for (frame, e) in events {
            #expect(e["logPage"] as? Int == expected.events[frame], "AER completion at frame \(frame): \(e)")
        }
    }

    /// Each PDU has the fields its bytes call for, no more, no fewer, with their values.
    @Test(arguments: sampleNames) func everyPDUCarriesExactlyTheFieldsItsBytesHold(_ name: String) throws {
        try checkFields(name, verifyDataDigests: false)
    }

    /// With --verify-data-digests the data digests are checked (all correct in D2).
    @Test func dataDigestsVerified() throws {
        try checkFields("D2-io-traffic-digests", verifyDataDigests: true)
    }

    func checkFields(_ name: String, verifyDataDigests: Bool) throws {
        let truth = try GroundTruth(sample: name)
        let capture = try readPcapIndependently(samplePath(name))
        let full = fullCaptureFacts(capture)
        let located = locatedPDUs(full)
        let lines = try pduLines((verifyDataDigests ? ["--verify-data-digests"] : []) + [samplePath(name)])
        #expect(Set(lines.keys) == Set(truth.connections.map(\.stream)), "\(name): connections")
        var expected = ExpectedPDUFields(capture: capture, file: samplePath(name), verifyDataDigests: verifyDataDigests)
        expectFields(lines, located, full, &expected, name)
        for t in truth.connections {
            let objects = lines[t.stream] ?? []
            let what = "\(name) connection \(t.stream)"
            // tshark's PDU counts per type.
            var types: [String: Int] = [:]
            for o in objects { types[o["type"] as? String ?? "?", default: 0] += 1 }
            #expect(types == t.pduTypes, "\(what): PDU types \(types), tshark \(t.pduTypes)")
            // The ground truth's own values: ICReq/ICResp, each Connect and its response, Keep Alives.
            if let q = t.icReq, let o = objects.first(where: { $0["type"] as? String == "ICReq" }) {
                #expect(o["hdgstEnabled"] as? Bool == q.hdgst && o["ddgstEnabled"] as? Bool == q.ddgst
                        && o["pda"] as? Int == q.pda && o["maxr2t"] as? Int == q.max, "\(what): ICReq \(o)")
            }
            if let r = t.icResp, let o = objects.first(where: { $0["type"] as? String == "ICResp" }) {
                #expect(o["hdgstEnabled"] as? Bool == r.hdgst && o["ddgstEnabled"] as? Bool == r.ddgst
                        && o["pda"] as? Int == r.pda && o["maxh2cdata"] as? Int == r.max, "\(what): ICResp \(o)")
            }
            let connects = objects.filter { $0["connectQid"] != nil }
            #expect(connects.count == t.connects.count, "\(what): Connects")
            for (o, (c, d)) in zip(connects, zip(t.connects, t.connectDetails)) {
                #expect(o["frame"] as? Int == c.frame && o["kato"] as? Int == c.kato && o["connectQid"] as? Int == c.qid
                        && o["qid"] as? Int == c.qid && o["sqsize"] as? Int == c.sqsize && o["subnqn"] as? String == c.subnqn
                        && o["hostnqn"] as? String == c.hostnqn && o["cntlid"] as? Int == d.cntlid
                        && (o["hostid"] as? String)?.replacingOccurrences(of: "-", with: "") == d.hostid,
                        "\(what): Connect \(o), ground truth \(c) \(d)")
                let response = objects.first { $0["type"] as? String == "CapsuleResp" && $0["commandFrame"] as? Int == c.frame }
                #expect(response?["status"] as? Int == d.responseStatus && response?["cntlid"] as? Int == d.responseCntlid,
                        "\(what): Connect response \(String(describing: response))")
            }
            let keepAlives = objects.filter { $0["type"] as? String == "CapsuleCmd" && $0["opcode"] as? Int == 0x18 && $0["qid"] as? Int == 0 }
            #expect(keepAlives.count == t.keepAliveTimes.count, "\(what): Keep Alives")
            for (o, time) in zip(keepAlives, t.keepAliveTimes) {
                #expect(abs((o["time"] as? Double ?? -1) - time) < 1e-6, "\(what): Keep Alive at \(String(describing: o["time"])), tshark \(time)")
            }
            #expect(objects.filter { $0["hdgst"] as? String == "ok" }.count == t.hdgstOK, "\(what): header digests ok")
            if verifyDataDigests {
                #expect(objects.filter { $0["ddgst"] as? String == "ok" }.count == t.ddgstOK, "\(what): data digests ok")
            }
            // Identify Controller: the CNTLID the Connect response gave, the Connect's subsystem.
            for o in objects {
                guard let id = o["identify"] as? [String: Any] else { continue }
                #expect(id["cntlid"] as? Int == t.connectDetails.first?.responseCntlid && id["subnqn"] as? String == t.subnqn,
                        "\(what): identify \(id)")
                #expect(id["cntrltype"] as? String == (t.isDiscovery ? "discovery" : "io"), "\(what): identify \(id)")
                let cid = try #require(o["cid"] as? Int)
                let d = expected.transferred(connection: t.stream, cid: cid)
                #expect(id["tbkas"] as? Bool == (d[96] & 0x40 != 0) && id["kas"] as? Int == Int(d[320]) | Int(d[321]) << 8,
                        "\(what): identify \(id)")
            }
            for o in objects {
                guard let log = o["discoveryLog"] as? [String: Any], let cid = o["cid"] as? Int else { continue }
                let d = expected.transferred(connection: t.stream, cid: cid)
                let le64 = { (i: Int) in (0..<8).reduce(0) { $0 | Int(d[i + $1]) << (8 * $1) } }
                #expect(log["genctr"] as? Int == le64(0) && log["numrec"] as? Int == le64(8), "\(what): discovery log \(log)")
                let entries = log["entries"] as? [[String: Any]] ?? []
                #expect(entries.count == min(le64(8), max(0, d.count - 1024) / 1024), "\(what): discovery log entries")
                for (i, e) in entries.enumerated() {
                    // Entry: PORTID at 4, TRSVCID at 32, SUBNQN at 256, TRADDR at 512 (NVMe Base 2.1, Figure 294).
                    let r = Array(d[(1024 + 1024 * i)..<(2048 + 1024 * i)])
                    #expect(e["traddr"] as? String == asciiField(r[512..<768]) && e["trsvcid"] as? String == asciiField(r[32..<64])
                            && e["subnqn"] as? String == asciiField(r[256..<512]) && e["portid"] as? Int == Int(r[4]) | Int(r[5]) << 8,
                            "\(what): discovery log entry \(e)")
                }
            }
        }
    }

    /// Every packet cut to 120 bytes: a PDU missing bytes says `incomplete`; one whose header was
    /// cut says how much of it was captured and leaves out every field past that, never zero.
    @Test(arguments: sampleNames) func cutPDUsSayWhatWasNotCaptured(_ name: String) throws {
        let full = try readPcapIndependently(samplePath(name))
        let cut = truncated(full, to: 120)
        let path = writeTemporaryCapture(cut, snaplen: 120, name: "snap120")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = try pduLines([path])
        let located = locatedPDUs(fullCaptureFacts(full))
        let held = referenceConnections(cut)
        for (ci, pdus) in located.enumerated() {
            let what = "\(name) cut to 120 bytes, connection \(ci)"
            let objects = lines[ci] ?? []
            // Each PDU whose common header survived is listed, at the same frames.
            let framed = pdus.filter { held[ci].streams[$0.dir].isCaptured($0.fact.pdu.offset..<($0.fact.pdu.offset + 8)) }
            #expect(objects.count == framed.count, "\(what): \(objects.count) lines, \(framed.count) PDUs with their common header")
            for (o, p) in zip(objects, framed) {
                let at = "\(what) frame \(p.lastFrame) \(referencePDUTypeNames[p.type] ?? "?")"
                let stream = held[ci].streams[p.dir]
                let start = p.fact.pdu.offset
                #expect(o["type"] as? String == referencePDUTypeNames[p.type] && o["frame"] as? Int == p.lastFrame
                        && o["firstFrame"] as? Int == p.firstFrame && o["plen"] as? Int == p.fact.pdu.plen, "\(at): \(o)")
                let whole = stream.isCaptured(start..<(start + p.fact.pdu.plen))
                #expect((o["incomplete"] as? Bool == true) == !whole && (o["incomplete"] == nil) == whole, "\(at): incomplete \(String(describing: o["incomplete"]))")
                let run = stream.captured.first { $0.contains(start) }.map { $0.upperBound - start } ?? 0
                let header = min(run, p.hlen)
                if header < p.hlen {
                    #expect(o["headerCaptured"] as? Int == header, "\(at): headerCaptured \(String(describing: o["headerCaptured"])), captured \(header)")
                } else {
                    #expect(o["headerCaptured"] == nil, "\(at): headerCaptured on a whole header")
                }
                if p.type > 1 && p.flags & 0x01 != 0 {
                    let checked = stream.isCaptured(start..<(start + p.hlen + 4))
                    #expect(o["hdgst"] as? String == (checked ? "ok" : "unverifiable"), "\(at): hdgst \(String(describing: o["hdgst"]))")
                }
                // Past the captured header: absent (never zero). README names the fields decoded as
                // far as the header goes: opcode, CID, the Connect's QID, SQSIZE and KATO, CQE CID
                // and status; those are present whenever their bytes were captured.
                var needs: [String: (bytes: Int, claimed: Bool)] = [:]
                switch p.type {
                case 4:
                    needs = ["opcode": (9, true), "cid": (12, true), "nsid": (16, false)]
                    if p.u8(8) == 0x7F && header >= 13 && p.u8(12) == 0x01 {
                        needs["connectQid"] = (52, true); needs["sqsize"] = (54, true); needs["kato"] = (60, true)
                    }
                case 5: needs = ["cid": (22, true), "status": (24, true)]
                case 6, 7, 9: needs = ["cccid": (10, false), "ttag": (12, false), "datao": (16, false), "datal": (20, false)]
                default: break
                }
                for (key, n) in needs {
                    if header < n.bytes {
                        #expect(o[key] == nil, "\(at): \(key) present with only \(header) header bytes")
                    } else if n.claimed {
                        #expect(o[key] != nil, "\(at): \(key) absent with \(header) header bytes")
                    }
                }
            }
        }
    }
}
