import Foundation
import Testing
@testable import NVMeTrace

/// Command latency (issue #16, item 6) against tshark's `nvme.cmd_latency` (milliseconds, whatever
/// its field description says) on the real I/O
/// captures: per connection and opcode, the count, the maximum (to the microsecond tshark prints)
/// and the percentiles (HdrHistogram's, within 1% of the nearest-rank value of tshark's list).
@Suite struct LatencyTests {
    struct Sample: Hashable { var stream: Int; var opcode: Int }

    /// tshark's latencies (seconds) by connection and the opcode of the command they answer
    /// (found by the command's frame, `nvme.cmd_pkt`, and CID). Fabrics commands (Connect,
    /// Property Get/Set) and AERs are left out: tshark times Fabrics commands apart, and an AER
    /// waits by design.
    static func tsharkLatencies(_ path: String) throws -> [Sample: [Double]] {
        // Every command: frame → [(cid, opcode)].
        var commands: [Int: [(cid: Int, opcode: Int)]] = [:]
        for f in try Tshark.fields(path, filter: "nvme.cmd.opc", ["frame.number", "nvme.cmd.cid", "nvme.cmd.opc"]) {
            let cids = f[1].split(separator: ",").compactMap { Tshark.int($0) }
            let ops = f[2].split(separator: ",").compactMap { Tshark.int($0) }
            commands[Int(f[0])!] = zip(cids, ops).map { ($0, $1) }
        }
        var out: [Sample: [Double]] = [:]
        for f in try Tshark.fields(path, filter: "nvme.cmd_latency", ["tcp.stream", "nvme.cmd_latency", "nvme.cmd_pkt", "nvme.cqe.cid"]) {
            let stream = Int(f[0])!
            let lat = f[1].split(separator: ",").compactMap { Double($0) }
            let pkts = f[2].split(separator: ",").compactMap { Int($0) }
            let cids = f[3].split(separator: ",").compactMap { Tshark.int($0) }
            for (k, ms) in lat.enumerated() where k < pkts.count && k < cids.count {
                guard let op = commands[pkts[k]]?.first(where: { $0.cid == cids[k] })?.opcode else { continue }
                if op == 0x0C && stream == 0 { continue }  // Asynchronous Event Request (admin queue)
                out[Sample(stream: stream, opcode: op), default: []].append(ms / 1e3)
            }
        }
        return out
    }

    /// The nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        sorted[max(0, Int((q / 100 * Double(sorted.count)).rounded(.up)) - 1)]
    }

    @Test(arguments: ["D-io-traffic", "D2-io-traffic-digests"])
    func latenciesAreTsharks(_ sample: String) throws {
        let expected = try Self.tsharkLatencies(samplePath(sample))
        #expect(expected.values.reduce(0) { $0 + $1.count } > 50)
        let run = try runCLI(["--format", "json", "--fail-on", "none", samplePath(sample)])
        let doc = try jsonDocument(run.stdout)
        let groups = try #require(doc["latency"] as? [[String: Any]])
        let opcodes = Self.opcodes
        var seen = Set<Sample>()
        for g in groups {
            let command = try #require(g["command"] as? String)
            guard let op = opcodes[command] else { continue }  // Fabrics commands: tshark times them apart
            let connections = try #require(g["connections"] as? [Int])
            #expect(connections.count == 1, "\(sample) \(command): one queue per group here")
            let key = Sample(stream: connections[0], opcode: op)
            let values = try #require(expected[key], "\(sample) \(command) on \(connections[0]): tshark has none").sorted()
            seen.insert(key)
            let what = "\(sample) \(command) on connection \(connections[0])"
            #expect(g["count"] as? Int == values.count, "\(what): count")
            #expect(abs((g["max"] as? Double ?? -1) - values.last!) < 1.5e-6, "\(what): max \(g["max"] ?? "-") vs \(values.last!)")
            for (field, q) in [("p50", 50.0), ("p90", 90), ("p99", 99), ("p999", 99.9)] {
                let exact = Self.percentile(values, q)
                let got = g[field] as? Double ?? -1
                #expect(abs(got - exact) <= exact * 0.01 + 1e-6, "\(what): \(field) \(got) vs \(exact)")
            }
            // The slowest command's completion is the response tshark times longest.
            let slowest = try #require((g["slowest"] as? [[String: Any]])?.first)
            #expect(abs((slowest["seconds"] as? Double ?? -1) - values.last!) < 1.5e-6)
        }
        #expect(seen == Set(expected.keys), "\(sample): groups tshark has that the report lacks: \(Set(expected.keys).subtracting(seen))")
    }

    // MARK: phases, from tshark's PDUs

    /// One command as tshark's PDUs show it: when it was sent, its first R2T, the first H2CData
    /// after that, its last data PDU and its completion (epoch seconds).
    struct Walked {
        var stream: Int
        var opcode: Int
        var sent: Double
        var r2t: Double?
        var h2cAfterR2T: Double?
        var lastData: Double?
        var completed: Double?
        var byData = false
        /// The phases as `LatencyPhase` defines them, computed here from tshark's PDUs alone.
        var phases: [String: Double] {
            var p: [String: Double] = [:]
            if let r2t { p["command-to-r2t"] = r2t - sent }
            if let r2t, let h2cAfterR2T { p["r2t-to-data"] = h2cAfterR2T - r2t }
            if let lastData, let completed, !byData { p["data-to-completion"] = completed - lastData }
            return p
        }
    }

    /// Every non-Fabrics command of a capture, walked PDU by PDU in tshark's dissection (the
    /// fields of a frame's PDUs come in PDU order: a command's CID in `nvme.cmd.cid`, a
    /// response's in `nvme.cqe.cid`, a data PDU's or R2T's in `nvme-tcp.cmd.cid`). Frames whose
    /// lists do not line up (a Fabrics command among others) are counted and left out.
    static func walk(_ path: String) throws -> (commands: [Walked], skipped: Int) {
        let rows = try Tshark.fields(path, filter: "nvme-tcp", ["frame.time_epoch", "tcp.stream", "nvme-tcp.type", "nvme-tcp.flags",
                                                                "nvme.cmd.cid", "nvme.cmd.opc", "nvme.cqe.cid", "nvme-tcp.cmd.cid"])
        struct Key: Hashable { var stream: Int; var cid: Int }
        var open: [Key: Walked] = [:]
        var done: [Walked] = []
        var skipped = 0
        for f in rows {
            guard let t = Double(f[0]), let stream = Int(f[1]) else { continue }
            func list(_ i: Int) -> [Int] { f[i].split(separator: ",").compactMap { Tshark.int($0) } }
            let types = list(2), flags = list(3), cmdCIDs = list(4), opcodes = list(5), cqeCIDs = list(6), dataCIDs = list(7)
            // Fabrics commands (Connect, Property Get/Set) carry no `nvme.cmd.cid`: a frame of
            // them alone is passed over, their responses match nothing.
            let fabricsOnly = cmdCIDs.isEmpty
            guard types.count == flags.count, fabricsOnly || types.filter({ $0 == 4 }).count == cmdCIDs.count, cmdCIDs.count == opcodes.count,
                  types.filter({ $0 == 5 }).count == cqeCIDs.count, types.filter({ [6, 7, 9].contains($0) }).count == dataCIDs.count else {
                skipped += 1
                continue
            }
            var (c, r, d) = (0, 0, 0)
            for (i, type) in types.enumerated() {
                switch type {
                case 4:
                    if fabricsOnly { continue }
                    open[Key(stream: stream, cid: cmdCIDs[c])] = Walked(stream: stream, opcode: opcodes[c], sent: t)
                    c += 1
                case 5:
                    if var w = open.removeValue(forKey: Key(stream: stream, cid: cqeCIDs[r])) {
                        w.completed = t
                        done.append(w)
                    }
                    r += 1
                case 6, 7, 9:
                    let key = Key(stream: stream, cid: dataCIDs[d])
                    d += 1
                    guard var w = open[key] else { continue }
                    if type == 9 {
                        if w.r2t == nil { w.r2t = t }
                    } else {
                        if type == 6 && w.r2t != nil && w.h2cAfterR2T == nil { w.h2cAfterR2T = t }
                        w.lastData = t
                    }
                    // C2HData with LAST (0x04) and SUCCESS (0x08) is the completion (§3.6.2.8).
                    if type == 7 && flags[i] & 0x0C == 0x0C {
                        w.completed = t
                        w.byData = true
                        open[key] = nil
                        done.append(w)
                    } else {
                        open[key] = w
                    }
                default:
                    break
                }
            }
        }
        return (done, skipped)
    }

    /// Per connection, command and phase, the count, the median and the maximum of the phases
    /// computed from tshark's PDUs equal the report's (exact: these captures hold fewer than 64
    /// commands of a kind per queue, where figures are the values themselves).
    @Test(arguments: ["D-io-traffic", "D2-io-traffic-digests"])
    func phasesAreThoseOfTsharksPDUs(_ sample: String) throws {
        let (walked, skipped) = try Self.walk(samplePath(sample))
        #expect(skipped < 5, "\(sample): \(skipped) frames left out")
        struct PhaseKey: Hashable { var stream: Int; var opcode: Int; var phase: String }
        var expected: [PhaseKey: [Double]] = [:]
        for w in walked where !(w.opcode == 0x0C && w.stream == 0) {
            for (phase, v) in w.phases { expected[PhaseKey(stream: w.stream, opcode: w.opcode, phase: phase), default: []].append(v) }
        }
        // The captures show each phase: writes past the in-capsule size wait for R2Ts.
        for phase in ["command-to-r2t", "r2t-to-data", "data-to-completion"] {
            #expect(expected.keys.contains { $0.phase == phase }, "\(sample): tshark shows no \(phase)")
        }
        let run = try runCLI(["--format", "json", "--fail-on", "none", samplePath(sample)])
        let groups = try #require(try jsonDocument(run.stdout)["latency"] as? [[String: Any]])
        var seen = Set<PhaseKey>()
        for g in groups {
            guard let op = Self.opcodes[g["command"] as? String ?? ""], let conns = g["connections"] as? [Int], conns.count == 1 else { continue }
            for p in g["phases"] as? [[String: Any]] ?? [] {
                let key = PhaseKey(stream: conns[0], opcode: op, phase: p["phase"] as? String ?? "?")
                seen.insert(key)
                let values = try #require(expected[key], "\(sample): the report has \(key), tshark's PDUs do not").sorted()
                #expect(p["count"] as? Int == values.count, "\(sample) \(key): count")
                #expect(abs((p["max"] as? Double ?? -1) - values.last!) < 1.5e-6, "\(sample) \(key): max")
                #expect(abs((p["p50"] as? Double ?? -1) - Self.percentile(values, 50)) < 1.5e-6, "\(sample) \(key): p50")
            }
        }
        #expect(seen == Set(expected.keys), "\(sample): phases tshark's PDUs show that the report lacks: \(Set(expected.keys).subtracting(seen))")
    }

    static let opcodes: [String: Int] = ["Read": 0x02, "Write": 0x01, "Flush": 0x00, "Identify": 0x06, "Get Log Page": 0x02,
                                         "Set Features": 0x09, "Keep Alive": 0x18, "Get Features": 0x0A]
}
