import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// `--evidence`: the packets behind the findings, which analyse to the same findings.
@Suite struct EvidenceTests {
    /// Findings in report order, each as its rule, severity, title, the host endpoints of its
    /// connection and of all connections involved, and what each piece of evidence is: frame and
    /// connection numbers change in the evidence file, the rest does not.
    static func findings(_ json: String) throws -> [String] {
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let conns = doc["connections"] as! [[String: Any]]
        let hostOf = Dictionary(uniqueKeysWithValues: conns.map { ($0["id"] as! Int, $0["src"] as! String) })
        return (doc["findings"] as! [[String: Any]]).map { f in
            let involved = (f["connections"] as! [Int]).map { hostOf[$0] ?? "?" }
            let evidence = (f["evidence"] as! [[String: Any]]).map { "\($0["what"]!)@\(($0["connection"] as? Int).flatMap { hostOf[$0] } ?? "-")" }
            return "\(f["rule"]!) \(f["severity"]!) \(f["title"]!) @\((f["connection"] as? Int).flatMap { hostOf[$0] } ?? "-") \(involved) \(evidence)"
        }
    }

    @Test(arguments: ["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host", "E-keepalive-stall"],
          [nil, 128] as [Int?])
    func evidenceAnalysesToTheSameFindings(sample: String, snaplen: Int?) throws {
        let out = temporaryFile("evidence.pcap")
        var args = ["--format", "json", "--fail-on", "none", "--evidence", out.path]
        if let snaplen { args += ["--evidence-snaplen", String(snaplen)] }
        let run = try runCLI(args + [samplePath(sample)])
        #expect(run.status == 0)
        let original = try Self.findings(run.stdout)
        #expect(!original.isEmpty)
        // The connections the findings involve, by host endpoint.
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let involved = Set((report["findings"] as! [[String: Any]]).flatMap { $0["connections"] as! [Int] })
        let hosts = Set((report["connections"] as! [[String: Any]]).filter { involved.contains($0["id"] as! Int) }.map { $0["src"] as! String })
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let ev = try #require(doc["evidence"] as? [String: Any])
        #expect(ev["file"] as? String == out.path)
        let again = try runCLI(["--format", "json", "--fail-on", "none", out.path])
        #expect(try Self.findings(again.stdout) == original)
        // Only the involved connections' packets, with the original timestamps and link type.
        let evidence = try loadCapture(out.path)
        let whole = try loadCapture(samplePath(sample))
        #expect(evidence.packets.count == ev["packets"] as? Int)
        // Exactly the packets the ground truth counts on those connections.
        let truth = try GroundTruth(sample: sample)
        #expect(Set(truth.connections.map(\.host)).isSuperset(of: hosts))
        #expect(evidence.packets.count == truth.connections.filter { hosts.contains($0.host) }.reduce(0) { $0 + $1.packets })
        #expect(evidence.linkType == whole.linkType)
        let times = Set(whole.packets.map(\.timeNs))
        #expect(evidence.packets.allSatisfy { times.contains($0.timeNs) })
        if let snaplen {
            // Admin queues stay whole (the Identify data the keep-alive rules rest on); on I/O
            // queues, packets with more than 1200 payload bytes are cut. Which queue a packet is
            // on: the ground truth's queue of the connection whose host port it carries (Ethernet
            // and IPv4, as these samples are).
            let queueByPort = Dictionary(truth.connections.map { (Int($0.host.split(separator: ":").last!)!, $0.queue) }, uniquingKeysWith: { a, _ in a })
            let original = Dictionary(whole.packets.map { ($0.timeNs, $0.bytes.count) }, uniquingKeysWith: { a, _ in a })
            var cut = 0
            for p in evidence.packets {
                let tcp = 14 + Int(p.bytes[14] & 0x0F) * 4
                let ports = [Int(p.bytes[tcp]) << 8 | Int(p.bytes[tcp + 1]), Int(p.bytes[tcp + 2]) << 8 | Int(p.bytes[tcp + 3])]
                let ipTotal = Int(p.bytes[16]) << 8 | Int(p.bytes[17])
                let payload = ipTotal - (tcp - 14) - Int(p.bytes[tcp + 12] >> 4) * 4
                let queue = try #require(ports.lazy.compactMap { queueByPort[$0] }.first)
                if queue == "admin" || payload <= EvidenceWriter.keepWholeBelow {
                    #expect(p.bytes.count == original[p.timeNs], "\(queue) packet cut")
                } else {
                    #expect(p.bytes.count == snaplen)
                    cut += 1
                }
            }
            // The I/O queues' data was there to cut in E only (A and A0 have none in their findings).
            #expect((cut > 0) == (sample == "E-keepalive-stall"))
        }
    }

    /// A pcap record header holds unsigned 32-bit seconds and nanoseconds: 1970 to 2106. Times
    /// outside, here from a pcapng whose if_tsoffset (-2 s) puts packets before 1970 and one past
    /// 2106, are written as the nearest time a header holds: no negative fraction (-0.5 s was
    /// written as 0 s and -500,000,000 ns, which a reader of unsigned fields takes for 3.79 s), no
    /// wrapped seconds (2128 became 1992), still in time order.
    @Test func timesOutsideWhatPcapHoldsAreClamped() throws {
        let host = PacketBuilder.Host.ip(10, 0, 0, 2), target = PacketBuilder.Host.ip(10, 0, 0, 1)
        // EPB timestamps (ns); with the offset: -1.5 s, -0.5 s, 0.5 s and 5e9 s (the year 2128).
        let stamps: [UInt64] = [500_000_000, 1_500_000_000, 2_500_000_000, 5_000_000_002_000_000_000]
        var w = ByteWriter()
        func block(_ type: UInt32, _ body: [UInt8]) { w.pcapngBlock(type, body) }
        w.pcapngSectionHeader()
        var idb = ByteWriter()
        idb.u16(UInt16(LinkTypeValue.ethernet)); idb.u16(0); idb.u32(0)
        idb.u16(9); idb.u16(1); idb.append([9, 0, 0, 0])                      // if_tsresol: nanoseconds
        idb.u16(14); idb.u16(8); idb.u64(UInt64(bitPattern: -2))               // if_tsoffset: -2 s
        idb.u16(0); idb.u16(0)
        block(1, idb.bytes)
        for (i, ts) in stamps.enumerated() {
            let p = PacketBuilder.tcp(from: host, 40000, to: target, 4420, seq: 1000 + UInt32(i), ack: 1, flags: PacketBuilder.ack)
            var epb = ByteWriter()
            epb.u32(0); epb.u32(UInt32(ts >> 32)); epb.u32(UInt32(truncatingIfNeeded: ts))
            epb.u32(UInt32(p.count)); epb.u32(UInt32(p.count)); epb.append(p)
            block(6, epb.bytes)
        }
        let input = temporaryFile("pre-1970.pcapng"), out = temporaryFile("evidence.pcap")
        defer { for u in [input, out] { try? FileManager.default.removeItem(at: u) } }
        try Data(w.bytes).write(to: input)
        #expect(try loadCapture(input.path).packets.map(\.timeNs) == [-1_500_000_000, -500_000_000, 500_000_000, 5_000_000_000_000_000_000])

        let connection = EvidenceWriter.Connection(
            a: Endpoint(address: IPAddress(v4: host.ipv4), port: 40000), b: Endpoint(address: IPAddress(v4: target.ipv4), port: 4420),
            first: FrameRef(file: 0, frame: 1, timeNs: 0), last: FrameRef(file: 0, frame: stamps.count, timeNs: 0))
        let written = try EvidenceWriter.write(files: [input.path], connections: [connection], to: out.path)
        #expect(written == EvidenceWriter.Written(packets: 4, clampedTimes: 3))

        // The record headers as written: ts_sec, ts_nsec (nanosecond pcap, little-endian here).
        let bytes = [UInt8](try Data(contentsOf: out))
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        try #require(bytes.count >= 24 && u32(0) == 0xA1B2_3C4D)
        var times: [(seconds: UInt32, fraction: UInt32)] = []
        var at = 24
        while at + 16 <= bytes.count {
            times.append((u32(at), u32(at + 4)))
            at += 16 + Int(u32(at + 8))
        }
        #expect(times.map(\.seconds) == [0, 0, 0, UInt32.max])
        #expect(times.map(\.fraction) == [0, 0, 500_000_000, 999_999_999])

        // The command line says so: here A0 with times wrapped to about ±9.2e18 ns.
        let extreme = try ExtremeTimestampTests.extremeCapture()
        defer { try? FileManager.default.removeItem(atPath: extreme) }
        let run = try runCLI(["--fail-on", "none", "--evidence", out.path, extreme])
        #expect(run.status == 0)
        #expect(run.stderr.contains("carry a time a pcap file cannot hold"), "\(run.stderr)")
    }

    /// connect-refused's SYNs and RSTs belong to no connection of the model: the evidence file
    /// holds them all the same, and analyses to the same findings.
    @Test func refusedAttemptsAreInTheEvidence() throws {
        let scenario = try #require(RuleScenario.all.first { $0.name == "SYNs answered by RST" })
        let s = scenario.build()
        let path = s.write()
        let out = temporaryFile("evidence.pcap")
        let run = try runCLI(["--format", "json", "--fail-on", "none", "--evidence", out.path, path])
        #expect(run.status == 0, "\(run.stderr)")
        let evidence = try loadCapture(out.path)
        // Every packet of the capture: three SYNs and the three RSTs that refused them.
        #expect(evidence.packets.count == s.packets.count && s.packets.count == 6)
        let again = try runCLI(["--format", "json", "--fail-on", "none", out.path])
        #expect(try Self.findings(again.stdout) == Self.findings(run.stdout))
    }

    @Test func noFindingsNoEvidence() throws {
        let out = temporaryFile("none.pcap")
        let run = try runCLI(["--evidence", out.path, samplePath("B-persistent-discovery-healthy")])
        #expect(run.status == 0)
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(run.stderr.contains("no evidence written"))
    }
}
