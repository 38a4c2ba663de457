@testable import NVMeTrace

/// An analyzer consumer for tests: owned copies of records, diagnostics and connection summaries
/// to closures.
final class Collector: AnalyzerConsumer {
    let detail: RecordDetail
    var onPDU: ((OwnedPDURecord) -> Void)?
    var onLentPDU: ((LentPDURecord) -> Void)?
    var onDiagnostic: ((Diagnostic) -> Void)?
    var onEnd: ((ConnectionSummary) -> Void)?
    var onClose: ((ConnectionSummary) -> Void)?
    var onHostBytesLost: ((Int) -> Void)?
    var onTimed: ((Int, [CommandTiming]) -> Void)?

    init(detail: RecordDetail = .full) { self.detail = detail }

    func pdu(_ record: LentPDURecord) {
        onLentPDU?(record)
        onPDU?(record.owned())
    }
    func diagnostic(_ d: Diagnostic) { onDiagnostic?(d) }
    func hostBytesLost(connection: Int, ref: FrameRef) { onHostBytesLost?(connection) }
    func commandsTimed(connection: Int, _ timings: [CommandTiming]) { onTimed?(connection, timings) }
    func connectionClosed(_ summary: ConnectionSummary) { onClose?(summary) }
    func connectionEnded(_ summary: ConnectionSummary) { onEnd?(summary) }
}

/// A flow table delegate for tests of reassembly alone.
final class TableHooks: FlowTableDelegate {
    var started: ((Flow) -> Void)?
    var ended: ((Flow) -> Void)?
    init(started: ((Flow) -> Void)? = nil, ended: ((Flow) -> Void)? = nil) {
        self.started = started
        self.ended = ended
    }
    func flowStarted(_ flow: Flow) { started?(flow) }
    func flowClosed(_ flow: Flow) {}
    func flowEnded(_ flow: Flow, ref: FrameRef) { ended?(flow) }
}
