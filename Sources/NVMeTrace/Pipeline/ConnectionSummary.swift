/// What the pipeline tells the session model about a TCP connection when it closes or ends: a
/// value, taken at that moment, instead of the live `Flow` (which the flow table goes on changing,
/// and which would tie the model to reassembly's internals).
public struct ConnectionSummary: Sendable {
    /// Connection index (counted like Wireshark's `tcp.stream`).
    public var id: Int
    /// The initiator (the host, by the handshake or as guessed) and the responder.
    public var client: Endpoint
    public var server: Endpoint
    public var firstRef: FrameRef
    public var lastRef: FrameRef
    /// The handshake's SYN is in the capture.
    public var sawSYN: Bool
    /// The first FIN or RST: who sent it (true: the client), which, and where.
    public var firstClose: (byClient: Bool, kind: CloseEvent.Kind, ref: FrameRef)?
    /// Stream bytes, both directions: captured, cut by the snap length, lost before the capture.
    public var capturedBytes: UInt64
    public var notCapturedBytes: UInt64
    public var lostBytes: UInt64
    /// Bytes that could not be framed as PDUs.
    public var unframedBytes: UInt64
    /// Carried NVMe/TCP (decoded, or on a port or target known to), though maybe without a PDU.
    public var nvmeTCP: Bool
}

extension Analyzer {
    /// The summary of `flow` as it stands; `nvmeTCP` when the caller already knows it (a close
    /// reported by `onFlowClose` only updates a connection the model knows).
    public func summary(of flow: Flow, nvmeTCP: Bool? = nil) -> ConnectionSummary {
        let (cs, ss) = (flow.clientStream.stats, flow.serverStream.stats)
        return ConnectionSummary(
            id: flow.index, client: flow.client, server: flow.server, firstRef: flow.firstRef, lastRef: flow.lastRef,
            sawSYN: flow.synRef != nil,
            firstClose: flow.firstClose.map { (byClient: $0.0 == .clientToServer, kind: $0.1.kind, ref: $0.1.ref) },
            capturedBytes: cs.deliveredBytes + ss.deliveredBytes, notCapturedBytes: cs.notCapturedBytes + ss.notCapturedBytes,
            lostBytes: cs.gapBytes + ss.gapBytes, unframedBytes: unframedBytes(of: flow), nvmeTCP: nvmeTCP ?? isNVMeTCP(flow))
    }
}
