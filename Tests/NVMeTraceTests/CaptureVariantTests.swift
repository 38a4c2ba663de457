import Foundation
import Testing
@testable import NVMeTrace

// The real samples, rewritten in test code as other capture formats, link types, IPv6 and
// network conditions (CaptureTransforms.swift), must still decode to the ground truth recorded by
// tshark. Where a transform loses bytes (loss, snap length), the expected PDUs are the ground
// truth minus those whose header bytes are no longer in the capture, computed by the test's own
// reference framer, which is itself checked against the ground truth first.

private let variantSamples = ["A-persistent-discovery-kato0", "D2-io-traffic-digests", "E-keepalive-stall"]

private func verifyingOptions() -> AnalyzerOptions {
    var o = AnalyzerOptions()
    o.verifyDataDigests = true
    return o
}

/// Compares one run against the sample's ground truth: per connection PDU type counts, Keep Alive
/// counts, Connect facts, digest results (the run must verify data digests), endpoints; no
/// warnings, no read error. `frames` maps a ground-truth frame number to the variant's (nil: the
/// variant renumbers frames in ways that cannot be mapped, so Connect frames are not compared).
private func expectMatchesGroundTruth(
    _ result: AnalysisResult, _ truth: GroundTruth, variant: String,
    frames: ((Int) -> Int?)?, endpoint: (String) -> String = { $0 },
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(result.error == nil, "\(variant): read error", sourceLocation: sourceLocation)
    #expect(result.diagnostics.isEmpty, "\(variant): unexpected warnings: \(result.diagnostics.prefix(5))",
            sourceLocation: sourceLocation)
    let types = result.pduTypesByConnection
    let kas = result.keepAlivesByConnection
    let connects = result.connectsByConnection
    let flows = Dictionary(result.flows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    for c in truth.connections {
        let what = "\(variant) stream \(c.stream)"
        #expect(types[c.stream] ?? [:] == c.pduTypes, "\(what) PDU types", sourceLocation: sourceLocation)
        #expect(kas[c.stream] ?? 0 == c.keepAlives, "\(what) keep-alives", sourceLocation: sourceLocation)
        var expected = c.connects
        var got = connects[c.stream] ?? []
        if let frames {
            for i in expected.indices { expected[i].frame = frames(expected[i].frame) ?? -1 }
        } else {
            for i in expected.indices { expected[i].frame = 0 }
            for i in got.indices { got[i].frame = 0 }
        }
        #expect(got == expected, "\(what) connects", sourceLocation: sourceLocation)
        let recs = result.records.filter { $0.connection == c.stream }
        #expect(recs.filter { $0.pdu.headerDigest == .ok }.count == c.hdgstOK, "\(what) header digests",
                sourceLocation: sourceLocation)
        #expect(recs.filter { $0.pdu.dataDigest == .ok }.count == c.ddgstOK, "\(what) data digests",
                sourceLocation: sourceLocation)
        if let flow = flows[c.stream] {
            #expect(flow.client.description == endpoint(c.host), "\(what) host", sourceLocation: sourceLocation)
            #expect(flow.server.description == endpoint(c.target), "\(what) target", sourceLocation: sourceLocation)
        } else {
            Issue.record("\(what): connection missing", sourceLocation: sourceLocation)
        }
    }
    let known = Set(truth.connections.map(\.stream))
    #expect(Set(types.keys).isSubset(of: known), "\(variant): PDUs on unknown connections",
            sourceLocation: sourceLocation)
}

/// The report of a variant against the original sample's (whose findings FindingsGroundTruthTests
/// holds to the ground truth's labels): the same findings in the same order, each with the same
/// rule, severity and connections; where the variant keeps the packets' times and frames (`frames`
/// given), the same title (endpoints mapped) and the same evidence frames.
private func expectSameFindings(
    _ capture: StoredCapture, format: CaptureFormat = .pcap(nanoseconds: false), sample: String, variant: String,
    frames: ((Int) -> Int?)?, endpoint: @escaping (String) -> String = { $0 },
    sourceLocation: SourceLocation = #_sourceLocation
) {
    func report(_ path: String) -> Report {
        let analysis = CaptureAnalysis(options: verifyingOptions())
        analysis.read(paths: [path])
        return analysis.report()
    }
    let original = report(samplePath(sample))
    let path = writeTemporaryCapture(capture, format: format)
    defer { try? FileManager.default.removeItem(atPath: path) }
    var got = report(path)
    // A variant that sends segments again (or late: reordered by more than the RTT) is a lossy
    // connection as TCP shows it: tcp-loss names exactly the connections whose retransmissions
    // tshark counts past its threshold (counts may differ by a few where tshark's fast-retransmit
    // and keep-alive heuristics see a segment otherwise). The rest must be as before.
    // (tshark on the small samples only: D2's variants take it 10 s each.)
    let loss = got.findings.filter { $0.rule == "tcp-loss" }
    if capture.packets.count < 20_000 {
        let t = try! TCPHealthTests.tshark(path)
        #expect(Set(loss.compactMap(\.connection)) == TCPHealthTests.lossy(t), "\(variant): tcp-loss \(loss.map(\.title)), tshark \(t.mapValues(\.retransmissions))",
                sourceLocation: sourceLocation)
    }
    got.findings.removeAll { $0.rule == "tcp-loss" }
    #expect(got.findings.count == original.findings.count,
            "\(variant): \(got.findings.map(\.title)) instead of \(original.findings.map(\.title))", sourceLocation: sourceLocation)
    #expect(!original.findings.isEmpty || sample != "E-keepalive-stall", sourceLocation: sourceLocation)
    for (g, o) in zip(got.findings, original.findings) {
        #expect(g.rule == o.rule && g.severity == o.severity && g.connection == o.connection && g.connections == o.connections,
                "\(variant): \(g.rule) on \(g.connections) instead of \(o.rule) on \(o.connections)", sourceLocation: sourceLocation)
        guard let frames else { continue }
        #expect(g.title == mapEndpoints(o.title, endpoint), "\(variant): \(g.title)", sourceLocation: sourceLocation)
        #expect(g.frames.map(\.frame) == o.frames.map { frames($0.frame) ?? -1 }, "\(variant) \(g.rule) frames", sourceLocation: sourceLocation)
    }
    #expect(got.unjudged.map { "\($0.rule) \($0.connection)" } == original.unjudged.map { "\($0.rule) \($0.connection)" },
            "\(variant) not judged", sourceLocation: sourceLocation)
}

/// Rewrites each "a.b.c.d:port" in `text` with `endpoint`.
private func mapEndpoints(_ text: String, _ endpoint: (String) -> String) -> String {
    let regex = try! NSRegularExpression(pattern: #"\d+\.\d+\.\d+\.\d+:\d+"#)
    var out = text
    for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).reversed() {
        let r = Range(m.range, in: text)!
        out.replaceSubrange(r, with: endpoint(String(text[r])))
    }
    return out
}

/// Bytes covered by a set of ranges (overlaps counted once).
private func mergedLength(_ ranges: [Range<Int>]) -> Int {
    var total = 0
    var end = Int.min
    for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) where r.upperBound > end {
        total += r.upperBound - max(r.lowerBound, end)
        end = r.upperBound
    }
    return total
}

/// HLEN by PDU type (NVMe/TCP §3.6.2).
private let referenceHLEN: [UInt8: Int] = [0: 128, 1: 128, 2: 24, 3: 24, 4: 72, 5: 24, 6: 24, 7: 24, 9: 24]

/// Header bytes of its type a framer must see to call a header plausible when hunting for a PDU
/// boundary (`PDUHeaderCheck.plausible` reads up to them): SQE flags for a CapsuleCmd, DATAL for
/// data PDUs and R2T, FES for a TermReq, the ICReq/ICResp fields.
private let plausibleNeeds: [UInt8: Int] = [0: 12, 1: 16, 2: 10, 3: 10, 4: 10, 5: 8, 6: 20, 7: 20, 9: 20]

/// The PDUs of the full capture's stream `full` that a framer finds in the cut capture's stream
/// `cut`, each with the bytes of it the cut stream holds contiguously from its start. The framer
/// keeps its place by PLEN while each PDU's 8-byte common header is captured; having lost it (a
/// common header not captured), it resumes at a PDU whose whole header is captured, or whose
/// captured header prefix runs into a gap and holds the fields the plausibility check reads.
func framedByReference(_ full: ReferenceStream, _ cut: ReferenceStream) -> [(pdu: ReferencePDU, captured: Int)] {
    framedByReference(full.pdus, captured: cut.captured, inStep: true)
}

/// The same over `pdus` of a stream of which `captured` is held; `inStep` false for a stream
/// picked up mid-way (the framer starts by hunting).
func framedByReference(_ pdus: [ReferencePDU], captured: [Range<Int>], inStep start: Bool) -> [(pdu: ReferencePDU, captured: Int)] {
    var out: [(ReferencePDU, Int)] = []
    var inStep = start
    for p in pdus {
        let run = captured.first { $0.contains(p.offset) }.map { $0.upperBound - p.offset } ?? 0
        let framed: Bool
        if inStep {
            framed = run >= 8
        } else {
            framed = run >= p.headerBytes || (run >= 8 && run >= (plausibleNeeds[p.type] ?? Int.max))
        }
        if framed { out.append((p, min(run, p.plen))) }
        inStep = framed
    }
    return out
}

/// The reference connection for a ground-truth connection.
private func reference(_ refs: [ReferenceConnection], _ c: GroundTruth.Connection) throws -> ReferenceConnection {
    try #require(refs.first { $0.host == c.host && $0.target == c.target }, "no reference connection \(c.host)")
}

private func typeCounts(_ pdus: [ReferencePDU]) -> [String: Int] {
    pdus.reduce(into: [:]) { $0[$1.typeName, default: 0] += 1 }
}

/// Stream offsets of the decoded PDUs of one connection, per direction [host→target, target→host].
private func decodedOffsets(_ result: AnalysisResult, connection: Int, host: String) -> [[Int]] {
    var out: [[Int]] = [[], []]
    for r in result.records where r.connection == connection {
        out[r.src.description == host ? 0 : 1].append(Int(r.pdu.streamOffset))
    }
    return out
}

/// Frame number (in `capture`) of the first packet after original frame `after` that acknowledges
/// beyond stream offset `offset` of `stream` (the reverse direction of `key`'s sender).
private func firstAckFrame(in capture: StoredCapture, from key: TCPDirectionKey, after: Int,
                           beyond offset: Int, of stream: ReferenceStream) -> Int? {
    for (i, p) in capture.packets.enumerated() where (p.origin ?? 0) > after {
        if let v = TCPFrameView(p.bytes), v.key == key, v.flags & TCPFlag.ack != 0,
           stream.offset(ofSeq: v.ack) > offset {
            return i + 1
        }
    }
    return nil
}

enum NetworkCondition: String, CaseIterable, Sendable, CustomStringConvertible {
    case reorder          // adjacent data segments of one direction swapped
    case duplicate        // every third data segment retransmitted
    case split            // every data segment cut into 1, 7, 100, 1, 7, 100, ... byte pieces
    case splitThenReorder // split, then adjacent pieces swapped
    case overlapTail      // each segment re-sends the last 13 bytes of the previous one
    case overlapWhole     // each segment re-sends all of the previous one
    case reverseOverlap   // thirds of each segment sent last first, overlapping buffered bytes
    case lossRecovered    // segments lost before the capture point, retransmitted after dup ACKs
    case sequenceWrap     // sequence numbers wrap past 2^32 after 700 bytes of each stream
    case wrapAndReorder   // both: out-of-order segments across the wrap

    var description: String { rawValue }

    /// Sends bytes again that the receiver already had: retransmissions as TCP counts them.
    var retransmits: Bool {
        switch self {
        case .duplicate, .overlapTail, .overlapWhole: true
        case .reorder, .split, .splitThenReorder, .reverseOverlap, .lossRecovered, .sequenceWrap, .wrapAndReorder: false
        }
    }

    func apply(_ c: StoredCapture) -> StoredCapture {
        switch self {
        case .reorder: reorderAdjacentDataSegments(c)
        case .duplicate: duplicateDataSegments(c, every: 3)
        case .split: splitDataSegments(c, pieces: [1, 7, 100], cycle: true)
        case .splitThenReorder: reorderAdjacentDataSegments(splitDataSegments(c, pieces: [1, 7, 100], cycle: false))
        case .overlapTail: overlapRetransmissions(c, overlap: 13)
        case .overlapWhole: overlapRetransmissions(c, overlap: Int.max)
        case .reverseOverlap: reverseOverlappingPieces(c, overlap: 5)
        case .lossRecovered: delayDataSegments(c, every: 2, past: 2)
        case .sequenceWrap: wrappingSequenceNumbers(c)
        case .wrapAndReorder: reverseOverlappingPieces(wrappingSequenceNumbers(c), overlap: 5)
        }
    }
}

@Suite struct CaptureVariantTests {
    // MARK: the test's own reference framer

    /// The reference framer used to compute expectations for lossy variants must itself agree with
    /// the ground truth on the unmodified samples.
    @Test(arguments: variantSamples + ["D-io-traffic"])
    func referenceFramerMatchesGroundTruth(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let refs = referenceConnections(SampleCaptures.named(sample))
        for c in truth.connections {
            let r = try reference(refs, c)
            #expect(typeCounts(r.streams[0].pdus + r.streams[1].pdus) == c.pduTypes, "\(sample) stream \(c.stream)")
            #expect(r.keepAlives == c.keepAlives, "\(sample) stream \(c.stream) keep-alives")
            #expect(r.connect?.qid == c.connects.first?.qid && r.connect?.kato == c.connects.first?.kato)
            for s in r.streams { #expect(s.captured.count == 1, "\(sample) stream \(c.stream) has holes") }
        }
    }

    // MARK: formats

    /// pcap with nanosecond magic, pcapng with microsecond (default) and nanosecond (if_tsresol 9)
    /// timestamps, and plain pcap written by the test's writer. Nanosecond variants shift every
    /// time by 789 ns, which must survive to the decoded PDUs.
    @Test(arguments: variantSamples, [CaptureFormat.pcap(nanoseconds: false), .pcap(nanoseconds: true),
                                      .pcapng(nanoseconds: false), .pcapng(nanoseconds: true)])
    func fileFormat(sample: String, format: CaptureFormat) throws {
        let truth = try GroundTruth(sample: sample)
        var capture = SampleCaptures.named(sample)
        let shift: Int64
        switch format { case .pcap(let ns), .pcapng(let ns): shift = ns ? 789 : 0 }
        for i in capture.packets.indices { capture.packets[i].timeNs += shift }
        let result = analyzeVariant(capture, format: format, options: verifyingOptions())
        expectMatchesGroundTruth(result, truth, variant: "\(sample) \(format)", frames: { $0 })
        expectSameFindings(capture, format: format, sample: sample, variant: "\(sample) \(format)", frames: { $0 })
        #expect(truth.packets == capture.packets.count)
        // Every PDU carries the time of the frame that completed it, at full precision.
        let original = SampleCaptures.named(sample)
        let wrongTimes = result.records.filter {
            $0.pdu.ref.timeNs != original.packets[$0.pdu.ref.frame - 1].timeNs + shift
        }
        #expect(wrongTimes.isEmpty, "\(format): \(wrongTimes.count) PDUs with the wrong timestamp")
        #expect(!result.records.isEmpty)
    }

    // MARK: link types

    @Test(arguments: variantSamples, Encapsulation.allCases)
    func linkType(sample: String, encapsulation: Encapsulation) throws {
        let truth = try GroundTruth(sample: sample)
        let capture = reencapsulate(SampleCaptures.named(sample), as: encapsulation)
        let result = analyzeVariant(capture, format: .pcapng(nanoseconds: false), options: verifyingOptions())
        expectMatchesGroundTruth(result, truth, variant: "\(sample) \(encapsulation)",
                                 frames: { capture.frame(forOrigin: $0) })
        expectSameFindings(capture, format: .pcapng(nanoseconds: false), sample: sample, variant: "\(sample) \(encapsulation)",
                           frames: { capture.frame(forOrigin: $0) })
        if !encapsulation.carriesNonIP {
            #expect(capture.packets.count < truth.packets, "ARP should have been dropped")
        }
    }

    // MARK: IPv6

    /// IPv6, and IPv6 with a Hop-by-Hop and a Destination Options header before TCP.
    @Test(arguments: variantSamples, [false, true])
    func ipv6OverEthernet(sample: String, extensionHeaders: Bool) throws {
        let truth = try GroundTruth(sample: sample)
        let capture = toIPv6(SampleCaptures.named(sample), extensionHeaders: extensionHeaders)
        let variant = "\(sample) IPv6\(extensionHeaders ? " with extension headers" : "")"
        if extensionHeaders {
            // The headers are really there: next header 0, then 60, then TCP (6).
            let v6 = capture.packets.filter { $0.bytes.count > 70 && $0.bytes[12] == 0x86 && $0.bytes[13] == 0xDD }
            #expect(!v6.isEmpty && v6.allSatisfy { $0.bytes[20] == 0 && $0.bytes[54] == 60 && $0.bytes[62] == 6 })
        }
        let result = analyzeVariant(capture, options: verifyingOptions())
        expectMatchesGroundTruth(result, truth, variant: variant, frames: { $0 }, endpoint: mappedEndpointDescription)
        expectSameFindings(capture, sample: sample, variant: variant, frames: { $0 }, endpoint: mappedEndpointDescription)
    }

    @Test(arguments: ["A-persistent-discovery-kato0", "E-keepalive-stall"],
          [Encapsulation.raw, .nullLittleEndian, .nullBigEndian, .loop, .linuxSLL, .linuxSLL2, .qinq, .ethernetTrailer])
    func ipv6OverOtherLinks(sample: String, encapsulation: Encapsulation) throws {
        let truth = try GroundTruth(sample: sample)
        let capture = reencapsulate(toIPv6(SampleCaptures.named(sample)), as: encapsulation)
        let result = analyzeVariant(capture, options: verifyingOptions())
        expectMatchesGroundTruth(result, truth, variant: "\(sample) IPv6 \(encapsulation)",
                                 frames: { capture.frame(forOrigin: $0) }, endpoint: mappedEndpointDescription)
        expectSameFindings(capture, sample: sample, variant: "\(sample) IPv6 \(encapsulation)",
                           frames: { capture.frame(forOrigin: $0) }, endpoint: mappedEndpointDescription)
    }

    // MARK: network conditions

    @Test(arguments: variantSamples, NetworkCondition.allCases)
    func networkCondition(sample: String, condition: NetworkCondition) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let capture = condition.apply(original)
        // The transform must have changed the traffic, or the test proves nothing.
        #expect(capture.packets.count != original.packets.count
                || zip(capture.packets, original.packets).contains { $0.bytes != $1.bytes },
                "\(condition) left \(sample) unchanged")
        let result = analyzeVariant(capture, format: .pcap(nanoseconds: true), options: verifyingOptions())
        expectMatchesGroundTruth(result, truth, variant: "\(sample) \(condition)", frames: nil)
        expectSameFindings(capture, format: .pcap(nanoseconds: true), sample: sample, variant: "\(sample) \(condition)", frames: nil)
        // Conditions that send bytes again must show as loss somewhere (or the check above proves nothing).
        if condition.retransmits && capture.packets.count < 20_000 {
            let path = writeTemporaryCapture(capture, format: .pcap(nanoseconds: true))
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(!TCPHealthTests.lossy(try TCPHealthTests.tshark(path)).isEmpty, "\(sample) \(condition): tshark sees no loss")
        }
    }

    /// Invariant (no ground truth needed): splitting segments into tiny pieces changes nothing
    /// about the decoded PDUs but the frames they are attributed to. Compared in full: order,
    /// connection, stream offset, header and kept data bytes, digest results.
    @Test(arguments: ["A-persistent-discovery-kato0", "E-keepalive-stall"])
    func splitSegmentsDecodeIdentically(sample: String) throws {
        struct Key: Equatable {
            var connection: Int, type: String, offset: UInt64, header: [UInt8], data: [UInt8]
            var hd: DigestStatus, dd: DigestStatus, incomplete: Bool
        }
        func keys(_ r: AnalysisResult) -> [Key] {
            r.records.map { Key(connection: $0.connection, type: $0.pdu.type.name, offset: $0.pdu.streamOffset,
                                header: $0.pdu.header, data: $0.pdu.data, hd: $0.pdu.headerDigest,
                                dd: $0.pdu.dataDigest, incomplete: $0.pdu.incomplete) }
        }
        let original = SampleCaptures.named(sample)
        let plain = keys(analyzeVariant(original, options: verifyingOptions()))
        let split = keys(analyzeVariant(splitDataSegments(original, pieces: [1, 7, 100], cycle: true),
                                        options: verifyingOptions()))
        #expect(plain.count == split.count)
        #expect(plain == split)
    }

    // MARK: capture started late

    /// The capture starts at some packet in the middle of the sample: connections are picked up
    /// mid-stream, without their handshake, often inside a PDU. The framer must find the first PDU
    /// boundary by itself and then decode every PDU whose header is in the capture, at the
    /// stream offset the reference framer found it (NVMeTrace counts offsets from the first byte it
    /// saw when the SYN is missing).
    @Test(arguments: variantSamples, [0.004, 0.02, 0.05, 0.11, 0.23, 0.37, 0.5, 0.61, 0.77, 0.9])
    func captureStartsMidStream(sample: String, fraction: Double) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let start = Int(Double(original.packets.count) * fraction)
        let capture = StoredCapture(linkType: original.linkType, packets: Array(original.packets[start...]))
        let kept = Set(capture.packets.compactMap(\.origin))
        let full = referenceConnections(original)
        let result = analyzeVariant(capture)
        #expect(result.error == nil)
        var expectedInAll = 0
        for c in truth.connections {
            let f = try reference(full, c)
            var expected: [[Int]] = [[], []]
            for d in 0..<2 {
                // Stream bytes still in the capture, and where NVMeTrace's offset 0 now lies.
                var ranges: [Range<Int>] = []
                for r in f.streams[d].segments.filter({ kept.contains($0.frame) }).map(\.range)
                    .sorted(by: { $0.lowerBound < $1.lowerBound }) {
                    if let l = ranges.last, r.lowerBound <= l.upperBound {
                        ranges[ranges.count - 1] = l.lowerBound..<max(l.upperBound, r.upperBound)
                    } else {
                        ranges.append(r)
                    }
                }
                let synKept = capture.packets.contains { p in
                    guard let v = TCPFrameView(p.bytes) else { return false }
                    return v.flags & TCPFlag.syn != 0 && v.key == (d == 0 ? f.key : f.key.reversed)
                }
                let base = synKept ? 0 : (f.streams[d].segments.first { kept.contains($0.frame) }?.range.lowerBound ?? 0)
                expected[d] = f.streams[d].pdus
                    .filter { p in ranges.contains { $0.lowerBound <= p.offset && p.offset + p.headerBytes <= $0.upperBound } }
                    .map { $0.offset - base }
            }
            // Connections are numbered by first appearance, which has changed: find this one by its
            // endpoints (the roles come from the NVMe/TCP port when the SYN is missing).
            var got: [[Int]] = [[], []]
            for r in result.records {
                let (src, dst) = (r.src.description, r.dst.description)
                if src == c.host && dst == c.target { got[0].append(Int(r.pdu.streamOffset)) }
                if src == c.target && dst == c.host { got[1].append(Int(r.pdu.streamOffset)) }
            }
            #expect(got == expected, "\(sample) from packet \(start + 1): stream \(c.stream)")
            expectedInAll += expected[0].count + expected[1].count
        }
        // Not vacuous: the cut leaves PDUs to find.
        #expect(expectedInAll > 0, "\(sample) from packet \(start + 1): no PDU left after the cut")
    }

    // MARK: loss

    /// One segment lost from the middle of a large C2HData payload of the I/O connection: framing
    /// continues by length, so every PDU is still decoded; one warning names the gap, at the frame
    /// of the host's first acknowledgement beyond the lost bytes (where the capture proves them lost).
    @Test func lossInsideDataPayload() throws {
        let sample = "D-io-traffic"
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.d
        let io = try #require(truth.connections.first { $0.connects.first?.qid == 1 })
        let ref = try reference(referenceConnections(original), io)
        let c2h = ref.streams[1]
        let candidates = c2h.segments.filter { seg in
            c2h.pdus.contains { p in
                p.type == 7 && seg.range.lowerBound >= p.offset + p.dataStart
                    && seg.range.upperBound <= p.offset + p.dataStart + p.dataLength
            }
        }
        #expect(candidates.count > 100)
        let victim = candidates[candidates.count / 2]
        let lossy = dropping(original, origins: [victim.frame])
        #expect(lossy.packets.count == original.packets.count - 1)

        let result = analyzeVariant(lossy)
        #expect(result.error == nil)
        let ackFrame = try #require(firstAckFrame(in: lossy, from: ref.key, after: victim.frame,
                                                  beyond: victim.range.lowerBound, of: c2h))
        let message = "controller→host stream offset \(victim.range.lowerBound): \(victim.range.count) bytes "
            + "missing from the capture (inside a PDU; framing continues)"
        #expect(result.diagnostics.map(\.message) == [message])
        // The loss is declared a few packets after the first ACK past the lost bytes: an ACK seen
        // before its data can be reordering in the capture, so the hole gets a short grace.
        let frame = try #require(result.diagnostics.first?.frame)
        #expect(frame >= ackFrame && frame <= ackFrame + 2 * StreamReassembler.ackedHoleGrace, "ack \(ackFrame), warned at \(frame)")
        #expect(result.diagnostics.first?.connection == io.stream)

        // Nothing else is lost: every count and Connect is as in the ground truth.
        let types = result.pduTypesByConnection
        for c in truth.connections {
            #expect(types[c.stream] ?? [:] == c.pduTypes, "stream \(c.stream)")
            #expect(result.keepAlivesByConnection[c.stream] ?? 0 == c.keepAlives)
            var expected = c.connects
            for i in expected.indices { expected[i].frame = lossy.frame(forOrigin: expected[i].frame) ?? -1 }
            #expect(result.connectsByConnection[c.stream] ?? [] == expected)
        }
        // Exactly one PDU is incomplete: the one the lost bytes belonged to.
        let incomplete = result.records.filter(\.pdu.incomplete)
        #expect(incomplete.count == 1)
        #expect(incomplete.first.map { Int($0.pdu.streamOffset) }
                == c2h.pdus.last { $0.offset <= victim.range.lowerBound }?.offset)
    }

    enum HeaderLoss: String, CaseIterable, Sendable, CustomStringConvertible {
        /// The segment that starts a large C2HData: its header is lost and the framer has to scan
        /// through the rest of that PDU's data for the next header.
        case headerOfLargePDU
        /// A segment that starts inside one PDU and holds the whole header of the next: the gap
        /// ends the first PDU (incomplete) and loses the second.
        case tailAndNextHeader
        var description: String { rawValue }
    }

    /// One segment lost that holds a PDU header, in the I/O connection of D-io-traffic. The framer
    /// must resynchronise: every PDU whose header bytes are still in the capture is decoded, at
    /// the stream offset the test's reference framer found it, and only those whose header was
    /// lost are missing from the ground-truth counts.
    @Test(arguments: HeaderLoss.allCases)
    func lossOfSegmentHoldingAHeader(kind: HeaderLoss) throws {
        let sample = "D-io-traffic"
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.d
        let io = try #require(truth.connections.first { $0.connects.first?.qid == 1 })
        let ref = try reference(referenceConnections(original), io)
        let c2h = ref.streams[1]
        let candidates = c2h.segments.filter { seg in
            let r = seg.range
            switch kind {
            case .headerOfLargePDU:
                return c2h.pdus.contains { $0.type == 7 && $0.offset == r.lowerBound && $0.offset + $0.plen > r.upperBound + 65536 }
            case .tailAndNextHeader:
                return c2h.pdus.contains { $0.offset > r.lowerBound && $0.offset + $0.headerBytes <= r.upperBound }
                    && !c2h.pdus.contains { $0.offset == r.lowerBound }
            }
        }
        let victim = try #require(candidates.isEmpty ? nil : candidates[candidates.count / 2])
        let lost = c2h.pdus.filter { $0.headerRange.overlaps(victim.range) }
        #expect(lost.count == 1)
        let lossy = dropping(original, origins: [victim.frame])
        let result = analyzeVariant(lossy)
        #expect(result.error == nil)

        let ackFrame = try #require(firstAckFrame(in: lossy, from: ref.key, after: victim.frame,
                                                  beyond: victim.range.lowerBound, of: c2h))
        let gap = "controller→host stream offset \(victim.range.lowerBound): \(victim.range.count) bytes missing from the capture"
        #expect(result.diagnostics.contains {
            $0.message == gap && $0.frame >= ackFrame && $0.frame <= ackFrame + 2 * StreamReassembler.ackedHoleGrace
                && $0.connection == io.stream
        }, "\(result.diagnostics)")
        let next = try #require(c2h.pdus.first { $0.offset >= victim.range.upperBound })
        let skipped = next.offset - victim.range.upperBound
        if kind == .headerOfLargePDU { #expect(skipped > 65536) }
        let resumed = "controller→host PDU framing resumed at stream offset \(next.offset) after skipping \(skipped) bytes"
        #expect(result.diagnostics.contains { $0.message == resumed } == (skipped > 0), "\(result.diagnostics)")

        // Counts: the ground truth minus the PDUs whose header was lost.
        var expectedTypes = io.pduTypes
        for p in lost { expectedTypes[p.typeName]! -= 1 }
        #expect(result.pduTypesByConnection[io.stream] ?? [:] == expectedTypes)
        for c in truth.connections where c.stream != io.stream {
            #expect(result.pduTypesByConnection[c.stream] ?? [:] == c.pduTypes)
            #expect(result.keepAlivesByConnection[c.stream] ?? 0 == c.keepAlives)
        }
        // And exactly those PDUs, where the reference framer found them.
        let offsets = decodedOffsets(result, connection: io.stream, host: io.host)
        let lostOffsets = Set(lost.map(\.offset))
        #expect(offsets[0] == ref.streams[0].pdus.map(\.offset))
        #expect(offsets[1] == c2h.pdus.map(\.offset).filter { !lostOffsets.contains($0) })
        // The PDU the gap cut short is the only incomplete one.
        let cutShort = c2h.pdus.filter { $0.offset < victim.range.lowerBound && $0.offset + $0.plen > victim.range.lowerBound }
        #expect(result.records.filter(\.pdu.incomplete).map { Int($0.pdu.streamOffset) } == cutShort.map(\.offset))
    }

    /// Heavy loss: every `every`-th data segment of the sample is missing. After each hole the
    /// framer either continues by length (hole inside a PDU) or hunts for the next header; every
    /// PDU whose header bytes remain must be decoded at its exact offset, and none invented.
    @Test(arguments: variantSamples, [3, 7])
    func lossOfManySegments(sample: String, every: Int) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        var victims = Set<Int>()
        var n = 0
        for p in original.packets {
            if let v = TCPFrameView(p.bytes), v.isData {
                n += 1
                if n % every == 0 { victims.insert(p.origin!) }
            }
        }
        let lossy = dropping(original, origins: victims)
        let result = analyzeVariant(lossy, options: verifyingOptions())
        let anyLost = try expectHeadersCapturedAreDecoded(result, truth, full: referenceConnections(original),
                                                          cut: referenceConnections(lossy),
                                                          variant: "\(sample) without every \(every)th data segment")
        #expect(anyLost)
        #expect(result.diagnostics.contains { $0.message.contains("bytes missing from the capture") })
        // Loss may cost a finding its evidence, never silently: each finding of the whole capture
        // is found again on its connection or that rule lists the connection as not judged; and
        // loss invents no finding.
        func report(_ path: String) -> Report {
            let analysis = CaptureAnalysis(options: verifyingOptions())
            analysis.read(paths: [path])
            return analysis.report()
        }
        let whole = report(samplePath(sample))
        let path = writeTemporaryCapture(lossy)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cut = report(path)
        for f in whole.findings {
            let again = cut.findings.contains { $0.rule == f.rule && $0.connection == f.connection }
            let unjudged = cut.unjudged.contains { $0.rule == f.rule && $0.connection == f.connection }
            #expect(again || unjudged, "\(sample) every \(every): \(f.rule) on connection \(f.connection ?? -1) neither found nor listed as not judged; found \(cut.findings.map(\.title)); not judged \(cut.unjudged.map { "\($0.rule) \($0.connection): \($0.reason)" })")
        }
        let wholeKeys = Set(whole.findings.map { "\($0.rule) \($0.connection ?? -1)" })
        #expect(cut.findings.allSatisfy { wholeKeys.contains("\($0.rule) \($0.connection ?? -1)") },
                "\(sample) every \(every): \(cut.findings.map(\.title))")
        // A PDU that lost bytes has digests that cannot be checked, not wrong ones: no mismatch.
        #expect(!result.records.contains { r in
            if case .mismatch = r.pdu.dataDigest { return true }
            if case .mismatch = r.pdu.headerDigest { return true }
            return false
        })
    }

    /// Loss at odd places: the segments are first split into 1, 7, 100, ... byte pieces, then every
    /// 11th piece is lost, so holes start and end at any byte of a PDU header or body and the
    /// framer has to find headers at every alignment.
    @Test(arguments: ["A-persistent-discovery-kato0", "E-keepalive-stall"])
    func lossOfSmallPieces(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let split = splitDataSegments(original, pieces: [1, 7, 100], cycle: true)
        var keep: [StoredPacket] = []
        var n = 0
        for p in split.packets {
            if let v = TCPFrameView(p.bytes), v.isData {
                n += 1
                if n % 11 == 0 { continue }
            }
            keep.append(p)
        }
        let lossy = StoredCapture(linkType: split.linkType, packets: keep)
        let result = analyzeVariant(lossy, options: verifyingOptions())
        let anyLost = try expectHeadersCapturedAreDecoded(result, truth, full: referenceConnections(original),
                                                          cut: referenceConnections(lossy),
                                                          variant: "\(sample) split, every 11th piece lost")
        #expect(anyLost)
    }

    /// A FIN that is missing from the capture (lost before the capture point, or not captured)
    /// while the peer's ACK of it is captured: no stream byte was lost (a FIN occupies a sequence
    /// number but carries no data), so the decode must be the ground truth's with no warning.
    /// Every FIN of sample A is tried in turn.
    @Test(arguments: [0, 1, 2])
    func uncapturedFINIsNotMissingData(which: Int) throws {
        let sample = "A-persistent-discovery-kato0"
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.a
        let fins = original.packets.filter { p in
            TCPFrameView(p.bytes).map { $0.flags & TCPFlag.fin != 0 && $0.payloadLength == 0 } ?? false
        }
        let fin = try #require(which < fins.count ? fins[which] : nil)
        let capture = dropping(original, origins: [fin.origin!])
        let result = analyzeVariant(capture, options: verifyingOptions())
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        for c in truth.connections {
            #expect(result.pduTypesByConnection[c.stream] ?? [:] == c.pduTypes)
            #expect(result.keepAlivesByConnection[c.stream] ?? 0 == c.keepAlives)
        }
    }

    // MARK: snap length

    /// Checks a run on a capture that lost bytes (cut packets, lost segments): per connection,
    /// exactly the PDUs the test's reference framer (`framedByReference`) finds are decoded, at
    /// their stream offsets, with the Keep Alives among them, the Connect's QID, KATO and SQSIZE as
    /// far as its captured header holds them, and its NQNs when the data bytes up to their NUL were
    /// captured. Returns whether any PDU was lost.
    @discardableResult
    private func expectHeadersCapturedAreDecoded(
        _ result: AnalysisResult, _ truth: GroundTruth, full: [ReferenceConnection], cut: [ReferenceConnection],
        variant: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Bool {
        #expect(result.error == nil, sourceLocation: sourceLocation)
        var anyLost = false
        for c in truth.connections {
            let f = try reference(full, c)
            let k = try reference(cut, c)
            let framed = (0..<2).map { d in framedByReference(f.streams[d], k.streams[d]) }
            let expected = framed.map { $0.map(\.pdu) }
            anyLost = anyLost || expected[0].count + expected[1].count < f.streams[0].pdus.count + f.streams[1].pdus.count
            let what = "\(variant) stream \(c.stream)"
            #expect(result.pduTypesByConnection[c.stream] ?? [:] == typeCounts(expected[0] + expected[1]), "\(what)",
                    sourceLocation: sourceLocation)
            #expect(decodedOffsets(result, connection: c.stream, host: c.host) == expected.map { $0.map(\.offset) },
                    "\(what) PDU offsets", sourceLocation: sourceLocation)
            // Header bytes each decoded PDU carries, both ways: what the capture held of it, up to
            // HLEN.
            for (d, fromHost) in [(0, true), (1, false)] {
                let headerCounts = result.records.filter { $0.connection == c.stream && ($0.src.description == c.host) == fromHost }
                    .map(\.pdu.header.count)
                #expect(headerCounts == framed[d].map { min($0.captured, referenceHLEN[$0.pdu.type] ?? 0) },
                        "\(what) header bytes \(fromHost ? "host → target" : "target → host")", sourceLocation: sourceLocation)
            }
            // The Connect's fields are known as far as its captured header holds them (SQE bytes
            // 42-43 QID, 44-45 SQSIZE, 48-51 KATO: header bytes +8).
            // A Connect is known as one from its FCTYPE (SQE byte 4, header byte 12).
            let connect = framed[0].first { $0.pdu.connect != nil && $0.captured >= 13 }
            let kas = connect.map { $0.captured >= 52 } == true && c.connects.first?.qid == 0
                ? framed[0].filter { $0.pdu.type == 4 && $0.pdu.opcode == 0x18 && $0.captured >= 9 }.count : 0
            #expect(result.keepAlivesByConnection[c.stream] ?? 0 == kas, "\(what) keep-alives", sourceLocation: sourceLocation)
            let connects = (result.connectsByConnection[c.stream] ?? []).map { [$0.qid, $0.kato, $0.sqsize] }
            let expectedConnects = connect.map { x in
                c.connects.map { [x.captured >= 52 ? $0.qid : -1, x.captured >= 60 ? $0.kato : -1, x.captured >= 54 ? $0.sqsize : -1] }
            } ?? []
            #expect(connects == expectedConnects, "\(what) connects", sourceLocation: sourceLocation)
            // The NQNs are known when the data bytes up to their NUL were captured, contiguous from
            // the first data byte (which needs the whole header).
            if let connect, let truthConnect = c.connects.first {
                let dataRun = max(0, connect.captured - connect.pdu.dataStart)
                let got = result.connectsByConnection[c.stream]?.first
                let sub = truthConnect.subnqn.map { dataRun >= 256 + $0.utf8.count + 1 } == true
                let host = truthConnect.hostnqn.map { dataRun >= 512 + $0.utf8.count + 1 } == true
                #expect(got?.subnqn == (sub ? truthConnect.subnqn : nil), "\(what) subnqn", sourceLocation: sourceLocation)
                #expect(got?.hostnqn == (host ? truthConnect.hostnqn : nil), "\(what) hostnqn", sourceLocation: sourceLocation)
            }
        }
        return anyLost
    }

    /// Every packet cut to `snaplen` bytes (the pcap header announces it): of each segment only the
    /// first snaplen - 66 payload bytes remain (Ethernet 14 + IPv4 20 + TCP with timestamps 32). A
    /// PDU is decoded, with the header bytes captured, when the framer can find it
    /// (`framedByReference`); the test's reference framer lists those from the full capture and
    /// the cut one.
    @Test(arguments: zip(variantSamples + ["A-persistent-discovery-kato0", "E-keepalive-stall",
                                           "A-persistent-discovery-kato0", "E-keepalive-stall"],
                         [200, 200, 200, 100, 100, 74, 74]))
    func snapLength(sample: String, snaplen: Int) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let cut = referenceConnections(truncated(original, to: snaplen))
        let full = referenceConnections(original)
        let result = analyzeVariant(original, snaplen: snaplen)
        // Bytes the snap length cut are how headers-only captures are taken, not a fault: counted,
        // never a warning (and never a PDU called malformed).
        #expect(result.diagnostics.isEmpty, "\(sample) snaplen \(snaplen): \(result.diagnostics.prefix(5))")
        let anyLost = try expectHeadersCapturedAreDecoded(result, truth, full: full, cut: cut,
                                                          variant: "\(sample) snaplen \(snaplen)")
        let flows = Dictionary(result.flows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for c in truth.connections {
            let what = "\(sample) snaplen \(snaplen) stream \(c.stream)"
            let k = try reference(cut, c)
            if snaplen - 66 >= 128 {
                // ICReq and ICResp (128 bytes each, alone in their segments) are whole.
                #expect(result.pduTypesByConnection[c.stream]?["ICReq"] == 1, "\(what)")
                #expect(result.pduTypesByConnection[c.stream]?["ICResp"] == 1, "\(what)")
            }
            if snaplen - 66 >= 13 {
                // The Connect starts its segment: its header up to FCTYPE is there.
                #expect(result.connectsByConnection[c.stream]?.count == 1, "\(what): the Connect is framed")
            }
            // What the snap length cut, per direction, is counted to the byte: the segments' span
            // less the bytes the capture holds (the reference walk's, over the cut capture).
            let flow = try #require(flows[c.stream], "\(what)")
            for (d, stats) in [(0, flow.clientStream), (1, flow.serverStream)] {
                let stream = k.streams[d]
                let announced = mergedLength(stream.segments.map(\.range))
                let held = mergedLength(stream.captured)
                #expect(stats.notCapturedBytes == UInt64(announced - held), "\(what) direction \(d) bytes not captured")
                #expect(stats.gapBytes == 0, "\(what) direction \(d): nothing was lost")
            }
        }
        // In A and E some headers lie past byte 134 of their segment (a CapsuleResp after the data
        // of a C2HData in the same segment), so the cut capture really lost PDUs there. (D2's
        // target started every PDU in a new segment: at 200 bytes all its headers survive.)
        if sample != "D2-io-traffic-digests" || snaplen < 200 {
            #expect(anyLost, "\(sample): a snap length of \(snaplen) should hide some PDU headers")
        }
    }

    /// Network conditions and a snap length of 100 together (34 payload bytes per packet): cut
    /// segments arrive out of order, split, duplicated, retransmitted after loss; the framer still
    /// decodes exactly the PDUs whose header bytes were captured. (Overlapping retransmissions are
    /// left out: see `overlappingRetransmissionFillsSnapLengthHole`.)
    @Test(arguments: variantSamples,
          [NetworkCondition.reorder, .duplicate, .split, .splitThenReorder, .lossRecovered, .reverseOverlap])
    func networkConditionWithSnapLength(sample: String, condition: NetworkCondition) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let transformed = condition.apply(original)
        let result = analyzeVariant(transformed, format: .pcapng(nanoseconds: true), snaplen: 100)
        try expectHeadersCapturedAreDecoded(result, truth, full: referenceConnections(original),
                                            cut: referenceConnections(truncated(transformed, to: 100)),
                                            variant: "\(sample) \(condition) snaplen 100")
    }

    /// A segment cut by the snap length, then an overlapping retransmission that re-sends the
    /// bytes the cut lost and that the capture holds this time (every data segment starts 13 bytes
    /// early, so a 24-byte response keeps only 21 of its own bytes in 34 captured ones, and the next
    /// segment carries the other 3). The analyzer hands PDUs on in capture order, as their segments
    /// pass (live capture reports findings as they happen): the uncaptured tail of a segment is
    /// given up when the segment is processed, not held open for a retransmission that may never
    /// come, so the re-sent bytes arrive after their place in the stream has passed and are
    /// trimmed as retransmitted. Decoding follows what each byte's first copy held
    /// (`firstCopyCaptured`, the reference's own walk over the cut capture), at exact offsets:
    /// the re-sent bytes are neither spliced in late nor shift what follows.
    @Test(arguments: variantSamples)
    func overlappingRetransmissionAfterSnapLengthCut(sample: String) throws {
        let truth = try GroundTruth(sample: sample)
        let original = SampleCaptures.named(sample)
        let transformed = overlapRetransmissions(original, overlap: 13)
        let cutCapture = truncated(transformed, to: 100)
        let full = referenceConnections(original)
        let allCopies = referenceConnections(cutCapture)
        let firstCopies = try #require(firstCopyCaptured(cutCapture, allCopies), "\(sample): segments out of order")
        // The case arises: some PDU headers are held whole only by the first and the re-sent copy
        // together.
        let differ = zip(allCopies, firstCopies).contains { a, b in
            (0..<2).contains { d in
                framedByReference(full.first { $0.key == a.key }!.streams[d], a.streams[d]).map { [$0.pdu.offset, $0.captured] }
                    != framedByReference(full.first { $0.key == b.key }!.streams[d], b.streams[d]).map { [$0.pdu.offset, $0.captured] }
            }
        }
        #expect(differ, "\(sample): no header is split between a cut segment and its retransmission")
        let result = analyzeVariant(transformed, snaplen: 100)
        try expectHeadersCapturedAreDecoded(result, truth, full: full, cut: firstCopies,
                                            variant: "\(sample) overlapTail snaplen 100")
    }

    /// Snap lengths that cut into the link, IP or TCP headers (SYNs, with 40 bytes of TCP options,
    /// are 74 bytes; other segments have 66 bytes of headers), or leave less than a PDU common
    /// header of payload: packets with cut headers are skipped as malformed (with a warning),
    /// nothing is decoded, nothing traps.
    @Test(arguments: [1, 13, 14, 20, 33, 34, 40, 53, 54, 60, 65, 66, 70, 73])
    func snapLengthInsideHeaders(snaplen: Int) throws {
        let result = analyzeVariant(SampleCaptures.a, snaplen: snaplen)
        #expect(result.error == nil)
        #expect(result.records.isEmpty)
        #expect(result.diagnostics.contains { $0.message.hasPrefix("malformed packet") })
    }

    /// Same for a mix of link types: the header checks of every link decoder hold at every cut.
    @Test(arguments: Encapsulation.allCases)
    func snapLengthInsideHeadersOfOtherLinks(encapsulation: Encapsulation) throws {
        let capture = reencapsulate(toIPv6(SampleCaptures.a), as: encapsulation)
        for snaplen in [1, 2, 3, 4, 5, 15, 16, 17, 19, 20, 21, 23, 24, 25, 44, 45, 59, 60, 61, 62, 79, 80, 81] {
            let result = analyzeVariant(capture, snaplen: snaplen)
            #expect(result.error == nil)
            // At most 9 payload bytes survive these cuts (raw IPv6 has 72 bytes of headers): a PDU
            // can only be framed from its common header, never decoded as if whole.
            #expect(result.records.allSatisfy { $0.pdu.headerIsPartial }, "\(encapsulation) snaplen \(snaplen)")
        }
    }
}
