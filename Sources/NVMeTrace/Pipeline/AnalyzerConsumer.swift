/// What the stages after decoding receive from an `Analyzer`: its one output contract.
///
/// Call order, all on the thread that feeds the analyzer, in capture order:
/// - `pdu` for each PDU framed on an NVMe/TCP connection, as soon as it is complete (PDUs of one
///   connection in the order they were completed; a connection's first `pdu` may come before or
///   after the model has heard of it otherwise);
/// - `diagnostic` and `hostBytesLost` as they happen, between the PDUs they concern;
/// - `commandsTimed` with commands completed on a connection, in completion order, one by one
///   at first and then in batches (`NVMeConnectionDecoder.timingsBatch`): after the `pdu` of
///   the last one's completion, at the latest before the connection's `connectionEnded`,
///   whatever the `detail`;
/// - `connectionClosed` after each FIN or RST segment of a connection decoded as NVMe/TCP (its
///   end is known from then on);
/// - `connectionEnded` exactly once per TCP connection, after its last `pdu`, when it leaves the
///   flow table (closed and lingered, evicted, or at the end of the input: `Analyzer.finish`).
///   Connections that are not NVMe/TCP end too (`ConnectionSummary.nvmeTCP` says which).
///
/// Every PDU record is lent: a consumer that keeps one takes a copy (`LentPDURecord.owned()`).
public protocol AnalyzerConsumer: AnyObject {
    /// What this consumer needs of each PDU, read once per connection when its decoding starts.
    var detail: RecordDetail { get }
    func pdu(_ record: LentPDURecord)
    func diagnostic(_ diagnostic: Diagnostic)
    /// Bytes the host sent on `connection` were lost from the capture between PDUs (a hole no PDU
    /// header spans): a command may have been among them.
    func hostBytesLost(connection: Int, ref: FrameRef)
    /// Commands of `connection` matched with their completions, timed (not the Asynchronous
    /// Event Requests). The array is lent: copy what is kept.
    func commandsTimed(connection: Int, _ timings: [CommandTiming])
    func connectionClosed(_ summary: ConnectionSummary)
    func connectionEnded(_ summary: ConnectionSummary)
}

/// How much of each PDU the pipeline decodes for its consumer.
public enum RecordDetail: Sendable {
    /// Every PDU decoded in full (`pdus`, tests).
    case full
    /// PDUs of plain I/O traffic (reads, writes and their data, on an I/O queue, with nothing
    /// to warn about: `NVMeConnectionDecoder.decodePlainIO`) are summarised (`PDUBody.ioSummary`)
    /// instead of decoded: for a consumer that needs no more of them than their kind and time
    /// (the session model). Decoded in full, each cost ~1,300 instructions (callgrind).
    case summaryForPlainIO
}

extension AnalyzerConsumer {
    public var detail: RecordDetail { .full }
    public func diagnostic(_ diagnostic: Diagnostic) {}
    public func hostBytesLost(connection: Int, ref: FrameRef) {}
    public func commandsTimed(connection: Int, _ timings: [CommandTiming]) {}
    public func connectionClosed(_ summary: ConnectionSummary) {}
    public func connectionEnded(_ summary: ConnectionSummary) {}
}
