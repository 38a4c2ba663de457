import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The contracts written on the pipeline's seams (docs/ARCHITECTURE.md), checked as a consumer and
/// a flow-table delegate see them: on every sample and on a capture with every kind of connection
/// the analyzer tells apart (NVMe/TCP port, an ICReq on another port, other traffic, a SYN alone,
/// one picked up mid-stream, one reset).
@Suite struct PipelineContractTests {
    enum Call {
        case pdu(connection: Int, summary: Bool, qid: UInt16?)
        case diagnostic(connection: Int?)
        case hostBytesLost(Int)
        case closed(ConnectionSummary)
        case ended(ConnectionSummary)
    }

    final class Recorder: AnalyzerConsumer {
        let detail: RecordDetail
        var calls: [Call] = []
        init(detail: RecordDetail) { self.detail = detail }
        func pdu(_ r: LentPDURecord) {
            var summary = false
            if case .ioSummary = r.body { summary = true }
            calls.append(.pdu(connection: r.connection, summary: summary, qid: r.qid))
        }
        func diagnostic(_ d: Diagnostic) { calls.append(.diagnostic(connection: d.connection)) }
        func hostBytesLost(connection: Int, ref: FrameRef) { calls.append(.hostBytesLost(connection)) }
        func connectionClosed(_ s: ConnectionSummary) { calls.append(.closed(s)) }
        func connectionEnded(_ s: ConnectionSummary) { calls.append(.ended(s)) }
    }

    /// Stands between the flow table and the analyzer, recording what the table tells it.
    final class TableSpy: FlowTableDelegate {
        enum Event: Equatable { case started, closed, ended }
        let inner: Analyzer
        var events: [Int: [Event]] = [:]
        init(_ inner: Analyzer) { self.inner = inner }
        func flowStarted(_ flow: Flow) {
            events[flow.index, default: []].append(.started)
            inner.flowStarted(flow)
        }
        func flowClosed(_ flow: Flow) {
            events[flow.index, default: []].append(.closed)
            inner.flowClosed(flow)
        }
        func flowEnded(_ flow: Flow, ref: FrameRef) {
            #expect(flow.retired, "flow \(flow.index) ends once out of the table")
            events[flow.index, default: []].append(.ended)
            inner.flowEnded(flow, ref: ref)
        }
    }

    struct Outcome {
        var calls: [Call]
        var table: [Int: [TableSpy.Event]]
        var flowsCreated: Int
        var pduCount: Int
    }

    static func run(_ path: String, detail: RecordDetail) throws -> Outcome {
        let analyzer = Analyzer()
        let recorder = Recorder(detail: detail)
        analyzer.consumer = recorder
        let spy = TableSpy(analyzer)
        analyzer.flows.delegate = spy
        try withExtendedLifetime(spy) {
            try analyzer.read(path: path)
            analyzer.finish()
        }
        #expect(analyzer.liveHandlers == 0, "handlers left after the end of the input")
        #expect(analyzer.flows.flows.isEmpty)
        return Outcome(calls: recorder.calls, table: spy.events, flowsCreated: analyzer.flows.nextIndex,
                       pduCount: analyzer.pduCount)
    }

    /// What every input must show, whatever it holds.
    static func checkContracts(_ o: Outcome, _ what: String) {
        // Every TCP connection ends exactly once, and nothing about it comes after.
        var ended: [Int: ConnectionSummary] = [:]
        var pdus = 0
        for call in o.calls {
            switch call {
            case let .pdu(id, _, _):
                pdus += 1
                #expect(ended[id] == nil, "\(what): a PDU of connection \(id) after its end")
            case let .diagnostic(id?), let .hostBytesLost(id):
                #expect(ended[id] == nil, "\(what): news of connection \(id) after its end")
            case .diagnostic(nil):
                break
            case let .closed(s):
                #expect(ended[s.id] == nil, "\(what): connection \(s.id) closed after its end")
                #expect(s.nvmeTCP, "\(what): a close reported for connection \(s.id), not decoded as NVMe/TCP")
            case let .ended(s):
                #expect(ended[s.id] == nil, "\(what): connection \(s.id) ended twice")
                ended[s.id] = s
            }
        }
        #expect(Set(ended.keys) == Set(0..<o.flowsCreated), "\(what): \(ended.count) ends for \(o.flowsCreated) connections")
        #expect(pdus == o.pduCount, "\(what)")
        // A connection whose PDUs were handed on carried NVMe/TCP.
        for case let .pdu(id, _, _) in o.calls {
            #expect(ended[id]?.nvmeTCP == true, "\(what): PDUs on connection \(id), not NVMe/TCP at its end")
        }
        // The flow table: per flow, at most one start, before anything else but closes; exactly
        // one end, last.
        #expect(Set(o.table.keys) == Set(0..<o.flowsCreated), "\(what)")
        for (id, events) in o.table {
            #expect(events.last == .ended && events.filter { $0 == .ended }.count == 1, "\(what): flow \(id): \(events)")
            #expect(events.filter { $0 == .started }.count <= 1, "\(what): flow \(id): \(events)")
        }
    }

    @Test(arguments: sampleNames)
    func samplesKeepTheContracts(_ name: String) throws {
        for detail in [RecordDetail.full, .summaryForPlainIO] {
            let o = try Self.run(samplePath(name), detail: detail)
            Self.checkContracts(o, "\(name) \(detail)")
            #expect(o.pduCount > 0)
            // Summaries only when asked for, only of I/O queues.
            for case let .pdu(id, summary, qid) in o.calls where summary {
                #expect(detail == .summaryForPlainIO, "\(name): a summary given to a consumer that asked for every PDU")
                #expect(qid != nil && qid != 0, "\(name): connection \(id): a summary on queue \(qid.map(String.init) ?? "unknown")")
            }
        }
    }

    /// Every kind of connection the analyzer tells apart, in one capture.
    static func mixedCapture() -> String {
        let cap = SynthCapture()
        // NVMe/TCP on its port: admin queue, then an I/O queue with reads; the target closes both.
        let admin = cap.connection()
        admin.connect(at: cap.t(0), qid: 0, kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 3)
        let io = cap.connection()
        io.connect(at: cap.t(0.1), qid: 1, kato: 0, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn, cntlid: 3)
        for k in 0..<20 { io.read(at: cap.t(1 + Double(k) / 100), bytes: 4096) }
        io.tcp.fin(fromClient: false, at: cap.t(2))
        admin.tcp.fin(fromClient: false, at: cap.t(2.1))
        // An ICReq on another port: that target speaks NVMe/TCP from then on.
        let other = cap.connection(port: 9555)
        other.connect(at: cap.t(3), qid: 0, kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        other.keepAlive(at: cap.t(4))
        // Other traffic on yet another port, its handshake seen: the server speaks first.
        let web = cap.connection(port: 8081)
        web.tcp.handshake(at: cap.t(5))
        web.tcp.send(fromClient: false, Array("HTTP/1.1 200 OK\r\n\r\n".utf8), at: cap.t(5.1))
        web.tcp.send(fromClient: true, Array("GET / HTTP/1.1\r\n\r\n".utf8), at: cap.t(5.2))
        web.tcp.fin(fromClient: true, at: cap.t(5.3))
        // A handshake and nothing more, then one reset after its ICReq and Connect.
        let syn = cap.connection()
        syn.tcp.handshake(at: cap.t(6))
        let reset = cap.connection()
        reset.connect(at: cap.t(7), qid: 0, kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        reset.tcp.rst(fromClient: true, at: cap.t(7.5))
        // Picked up mid-stream on the proven target's port: Keep Alives without a handshake.
        let mid = cap.connection(port: 9555)
        for k in 0..<6 { mid.keepAlive(at: cap.t(8 + Double(k))) }
        return cap.write()
    }

    @Test func everyKindOfConnectionKeepsTheContracts() throws {
        let path = Self.mixedCapture()
        defer { try? FileManager.default.removeItem(atPath: path) }
        for detail in [RecordDetail.full, .summaryForPlainIO] {
            let o = try Self.run(path, detail: detail)
            Self.checkContracts(o, "mixed \(detail)")
            #expect(o.flowsCreated == 7)
            var ended: [Int: ConnectionSummary] = [:]
            for case let .ended(s) in o.calls { ended[s.id] = s }
            // NVMe/TCP: both 4420 connections, the ICReq on 9555, the handshake to 4420 (more
            // than a SYN and its answer: `Analyzer.isNVMeTCP`), the reset one, the one picked up
            // mid-stream on the proven target; not the web connection.
            #expect(ended.values.filter(\.nvmeTCP).map(\.id).sorted() == [0, 1, 2, 4, 5, 6], "\(ended.values.map { ($0.id, $0.nvmeTCP) })")
            // The handshake alone never carried payload: the table never asked for its decoding.
            #expect(o.table[4] == [.ended])
            // Closes reported: the target's FINs (connections 0 and 1: one per FIN or RST
            // segment) and the reset.
            var closed: [Int: Int] = [:]
            for case let .closed(s) in o.calls { closed[s.id, default: 0] += 1 }
            #expect(Set(closed.keys) == [0, 1, 5], "\(closed)")
            let summaries = o.calls.filter { if case .pdu(_, true, _) = $0 { true } else { false } }.count
            #expect(detail == .full ? summaries == 0 : summaries >= 40, "\(summaries) summaries")
        }
    }
}
