import Foundation
import Testing
@testable import NVMeTrace

/// TCP health per connection (issue #16, item 7) against tshark, the client people check it with:
/// the handshake RTT (tcp.analysis.initial_rtt), retransmissions, out-of-order segments, resets
/// and zero windows, on every sample and on a copy of D that lost segments on the wire.
@Suite struct TCPHealthTests {
    /// Per tcp.stream, as tshark counts it.
    struct TsharkTCP {
        var packets = 0
        var initialRTT: Double?
        var retransmissions = 0
        var outOfOrder = 0
        var resets: [String: Int] = [:]      // by source endpoint
        var zeroWindows: [String: Int] = [:]  // by source endpoint
    }

    static func tshark(_ path: String) throws -> [Int: TsharkTCP] {
        let rows = try Tshark.fields(path, filter: "tcp", [
            "tcp.stream", "tcp.analysis.initial_rtt", "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
            "tcp.analysis.out_of_order", "tcp.flags.reset", "tcp.analysis.zero_window", "ip.src", "tcp.srcport"],
            // TCP's analysis alone: NVMe/TCP's dissection and reassembly make no difference to it
            // and cost ten times as much.
            options: ["-n", "--disable-protocol", "nvme-tcp"])
        var out: [Int: TsharkTCP] = [:]
        for f in rows {
            guard let stream = Int(f[0]) else { continue }
            var s = out[stream] ?? TsharkTCP()
            s.packets += 1
            if s.initialRTT == nil, let rtt = Double(f[1]) { s.initialRTT = rtt }
            if !f[2].isEmpty || !f[3].isEmpty { s.retransmissions += 1 }
            if !f[4].isEmpty { s.outOfOrder += 1 }
            let source = "\(f[7]):\(f[8])"
            if f[5] == "1" || f[5] == "True" { s.resets[source, default: 0] += 1 }
            if !f[6].isEmpty { s.zeroWindows[source, default: 0] += 1 }
            out[stream] = s
        }
        return out
    }

    /// Streams whose retransmissions tshark counts at tcp-loss's threshold (3, and 0.5% of the
    /// stream's packets).
    static func lossy(_ t: [Int: TsharkTCP]) -> Set<Int> {
        Set(t.filter { $0.value.retransmissions >= 3 && Double($0.value.retransmissions) >= 0.005 * Double($0.value.packets) }.keys)
    }

    static func report(_ path: String) -> Report {
        let analysis = CaptureAnalysis()
        analysis.read(paths: [path])
        return analysis.report()
    }

    static func expectSame(_ r: Report, _ t: [Int: TsharkTCP], _ label: String) {
        for c in r.model.connections {
            let x = t[c.id] ?? TsharkTCP()
            let what = "\(label) connection \(c.id)"
            if let rtt = x.initialRTT {
                #expect(c.tcp.handshakeRTTNs.map { abs(Double($0) / 1e9 - rtt) < 1e-6 } == true, "\(what): RTT \(String(describing: c.tcp.handshakeRTTNs)) vs \(rtt)")
            } else {
                #expect(c.tcp.handshakeRTTNs == nil, "\(what)")
            }
            #expect(c.tcp.retransmittedSegments == x.retransmissions, "\(what): retransmissions")
            #expect(c.tcp.outOfOrderSegments == x.outOfOrder, "\(what): out of order")
            #expect(c.tcp.host.rsts == x.resets[c.host.description] ?? 0 && c.tcp.target.rsts == x.resets[c.target.description] ?? 0,
                    "\(what): resets \(c.tcp.host.rsts)/\(c.tcp.target.rsts) vs \(x.resets)")
            #expect(c.tcp.host.zeroWindows == x.zeroWindows[c.host.description] ?? 0
                    && c.tcp.target.zeroWindows == x.zeroWindows[c.target.description] ?? 0, "\(what): zero windows vs \(x.zeroWindows)")
        }
    }

    @Test(arguments: sampleNames)
    func healthMatchesTshark(_ sample: String) throws {
        let r = Self.report(samplePath(sample))
        Self.expectSame(r, try Self.tshark(samplePath(sample)), sample)
        // tcp-loss only where the ground truth's tshark facts show loss (K2's I/O queue: the
        // target's acknowledgements dropped, the host's read retransmitted 8 times).
        let truth = try GroundTruth(sample: sample)
        let lossy = Set(truth.connections.filter { $0.retransmissions >= 3 && Double($0.retransmissions) >= 0.005 * Double($0.packets) }.map(\.stream))
        #expect(Set(r.findings("tcp-loss").compactMap(\.connection)) == lossy, "\(sample)")
    }

    /// D's I/O traffic over a link that loses every 100th data segment before the capture point,
    /// each retransmitted 200 ms later: tshark and nvmetrace count the same retransmissions, and
    /// tcp-loss names the connections that carried them, and only them.
    @Test func lossOnTheWireIsCountedAsTsharkCountsIt() throws {
        let sample = "D-io-traffic"
        let (capture, held) = delayDataSegmentsCounting(SampleCaptures.named(sample), every: 100, past: 2,
                                                       retransmitAfterNs: 200_000_000)
        #expect(held > 10)
        let path = writeTemporaryCapture(capture, format: .pcap(nanoseconds: false))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try Self.tshark(path)
        #expect(t.values.reduce(0) { $0 + $1.retransmissions } == held)
        let r = Self.report(path)
        Self.expectSame(r, t, "\(sample) lossy")
        #expect(r.model.connections.reduce(0) { $0 + $1.tcp.retransmittedSegments } == held)
        let lossy = r.model.connections.filter {
            $0.tcp.retransmittedSegments >= 3 && Double($0.tcp.retransmittedSegments) >= 0.005 * Double($0.tcp.packets)
        }
        #expect(!lossy.isEmpty)
        #expect(Set(r.findings("tcp-loss").compactMap(\.connection)) == Set(lossy.map(\.id)))
        // Nothing else: the loss was recovered, no command waited long.
        #expect(r.findings.allSatisfy { $0.rule == "tcp-loss" }, "\(r.findings.map(\.title))")
    }
}
