/// What a PDU means, as far as it was decoded.
///
/// A plain value (no references): it is built, moved and dropped for every PDU, and an enum
/// holding references is destroyed through a generic witness (~150 instructions per PDU;
/// callgrind). The references (`connectData`, `completed`) ride beside it in `PDURecord`.
public enum PDUBody: Sendable {
    case icReq(InitializeConnection?)
    case icResp(InitializeConnection?)
    case termReq(TerminationRequest?)
    case command(NVMeCommand)
    /// A CapsuleResp; its command, when matched, is the record's `completed`.
    case completion(NVMeCompletion)
    case h2cData(DataTransferHeader?)
    /// C2HData; with SUCCESS it also completes its command (`completed`).
    case c2hData(DataTransferHeader?, completion: NVMeCompletion?)
    case r2t(DataTransferHeader?)
    /// The header digest did not match: the header's fields are not trusted.
    case untrusted
    /// The capture cut the header before the fields that give the PDU its meaning (a
    /// CapsuleCmd's CID, a CapsuleResp's CID): framed, counted, not decoded.
    case notCaptured
    /// A PDU of plain I/O traffic, summarised rather than decoded (`AnalyzerOptions.detail` is
    /// `.summaryForPlainIO`; `NVMeConnectionDecoder.decodePlainIO` says which PDUs qualify):
    /// for a command its kind, nil for its completion, data and R2T PDUs. Nothing else about it
    /// was decoded, and nothing about it is worth a warning.
    case ioSummary(command: CommandKind?)
}

/// One PDU in the context of its connection, with its NVMe meaning: what the pipeline hands on
/// (`AnalyzerConsumer.pdu`), what the session model reads, what `pdus` prints.
///
/// One type over lent or owned bytes, as `PDUFrame`: the pipeline lends every record
/// (`LentPDURecord`, its header and data still in the framer's buffers, the objects it refers
/// to not retained: valid for the call); a consumer that keeps records takes a copy (`owned()`).
public struct PDURecord<Bytes: PDUBytes> {
    // The frame first, the byte-sized fields last: built from the framer's frame for every PDU,
    // a record laid out otherwise was built through a second copy of it (callgrind).
    public var pdu: PDUFrame<Bytes>
    /// The Connect data or the completed command: a host PDU may carry the one, a controller PDU
    /// complete the other, never both. One reference, held as the bytes are (`PDUBytes`): a lent
    /// record does not retain it.
    private var attachment: Bytes.Reference
    /// The Connect data this PDU carried in full: in-capsule on the Connect's CapsuleCmd, or on
    /// the H2CData that brought its last byte.
    public var connectData: ConnectData? { attachment.object as? ConnectData }
    /// The command this PDU completed (CapsuleResp, C2HData with SUCCESS), when the capture
    /// showed it.
    public var completed: CompletedCommand? { attachment.object as? CompletedCommand }
    /// Connection index (counted like Wireshark's `tcp.stream`).
    public var connection: Int
    public var src: Endpoint
    public var dst: Endpoint
    /// What the PDU means (a full decode, or a summary of plain I/O).
    public var body: PDUBody
    /// The connection's queue id, once its Connect was seen.
    public var qid: UInt16?
    /// True for PDUs the host sends (by PDU type).
    public var fromHost: Bool { pdu.type.fromHost }

    public init(connection: Int, src: Endpoint, dst: Endpoint, qid: UInt16?, pdu: PDUFrame<Bytes>, body: PDUBody,
                connectData: ConnectData? = nil, completed: CompletedCommand? = nil) {
        self.connection = connection
        self.src = src
        self.dst = dst
        self.qid = qid
        self.pdu = pdu
        self.body = body
        // A PDU carries Connect data or completes a command (by its direction), never both.
        attachment = Bytes.Reference(connectData ?? completed)
    }
}

/// A record as the pipeline lends it: valid only for the length of the call.
public typealias LentPDURecord = PDURecord<UnsafeRawBufferPointer>
/// A record with its own copy of the PDU's bytes.
public typealias OwnedPDURecord = PDURecord<[UInt8]>

extension PDURecord: Sendable where Bytes == [UInt8] {}

extension PDURecord where Bytes == UnsafeRawBufferPointer {
    /// An owned copy.
    public func owned() -> OwnedPDURecord {
        OwnedPDURecord(connection: connection, src: src, dst: dst, qid: qid, pdu: pdu.owned(), body: body,
                       connectData: connectData, completed: completed)
    }
}

extension PDURecord where Bytes == [UInt8] {
    /// Lends this record as the pipeline does.
    public func lent<R>(_ body: (LentPDURecord) throws -> R) rethrows -> R {
        try pdu.lent { p in
            try body(LentPDURecord(connection: connection, src: src, dst: dst, qid: qid, pdu: p, body: self.body,
                                   connectData: connectData, completed: completed))
        }
    }
}
