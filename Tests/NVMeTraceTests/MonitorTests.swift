import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The daemon's analysis (`Monitor`, issue #17) fed a synthetic capture packet by packet with a
/// clock that follows the packets, as a live capture's would: its events, and memory that stays
/// bounded by the live connections however many ended.
@Suite struct MonitorTests {
    /// Plays `s`'s packets through `m`, ticking the clock with each (and every 100 ms between
    /// packets, as the capture loop's timer does); `onPacket` after each with its index.
    static func play(_ s: SynthCapture, into m: Monitor, onPacket: ((Int) -> Void)? = nil) -> Int64 {
        var last: Int64 = 0
        for (i, (t, bytes)) in s.packets.sorted(by: { $0.0 < $1.0 }).enumerated() {
            if last > 0 {
                var tick = last + 100_000_000
                while tick < t { m.tick(nowNs: tick); tick += 100_000_000 }
            }
            bytes.withUnsafeBytes { buf in
                m.packet(Packet(ref: FrameRef(file: m.live.fileIndex, frame: i + 1, timeNs: t), linkType: 1, wireLength: bytes.count, bytes: buf))
            }
            m.tick(nowNs: t)
            last = t
            onPacket?(i)
        }
        return last
    }

    static func monitor(retainSeconds: Double = 600, metrics: MonitorMetrics = MonitorMetrics()) -> (Monitor, EventBox) {
        let m = Monitor(device: "synthetic", options: AnalyzerOptions(), engine: RuleEngine(), metrics: metrics)
        m.retainNs = Int64(retainSeconds * 1e9)
        let box = EventBox()
        m.onEvent = { e in box.lines.append(e.line()) }
        return (m, box)
    }

    final class EventBox {
        var lines: [String] = []
        var objects: [[String: Any]] { lines.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] } }
        func of(_ event: String) -> [[String: Any]] { objects.filter { $0["event"] as? String == event } }
    }

    /// An I/O controller's association torn down by the target (FIN, then the host's), and the
    /// host back 12 s later: up, down (by the target, FIN), up again, and the outage between
    /// with its length from the script's own times.
    @Test func associationsGoUpAndDownAndTheOutageIsMeasured() throws {
        let s = SynthCapture()
        let first = RuleScenario.admin(s, kato: 10_000, keepAlives: [5, 10])
        first.tcp.fin(fromClient: false, at: s.t(12))
        first.tcp.fin(fromClient: true, at: s.t(12.001))
        // NVMeScript.connect answers the Connect 4 ms after it begins.
        let second = RuleScenario.admin(s, kato: 10_000, keepAlives: [5], start: 24)
        second.tcp.send(fromClient: false, [], at: s.t(40))
        let metrics = MonitorMetrics()
        let (m, box) = Self.monitor(metrics: metrics)
        let end = Self.play(s, into: m)
        m.finish(nowNs: end)

        let ups = box.of("association-up")
        let downs = box.of("association-down")
        let outages = box.of("outage")
        #expect(ups.count == 2, "\(box.lines)")
        #expect(downs.count == 1, "\(box.lines)")
        #expect(outages.count == 1, "\(box.lines)")
        for o in box.objects {
            #expect(o["schema"] as? String == "nvmetrace.event/1")
            #expect((o["timestamp"] as? String)?.hasSuffix("Z") == true)
        }
        let down = try #require(downs.first?["association"] as? [String: Any])
        #expect(down["by"] as? String == "target")
        #expect(down["how"] as? String == "FIN")
        #expect(down["cause"] as? String == "target")
        #expect(down["subnqn"] as? String == SynthCapture.subnqn)
        #expect(downs.first?["timestamp"] as? String == Report.utc(FrameRef(file: 0, frame: 0, timeNs: s.t(12))))
        let outage = try #require(outages.first?["outage"] as? [String: Any])
        let seconds = try #require(outage["seconds"] as? Double)
        #expect(abs(seconds - 12.004) < 0.0005, "\(seconds)")
        #expect(outage["by"] as? String == "target")
        #expect(outage["failedAttempts"] as? Int == 0)
        // The same flow as the report's Community ID for the admin queue.
        let up1 = try #require(ups.first)
        #expect(up1["src"] as? String == "10.0.0.2:40001")
        #expect(up1["dst"] as? String == "10.0.0.1:4420")
        let offline = s.report().model.connections.first { $0.host.port == 40001 }
        #expect(offline != nil && up1["communityId"] as? String == offline.map { CommunityID.tcp($0.host, $0.target) })
        // Findings are events too, and the counters follow the events.
        #expect(!box.of("finding").isEmpty)
        let page = String(decoding: metrics.page(), as: UTF8.self)
        #expect(MonitorMetricsTests.value(page, #"nvmetrace_associations_created_total{kind="io"}"#) == 2, "\(page)")
        #expect(MonitorMetricsTests.value(page, #"nvmetrace_associations_ended_total{kind="io",by="target",how="fin"}"#) == 1)
        #expect(MonitorMetricsTests.value(page, "nvmetrace_outage_seconds_count") == 1)
        #expect(MonitorMetricsTests.value(page, #"nvmetrace_outage_seconds_bucket{le="10.0"}"#) == 0)
        #expect(MonitorMetricsTests.value(page, #"nvmetrace_outage_seconds_bucket{le="15.0"}"#) == 1)
        // Keep Alives at 5 and 10 s on the first association, one on the second: one interval
        // of 5 s (the first of each connection has none before it).
        #expect(MonitorMetricsTests.value(page, "nvmetrace_keep_alive_interval_seconds_count") == 1, "\(page)")
        #expect(MonitorMetricsTests.value(page, "nvmetrace_keep_alive_interval_seconds_sum").map { abs($0 - 5) < 0.001 } == true)
    }

    /// 600 associations of 2 s each, one every 6 s (an hour), beside one association that lives
    /// throughout: with --retain 60 s the model never holds more than the last minute's, every
    /// association is announced up and down exactly once, every target teardown found once, and
    /// the long-lived one's silence at the end is still noticed. The same capture without
    /// retirement finds the same.
    @Test func memoryFollowsTheLiveConnectionsNotTheHours() throws {
        let count = 600
        func capture() -> SynthCapture {
            let s = SynthCapture()
            // Keep Alives every 5 s for the hour, then silence past its KATO.
            let longLived = s.connection()
            longLived.connect(at: s.t(0), kato: 10_000, subnqn: "nqn.2024-01.test:long", hostnqn: SynthCapture.hostnqn)
            for k in stride(from: 5.0, through: Double(count) * 6, by: 5) { longLived.keepAlive(at: s.t(k)) }
            for i in 0..<count {
                let start = 1 + Double(i) * 6
                let c = s.connection()
                c.connect(at: s.t(start), kato: 10_000, subnqn: "nqn.2024-01.test:short\(i % 7)", hostnqn: SynthCapture.hostnqn)
                c.keepAlive(at: s.t(start + 1))
                if i % 10 == 0 {
                    // The target closes: a teardown while the host's keep-alives were on time.
                    c.tcp.fin(fromClient: false, at: s.t(start + 2))
                    c.tcp.fin(fromClient: true, at: s.t(start + 2.001))
                } else {
                    c.propertySetCC(at: s.t(start + 1.5), 0x4001)  // CC.SHN: an orderly disconnect
                    c.tcp.fin(fromClient: true, at: s.t(start + 2))
                    c.tcp.fin(fromClient: false, at: s.t(start + 2.001))
                }
            }
            longLived.tcp.send(fromClient: false, [], at: s.t(Double(count) * 6 + 30))
            return s
        }
        let s = capture()
        let (m, box) = Self.monitor(retainSeconds: 60)
        m.retireEveryNs = 5_000_000_000
        var most = 0
        let end = Self.play(s, into: m) { _ in most = max(most, m.live.analysis.tracker.held.connections) }
        m.finish(nowNs: end)
        // One association every 6 s, each ended 2 s after it began: within 60 s of retention and
        // the 5 s between retirements, at most 65 / 6 + 1 ended ones, the newest of each of the 7
        // chains, and the two live ones: 21 at most, where keeping everything reaches 601.
        #expect(most <= 21, "held at most \(most) connections")
        #expect(most >= 10, "held at most \(most) connections: was anything kept at all?")
        let downs = box.of("association-down")
        let ups = box.of("association-up")
        #expect(ups.count == count + 1)
        #expect(downs.count == count)
        #expect(Set(downs.compactMap { ($0["association"] as? [String: Any])?["connection"] as? Int }).count == count)
        let teardowns = box.of("finding").filter { ($0["finding"] as? [String: Any])?["rule"] as? String == "target-teardown" }
        #expect(teardowns.count == count / 10)
        let overdue = box.of("finding").filter { ($0["finding"] as? [String: Any])?["rule"] as? String == "keep-alive-overdue" }
        #expect(overdue.count == 1, "the long-lived association's silence at the end")

        // The whole capture read offline finds the same, but for reconnect-loop: each chain's
        // target teardowns are 7 minutes apart, further apart than --retain, so the daemon never
        // holds three of a chain's associations at once (what it cannot see is documented).
        var offline = s.report().findings.reduce(into: [String: Int]()) { $0[$1.rule, default: 0] += 1 }
        #expect(offline.removeValue(forKey: "reconnect-loop") == 7)
        #expect(Self.rules(box) == offline)
    }

    static func rules(_ b: EventBox) -> [String: Int] {
        b.of("finding").reduce(into: [:]) { $0[(($1["finding"] as? [String: Any])?["rule"] as? String) ?? "?", default: 0] += 1 }
    }

    /// A persistent discovery connection with KATO 0 torn down by the target every 2 minutes for
    /// an hour (the loop of Linux hosts without commit 2e482655019a): with the default --retain
    /// the daemon reports the reconnect loop once, though its oldest associations are retired
    /// as it goes, and every other finding as the whole capture read offline does.
    @Test func aLoopLongerThanTheRetentionIsOneFinding() throws {
        let s = SynthCapture()
        for i in 0..<30 {
            let start = Double(i) * 120
            let c = s.connection(port: 8009)
            c.connect(at: s.t(start), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
            c.discoveryLog(at: s.t(start + 0.1))
            c.asyncEventRequest(at: s.t(start + 0.2))
            c.tcp.fin(fromClient: false, at: s.t(start + 119))
            c.tcp.fin(fromClient: true, at: s.t(start + 119.001))
        }
        let (m, box) = Self.monitor()
        var most = 0
        m.finish(nowNs: Self.play(s, into: m) { _ in most = max(most, m.live.analysis.tracker.held.connections) })
        #expect(most <= 7, "600 s of retention and 10 s between retirements hold 6 associations of 2 minutes, and the live one")
        let offline = s.report().findings.reduce(into: [String: Int]()) { $0[$1.rule, default: 0] += 1 }
        #expect(offline["reconnect-loop"] == 1)
        #expect(Self.rules(box) == offline)
        #expect(box.of("association-up").count == 30)
        #expect(box.of("outage").count == 29)
    }

    /// A daemon draws no Keep Alive timeline: a connection that lives for weeks keeps a few
    /// exchanges, not the 1024 a report draws (70 bytes each, on every live connection).
    @Test func aLongLivedConnectionKeepsAFewKeepAlives() throws {
        let s = SynthCapture()
        _ = RuleScenario.admin(s, kato: 10_000, keepAlives: (1...3000).map { Double($0) * 5 })
        let (m, _) = Self.monitor()
        _ = Self.play(s, into: m)
        let c = try #require(m.live.analysis.tracker.connections.first)
        #expect(c.keepAlives.count == 3000)
        #expect(c.keepAlives.sample.count <= 8 && c.keepAlives.sample.count >= 4, "\(c.keepAlives.sample.count)")
        // Offline, the report keeps its 1024 for the HTML timeline.
        let offline = try #require(s.report().model.connections.first)
        #expect(offline.keepAlives.sample.count > 512)
    }

    /// The tracker renumbers what stays: after retiring the first of a chain's associations the
    /// second is still its chain's, the I/O queue still its controller's.
    @Test func retirementKeepsTheChainsNewestAssociation() {
        let s = SynthCapture()
        let first = RuleScenario.admin(s, kato: 10_000, keepAlives: [1])
        first.tcp.fin(fromClient: false, at: s.t(2))
        first.tcp.fin(fromClient: true, at: s.t(2.001))
        let other = s.connection()  // an unrelated association that ends early
        other.connect(at: s.t(0.5), kato: 10_000, subnqn: "nqn.2024-01.test:other", hostnqn: SynthCapture.hostnqn)
        other.tcp.fin(fromClient: true, at: s.t(1))
        other.tcp.fin(fromClient: false, at: s.t(1.001))
        let second = RuleScenario.admin(s, kato: 10_000, keepAlives: [1], start: 100)
        let io = s.connection()
        io.connect(at: s.t(100.5), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 1)
        io.tcp.fin(fromClient: true, at: s.t(130))
        io.tcp.fin(fromClient: false, at: s.t(130.001))
        second.tcp.send(fromClient: false, [], at: s.t(140))
        let (m, _) = Self.monitor(retainSeconds: 60)
        m.retireEveryNs = .max  // only the retirements below
        _ = Self.play(s, into: m)
        let t = m.live.analysis.tracker
        #expect(t.held == (4, 3, 2))
        // `other` is gone; the first association is gone from the chain but the second stays.
        m.live.retire(endedBefore: s.t(90))
        let model = m.live.analysis.model()
        #expect(model.connections.count == 2, "\(model.connections.map(\.id))")
        #expect(model.controllers.count == 1)
        #expect(model.chains.count == 1)
        #expect(model.chains[0].controllers == [0])
        #expect(model.controllers[0].chain == 0)
        let ioModel = model.connections.first { $0.queueKind == .io }
        #expect(ioModel?.controller == 0)
        #expect(model.controllers[0].ioConnections == [ioModel?.id ?? -1])
        // A chain's newest association stays even when it ended long ago.
        m.live.retire(endedBefore: s.t(1000))
        #expect(t.held.controllers == 1)
        #expect(t.held.chains == 1)
    }
}

extension MonitorTests {
    /// A chain that lives on keeps its newest association even when that one ended long ago
    /// (a duplicate connect to the same subsystem, closed, while the first stays up).
    @Test func aLivingChainKeepsItsNewestAssociation() {
        let s = SynthCapture()
        let first = RuleScenario.admin(s, kato: 10_000, keepAlives: [5, 10, 15, 20, 25, 30])
        let dup = RuleScenario.admin(s, kato: 10_000, keepAlives: [1], start: 3)
        dup.tcp.fin(fromClient: true, at: s.t(6))
        dup.tcp.fin(fromClient: false, at: s.t(6.001))
        first.keepAlive(at: s.t(100))
        let (m, _) = Self.monitor()
        m.retireEveryNs = .max
        _ = Self.play(s, into: m)
        let t = m.live.analysis.tracker
        #expect(t.held == (2, 2, 1))
        // Every segment after it is the first association's (the flow table's fast path): the
        // duplicate's connection ends on the clock.
        #expect(t.connections.map(\.leftPipeline) == [false, true])
        m.live.retire(endedBefore: s.t(90))
        #expect(t.held == (2, 2, 1), "the newest association of a chain that lives on stays")
    }
}

/// `--ring`: the last minutes of packets in rotating pcap files, and each finding's evidence cut
/// from them when it fires.
@Suite struct EvidenceRingTests {
    @Test func theRingStaysBoundedAndTheEvidenceHoldsTheFinding() throws {
        let s = SynthCapture()
        // A target teardown at 12 s, beside an association that lives for 5 minutes.
        let torn = RuleScenario.admin(s, kato: 10_000, keepAlives: [5, 10])
        torn.tcp.fin(fromClient: false, at: s.t(12))
        torn.tcp.fin(fromClient: true, at: s.t(12.001))
        let long = s.connection()
        long.connect(at: s.t(1), kato: 10_000, subnqn: "nqn.2024-01.test:long", hostnqn: SynthCapture.hostnqn)
        for k in stride(from: 5.0, through: 300, by: 5) { long.keepAlive(at: s.t(1 + k)) }
        let dir = temporaryFile("ring").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (m, box) = MonitorTests.monitor()
        m.ring = try EvidenceRing(directory: dir, linkType: 1, fileSeconds: 10, keepSeconds: 60)
        var most = 0
        m.finish(nowNs: MonitorTests.play(s, into: m) { _ in
            most = max(most, ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".pcap") }.count)
        })
        // Files of 10 s kept while they end within 60 s: at most 7 at once (and the one begun).
        #expect(most <= 8, "\(most) ring files at once")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("ring-") }.sorted()
        #expect(left.count >= 6 && left.count <= 8, "\(left)")
        // The first file (the teardown's) was deleted long ago; the evidence outlives it.
        #expect(!left.contains { $0.hasPrefix("ring-\(EvidenceRing.stamp(s.t(0)).prefix(13))") }, "\(left)")
        let teardown = try #require(box.of("finding").first { ($0["finding"] as? [String: Any])?["rule"] as? String == "target-teardown" })
        let evidence = try #require(teardown["evidence"] as? [String: Any], "\(teardown)")
        let file = try #require(evidence["file"] as? String)
        #expect(file.hasPrefix(dir + "/evidence/"))
        // The evidence, read on its own, shows the same finding on the same flow, with every
        // packet of the torn-down connection the capture had by then.
        let a = CaptureAnalysis()
        #expect(a.read(paths: [file]))
        let r = a.report()
        #expect(r.findings.contains { $0.rule == "target-teardown" })
        #expect(r.model.connections.map { "\($0.host)" } == [teardown["src"] as? String])
        let whole = s.report().model.connections.first { "\($0.host)" == teardown["src"] as? String }
        let packets = try #require(evidence["packets"] as? Int)
        #expect(packets > 10 && packets <= (whole?.tcp.packets ?? 0), "\(packets) of \(whole?.tcp.packets ?? 0)")
        #expect(a.analyzer.packets == packets)
    }
}

extension EvidenceRingTests {
    /// A restarted daemon takes over the ring files its previous run left, and deletes them
    /// when their time comes; the evidence directory keeps the newest cuts only.
    @Test func aRestartTakesOverTheRingAndEvidenceIsCapped() throws {
        let dir = temporaryFile("ring").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = SynthCapture()
        let c = RuleScenario.admin(s, kato: 10_000, keepAlives: [5, 10, 15])
        c.tcp.send(fromClient: false, [], at: s.t(200))
        let packets = s.packets.sorted { $0.0 < $1.0 }
        func feed(_ ring: EvidenceRing, _ range: Range<Int>) {
            for i in range {
                packets[i].1.withUnsafeBytes { b in
                    ring.write(Packet(ref: FrameRef(file: 0, frame: i + 1, timeNs: packets[i].0), linkType: 1, wireLength: b.count, bytes: b))
                }
            }
        }
        // The first run writes the packets of the first 15 s, then stops.
        let first = try EvidenceRing(directory: dir, linkType: 1, fileSeconds: 5, keepSeconds: 30)
        let early = packets.indices.filter { packets[$0].0 < s.t(16) }
        feed(first, early.startIndex..<(early.last! + 1))
        let left = EvidenceRing.names(dir, prefix: "ring-")
        #expect(left.count >= 3, "\(left)")
        // Their modification times stand for their last packets: set them to the capture's.
        for name in left {
            let t = Double(s.t(15)) / 1e9
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: t)], ofItemAtPath: dir + "/" + name)
        }
        // The second run takes them over; its packet at 200 s deletes them (ended > 30 s before).
        let second = try EvidenceRing(directory: dir, linkType: 1, fileSeconds: 5, keepSeconds: 30)
        #expect(second.files.map { ($0.path as NSString).lastPathComponent } == left)
        feed(second, (early.last! + 1)..<packets.count)
        #expect(Set(EvidenceRing.names(dir, prefix: "ring-")).isDisjoint(with: left))
        // Evidence: three cuts, two kept (the newest).
        second.evidenceKept = 2
        let conn = EvidenceWriter.Connection(a: Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40001), b: Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 4420),
                                             first: FrameRef(file: 0, frame: 1, timeNs: 0), last: FrameRef(file: 0, frame: 1, timeNs: .max))
        for n in ["a", "b", "c"] { _ = try second.cut([conn], name: n) }
        #expect(EvidenceRing.names(dir + "/evidence", prefix: "") == ["b.pcap", "c.pcap"])
    }
}

/// The tracker's index of connection positions follows the connections held, not the ids: a
/// daemon numbers every TCP flow it ever saw.
@Suite struct TrackerIndexTests {
    @Test func sparseIdsDoNotSizeTheIndex() {
        let t = SessionTracker()
        let host = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40000)
        let target = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 4420)
        let ids = [0, 1, 3, 5_000_000, 10_000_000, 10_000_001, 16_777_300, 40_000_000]
        for (i, id) in ids.enumerated() {
            let ref = FrameRef(file: 0, frame: i + 1, timeNs: Int64(i) * 1_000_000_000)
            var client = host
            client.port += UInt16(i)
            t.connectionEnded(ConnectionSummary(id: id, client: client, server: target, firstRef: ref, lastRef: ref, sawSYN: true, firstClose: nil,
                                                clientStream: StreamStats(), serverStream: StreamStats(), unframedBytes: 0, nvmeTCP: true))
        }
        #expect(t.positionByID.count < 10_000, "\(t.positionByID.count) slots for \(ids.count) connections")
        for (i, id) in ids.enumerated() { #expect(t.position(of: id) == i) }
        #expect(t.position(of: 2) == nil)
        #expect(t.position(of: 10_000_002) == nil)
        // Retiring them all leaves nothing indexed; ids after them are found again.
        #expect(t.retire(endedBefore: .max).connections == ids.count)
        #expect(t.positionByID.isEmpty && t.positionByLargeID.isEmpty)
        let ref = FrameRef(file: 0, frame: 99, timeNs: 0)
        t.connectionEnded(ConnectionSummary(id: 40_000_005, client: host, server: target, firstRef: ref, lastRef: ref, sawSYN: true, firstClose: nil,
                                            clientStream: StreamStats(), serverStream: StreamStats(), unframedBytes: 0, nvmeTCP: true))
        #expect(t.position(of: 40_000_005) == 0)
        #expect(t.positionByID.count < 10_000)
    }
}

/// The per-controller gap series: capped, the rest in one `_other` series, and removed with
/// their controllers.
@Suite struct ControllerSeriesTests {
    @Test func capOverflowAndRemoval() throws {
        let s = SynthCapture()
        // Three open associations: silences of 20, 15 and 10 s at the end, KATO 10 s.
        for (i, last) in [10.0, 15.0, 20.0].enumerated() {
            let c = s.connection()
            c.connect(at: s.t(0), kato: 10_000, subnqn: "nqn.2024-01.test:s\(i)", hostnqn: SynthCapture.hostnqn)
            c.keepAlive(at: s.t(last))
        }
        let tail = s.connection()
        tail.tcp.handshake(at: s.t(30))
        let m = MonitorMetrics(maxControllerSeries: 2)
        m.update(from: s.report())
        let page = String(decoding: m.page(), as: UTF8.self)
        let series = page.split(separator: "\n").filter { $0.hasPrefix("nvmetrace_keep_alive_gap_over_kato{") }
        #expect(series.count == 3, "\(series)")
        func ratio(_ sub: String) -> Double? {
            series.first { $0.contains("subnqn=\"\(sub)\"") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        // The first two by labels (s0, s1) have their own series; s2 (silent 10 s: 1.0) is _other.
        #expect(ratio("nqn.2024-01.test:s0").map { abs($0 - 2.0) < 0.01 } == true, "\(series)")
        #expect(ratio("nqn.2024-01.test:s1").map { abs($0 - 1.5) < 0.01 } == true, "\(series)")
        #expect(ratio("_other").map { abs($0 - 1.0) < 0.01 } == true, "\(series)")
        // Two controllers with the same labels (the NQN cut: one host, one target) share one
        // series holding the larger ratio, whichever comes last.
        let cut = SynthCapture()
        for last in [10.0, 20.0] {
            let c = cut.connection()
            c.connect(at: cut.t(0), kato: 10_000, subnqn: "nqn.2024-01.test:same", hostnqn: SynthCapture.hostnqn)
            c.keepAlive(at: cut.t(last))
        }
        cut.connection().tcp.handshake(at: cut.t(30))
        let same = MonitorMetrics()
        same.update(from: cut.report())
        let shared = String(decoding: same.page(), as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("nvmetrace_keep_alive_gap_over_kato{") }
        #expect(shared.count == 1 && shared.first.flatMap { Double($0.split(separator: " ").last ?? "") }.map { abs($0 - 2.0) < 0.01 } == true, "\(shared)")
        // None open: every series goes.
        m.update(from: SynthCapture().report())
        let after = String(decoding: m.page(), as: UTF8.self)
        #expect(!after.contains("nvmetrace_keep_alive_gap_over_kato{"), "\(after)")
    }

    /// A subsystem NQN is the peer's to choose: quotes, backslashes and line feeds in it are
    /// escaped, and promtool reads the page.
    @Test func hostileNQNsStayOneLabelValue() throws {
        let s = SynthCapture()
        let evil = "nqn.evil\"} 1\nnvmetrace_fake 9\\"
        let c = s.connection()
        c.connect(at: s.t(0), kato: 10_000, subnqn: evil, hostnqn: SynthCapture.hostnqn)
        c.keepAlive(at: s.t(5))
        c.tcp.send(fromClient: false, [], at: s.t(20))
        let m = MonitorMetrics()
        let r = s.report()
        // The decoder shows control bytes as \xNN; quotes and backslashes stay as sent.
        #expect(r.model.controllers.first?.subnqn == evil.replacingOccurrences(of: "\n", with: "\\x0a"))
        m.update(from: r)
        let page = String(decoding: m.page(), as: UTF8.self)
        #expect(!page.contains("\nnvmetrace_fake"), "\(page)")
        let file = temporaryFile("metrics.txt")
        try page.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try #require(FileManager.default.isExecutableFile(atPath: PrometheusTests.promtool), "promtool: apt-get install prometheus")
        let check = try runChild("/bin/sh", ["-c", "\(PrometheusTests.promtool) check metrics < '\(file.path)'"], seconds: 30)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    /// Latency classes from the opcodes (NVMe Base 2.1 Fig. 28, NVM Command Set 1.0 Fig. 13,
    /// Fabrics 1.1 Fig. 8): a fixed list of label values, anything else "other".
    @Test func commandClasses() {
        func k(_ op: UInt8, _ q: QueueKind, fctype: UInt8? = nil) -> String {
            MonitorMetrics.commandClass(CommandKind(opcode: op, fctype: fctype, queue: q))
        }
        #expect(k(0x02, .io) == "io/read")
        #expect(k(0x01, .io) == "io/write")
        #expect(k(0x00, .io) == "io/flush")
        #expect(k(0x09, .io) == "io/other")  // Dataset Management
        #expect(k(0x18, .admin) == "admin/keep-alive")
        #expect(k(0x06, .admin) == "admin/identify")
        #expect(k(0x02, .admin) == "admin/get-log-page")
        #expect(k(0x09, .admin) == "admin/features")
        #expect(k(0x0A, .admin) == "admin/features")
        #expect(k(0x7F, .admin, fctype: 0x01) == "fabrics/connect")
        #expect(k(0x7F, .admin, fctype: 0x00) == "fabrics/property")
        #expect(k(0x7F, .admin, fctype: 0x04) == "fabrics/property")
        #expect(k(0x7F, .admin, fctype: 0x05) == "fabrics/other")
        let all = Set(MonitorMetrics.commandClasses.map { $0.queue + "/" + $0.command })
        for op in UInt8.min...UInt8.max {
            #expect(all.contains(k(op, .io)) && all.contains(k(op, .admin)))
        }
    }
}

/// `--events FILE` rotation: by size, newest in FILE.1, at most `keep`, no line split.
@Suite struct EventLogTests {
    @Test func rotatesBySizeKeepingTheNewest() throws {
        let path = temporaryFile("events.json").path
        let log = try EventLog(path: path, maxBytes: 100, keep: 3)
        // Lines of 20 bytes with their newline: 5 to a file.
        let lines = (0..<32).map { String(format: "{\"n\":%013d}", $0) }
        #expect(lines[0].utf8.count == 19)
        for l in lines { log.write(l) }
        func read(_ p: String) -> [String] {
            ((try? String(contentsOfFile: p, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }
        // 32 lines: files of 5, so 6 full ones rotated and 2 in FILE; 3 kept beside it.
        #expect(read(path) == lines[30...31].map { $0 } + [""])
        #expect(read(path + ".1") == lines[25...29].map { $0 } + [""])
        #expect(read(path + ".2") == lines[20...24].map { $0 } + [""])
        #expect(read(path + ".3") == lines[15...19].map { $0 } + [""])
        #expect(!FileManager.default.fileExists(atPath: path + ".4"))
        #expect(log.rotations == 6)
        // Reopened, it appends and counts the size already there.
        let again = try EventLog(path: path, maxBytes: 100, keep: 3)
        again.write(lines[0])
        again.write(lines[1])
        again.write(lines[2])
        again.write(lines[3])
        // 2 lines there (40 bytes) and 3 more make 100 bytes; the fourth begins a new file.
        #expect(read(path) == [lines[3], ""])
        #expect(read(path + ".1") == [lines[30], lines[31], lines[0], lines[1], lines[2], ""])
        for p in [path, path + ".1", path + ".2", path + ".3"] { try? FileManager.default.removeItem(atPath: p) }
    }

    @Test func aFileThatCannotBeOpenedIsAnError() {
        #expect(throws: EventLog.OpenError.self) { try EventLog(path: "/nonexistent-dir/events.json") }
    }
}

/// The real captures played through the daemon packet by packet, with a clock that follows
/// them: the findings are those of the same capture read offline, every association the offline
/// model holds is announced, and every outage event lasts what the offline outage finding says.
@Suite struct MonitorOnRealCapturesTests {
    static let samples = ["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host", "B-persistent-discovery-healthy",
                          "C-oneshot-discovery", "D-io-traffic", "D2-io-traffic-digests", "E-keepalive-stall",
                          "K2-io-timeout-read-host-error-recovery"]

    @Test(arguments: samples)
    func theDaemonSaysWhatTheReportSays(sample: String) throws {
        let path = samplePath(sample)
        let (m, box) = MonitorTests.monitor()
        let source = try PcapFileSource(path: path, fileIndex: m.live.fileIndex)
        var last: Int64 = 0
        try source.forEach { p in
            m.packet(p)
            m.tick(nowNs: p.ref.timeNs)
            last = p.ref.timeNs
        }
        m.finish(nowNs: last)
        let offline = CaptureAnalysis()
        offline.read(paths: [path])
        let report = offline.report()
        let rules = report.findings.reduce(into: [String: Int]()) { $0[$1.rule, default: 0] += 1 }
        // Live, a silence is overdue before the target's teardown makes it an expiry: each
        // keep-alive-overdue the daemon said is on a connection the report finds expired.
        var live = MonitorTests.rules(box)
        let overdue = box.of("finding").filter { ($0["finding"] as? [String: Any])?["rule"] as? String == "keep-alive-overdue" }
            .compactMap { ($0["finding"] as? [String: Any])?["connection"] as? Int }
        let expired = Set(report.findings.filter { $0.rule == "keep-alive-expired" }.compactMap(\.connection))
        if rules["keep-alive-overdue"] == nil {
            #expect(Set(overdue).isSubset(of: expired), "\(sample): overdue on \(overdue), expired on \(expired)")
            live["keep-alive-overdue"] = nil
        }
        #expect(live == rules, "\(sample)")
        #expect(box.of("association-up").count == report.model.controllers.count)
        let closed = report.model.controllers.filter { AssociationEnd.firstClose($0, report.model)?.by != nil }.count
        #expect(box.of("association-down").count == closed)
        // Each outage event's length is an outage finding's (the report gives it in its title):
        // A's 10.23 s, A0's two.
        #expect(box.of("outage").count == rules["outage", default: 0] || !["A-persistent-discovery-kato0", "A0-persistent-discovery-kato0-unfixed-host"].contains(sample))
        for o in box.of("outage") {
            let seconds = try #require((o["outage"] as? [String: Any])?["seconds"] as? Double)
            let said = String(format: "Outage of %.2f s", seconds)
            #expect(report.findings.contains { $0.rule == "outage" && $0.title.hasPrefix(said) }, "\(sample): \(said) in \(report.findings.filter { $0.rule == "outage" }.map(\.title))")
        }
    }
}
