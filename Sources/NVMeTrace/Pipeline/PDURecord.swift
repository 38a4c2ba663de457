/// One decoded PDU in the context of its connection: what the `pdus` command prints and what
/// the session model consumes.
public struct PDURecord: Sendable {
    /// Connection index (counted like Wireshark's `tcp.stream`).
    public var connection: Int
    public var src: Endpoint
    public var dst: Endpoint
    /// The connection's queue id, once its Connect was seen.
    public var qid: UInt16?
    public var decoded: DecodedPDU

    public var pdu: PDU { decoded.pdu }
}
