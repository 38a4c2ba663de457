import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

#if canImport(Glibc)
import Glibc
#endif

/// Runs the nvmetrace executable and returns its exit status, stderr and peak RSS (KiB, as the
/// process measured itself: wait4's figure would include this test process's memory, which the
/// child shares until its exec). NVMETRACE_PEAK_RSS is set for that child alone: setenv here would
/// race with other tests starting processes (they read the environment meanwhile).
func runMeasured(_ args: [String]) throws -> (status: Int32, stderr: String, maxRSSKiB: Int) {
    let run = try runCLI(args, environment: ["NVMETRACE_PEAK_RSS": "1"], seconds: 300)
    let line = try #require(run.stderr.split(separator: "\n").last { $0.hasPrefix("nvmetrace: peak RSS") })
    let kib = try #require(Int(line.split(separator: " ").dropLast().last ?? ""))
    return (run.status, run.stderr, kib)
}

/// Floods and attacks stay within stated memory bounds (peak RSS of the whole process).
@Suite struct FloodTests {
    static let host = PacketBuilder.Host.ip(10, 0, 0, 2)
    static let target = PacketBuilder.Host.ip(10, 0, 0, 1)

    static func write(_ build: (PcapWriter) -> Void) -> String {
        let url = temporaryFile("flood.pcap")
        let w = try! PcapWriter(path: url.path)
        build(w)
        w.close()
        return url.path
    }

    /// 100,000 SYNs from distinct source ports to port 4420: each costs a small flow entry, no
    /// decoder (decoding attaches at the first payload byte). Bound: 150 MiB.
    @Test func hundredThousandSYNs() throws {
        let path = Self.write { w in
            for i in 0..<100_000 {
                let sport = UInt16(1024 + i % 60_000)
                let src = PacketBuilder.Host(ipv4: 0x0A01_0000 | UInt32(i / 60_000 + 2))
                w.write(timeNs: 1_700_000_000_000_000_000 + Int64(i) * 1000,
                        bytes: PacketBuilder.tcp(from: src, sport, to: Self.target, 4420, seq: UInt32(i), ack: 0, flags: PacketBuilder.syn))
            }
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try runMeasured(["-q", path])
        #expect(run.status == 0)
        #expect(run.maxRSSKiB < 150 * 1024, "peak RSS \(run.maxRSSKiB) KiB")
        // With a flow cap, the table stays at the cap (counted in MalformedInputTests) and the run
        // says nothing went wrong; its memory is the process's own baseline (about 20 MiB).
        let capped = try runMeasured(["-q", "--max-flows", "1000", path])
        #expect(capped.status == 0)
        #expect(capped.maxRSSKiB < 48 * 1024, "peak RSS with --max-flows 1000: \(capped.maxRSSKiB) KiB")
        #expect(capped.maxRSSKiB < run.maxRSSKiB)
    }

    /// 40 MiB of segments beyond a hole that is never filled: the out-of-order buffer stops at its
    /// cap, the hole is given up as a gap, the warning says so. Bound: 80 MiB.
    @Test func outOfOrderFloodPastTheCap() throws {
        let path = Self.write { w in
            var t: Int64 = 1_700_000_000_000_000_000
            func emit(_ b: [UInt8]) { w.write(timeNs: t, bytes: b); t += 1000 }
            emit(PacketBuilder.tcp(from: Self.host, 40000, to: Self.target, 4420, seq: 999, ack: 0, flags: PacketBuilder.syn))
            emit(PacketBuilder.tcp(from: Self.target, 4420, to: Self.host, 40000, seq: 4999, ack: 1000, flags: PacketBuilder.syn | PacketBuilder.ack))
            emit(PacketBuilder.tcp(from: Self.host, 40000, to: Self.target, 4420, seq: 1000, ack: 5000, flags: PacketBuilder.ack))
            let payload = [UInt8](repeating: 0x41, count: 1400)
            // Sequence numbers start 1400 bytes ahead: the first segment never arrives.
            for i in 0..<30_000 {
                emit(PacketBuilder.tcp(from: Self.host, 40000, to: Self.target, 4420, seq: 1000 &+ 1400 &* UInt32(i + 1), ack: 5000,
                                       flags: PacketBuilder.ack, payload: payload[...]))
            }
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try runMeasured(["--reassembly-cap", "4194304", path])
        #expect(run.maxRSSKiB < 80 * 1024, "peak RSS \(run.maxRSSKiB) KiB")
        #expect(run.stderr.contains("1400 bytes missing from the capture"), "\(run.stderr.prefix(2000))")
    }

    @Test func retransmissionsWithDifferentBytesAreReported() throws {
        let s = SynthCapture()
        let c = s.connection()
        c.connect(at: s.t(0), kato: 5000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        // Two copies of the same out-of-order range with different bytes, then the hole's bytes.
        let ka = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 50))
        var other = ka
        other[20] ^= 0xFF
        // Segments by hand: the second PDU arrives twice with different bytes, then the first.
        let filler = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 49))
        let seq0: UInt32 = 1000 + 1 + UInt32(128 + 1096)  // after ICReq and Connect
        let h = s.host, t = s.target, port = s.nextPort
        s.packets.append((s.t(1.0), PacketBuilder.tcp(from: h, port, to: t, 4420, seq: seq0 + UInt32(filler.count), ack: 5000 + 1 + 128 + 24, flags: 0x18, payload: ka[...])))
        s.packets.append((s.t(1.1), PacketBuilder.tcp(from: h, port, to: t, 4420, seq: seq0 + UInt32(filler.count), ack: 5000 + 1 + 128 + 24, flags: 0x18, payload: other[...])))
        s.packets.append((s.t(1.2), PacketBuilder.tcp(from: h, port, to: t, 4420, seq: seq0, ack: 5000 + 1 + 128 + 24, flags: 0x18, payload: filler[...])))
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = analyze(path)
        #expect(r.diagnostics.contains { $0.message.contains("retransmitted segment(s) carried bytes that differ") }, "\(r.diagnostics)")
        // The first copy was decoded: Keep Alive with CID 50.
        #expect(r.records.contains { if case .command(let cmd) = $0.body { cmd.cid == 50 && cmd.opcode == 0x18 } else { false } })
    }
}
