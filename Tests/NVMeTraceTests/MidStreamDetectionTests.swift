import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

// NVMe/TCP on a port nvmetrace does not know, in connections the capture picked up mid-stream
// (no SYN, no ICReq): found by a run of PDU headers, or because an ICReq elsewhere in the
// capture proved their target. Real samples are moved to another port (CaptureTransforms'
// `rewritingPort`) and cut at the front; what must be decoded is computed by the tests'
// reference framer from the full sample (itself checked against the ground truth in
// CaptureVariantTests), never from nvmetrace's output.

/// A sample moved from its port to another and cut to packets [from, to).
struct PortCut: Sendable, CustomTestStringConvertible {
    var sample: String
    var port: UInt16
    var newPort: UInt16
    var from: Int
    var to: Int?
    var testDescription: String { "\(sample) :\(port)→:\(newPort) packets \(from + 1)…\(to.map(String.init) ?? "end")" }

    func capture() -> StoredCapture {
        let moved = rewritingPort(SampleCaptures.named(sample), from: port, to: newPort)
        return StoredCapture(linkType: moved.linkType, packets: Array(moved.packets[from..<(to ?? moved.packets.count)]))
    }

    func endpoint(_ s: String) -> String { s.hasSuffix(":\(port)") ? String(s.dropLast("\(port)".count)) + "\(newPort)" : s }
}

/// Bytes of a header that `PDUHeaderCheck.plausible` reads, by type (PROTOCOL.md's offsets): the
/// digest byte of ICReq (@11), MAXH2CDATA of ICResp (@12..15), FES of a TermReq (@8..9), the SQE
/// flags of a CapsuleCmd (@9), the common header alone for a CapsuleResp, DATAL or R2TL (@16..19)
/// for data PDUs and R2T. A header cut by the snap length counts towards a run when these were
/// captured (the detector's documented rule).
private let checkedBytes: [UInt8: Int] = [0: 12, 1: 16, 2: 10, 3: 10, 4: 10, 5: 8, 6: 20, 7: 20, 9: 20]

/// What the cut capture must yield for one connection, per direction (host → target first).
struct MidStreamExpectation {
    /// PDUs a framer finds in the cut capture (`framedByReference`), at their offset from the
    /// first byte the cut capture holds of that direction.
    var offsets: [[Int]] = [[], []]
    var types: [String: Int] = [:]
    var keepAlives = 0
    /// A run of 4 PDUs in a row, each with the fields the header check reads captured, in
    /// either direction: the connection can be recognised on its own.
    var recognisable = false
}

func midStreamExpectation(_ f: ReferenceConnection, cut: StoredCapture, snaplen: Int? = nil) -> MidStreamExpectation {
    var e = MidStreamExpectation()
    for d in 0..<2 {
        let key = d == 0 ? f.key : f.key.reversed
        var ranges: [Range<Int>] = []
        var base: Int?
        for p in cut.packets {
            guard let v = TCPFrameView(p.bytes), v.key == key, v.payloadLength > 0 else { continue }
            precondition(v.flags & TCPFlag.syn == 0, "a mid-stream cut holds no SYN")
            let lo = f.streams[d].offset(ofSeq: v.seq)
            let n = snaplen.map { max(0, min(v.payloadLength, $0 - v.payload)) } ?? v.payloadLength
            base = min(base ?? lo, lo)
            if n > 0 { ranges.append(lo..<(lo + n)) }
        }
        guard let base else { continue }
        var merged: [Range<Int>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let l = merged.last, r.lowerBound <= l.upperBound {
                merged[merged.count - 1] = l.lowerBound..<max(l.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        func captured(_ r: Range<Int>) -> Bool { merged.contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound } }
        let surviving = f.streams[d].pdus.filter { $0.offset >= base }
        // What a framer finds, starting by hunting: PDUs whose common header survives while it is
        // in step, whole headers or plausible cut ones when it is not (CaptureVariantTests).
        let decodable = framedByReference(surviving, captured: merged, inStep: false).map(\.pdu)
        e.offsets[d] = decodable.map { $0.offset - base }
        for p in decodable { e.types[p.typeName, default: 0] += 1 }
        // A Keep Alive is known from its opcode (header byte 8) and NSID (bytes 12-15: an admin
        // command names no namespace).
        if d == 0 {
            e.keepAlives = decodable.filter { p in
                p.type == 4 && p.opcode == 0x18 && captured(p.offset..<(p.offset + 16))
            }.count
        }
        var run = 0
        for p in surviving {
            run = captured(p.offset..<(p.offset + (checkedBytes[p.type] ?? 24))) ? run + 1 : 0
            if run >= 4 { e.recognisable = true }
        }
    }
    return e
}

/// Offsets of the PDUs decoded between `host` and `target`, per direction.
private func decodedOffsets(_ r: AnalysisResult, host: String, target: String) -> [[Int]] {
    var got: [[Int]] = [[], []]
    for rec in r.records {
        let (src, dst) = (rec.src.description, rec.dst.description)
        if src == host && dst == target { got[0].append(Int(rec.pdu.streamOffset)) }
        if src == target && dst == host { got[1].append(Int(rec.pdu.streamOffset)) }
    }
    return got
}

private func isKeepAlive(_ r: OwnedPDURecord) -> Bool {
    if case .command(let c) = r.body { return c.isKeepAlive }
    return false
}

/// Checks a run on a cut against the expectations for every connection of the sample; returns
/// how many connections were expected to be decoded.
@discardableResult
private func expectMidStreamDecode(_ result: AnalysisResult, _ cut: PortCut, capture: StoredCapture, snaplen: Int?,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    let truth = try GroundTruth(sample: cut.sample)
    let full = referenceConnections(rewritingPort(SampleCaptures.named(cut.sample), from: cut.port, to: cut.newPort))
    #expect(result.error == nil, sourceLocation: sourceLocation)
    var decoded = 0
    for c in truth.connections {
        let host = cut.endpoint(c.host), target = cut.endpoint(c.target)
        let f = try #require(full.first { $0.host == host && $0.target == target }, sourceLocation: sourceLocation)
        let e = midStreamExpectation(f, cut: capture, snaplen: snaplen)
        let what = "\(cut.testDescription) stream \(c.stream)"
        let got = decodedOffsets(result, host: host, target: target)
        #expect(got == (e.recognisable ? e.offsets : [[], []]), "\(what)", sourceLocation: sourceLocation)
        let recs = result.records.filter { $0.src.description == host || $0.dst.description == host }
        var types: [String: Int] = [:]
        for r in recs { types[r.pdu.type.name, default: 0] += 1 }
        #expect(types == (e.recognisable ? e.types : [:]), "\(what) PDU types", sourceLocation: sourceLocation)
        #expect(recs.filter(isKeepAlive).count == (e.recognisable ? e.keepAlives : 0), "\(what) keep-alives",
                sourceLocation: sourceLocation)
        // The host and target roles, whatever the guess from the ports was.
        for index in Set(recs.map(\.connection)) {
            let flow = try #require(result.flows.first { $0.id == index }, sourceLocation: sourceLocation)
            #expect(flow.client.description == host && flow.server.description == target,
                    "\(what): roles \(flow.client) → \(flow.server)", sourceLocation: sourceLocation)
        }
        if e.recognisable && !recs.isEmpty { decoded += 1 }
    }
    return decoded
}

@Suite struct MidStreamDetectionTests {
    // Cuts: E's first two connections (admin with Keep Alives, I/O with writes and reads) picked
    // up at several points, ending before the reconnect's ICReq (no proof in the capture); A's
    // second discovery connection picked up at several points. Port 60000 is above the hosts'
    // ephemeral ports, so the guess from the ports (lower port is the server) is wrong there and
    // the PDU types must set it right.
    static let cuts: [PortCut] = [
        PortCut(sample: "E-keepalive-stall", port: 4420, newPort: 5555, from: 51, to: 200),
        PortCut(sample: "E-keepalive-stall", port: 4420, newPort: 5555, from: 90, to: 200),
        PortCut(sample: "E-keepalive-stall", port: 4420, newPort: 60000, from: 56, to: 200),
        PortCut(sample: "E-keepalive-stall", port: 4420, newPort: 60000, from: 118, to: 200),
        PortCut(sample: "E-keepalive-stall", port: 4420, newPort: 60000, from: 150, to: 200),
        PortCut(sample: "A-persistent-discovery-kato0", port: 8009, newPort: 7000, from: 65, to: nil),
        PortCut(sample: "A-persistent-discovery-kato0", port: 8009, newPort: 7000, from: 100, to: nil),
        PortCut(sample: "A-persistent-discovery-kato0", port: 8009, newPort: 60000, from: 87, to: nil),
        PortCut(sample: "A-persistent-discovery-kato0", port: 8009, newPort: 60000, from: 200, to: nil),
    ]

    /// The port rewrite itself: only the port changes, and every checksum still verifies.
    @Test func portRewriteKeepsChecksumsValid() throws {
        let original = SampleCaptures.e
        let moved = rewritingPort(original, from: 4420, to: 5555)
        #expect(moved.packets.count == original.packets.count)
        var rewritten = 0
        for (a, b) in zip(original.packets, moved.packets) {
            guard let v = TCPFrameView(a.bytes) else { #expect(a.bytes == b.bytes); continue }
            let w = try #require(TCPFrameView(b.bytes))
            #expect(w.key.srcPort == (v.key.srcPort == 4420 ? 5555 : v.key.srcPort))
            #expect(w.key.dstPort == (v.key.dstPort == 4420 ? 5555 : v.key.dstPort))
            #expect(Array(a.bytes[w.payload...]) == Array(b.bytes[w.payload...]))
            // One's-complement sums over the IPv4 header, and over the TCP pseudo-header and
            // segment, fold to 0xFFFF when the checksums are right (RFC 1071).
            func fold(_ s: UInt32) -> UInt32 { var s = s; while s >> 16 != 0 { s = (s & 0xFFFF) + (s >> 16) }; return s }
            func sum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
                var s: UInt32 = 0, i = bytes.startIndex
                while i + 1 < bytes.endIndex { s &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
                if i < bytes.endIndex { s &+= UInt32(bytes[i]) << 8 }
                return s
            }
            #expect(fold(sum(b.bytes[w.ip..<(w.ip + w.ipHeaderLength)])) == 0xFFFF)
            let tcpLength = w.tcpHeaderLength + w.payloadLength
            let pseudo = sum(b.bytes[(w.ip + 12)..<(w.ip + 20)]) &+ 6 &+ UInt32(tcpLength)
            #expect(fold(pseudo &+ sum(b.bytes[w.tcp..<(w.tcp + tcpLength)])) == 0xFFFF)
            if v.key.srcPort == 4420 || v.key.dstPort == 4420 { rewritten += 1 }
        }
        // Every packet of the sample's connections to port 4420 (the ground truth's count).
        let truth = try GroundTruth(sample: "E-keepalive-stall")
        #expect(rewritten == truth.connections.filter { $0.target.hasSuffix(":4420") }.reduce(0) { $0 + $1.packets })
    }

    /// (a) Connections on an unknown port, picked up mid-stream, without `--port`: every PDU the
    /// reference framer finds in the cut is decoded at its stream offset when the connection
    /// holds a run of 4 headers, none otherwise; Keep Alives among them; host and target the
    /// right way round. The framer never meets an invalid header: decoding starts on a real one.
    @Test(arguments: MidStreamDetectionTests.cuts)
    func midStreamConnectionsOnAnotherPort(cut: PortCut) throws {
        let capture = cut.capture()
        let result = analyzeVariant(capture)
        let decoded = try expectMidStreamDecode(result, cut, capture: capture, snaplen: nil)
        #expect(decoded > 0, "nothing to find in \(cut.testDescription)")
        #expect(!result.diagnostics.contains { $0.message.contains("invalid PDU header") }, "\(result.diagnostics)")
    }

    /// (b) The same cuts taken with `tcpdump -s 128`: each segment keeps its first 62 payload
    /// bytes. Headers cut short count towards a run, and are decoded as far as they were captured
    /// (a CapsuleCmd's 62 of 72 header bytes hold its opcode, CID and NSID).
    @Test(arguments: MidStreamDetectionTests.cuts)
    func midStreamConnectionsOnAnotherPortHeadersOnly(cut: PortCut) throws {
        let capture = cut.capture()
        let result = analyzeVariant(capture, snaplen: 128)
        let decoded = try expectMidStreamDecode(result, cut, capture: capture, snaplen: 128)
        #expect(decoded > 0, "nothing to find in \(cut.testDescription)")
    }

    // MARK: proofs

    /// How the proving connection Y shows its ICReq.
    enum Proof: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// Handshake, then the ICReq: the ICReq probe takes it and the framer frames it.
        case handshake
        /// The handshake is not in the capture, the ICReq is its first byte: the mid-stream
        /// detector decides on it, the framer frames it.
        case icReqFirstSeen
        /// Handshake, and a snap length (128) that cuts the ICReq: never framed whole, so the
        /// probe's acceptance is the proof.
        case handshakeHeadersOnly
        var testDescription: String { rawValue }
    }

    /// (c) On a port nvmetrace does not know, an ICReq proves its target for every connection to
    /// it. X is picked up mid-stream with two Keep Alive exchanges (too few for a run of 4); W is
    /// picked up mid-stream with more than the scan budget of bytes with no PDU in them, so it is
    /// given up and ignored; then Y's ICReq. Afterwards X and W carry on with Keep Alives, and Z,
    /// picked up mid-stream with one exchange, starts. All of X is decoded (what it held while
    /// undecided, then everything after), W from its first segment after the proof (its earlier
    /// bytes were never kept, so its offsets start again at 0), Z at once. Port 50000 is above
    /// the host's ports: the guess made the host the server, and the proof turns it round.
    @Test(arguments: [6000, 50000] as [UInt16], Proof.allCases)
    func anICReqProvesItsTargetForEveryConnection(port: UInt16, proof: Proof) throws {
        let s = SynthCapture()
        let x = s.connection(port: port)
        x.keepAlive(at: s.t(0))
        x.keepAlive(at: s.t(1))
        let w = s.connection(port: port)
        let junk = [UInt8](repeating: 0, count: Int(PDURunScanner.scanBudget) + 64 * 1024)
        w.tcp.send(fromClient: true, junk, at: s.t(0.2))
        w.tcp.send(fromClient: false, junk, at: s.t(0.6))
        let y = s.connection(port: port)
        if proof == .icReqFirstSeen {
            y.tcp.send(fromClient: true, PDUBuilder.icReq(), at: s.t(2))
            y.tcp.send(fromClient: false, PDUBuilder.icResp(), at: s.t(2.001))
            y.tcp.send(fromClient: true, PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 10_000),
                                                               data: PDUBuilder.connectData(subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)),
                       at: s.t(2.002))
            y.tcp.send(fromClient: false, PDUBuilder.capsuleResp(cid: 1, dw0: 1), at: s.t(2.003))
        } else {
            y.connect(at: s.t(2), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        }
        for k in 0..<3 { x.keepAlive(at: s.t(3 + Double(k))) }
        for k in 0..<2 { w.keepAlive(at: s.t(3.5 + Double(k))) }
        let z = s.connection(port: port)
        z.keepAlive(at: s.t(6))
        let written = s.write()
        defer { try? FileManager.default.removeItem(atPath: written) }
        var path = written
        if proof == .handshakeHeadersOnly { path = writeTemporaryCapture(try loadCapture(written), snaplen: 128) }
        defer { if proof == .handshakeHeadersOnly { try? FileManager.default.removeItem(atPath: path) } }
        let r = analyze(path)
        #expect(r.error == nil)

        let target = "10.0.0.1:\(port)"
        func records(_ c: NVMeScript) -> [OwnedPDURecord] {
            r.records.filter { $0.src.port == c.tcp.clientPort || $0.dst.port == c.tcp.clientPort }
        }
        func types(_ recs: [OwnedPDURecord]) -> [String: Int] { recs.reduce(into: [:]) { $0[$1.pdu.type.name, default: 0] += 1 } }
        // Y: everything; when the snap length cut its ICReq and ICResp (54 bytes of headers, 74 of
        // payload kept), they are framed from the headers' first 74 bytes.
        let yr = records(y)
        #expect(types(yr) == ["ICReq": 1, "ICResp": 1, "CapsuleCmd": 1, "CapsuleResp": 1])
        if proof == .handshakeHeadersOnly { #expect(yr.filter { $0.pdu.type == .icReq }.allSatisfy { $0.pdu.header.count == 74 }) }
        let proofFrame = try #require(yr.first).pdu.ref.frame

        let xr = records(x)
        #expect(types(xr) == ["CapsuleCmd": 5, "CapsuleResp": 5])
        #expect(xr.filter(isKeepAlive).count == 5)
        #expect(xr.filter { $0.pdu.ref.frame > proofFrame }.count == 6, "the three exchanges after the proof")
        // Offsets as in the capture: the fifth command starts after four 72-byte ones.
        #expect(xr.filter { $0.pdu.type == .capsuleCmd }.map(\.pdu.streamOffset) == [0, 72, 144, 216, 288])

        let wr = records(w)
        #expect(types(wr) == ["CapsuleCmd": 2, "CapsuleResp": 2])
        #expect(wr.allSatisfy { $0.pdu.ref.frame > proofFrame })
        #expect(wr.filter { $0.pdu.type == .capsuleCmd }.map(\.pdu.streamOffset) == [0, 72])
        #expect(r.diagnostics.contains { $0.connection == wr.first?.connection && $0.message.hasPrefix("decoded as NVMe/TCP from here on") })

        let zr = records(z)
        #expect(types(zr) == ["CapsuleCmd": 1, "CapsuleResp": 1])
        #expect(zr.filter(isKeepAlive).count == 1)

        // Host and target the right way round in every connection and every PDU.
        for c in [x, w, y, z] {
            let host = "10.0.0.2:\(c.tcp.clientPort)"
            let recs = records(c)
            #expect(!recs.isEmpty)
            #expect(recs.allSatisfy { ($0.pdu.type.fromHost ? $0.src : $0.dst).description == host })
            let flow = try #require(r.flows.first { $0.id == recs.first?.connection })
            #expect(flow.client.description == host && flow.server.description == target, "\(flow.client) → \(flow.server)")
        }
        // Nothing about sending PDUs the wrong way, or about headers that made no sense.
        #expect(!r.diagnostics.contains { $0.message.contains("does not send this type") || $0.message.contains("invalid PDU header") },
                "\(r.diagnostics)")
    }

    /// Without the proof, the same X and W are not decoded at all (the test above is not passing
    /// by detection alone).
    @Test func withoutAProofTooLittleTrafficIsNotDecoded() {
        let s = SynthCapture()
        let x = s.connection(port: 6000)
        for k in 0..<3 { x.keepAlive(at: s.t(Double(k))) }
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.records.isEmpty)
        #expect(r.diagnostics.isEmpty)
        // One exchange more makes a run of 4 in each direction.
        x.keepAlive(at: s.t(4))
        let path2 = s.write()
        defer { try? FileManager.default.removeItem(atPath: path2) }
        let r2 = analyze(path2)
        #expect(r2.records.filter(isKeepAlive).count == 4)
        #expect(r2.records.count == 8)
    }

    /// A run verified by header digests decides after two headers: two Keep Alive exchanges
    /// with HDGST are enough where four are needed without (see above).
    @Test func headerDigestsShortenTheRun() {
        let s = SynthCapture()
        let x = s.connection(port: 6000)
        x.hdgst = true
        for k in 0..<2 { x.keepAlive(at: s.t(Double(k))) }
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.records.filter(isKeepAlive).count == 2)
        #expect(r.records.allSatisfy { $0.pdu.headerDigest == .ok })
        #expect(r.records.count == 4)
        // With a wrong digest in every header the run never forms.
        let t = SynthCapture()
        let y = t.connection(port: 6000)
        var cmd = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 1), hdgst: true)
        cmd[72] ^= 0xFF
        for k in 0..<6 { y.raw(fromHost: true, cmd, at: t.t(Double(k))) }
        let path2 = t.write()
        defer { try? FileManager.default.removeItem(atPath: path2) }
        #expect(analyze(path2).records.isEmpty)
    }

    // MARK: other traffic

    enum Traffic: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case random, zeros, http, tls
        /// Random bytes with real PDU headers (a CapsuleCmd, a CapsuleResp, a C2HData) copied in
        /// at random places, never where a previous one's PLEN points.
        case strayHeaders
        var testDescription: String { rawValue }

        func bytes(_ count: Int, _ rng: inout SplitMix64, fromClient: Bool) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(count + 20_000)
            func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            switch self {
            case .random:
                out = random(count)
            case .zeros:
                out = [UInt8](repeating: 0, count: count)
            case .http:
                while out.count < count {
                    if fromClient {
                        out += Array("GET /objects/\(rng.next() % 100000) HTTP/1.1\r\nHost: storage.example\r\nAccept: */*\r\n\r\n".utf8)
                    } else {
                        let body = (0..<(Int(rng.next() % 4000) + 100)).map { _ in UInt8(0x20 + rng.next() % 95) }
                        out += Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                    }
                }
            case .tls:
                // Application data records (RFC 8446 §5.1): type 23, legacy version 3.3, length.
                while out.count < count {
                    let n = Int(rng.next() % 16_384) + 1
                    out += [0x17, 0x03, 0x03, UInt8(n >> 8), UInt8(n & 0xFF)] + random(n)
                }
            case .strayHeaders:
                let headers = [
                    Array(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 7, nsid: 1)).prefix(72)),
                    PDUBuilder.capsuleResp(cid: 7),
                    Array(PDUBuilder.c2hData(cid: 7, data: [UInt8](repeating: 1, count: 4096)).prefix(24)),
                ]
                while out.count < count {
                    out += random(Int(rng.next() % 3000) + 200)
                    out += headers[Int(rng.next() % 3)]
                }
            }
            return out
        }
    }

    /// (d) No false positive: mid-stream connections on ports nvmetrace does not know, carrying
    /// other traffic in both directions, are not taken for NVMe/TCP: no PDU, no warning. Past
    /// the scan budget in both directions the flow is ignored; a short one stays undecided.
    @Test(arguments: Traffic.allCases, [1, 2, 3] as [UInt64])
    func otherTrafficPickedUpMidStreamIsNotNVMe(traffic: Traffic, seed: UInt64) throws {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9 &+ UInt64(traffic.rawValue.count))
        let s = SynthCapture()
        let long = s.connection(port: traffic == .http ? 8080 : traffic == .tls ? 8443 : 9000 + UInt16(seed))
        let size = Int(PDURunScanner.scanBudget) + 100_000
        long.tcp.send(fromClient: true, traffic.bytes(size, &rng, fromClient: true), at: s.t(0))
        long.tcp.send(fromClient: false, traffic.bytes(size, &rng, fromClient: false), at: s.t(1))
        let short = s.connection(port: 9500)
        for k in 0..<20 {
            short.tcp.send(fromClient: k % 2 == 0, traffic.bytes(3000, &rng, fromClient: k % 2 == 0), at: s.t(2 + Double(k) / 10))
        }
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.records.isEmpty, "\(r.records.count) PDUs, first \(r.records.first.map { $0.pdu.type.name } ?? "")")
        #expect(r.diagnostics.isEmpty, "\(r.diagnostics.prefix(3))")
        #expect(r.flows.count == 2 && r.flows.allSatisfy { !$0.nvmeTCP })
        // Whether each was given up is the flow's state before the end of the input.
        let analyzer = Analyzer()
        try analyzer.read(path: path)
        let flows = Dictionary(uniqueKeysWithValues: analyzer.flows.flows.values.map { ($0.client.port == long.tcp.clientPort || $0.server.port == long.tcp.clientPort ? "long" : "short", $0) })
        #expect(flows["long"]?.ignored == true)
        #expect(flows["short"]?.ignored == false)
        analyzer.finish()
    }

    // MARK: memory

    /// (e) An undecided stream never holds more than the cap: a stream made to keep the scanner
    /// holding (a plausible CapsuleCmd header every 1000 bytes, each claiming a PLEN of 1500 that
    /// lands on zeros, so runs start all the time and none grows), in big segments, in 7-byte
    /// segments (every piece costs its overhead), and headers-only (a gap after each segment's
    /// first bytes). The held cost reaches near the cap (the bound is what stops it), never past.
    @Test(arguments: [1448, 7], [nil, 70] as [Int?])
    func undecidedStreamsHoldAtMostTheCap(mss: Int, snaplen: Int?) throws {
        var header = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x01, cid: 3, nsid: 1), data: [UInt8](repeating: 0, count: 1500 - 72))
        header = Array(header.prefix(72))
        var block = header + [UInt8](repeating: 0, count: 1000 - 72)
        block[1] = 0
        var stream: [UInt8] = []
        while stream.count < Int(PDURunScanner.scanBudget) / 4 { stream += block }
        let s = SynthCapture()
        let c = s.connection(port: 9000, mss: mss)
        c.tcp.send(fromClient: true, stream, at: s.t(0))
        c.tcp.send(fromClient: false, stream, at: s.t(1))
        let written = s.write()
        defer { try? FileManager.default.removeItem(atPath: written) }
        var path = written
        if let snaplen {
            path = writeTemporaryCapture(try loadCapture(written), snaplen: snaplen)
        }
        defer { if snaplen != nil { try? FileManager.default.removeItem(atPath: path) } }
        let analyzer = Analyzer()
        var records = 0
        let collector = Collector()
        collector.onLentPDU = { _ in records += 1 }
        analyzer.consumer = collector
        try analyzer.read(path: path)
        analyzer.finish()
        let cap = PDURunScanner.heldByteCap
        #expect(records == 0)
        #expect(analyzer.midStreamHeldHighWater <= cap)
        #expect(analyzer.midStreamHeldHighWater > cap - 2048, "\(analyzer.midStreamHeldHighWater)")
    }

    /// The word-at-a-time prefilter marks exactly the lanes a byte-by-byte look would: type byte
    /// below 10 and HLEN byte (two further on) 24, 72 or 128.
    @Test func prefilterMarksExactlyTheCandidateOffsets() {
        var rng = SplitMix64(seed: 7)
        let interesting: [UInt8] = [0, 1, 4, 5, 7, 8, 9, 10, 23, 24, 25, 71, 72, 73, 127, 128, 129, 255]
        for round in 0..<20_000 {
            var bytes = (0..<10).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round % 2 == 0 { bytes = bytes.map { _ in interesting[Int(rng.next() % UInt64(interesting.count))] } }
            func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
            let got = PDURunScanner.typeAndHLENCandidates(word(0), word(2))
            var expected: UInt64 = 0
            for k in 0..<8 where bytes[k] < 10 && [24, 72, 128].contains(bytes[k + 2]) { expected |= 0x80 << (8 * k) }
            if got != expected {
                Issue.record("\(bytes): \(String(got, radix: 16)) instead of \(String(expected, radix: 16))")
                return
            }
        }
    }

    // MARK: hostile input

    /// Streams made to stress the detector: real and fake PDU headers with any PLEN, zeros and
    /// random bytes, cut into segments of any size, some lost (gaps), some connections with a
    /// handshake and an ICReq so that proofs cover the others at any moment, and a snap length
    /// on half the seeds. Nothing may trap (overflow and bounds are checked in this build), and
    /// no scanner may hold more than the cap.
    @Test(arguments: Array(1...12) as [UInt64])
    func hostileStreamsNeverTrap(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        func next(_ n: UInt64) -> Int { Int(rng.next() % n) }
        let s = SynthCapture()
        var conns: [NVMeScript] = []
        for _ in 0..<6 {
            conns.append(s.connection(port: [6000, 50000, 9000][next(3)], mss: [7, 100, 1448, 9000][next(4)]))
        }
        var t = 0.0
        for step in 0..<120 {
            let c = conns[next(UInt64(conns.count))]
            t += 0.01
            switch next(10) {
            case 0:
                c.connect(at: s.t(t), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
            case 1, 2:
                c.keepAlive(at: s.t(t))
            case 3:
                c.read(at: s.t(t), bytes: 512 * (1 + next(64)), chunk: 4096)
            default:
                var bytes: [UInt8] = []
                for _ in 0..<(1 + next(8)) {
                    switch next(6) {
                    case 0: bytes += [UInt8](repeating: 0, count: next(3000))
                    case 1: bytes += (0..<next(3000)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    default:
                        // A header of any type, flags and PLEN, its fields otherwise plausible.
                        var h = [UInt8](repeating: 0, count: 132)
                        let type = UInt8([0, 1, 2, 3, 4, 5, 6, 7, 9][next(9)])
                        h[0] = type
                        h[1] = UInt8(next(16))
                        h[2] = UInt8(PDUType(rawValue: type)!.headerLength)
                        h[3] = UInt8([0, 24, 72, 28, 255][next(5)])
                        let plen = UInt32(truncatingIfNeeded: [24, 28, 72, 76, 128, 4120, 1 << 20, 64 << 20, Int(rng.next() % (1 << 32))][next(9)])
                        for k in 0..<4 { h[4 + k] = UInt8(truncatingIfNeeded: plen >> (8 * k)) }
                        h[9] = 0x40
                        h[8] = UInt8(next(4))
                        for k in 0..<4 { h[16 + k] = UInt8(truncatingIfNeeded: (plen &- 24) >> (8 * k)) }
                        bytes += h.prefix(next(2) == 0 ? Int(h[2]) : next(132))
                    }
                }
                c.tcp.send(fromClient: next(2) == 0, bytes, at: s.t(t), drop: next(4) == 0 ? [next(4)] : [])
            }
            if step % 40 == 39 { t += 1 }
        }
        let written = s.write()
        defer { try? FileManager.default.removeItem(atPath: written) }
        var path = written
        if seed % 2 == 0 { path = writeTemporaryCapture(try loadCapture(written), snaplen: 60 + next(120)) }
        defer { if seed % 2 == 0 { try? FileManager.default.removeItem(atPath: path) } }
        let analysis = CaptureAnalysis()
        analysis.read(paths: [path])
        _ = analysis.report()
        #expect(analysis.analyzer.midStreamHeldHighWater <= PDURunScanner.heldByteCap)
        #expect(analysis.readErrors.isEmpty)
    }
}
