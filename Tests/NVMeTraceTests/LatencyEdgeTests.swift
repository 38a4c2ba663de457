import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Command latency at its edges, on synthetic captures whose every time is chosen here: phases
/// of writes with several R2Ts and of reads with and without SUCCESS, distributions past the
/// exact values (HdrHistogram, within 1%), the bounded latency-over-time series, the bound on
/// groups, and what is left out (Asynchronous Event Requests).
@Suite struct LatencyEdgeTests {
    static let ms: Int64 = 1_000_000
    static let us: Int64 = 1_000

    /// An I/O queue with no admin queue in the capture (its own latency group).
    static func ioQueue(_ s: SynthCapture, at start: Double = 0) -> NVMeScript {
        let io = s.connection()
        io.connect(at: s.t(start), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        return io
    }

    static func group(_ r: Report, _ command: String) throws -> LatencyGroup {
        try #require(r.model.latency.first { $0.command == command && $0.queue == .io }, "no \(command) group")
    }

    static func phase(_ g: LatencyGroup, _ p: LatencyPhase) -> LatencyFigures? {
        g.phases.first { $0.phase == p }?.figures
    }

    @Test func aWriteOfTwoR2TsHasItsThreePhases() throws {
        let s = SynthCapture()
        let io = Self.ioQueue(s)
        let t0 = s.t(1)
        // Command at 0; R2T at 1 ms, its data at 1.5 ms; a second R2T at 2 ms, its data at 4 ms;
        // response at 10 ms: 1 ms to the first R2T, 0.5 ms to the data answering it, 6 ms from
        // the last data to the completion.
        io.writeWithR2Ts(at: t0, r2ts: [(t0 + 1 * Self.ms, t0 + 1_500 * Self.us), (t0 + 2 * Self.ms, t0 + 4 * Self.ms)],
                         chunk: 512, completed: t0 + 10 * Self.ms)
        let g = try Self.group(s.report(), "Write")
        #expect(g.total.count == 1 && g.total.maxNs == 10 * Self.ms)
        #expect(Self.phase(g, .toR2T)?.maxNs == 1 * Self.ms)
        #expect(Self.phase(g, .r2tToData)?.maxNs == 500 * Self.us)
        #expect(Self.phase(g, .dataToCompletion)?.maxNs == 6 * Self.ms)
        let slow = try #require(g.slowest.first)
        #expect(slow.timing.toR2T == 1 * Self.ms && slow.timing.r2tToData == 500 * Self.us && slow.timing.dataToCompletion == 6 * Self.ms)
    }

    @Test func aReadsPhasesWithAndWithoutSuccess() throws {
        let s = SynthCapture()
        let io = Self.ioQueue(s)
        let t0 = s.t(1)
        // Data at 3 and 5 ms, response at 5.25 ms.
        io.readTimed(at: t0, data: [t0 + 3 * Self.ms, t0 + 5 * Self.ms], chunk: 512, completed: t0 + 5_250 * Self.us)
        // Data at 2 ms and 7 ms, the last with SUCCESS: it is the completion (§3.6.2.8).
        let t1 = s.t(2)
        io.readTimed(at: t1, data: [t1 + 2 * Self.ms, t1 + 7 * Self.ms], chunk: 512, completed: nil)
        let g = try Self.group(s.report(), "Read")
        #expect(g.total.count == 2)
        #expect(g.total.maxNs == 7 * Self.ms)
        let tail = try #require(Self.phase(g, .dataToCompletion))
        #expect(tail.count == 1 && tail.maxNs == 250 * Self.us, "the SUCCESS read has no separate completion")
        #expect(Self.phase(g, .toR2T) == nil)
    }

    /// Two reads whose data interleave (A's data, B's data, A's response, B's response): each
    /// read's last data to completion is its own (the decoder keeps the last C2HData apart and
    /// writes it into its command when another command's data comes between).
    @Test func interleavedReadsKeepTheirOwnDataToCompletion() throws {
        let s = SynthCapture()
        let io = Self.ioQueue(s)
        let t0 = s.t(1)
        let data = [UInt8](repeating: 0x55, count: 512)
        func sqe(_ cid: UInt16) -> [UInt8] { PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: cid, nsid: 1, cdw12: 0)) }
        io.raw(fromHost: true, sqe(0x21), at: t0)
        io.raw(fromHost: true, sqe(0x22), at: t0 + 1 * Self.ms)
        io.raw(fromHost: false, PDUBuilder.c2hData(cid: 0x21, data: data), at: t0 + 2 * Self.ms)
        io.raw(fromHost: false, PDUBuilder.c2hData(cid: 0x22, data: data), at: t0 + 3 * Self.ms)
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 0x21), at: t0 + 5 * Self.ms)
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 0x22), at: t0 + 7 * Self.ms)
        let g = try Self.group(s.report(), "Read")
        #expect(g.total.count == 2 && g.total.maxNs == 6 * Self.ms)
        let tail = try #require(Self.phase(g, .dataToCompletion))
        #expect(tail.count == 2 && tail.maxNs == 4 * Self.ms && tail.p50Ns == 3 * Self.ms)
        let byCID = Dictionary(uniqueKeysWithValues: g.slowest.map { ($0.cid, $0.timing.dataToCompletion) })
        #expect(byCID[0x21] == 3 * Self.ms && byCID[0x22] == 4 * Self.ms, "\(byCID)")
    }

    /// 1,000 reads with latencies drawn here: the figures are within 1% of the nearest-rank
    /// percentiles computed from the list, the count and maximum exact, and JSON says approximate.
    @Test func pastTheExactValuesFiguresAreWithinOnePercent() throws {
        let s = SynthCapture()
        let io = Self.ioQueue(s)
        var rng = SplitMix64(seed: 16)
        var latencies: [Int64] = []
        var tails: [Int64] = []
        var t = s.t(1)
        for i in 0..<1_000 {
            // 20 µs to ~80 ms, skewed towards short (most I/O fast, a tail of slow ones).
            let u = Double(rng.next() % 1_000_000) / 1_000_000
            let ns = Int64(20_000 * pow(4_000, u * u))
            latencies.append(ns)
            // Data to completion: 0 (one packet's time) for 7 in 10, else up to 2 ms (and less
            // than the command's latency: its data comes after it).
            let tail = i % 10 < 7 ? 0 : min(Int64(1 + rng.next() % 2_000_000), ns - 1_000)
            tails.append(tail)
            io.readTimed(at: t, data: [t + ns - tail], chunk: 512, completed: t + ns)
            t += ns + 50 * Self.us
        }
        let r = s.report()
        let g = try Self.group(r, "Read")
        let sorted = latencies.sorted()
        func exact(_ q: Double) -> Int64 { sorted[max(0, Int((q / 100 * Double(sorted.count)).rounded(.up)) - 1)] }
        #expect(g.total.count == 1_000)
        #expect(g.total.maxNs == sorted.last!)
        #expect(g.total.approximate)
        for (q, got) in [(50.0, g.total.p50Ns), (90, g.total.p90Ns), (99, g.total.p99Ns), (99.9, g.total.p999Ns)] {
            let want = exact(q)
            #expect(abs(got - want) <= want / 100 + 1_000, "p\(q): \(got) vs \(want)")
        }
        // A phase mostly 0: the zeros are counted apart from the histogram, the ranks still those
        // of all values.
        let tail = try #require(Self.phase(g, .dataToCompletion))
        let sortedTails = tails.sorted()
        func exactTail(_ q: Double) -> Int64 { sortedTails[max(0, Int((q / 100 * Double(sortedTails.count)).rounded(.up)) - 1)] }
        #expect(tail.count == 1_000 && tail.approximate && tail.maxNs == sortedTails.last!)
        for (q, got) in [(50.0, tail.p50Ns), (90, tail.p90Ns), (99, tail.p99Ns), (99.9, tail.p999Ns)] {
            let want = exactTail(q)
            #expect(abs(got - want) <= want / 100 + 1_000, "data to completion p\(q): \(got) vs \(want)")
        }
        #expect(tail.p50Ns == 0 && tail.p90Ns > 0)
        let doc = try jsonDocument(JSONReport.render(r))
        let json = try #require((doc["latency"] as? [[String: Any]])?.first { $0["command"] as? String == "Read" })
        #expect(json["approximate"] as? Bool == true && json["count"] as? Int == 1_000)
        #expect(abs((json["max"] as? Double ?? 0) - Double(sorted.last!) / 1e9) < 1e-9)
    }

    /// 2,000 commands over 2,000 s (one at a time: a TCP stream's bytes go in time order), one of
    /// them 900 ms: at most 128 points, each the longest latency of the commands sent in its
    /// slice and when that one was sent (slices computed here from the width the report gives),
    /// and the 900 ms one among them and first of the slowest.
    @Test func theLatencyOverTimeSeriesIsBoundedAndKeepsEachSlicesWorst() throws {
        let s = SynthCapture()
        let io = Self.ioQueue(s)
        var rng = SplitMix64(seed: 7)
        var sent: [(issued: Int64, ns: Int64)] = []
        let outlier = 1_234
        for i in 0..<2_000 {
            let at = s.t(1 + Double(i))
            let ns = i == outlier ? 900 * Self.ms : Int64(100_000 + rng.next() % 5_000_000)
            io.readTimed(at: at, data: [at + ns / 2], chunk: 512, completed: at + ns)
            sent.append((at, ns))
        }
        let g = try Self.group(s.report(), "Read")
        #expect(g.timeline.count <= LatencyTimeline.maxSlices && g.timeline.count > LatencyTimeline.maxSlices / 4)
        #expect(g.slowest.first?.latencyNs == 900 * Self.ms)
        #expect(g.timeline.contains { $0.latencyNs == 900 * Self.ms && $0.issuedNs == sent[outlier].issued })
        var worst: [Int64: (issued: Int64, ns: Int64)] = [:]
        for c in sent where (worst[c.issued / g.sliceNs]?.ns ?? -1) < c.ns { worst[c.issued / g.sliceNs] = c }
        #expect(g.timeline.count == worst.count, "one point per slice with commands")
        for p in g.timeline {
            let w = try #require(worst[p.issuedNs / g.sliceNs])
            #expect(p.latencyNs == w.ns && p.issuedNs == w.issued, "slice of \(p.issuedNs): not its worst command")
        }
        #expect(zip(g.timeline, g.timeline.dropFirst()).allSatisfy { $0.issuedNs < $1.issuedNs }, "oldest first")
    }

    /// Capture timestamps are untrusted (a pcapng's 64 bits span centuries): commands sent at
    /// 0, before 1970, and at the end of Int64's range still make at most 128 slices of a
    /// positive width, and the longest latency is a point.
    @Test func theSeriesTakesAnyTimestamps() {
        var t = LatencyTimeline()
        for (issued, ns) in [(Int64(1_700_000_000_000_000_000), Int64(5)), (0, 7), (-5, 3), (Int64.max, 9), (1 << 62, 11), (12_345, 2)] {
            t.record(issuedNs: issued, latencyNs: ns)
        }
        #expect(t.points.count <= LatencyTimeline.maxSlices && !t.points.isEmpty)
        #expect(t.widthNs > 0)
        #expect(t.points.map(\.latencyNs).max() == 11)
        var merged = LatencyTimeline()
        merged.record(issuedNs: 1_000, latencyNs: 1)
        merged.add(t)
        #expect(merged.points.count <= LatencyTimeline.maxSlices && merged.points.map(\.latencyNs).max() == 11)
    }

    /// Two I/O queues of one controller, their commands interleaved in time: the controller's
    /// series is the worst of both per slice (two series merged, `LatencyTimeline.add`).
    @Test func aControllersSeriesMergesItsQueues() throws {
        let s = SynthCapture()
        let admin = RuleScenario.admin(s, keepAlives: [])
        _ = admin
        let queues = [s.connection(), s.connection()]
        for (n, q) in queues.enumerated() {
            q.connect(at: s.t(0.1 + Double(n) * 0.01), qid: UInt16(n + 1), kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        }
        var rng = SplitMix64(seed: 3)
        var sent: [(issued: Int64, ns: Int64)] = []
        for i in 0..<600 {
            for (n, q) in queues.enumerated() {
                let at = s.t(1 + Double(i) * 0.5 + Double(n) * 0.2)
                let ns = Int64(50_000 + rng.next() % 100_000_000)
                q.readTimed(at: at, data: [at + ns / 2], chunk: 512, completed: at + ns)
                sent.append((at, ns))
            }
        }
        let r = s.report()
        let g = try #require(r.model.latency.first { $0.command == "Read" })
        #expect(g.controller != nil && g.connections.count == 2, "one group for the controller's two queues: \(g.connections)")
        #expect(g.total.count == 1_200)
        #expect(g.timeline.count <= LatencyTimeline.maxSlices)
        var worst: [Int64: Int64] = [:]
        for c in sent { worst[c.issued / g.sliceNs] = max(worst[c.issued / g.sliceNs] ?? 0, c.ns) }
        #expect(g.timeline.count == worst.count)
        for p in g.timeline { #expect(p.latencyNs == worst[p.issuedNs / g.sliceNs], "slice of \(p.issuedNs)") }
        #expect(g.slowest.first?.latencyNs == sent.map(\.ns).max())
    }

    /// 300 I/O queues without a controller, each with a Connect and reads: 256 groups of their
    /// own, the rest folded into one per command; no command is lost from the counts.
    @Test func groupsAreBounded() throws {
        let s = SynthCapture()
        // The first queue reads before the others fill the groups, and once after: both reads
        // are its own group's.
        let first = Self.ioQueue(s, at: 0)
        let f0 = s.t(0.5)
        first.readTimed(at: f0, data: [f0 + 100 * Self.us], chunk: 512, completed: f0 + 200 * Self.us)
        let f1 = s.t(20)
        first.readTimed(at: f1, data: [f1 + 100 * Self.us], chunk: 512, completed: f1 + 200 * Self.us)
        for q in 1..<300 {
            let io = Self.ioQueue(s, at: Double(q) * 0.01)
            let t = s.t(5 + Double(q) * 0.01)
            io.readTimed(at: t, data: [t + 100 * Self.us], chunk: 512, completed: t + 200 * Self.us)
            io.readTimed(at: t + Self.ms, data: [t + 1_100 * Self.us], chunk: 512, completed: t + 1_200 * Self.us)
        }
        let report = s.report()
        let all = report.model.latency
        #expect(all.count == CommandLatencies.maxGroups + 2, "the bound, and a folded group per command")
        // A terminal gets the first 48 rows of the table, and how many more there are.
        let text = TextReport.render(report, color: false)
        let rows = report.latencyRows.count - 1
        #expect(rows > TextReport.latencyRowsShown)
        #expect(text.contains("  … \(rows - TextReport.latencyRowsShown) more rows (all of them: --format markdown, html or json)"))
        let markdown = MarkdownReport.render(report)
        let lines = markdown.components(separatedBy: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix("| controller | queue | command |") })
        #expect(lines[(header + 2)...].prefix { $0.hasPrefix("|") }.count == rows, "Markdown lists every row")
        #expect(all.filter(\.connections.isEmpty).map(\.command).sorted() == ["Connect", "Read"], "one group per command past the bound")
        #expect(all.filter { $0.command == "Read" }.reduce(0) { $0 + $1.total.count } == 600)
        #expect(all.filter { $0.command == "Connect" }.reduce(0) { $0 + $1.total.count } == 300)
        let firstReads = try #require(all.first { $0.command == "Read" && $0.connections == [0] })
        #expect(firstReads.total.count == 2, "the first queue's read after the bound went elsewhere")
    }

    /// Commands the capture shows no completion for are not timed, and counted: one whose CID a
    /// later command took, one still waiting at the end (and not an Asynchronous Event Request).
    @Test func commandsWithoutCompletionAreCountedNotTimed() throws {
        let s = SynthCapture()
        let admin = RuleScenario.admin(s, keepAlives: [])
        // An AER, its CID then taken by a Keep Alive (answered): the AER waited by design.
        admin.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: 0x77)), at: s.t(0.5))
        admin.raw(fromHost: true, PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 0x77)), at: s.t(0.6))
        admin.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 0x77), at: s.t(0.601))
        let io = s.connection()
        io.connect(at: s.t(0.1), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        let t0 = s.t(1)
        func sqe(_ cid: UInt16) -> [UInt8] { PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: cid, nsid: 1, cdw12: 0)) }
        io.raw(fromHost: true, sqe(0x31), at: t0)                              // never answered, its CID taken below
        io.raw(fromHost: true, sqe(0x32), at: t0 + 1 * Self.ms)
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 0x32), at: t0 + 2 * Self.ms)
        io.raw(fromHost: true, sqe(0x31), at: t0 + 3 * Self.ms)                // CID 0x31 again
        io.raw(fromHost: false, PDUBuilder.capsuleResp(cid: 0x31), at: t0 + 4 * Self.ms)
        io.raw(fromHost: true, sqe(0x33), at: t0 + 5 * Self.ms)                // waiting at the end
        let r = s.report()
        let ioConn = try #require(r.model.connections.first { $0.queueKind == .io })
        #expect(ioConn.untimedCommands == 2)
        #expect(r.model.connections.filter { $0.queueKind == .admin }.allSatisfy { $0.untimedCommands == 0 }, "an AER is no untimed command")
        let reads = try Self.group(r, "Read")
        #expect(reads.total.count == 2 && reads.total.maxNs == 1 * Self.ms)
        #expect(r.untimedNote?.contains("Not timed: 2 commands on connection \(ioConn.id) ") == true, "\(r.untimedNote ?? "no note")")
    }

    /// A command whose queue kind was guessed (no Connect in the capture) is grouped by the
    /// model's judgement of its connection: one group per command on a queue, whatever each
    /// command's own guess said.
    @Test func groupsFollowTheModelsQueueKind() {
        var l = CommandLatencies()
        let ref = { (ns: Int64) in FrameRef(file: 0, frame: Int(ns / 1_000), timeNs: ns) }
        l.record(connection: 5, [CommandTiming(kind: CommandKind(opcode: 0x02, fctype: nil, queue: .io), cid: 1, issued: ref(1_000), completed: ref(5_000))])
        l.record(connection: 5, [CommandTiming(kind: CommandKind(opcode: 0x02, fctype: nil, queue: .admin), cid: 2, issued: ref(6_000), completed: ref(9_000))])
        let groups = l.groups { _ in (nil, .io) }
        #expect(groups.count == 1)
        #expect(groups.first?.command == "Read" && groups.first?.total.count == 2 && groups.first?.queue == .io)
        // Nothing known of the connection: each as its own guess named it.
        #expect(Set(l.groups { _ in (nil, nil) }.map(\.command)) == ["Read", "Get Log Page"])
    }

    /// A controller's rows: its admin queue's first, whatever the connections' numbers (a capture
    /// started mid-stream numbers an I/O queue before its admin queue); then connections
    /// without a controller.
    @Test func aControllersAdminRowsComeFirst() {
        var l = CommandLatencies()
        let ref = { (ns: Int64) in FrameRef(file: 0, frame: Int(ns / 1_000), timeNs: ns) }
        l.record(connection: 1, [CommandTiming(kind: CommandKind(opcode: 0x02, fctype: nil, queue: .io), cid: 1, issued: ref(1_000), completed: ref(5_000))])
        l.record(connection: 0, [CommandTiming(kind: CommandKind(opcode: 0x01, fctype: nil, queue: .io), cid: 1, issued: ref(1_000), completed: ref(5_000))])
        l.record(connection: 3, [CommandTiming(kind: CommandKind(opcode: 0x18, fctype: nil, queue: .admin), cid: 2, issued: ref(6_000), completed: ref(9_000))])
        let groups = l.groups { c in c == 0 ? (nil, .io) : (7, c == 3 ? .admin : .io) }
        #expect(groups.map(\.command) == ["Keep Alive", "Read", "Write"])
    }

    /// An Asynchronous Event Request waits by design (outstanding, or completed by an event
    /// minutes later): it is no latency. A Keep Alive is.
    @Test func asyncEventRequestsAreNoLatency() throws {
        let s = SynthCapture()
        // In time order (a TCP stream's bytes are): the event 59 s after its request, then the
        // Keep Alives, then a request left outstanding.
        let admin = RuleScenario.admin(s, keepAlives: [])
        admin.asyncEvent(at: s.t(1), completed: s.t(60), type: 2, info: 0xF0, logPage: 0x70)
        admin.keepAlive(at: s.t(65))
        admin.keepAlive(at: s.t(70))
        admin.asyncEventRequest(at: s.t(71))
        let r = s.report()
        #expect(!r.model.latency.contains { $0.command.contains("Asynchronous") })
        let ka = try #require(r.model.latency.first { $0.command == "Keep Alive" })
        #expect(ka.total.count == 2 && ka.total.maxNs == 300 * Self.us)
    }

    /// Every command the decoder times, by connection, issue frame and CID.
    static func timings(_ path: String) throws -> [String: CommandTiming] {
        let analyzer = Analyzer()
        let collector = Collector()
        var out: [String: CommandTiming] = [:]
        collector.onTimed = { c, ts in for t in ts { out["\(c) \(t.issued.frame) \(t.cid)"] = t } }
        analyzer.consumer = collector
        try analyzer.read(path: path)
        analyzer.finish()
        return out
    }

    /// A headers-only capture times what it shows: every command it times has the latency and
    /// the phases the whole capture gives it (CIDs and times are in the headers); commands whose
    /// completion was cut (a CapsuleResp behind a read's data in one segment) are left out, not
    /// guessed.
    @Test(arguments: ["D-io-traffic", "K2-io-timeout-read-host-error-recovery"], [96, 128, 200])
    func headersOnlyCapturesTimeWhatTheyShow(sample: String, snaplen: Int) throws {
        let whole = try Self.timings(samplePath(sample))
        let cut = writeTemporaryCapture(truncated(try readPcapIndependently(samplePath(sample)), to: snaplen),
                                        snaplen: snaplen, name: "snap\(snaplen)")
        defer { try? FileManager.default.removeItem(atPath: cut) }
        let headers = try Self.timings(cut)
        #expect(headers.count * 4 > whole.count, "\(sample) at \(snaplen): \(headers.count) of \(whole.count) commands timed")
        for (k, t) in headers {
            let w = try #require(whole[k], "\(sample) at \(snaplen): \(k) timed only in the cut capture")
            #expect(t.latencyNs == w.latencyNs && t.completed == w.completed, "\(k): \(t.latencyNs) vs \(w.latencyNs)")
            for p in LatencyPhase.allCases where t.phase(p) >= 0 {
                #expect(t.phase(p) == w.phase(p), "\(sample) at \(snaplen) \(k) \(p): \(t.phase(p)) vs \(w.phase(p))")
            }
        }
        print("\(sample) at \(snaplen) bytes: \(headers.count) of \(whole.count) commands timed")
    }
}
