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

@Suite struct MidStreamDetectionTests {
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
        #expect(rewritten > 300)
    }
}
