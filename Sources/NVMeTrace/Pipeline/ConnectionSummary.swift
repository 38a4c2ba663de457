/// What the pipeline tells its consumer (the session model) about a TCP connection when it closes or ends: a
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
    /// What each direction's reassembly counted (client → server, server → client).
    public var clientStream: StreamStats
    public var serverStream: StreamStats
    /// Bytes that could not be framed as PDUs.
    public var unframedBytes: UInt64
    /// Carried NVMe/TCP (decoded, or on a port or target known to), though maybe without a PDU.
    public var nvmeTCP: Bool
    /// Commands waiting for their completion at this moment, Asynchronous Event Requests left out
    /// (they wait by design): how many, and the oldest few (`Analyzer.waitingCommandsKept`).
    public var waitingCommands = 0
    public var oldestWaitingCommands: [OutstandingCommand] = []
    /// The last time controller→host bytes went missing: a command sent before then may have
    /// been answered unseen.
    public var completionsMissedAt: FrameRef?
    /// Commands whose CID a later command took while they waited (`NVMeConnectionDecoder.replacedUnanswered`).
    public var replacedUnanswered = 0

    /// Segments of the connection in the capture, both directions.
    public var packets = 0
    /// The handshake, zero windows and resets, as of `lastRef`.
    public var health = TCPHealth()
    /// Set for a connection attempt to an NVMe/TCP port that never got a SYN-ACK (the handshake's
    /// SYN is in the capture): refused by RST, or unanswered. Such a flow is no NVMe/TCP
    /// connection (`nvmeTCP` is false), but the model counts it against its target.
    public var failedConnect: FailedConnect?

    /// Stream bytes, both directions: captured, cut by the snap length, lost before the capture.
    public var capturedBytes: UInt64 { clientStream.deliveredBytes + serverStream.deliveredBytes }
    public var notCapturedBytes: UInt64 { clientStream.notCapturedBytes + serverStream.notCapturedBytes }
    public var lostBytes: UInt64 { clientStream.gapBytes + serverStream.gapBytes }
}

/// A TCP connection attempt to an NVMe/TCP target port that the target never accepted.
public enum FailedConnect: Sendable, Equatable {
    /// The target answered the SYN with RST (RFC 9293 §3.10.7.1: no listener on the port).
    case refused(syn: FrameRef, rst: FrameRef)
    /// No answer to `syns` SYNs (retransmissions included), the last at `last`.
    case unanswered(syn: FrameRef, syns: Int, last: FrameRef)

    /// The first SYN.
    public var syn: FrameRef {
        switch self { case .refused(let s, _), .unanswered(let s, _, _): return s }
    }
    /// The last frame of the attempt (the RST, or the last SYN).
    public var last: FrameRef {
        switch self { case .refused(_, let r): return r; case .unanswered(_, _, let l): return l }
    }
}
