import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// `async-event`: every AER completed with success is reported with its decoded event, the log
/// page the host read next, and the teardown and reconnect that followed; an AER aborted or left
/// outstanding is no event. Frames are found by the times the synthetic capture was written with.
@Suite struct AsyncEventRuleTests {
    static func analyse(_ s: SynthCapture) throws -> (Report, StoredCapture) {
        let path = s.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let analysis = CaptureAnalysis()
        analysis.read(paths: [path])
        return (analysis.report(), try loadCapture(path))
    }

    /// The frame written at `ns` (each time below is used by one packet only).
    static func frame(_ cap: StoredCapture, at ns: Int64) throws -> Int {
        let matches = cap.packets.indices.filter { cap.packets[$0].timeNs == ns }
        guard matches.count == 1 else { throw GroundTruthError("\(matches.count) frames at \(ns)") }
        return matches[0] + 1
    }

    @Test func discoveryLogChangeWithItsReadTeardownAndReconnect() throws {
        let scenario = try #require(RuleScenario.all.first { $0.rule == "async-event" })
        let s = scenario.build()
        let (r, cap) = try Self.analyse(s)
        let found = r.findings("async-event")
        #expect(found.count == 1)
        let f = try #require(found.first)
        let completion = try Self.frame(cap, at: s.t(5)), read = try Self.frame(cap, at: s.t(5.001))
        let fin = try Self.frame(cap, at: s.t(5.01)), connect = try Self.frame(cap, at: s.t(25.003))
        #expect(f.severity == .info)
        #expect(f.connection == 0 && f.relatedConnections == [1])
        #expect(f.frames.map(\.frame) == [completion, read, fin, connect])
        #expect(f.title == "Asynchronous event (Discovery Log Page Change) on 10.0.0.2:40001 → 10.0.0.1:8009")
        #expect(f.detail.contains("frame \(completion): Notice: Discovery Log Page Change, log page 0x70 (Discovery)"), "\(f.detail)")
        #expect(f.detail.contains("the host read log page 0x70 at frame \(read), 0.001 s later"), "\(f.detail)")
        #expect(f.detail.contains("the target closed the connection (FIN, frame \(fin)) 0.010 s after the last event"), "\(f.detail)")
        #expect(f.detail.contains("the host connected again on connection 1 (Connect frame \(connect), 19.99 s later)"), "\(f.detail)")
    }

    /// An ANA change on an I/O controller's admin queue, no log page read, the capture ending with
    /// the connection open: the event alone.
    @Test func anEventTheHostDidNotReadAbout() throws {
        let s = SynthCapture()
        let a = s.connection()
        a.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        a.asyncEvent(at: s.t(0.1), completed: s.t(3), type: 2, info: 0x03, logPage: 0x0C)
        a.keepAlive(at: s.t(4))
        let (r, cap) = try Self.analyse(s)
        let f = try #require(r.findings("async-event").first)
        #expect(f.frames.map(\.frame) == [try Self.frame(cap, at: s.t(3))])
        #expect(f.title.hasPrefix("Asynchronous event (Asymmetric Namespace Access Change)"))
        #expect(f.detail.contains("log page 0x0c (Asymmetric Namespace Access); the host read no log page on this connection after it"), "\(f.detail)")
        #expect(!f.detail.contains("closed the connection"))
    }

    /// An AER aborted when its queue is deleted (Command Aborted due to SQ Deletion), one left
    /// outstanding at the host's close, and one failing with another status: no event.
    @Test func abortedAndOutstandingRequestsAreNoEvents() throws {
        let s = SynthCapture()
        let a = s.connection()
        a.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        a.asyncEvent(at: s.t(0.1), completed: s.t(1), type: 2, info: 0xF0, logPage: 0x70, status: 0x008)
        a.asyncEvent(at: s.t(1.1), completed: s.t(2), type: 2, info: 0x00, logPage: 0x04, status: 0x002)
        a.asyncEventRequest(at: s.t(2.1))
        a.tcp.fin(fromClient: true, at: s.t(3))
        let (r, _) = try Self.analyse(s)
        #expect(r.findings("async-event").isEmpty, "\(r.findings("async-event").map(\.title))")
    }

    /// Events past those described are counted; each one read about is paired with the first log
    /// page read after it (two events before one read share it).
    @Test func manyEventsAreCountedAndShareTheReadThatFollows() throws {
        let s = SynthCapture()
        let a = s.connection()
        a.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        for k in 0..<7 {
            a.asyncEvent(at: s.t(1 + Double(k)), completed: s.t(1.5 + Double(k)), type: 2, info: 0x00, logPage: 0x04)
            if k % 2 == 1 { a.getLogPage(at: s.t(1.6 + Double(k)), lid: 0x04) }
        }
        let (r, cap) = try Self.analyse(s)
        let f = try #require(r.findings("async-event").first)
        #expect(f.title.hasPrefix("7 asynchronous events (Namespace Attribute Changed)"))
        #expect(f.detail.hasSuffix("; 2 more."), "\(f.detail)")
        let firstRead = try Self.frame(cap, at: s.t(2.6))
        // Events 0 and 1 were both followed first by the read at 2.6 s.
        #expect(f.detail.components(separatedBy: "read log page 0x04 at frame \(firstRead),").count == 3, "\(f.detail)")
        #expect(f.evidence.filter { $0.what.hasPrefix("Asynchronous Event completion") }.count == AsyncEventRule.described)
    }

    /// Nothing in the samples completes an AER with success (their README names no event).
    @Test(arguments: sampleNames)
    func samplesHaveNoEvents(_ name: String) throws {
        let analysis = CaptureAnalysis()
        analysis.read(paths: [samplePath(name)])
        #expect(analysis.report().findings("async-event").isEmpty)
    }
}
