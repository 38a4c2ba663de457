/// One decoded PDU in the context of its connection: what the `pdus` command prints and what
/// tests inspect. Owned: its header is a copy (see `PDURecordView`).
public struct PDURecord: Sendable {
    /// Connection index (counted like Wireshark's `tcp.stream`).
    public var connection: Int
    public var src: Endpoint
    public var dst: Endpoint
    /// The connection's queue id, once its Connect was seen.
    public var qid: UInt16?
    public var decoded: DecodedPDU

    public var pdu: PDU { decoded.pdu }

    public init(connection: Int, src: Endpoint, dst: Endpoint, qid: UInt16?, decoded: DecodedPDU) {
        self.connection = connection
        self.src = src
        self.dst = dst
        self.qid = qid
        self.decoded = decoded
    }

    /// An owned copy of a lent record.
    public init(_ v: PDURecordView) {
        self.init(connection: v.connection, src: v.src, dst: v.dst, qid: v.qid,
                  decoded: DecodedPDU(pdu: PDU(v.pdu), body: v.body, connectData: v.connectData,
                                      completed: v.completed))
    }

    /// Lends this record as the pipeline does.
    public func withView<R>(_ body: (PDURecordView) throws -> R) rethrows -> R {
        try decoded.pdu.withFramed { f in
            try body(PDURecordView(connection: connection, src: src, dst: dst, qid: qid, pdu: f,
                                   body: decoded.body, connectData: decoded.connectData, completed: decoded.completed))
        }
    }
}

/// A decoded PDU in its connection's context, lent for the length of a call: the PDU's header
/// and data still point into the framer's buffers (or the packet). Every PDU decoded in full is
/// handed on in this form (plain I/O PDUs may be summarised instead: `Analyzer.onPlainIOPDU`);
/// the session model reads it in place, and a `PDURecord` (a copy) is made only for a consumer
/// that keeps or prints records.
public struct PDURecordView {
    public var connection: Int
    public var src: Endpoint
    public var dst: Endpoint
    public var qid: UInt16?
    public var pdu: FramedPDU
    public var body: DecodedPDU.Body
    /// The Connect data this PDU carried in full (see `DecodedPDU.connectData`).
    public var connectData: ConnectData?
    /// The command this PDU completed (see `DecodedPDU.completed`).
    public var completed: CompletedCommand?
    /// True for PDUs the host sends (by PDU type).
    public var fromHost: Bool { pdu.type.fromHost }

    public init(connection: Int, src: Endpoint, dst: Endpoint, qid: UInt16?, pdu: FramedPDU, body: DecodedPDU.Body,
                connectData: ConnectData? = nil, completed: CompletedCommand? = nil) {
        self.connection = connection
        self.src = src
        self.dst = dst
        self.qid = qid
        self.pdu = pdu
        self.body = body
        self.connectData = connectData
        self.completed = completed
    }
}
