import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Hostile and broken input never traps: it gives a clear error or a report with warnings.
@Suite struct MalformedInputTests {
    static func capture(_ packets: [[UInt8]], linkType: UInt32 = LinkTypeValue.ethernet) -> StoredCapture {
        StoredCapture(linkType: linkType, packets: packets.enumerated().map {
            StoredPacket(timeNs: 1_700_000_000_000_000_000 + Int64($0.offset) * 1_000_000, wireLength: $0.element.count,
                         bytes: $0.element, origin: nil)
        })
    }

    static let host = PacketBuilder.Host.ip(10, 0, 0, 2)
    static let target = PacketBuilder.Host.ip(10, 0, 0, 1)

    /// A TCP segment to port 4420 carrying `payload`, after a handshake.
    static func nvmeStream(_ payloads: [[UInt8]]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let tcp = TCPConversation(client: host, clientPort: 40000, server: target, serverPort: 4420) { _, b in out.append(b) }
        tcp.handshake(at: 0)
        for p in payloads { tcp.send(fromClient: true, p, at: 0) }
        return out
    }

    @Test func brokenLinkIPAndTCPHeadersAreWarningsNotTraps() {
        var ipv4BadIHL = PacketBuilder.tcp(from: Self.host, 1, to: Self.target, 4420, seq: 1, ack: 0, flags: 0x18, payload: [1, 2, 3])
        ipv4BadIHL[14] = 0x43  // IHL 3 (< 5)
        var totalTooShort = PacketBuilder.tcp(from: Self.host, 1, to: Self.target, 4420, seq: 1, ack: 0, flags: 0x18)
        totalTooShort[16] = 0; totalTooShort[17] = 10  // total length 10 < IHL 20
        var tcpOffsetPastPacket = PacketBuilder.tcp(from: Self.host, 1, to: Self.target, 4420, seq: 1, ack: 0, flags: 0x18)
        tcpOffsetPastPacket[14 + 20 + 12] = 0xF0  // data offset 60 > segment
        let packets: [[UInt8]] = [[], [0x01], Array(repeating: 0xFF, count: 13), ipv4BadIHL, totalTooShort, tcpOffsetPastPacket,
                                  Array(repeating: 0, count: 60)]
        let r = analyzeVariant(Self.capture(packets))
        #expect(r.error == nil)
        #expect(r.records.isEmpty)
        let messages = r.diagnostics.map(\.message)
        #expect(messages.contains { $0.contains("IPv4 header length 12 < 20") })
        #expect(messages.contains { $0.contains("IPv4 total length 10 < header length 20") })
        #expect(messages.contains { $0.contains("TCP data offset 60 beyond the segment") })
        #expect(messages.contains { $0.contains("Ethernet header truncated") })
        // Each names its file and frame.
        #expect(r.diagnostics.allSatisfy { $0.frame >= 1 && $0.frame <= packets.count && !$0.file.isEmpty })
    }

    @Test func unsupportedLinkTypeIsReported() {
        let r = analyzeVariant(Self.capture([[1, 2, 3, 4]], linkType: 147))
        #expect(r.diagnostics.contains { $0.message.contains("unsupported link-layer type 147") })
    }

    @Test func hostilePDUHeadersAreSkippedWithWarnings() {
        let le32: (UInt32) -> [UInt8] = PDUBuilder.le32
        let good = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 1))
        let payloads: [[UInt8]] = [
            PDUBuilder.icReq(),
            [0x04, 0, 72, 0] + le32(8) + Array(repeating: 0, count: 64),            // plen < hlen
            good,
            [0x07, 0, 24, 0] + le32(0xFFFF_FFFF) + Array(repeating: 0, count: 16),   // plen = 0xFFFFFFFF
            good,
            [0x0B, 0, 24, 0] + le32(24) + Array(repeating: 0, count: 16),           // unknown type
            good,
            [0x05, 0, 72, 0] + le32(72) + Array(repeating: 0, count: 64),           // hlen wrong for type
            good,
            [0x04, 0, 72, 250] + le32(100) + Array(repeating: 0, count: 92),        // pdo beyond plen
            good,
        ]
        let r = analyzeVariant(Self.capture(Self.nvmeStream(payloads)))
        #expect(r.error == nil)
        let warnings = r.diagnostics.map(\.message).joined(separator: "\n")
        #expect(warnings.contains("CapsuleCmd with PLEN 8 < 72"))
        #expect(warnings.contains("C2HData with PLEN 4294967295"))
        #expect(warnings.contains("unknown PDU type 0x0b"))
        #expect(warnings.contains("CapsuleResp with HLEN 72"))
        #expect(warnings.contains("PDO 250"))
        // Every valid Keep Alive after a bad header is still found.
        let kas = r.records.filter { if case .command(let c) = $0.body { c.opcode == 0x18 } else { false } }
        #expect(kas.count == 5)
    }

    @Test func shortConnectDataAndNQNWithoutNUL() throws {
        var data = PDUBuilder.connectData(subnqn: "", hostnqn: "")
        for i in 256..<512 { data[i] = 0x41 }  // subnqn fills its field: no NUL
        let full = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 1000), data: data)
        let short = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 2, qid: 0, kato: 1000), data: Array(data[0..<100]))
        let r = analyzeVariant(Self.capture(Self.nvmeStream([PDUBuilder.icReq(), full, short])))
        let connects = r.connectsByConnection[0] ?? []
        #expect(connects.count == 2)
        #expect(connects.first?.subnqn == String(repeating: "A", count: 256))
        #expect(connects.last?.subnqn == nil)
        #expect(r.diagnostics.contains { $0.message.contains("Connect data is 100 bytes") })
    }

    @Test func truncatedAndCorruptFilesGiveClearErrors() throws {
        let sample = try Data(contentsOf: URL(fileURLWithPath: samplePath("D-io-traffic")))
        // Truncated file header, bad magic, truncated record inside a large packet.
        for (bytes, expectOpenError) in [(Array(sample.prefix(10)), true),
                                          ([0xDE, 0xAD, 0xBE, 0xEF] + Array(sample.dropFirst(4).prefix(1000)), true),
                                          (Array(sample.prefix(3_000_000)), false)] {
            let r = analyze(bytes: bytes)
            let error = try #require(r.error)
            switch error {
            case .cannotOpen: #expect(expectOpenError)
            case .readFailed(_, let frame, _):
                #expect(!expectOpenError)
                // The last good frame: the records wholly inside the kept bytes (walked here from
                // the pcap record headers); every PDU the whole file begins by then was decoded
                // (the last one, an H2CData whose data the cut took, as incomplete).
                var offset = 24, whole = 0
                while offset + 16 <= bytes.count {
                    let caplen = Int(bytes[offset + 8]) | Int(bytes[offset + 9]) << 8 | Int(bytes[offset + 10]) << 16 | Int(bytes[offset + 11]) << 24
                    guard offset + 16 + caplen <= bytes.count else { break }
                    offset += 16 + caplen
                    whole += 1
                }
                #expect(frame == whole)
                let complete = analyze(samplePath("D-io-traffic")).records.filter { $0.pdu.firstRef.frame <= frame }.count
                #expect(r.records.count == complete)
            case .liveFailed: Issue.record("unexpected")
            }
        }
    }

    @Test func caplenLargerThanLenAndZeroLengthRecords() {
        var c = SampleCaptures.a
        c.packets[10].wireLength = 10          // caplen > len
        c.packets[11].bytes = []               // zero-length record
        c.packets[11].wireLength = 0
        let r = analyzeVariant(c)
        #expect(r.error == nil)
        #expect(r.records.count > 100)
    }

    /// Random byte flips in real traffic (deterministic seeds): whatever the damage, the pipeline
    /// finishes and every report format renders, never traps, and each report is whole and tells
    /// the same story: the JSON parses and counts the frames written; the text, Markdown and HTML
    /// reports carry its frame, connection and finding counts; the HTML is one whole page whose
    /// SVG parses as XML, with a bar per connection, a teardown mark per connection the target
    /// closed and a finding marker per finding on a connection. The host NQN is made markup
    /// first, and the page must show it as text.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func mutatedCapturesNeverTrap(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var c = seed % 2 == 0 ? SampleCaptures.a : SampleCaptures.e
        // Part of the host NQN in the Connect data (both samples' host) becomes markup, same length.
        let plain = Array("6a7c3b1e-2f4d".utf8)
        let markup = Array("</h3><b>&\"'xx".utf8)
        try #require(markup.count == plain.count)
        var replaced = 0
        for i in c.packets.indices {
            let b = c.packets[i].bytes
            guard let at = (0...max(0, b.count - plain.count)).first(where: { b.count >= plain.count && Array(b[$0..<$0 + plain.count]) == plain }) else { continue }
            c.packets[i].bytes.replaceSubrange(at..<at + plain.count, with: markup)
            replaced += 1
        }
        #expect(replaced >= 2, "the host NQN was not found in the Connects")
        for _ in 0..<200 {
            let i = Int.random(in: 0..<c.packets.count, using: &rng)
            guard !c.packets[i].bytes.isEmpty else { continue }
            let j = Int.random(in: 0..<c.packets[i].bytes.count, using: &rng)
            c.packets[i].bytes[j] = UInt8.random(in: 0...255, using: &rng)
        }
        // Also cut some packets short and duplicate others.
        for _ in 0..<10 {
            let i = Int.random(in: 0..<c.packets.count, using: &rng)
            c.packets[i].bytes = Array(c.packets[i].bytes.prefix(Int.random(in: 0...80, using: &rng)))
            let k = Int.random(in: 0..<c.packets.count, using: &rng)
            c.packets.insert(c.packets[k], at: k)
        }
        let r = analyzeVariant(c)
        #expect(r.error == nil)
        let report: Report = {
            let path = writeTemporaryCapture(c)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let a = CaptureAnalysis()
            a.read(paths: [path])
            return a.report()
        }()
        let frames = c.packets.count

        // JSON: parses; the frame count is the number of packets written.
        let json = JSONReport.render(report)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "JSON report is not an object")
        #expect(root["schema"] as? String == "nvmetrace.report/1")
        #expect((root["capture"] as? [String: Any])?["frames"] as? Int == frames)
        let connections = try #require(root["connections"] as? [[String: Any]])
        let findings = try #require(root["findings"] as? [[String: Any]])
        let bySeverity = Dictionary(grouping: findings, by: { $0["severity"] as? String ?? "?" }).mapValues(\.count)
        #expect(Set(bySeverity.keys).isSubset(of: ["error", "warning", "info"]), "\(bySeverity)")

        // Text: the frame and connection lines, a heading per severity with its count.
        let text = TextReport.render(report, color: false)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count > 3 && lines[1].hasPrefix("\(frames) frames"), "text frame line: \(lines.prefix(2))")
        let plural = connections.count == 1 ? "" : "s"
        #expect(lines.contains { $0.hasPrefix("\(connections.count) NVMe/TCP connection\(plural)") })
        for (severity, heading) in [("error", "ERRORS"), ("warning", "WARNINGS"), ("info", "INFOS")] {
            let n = bySeverity[severity] ?? 0
            #expect(lines.contains("\(heading) (\(n))") == (n > 0), "text: \(heading) (\(n))")
        }
        #expect(lines.contains("No findings.") == findings.isEmpty)

        // Markdown: a heading per finding, the connection count.
        let markdown = MarkdownReport.render(report)
        #expect(markdown.hasPrefix("## nvmetrace report"))
        for (severity, word) in [("error", "Error"), ("warning", "Warning"), ("info", "Info")] {
            let n = markdown.components(separatedBy: "\n#### \(word): `").count - 1
            #expect(n == bySeverity[severity] ?? 0, "markdown \(word) findings")
        }
        #expect(markdown.contains(": \(connections.count) NVMe/TCP connection\(plural),"))

        // HTML: one whole page, its SVG well-formed, drawing what the JSON holds.
        let html = HTMLReport.render(report)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("</body></html>"), "HTML cut short")
        #expect(html.components(separatedBy: "</html>").count == 2)
        #expect(html.contains("<p>nvmetrace \(report.version) · \(frames) frames, \(connections.count) NVMe/TCP connection\(plural) · "))
        #expect(html.components(separatedBy: "<div class=\"finding ").count - 1 == findings.count, "HTML findings")
        let svg = HTMLReportTests.svgCounts(html).reduce(into: [String: Int]()) { acc, c in c.forEach { acc[$0.key, default: 0] += $0.value } }
        let bars = ["admin", "io", "discovery", "unknown"].map { svg["rect." + $0] ?? 0 }.reduce(0, +)
        #expect(bars == connections.count, "HTML bars")
        #expect(svg["path.teardown"] ?? 0 == connections.filter { $0["closedBy"] as? String == "target" }.count, "HTML teardown marks")
        #expect(svg["path.hostclose"] ?? 0 == connections.filter { $0["closedBy"] as? String == "host" }.count, "HTML host-close marks")
        let pinned = ["error", "warning", "info"].map { svg["path.finding-" + $0] ?? 0 }.reduce(0, +)
        #expect(pinned == findings.filter { $0["connection"] is Int }.count, "HTML finding markers")
        // The host NQN, where a chain's title carries it, is text on the page, not markup.
        let hostile = String(decoding: markup, as: UTF8.self)
        let chains = try #require(root["chains"] as? [[String: Any]])
        if chains.contains(where: { ($0["hostnqn"] as? String)?.contains(hostile) == true }) {
            #expect(html.contains("&lt;/h3&gt;&lt;b&gt;&amp;"), "the host NQN's markup is not escaped")
            #expect(!html.contains("</h3><b>"), "the host NQN's markup is on the page as markup")
        }
    }

    @Test func synFloodStaysWithinTheFlowCap() {
        var packets: [[UInt8]] = []
        for i in 0..<5000 {
            packets.append(PacketBuilder.tcp(from: Self.host, UInt16(1024 + i), to: Self.target, 4420, seq: UInt32(i), ack: 0, flags: PacketBuilder.syn))
        }
        var o = AnalyzerOptions()
        o.maxFlows = 1000
        let path = writeTemporaryCapture(Self.capture(packets))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = Analyzer(options: o)
        var peak = 0
        let collector = Collector()
        collector.onPDU = { _ in }
        a.consumer = collector
        let source = try! PcapFileSource(path: path, fileIndex: a.addFile(path))
        try! source.forEach { p in
            a.process(p)
            peak = max(peak, a.flows.flows.count)
        }
        a.finish()
        #expect(peak <= 1000)
        #expect(a.flows.nextIndex == 5000)
    }
}

/// Timestamps far apart or wrapped (pcapng carries 64-bit timestamps; scaled to nanoseconds they
/// wrap) must not trap anywhere — the HTML timeline's arithmetic did before it worked in Double.
@Suite struct ExtremeTimestampTests {
    /// Sample A0's packets in a pcapng whose microsecond timestamps wrap to about -9.2e18 ns for the
    /// first 60 packets and +9.2e18 ns after.
    static func extremeCapture() throws -> String {
        var w = ByteWriter()
        func block(_ type: UInt32, _ body: [UInt8]) { w.pcapngBlock(type, body) }
        w.pcapngSectionHeader()
        var idb = ByteWriter()
        idb.u16(1); idb.u16(0); idb.u32(0)
        block(1, idb.bytes)
        let low: UInt64 = ((1 << 63) + 1_000_000_000_000) / 1000 + 1
        let high: UInt64 = ((1 << 63) - 1_000_000_000_000) / 1000
        for (i, p) in SampleCaptures.named("A0-persistent-discovery-kato0-unfixed-host").packets.enumerated() {
            let ts = (i < 60 ? low : high) + UInt64(i)
            var epb = ByteWriter()
            epb.u32(0); epb.u32(UInt32(ts >> 32)); epb.u32(UInt32(truncatingIfNeeded: ts))
            epb.u32(UInt32(p.bytes.count)); epb.u32(UInt32(p.wireLength)); epb.append(p.bytes)
            block(6, epb.bytes)
        }
        let url = temporaryFile("extreme.pcapng")
        try Data(w.bytes).write(to: url)
        return url.path
    }

    @Test func everyReportRendersWithExtremeTimestamps() throws {
        let path = try Self.extremeCapture()
        defer { try? FileManager.default.removeItem(atPath: path) }
        for format in ["text", "json", "markdown", "html"] {
            let run = try runCLI(["--format", format, "--fail-on", "none", path])
            #expect(run.status == 0, "\(format): \(run.stderr.suffix(500))")
            #expect(!run.stdout.isEmpty)
        }
        let pdus = try runCLI(["pdus", "--format", "json", path])
        #expect(pdus.status == 0)
        // The decode itself is unaffected by the clock: the same PDUs as the original.
        #expect(pdus.stdout.split(separator: "\n").count
                == (try GroundTruth(sample: "A0-persistent-discovery-kato0-unfixed-host")).totalPDUs)
    }

    /// E with the clock mirrored from its middle on (as a badly merged capture might be): the
    /// report says time went backwards instead of silently judging timers on nonsense.
    @Test func timestampsGoingBackwardsAreReported() {
        var capture = SampleCaptures.named("E-keepalive-stall")
        let middle = capture.packets.count / 2
        let pivot = capture.packets[middle].timeNs
        for i in middle..<capture.packets.count {
            capture.packets[i].timeNs = pivot - (capture.packets[i].timeNs - pivot)
        }
        let r = analyze(bytes: pcapFile(capture, nanoseconds: true))
        let warnings = r.diagnostics.map(\.message)
        #expect(warnings.filter { $0.contains("time goes backwards") }.count == 1, "\(warnings)")
        #expect(warnings.contains { $0.contains("timestamps went backwards") && $0.contains("times in all") })
        // The untouched capture has no such warning (only steps back of more than 1 ms count).
        let clean = analyze(bytes: pcapFile(SampleCaptures.named("E-keepalive-stall"), nanoseconds: true))
        #expect(!clean.diagnostics.contains { $0.message.contains("backwards") })
    }

    /// D with every TCP payload byte replaced by noise and the first host bytes of connection 0
    /// made a TLS record header: one clear warning for that connection instead of framing noise.
    @Test func tlsConnectionIsNamedOnce() {
        var capture = SampleCaptures.named("D-io-traffic")
        var rng = SplitMix64(seed: 4)
        var marked = false
        for i in capture.packets.indices {
            var b = capture.packets[i].bytes
            guard b.count > 54, b[12] == 0x08, b[13] == 0x00, b[23] == 6 else { continue }
            let ihl = Int(b[14] & 0x0F) * 4
            let start = 14 + ihl + Int(b[14 + ihl + 12] >> 4) * 4
            guard start < b.count else { continue }
            for j in start..<b.count { b[j] = UInt8.random(in: 0...255, using: &rng) }
            let dport = UInt16(b[14 + ihl + 2]) << 8 | UInt16(b[14 + ihl + 3])
            if !marked && dport == 4420 && b.count >= start + 3 {
                b[start] = 0x16; b[start + 1] = 0x03; b[start + 2] = 0x01
                marked = true
            }
            capture.packets[i].bytes = b
        }
        let r = analyze(bytes: pcapFile(capture))
        let first = r.diagnostics.filter { $0.connection == 0 }.map(\.message)
        #expect(first.count == 1, "\(first)")
        #expect(first.first?.contains("TLS handshake record") == true)
        // The other connection's noise is still reported as such.
        #expect(r.diagnostics.contains { $0.connection == 1 && $0.message.contains("invalid PDU header") })
        #expect(r.records.isEmpty)
    }
}
