/// What the TCP headers of one connection say about its transport, kept as running figures (a
/// few counters and frames per connection, however long it lives): the handshake, zero-window
/// advertisements, resets. Retransmissions and out-of-order segments are counted by the
/// reassemblers (`StreamStats`), which see the sequence space.
public struct TCPHealth: Sendable, Equatable {
    /// One side's advertisements.
    public struct Side: Sendable, Equatable {
        /// RST segments it sent.
        public var rsts = 0
        /// Periods in which it advertised a zero receive window (RFC 9293 §3.8.6.2: the peer may
        /// send nothing but window probes until the window opens again).
        public var zeroWindows = 0
        /// Their total length, and the longest one with the frame that opened it. A period still
        /// open when the connection ended counts up to its last packet.
        public var zeroWindowNs: Int64 = 0
        public var longestZeroWindowNs: Int64 = 0
        public var longestZeroWindowStart: FrameRef?

        mutating func closeZeroWindow(since: FrameRef, at ref: FrameRef) {
            let ns = max(0, ref.timeNs &- since.timeNs)
            zeroWindowNs &+= ns
            if ns > longestZeroWindowNs || longestZeroWindowStart == nil {
                longestZeroWindowNs = ns
                longestZeroWindowStart = since
            }
        }
    }

    /// The initiator (client) and the responder (server), as the flow's roles say.
    public var client = Side()
    public var server = Side()
    /// SYNs the client sent (retransmitted ones included), the first of them, and whether the
    /// server answered with a SYN-ACK.
    public var syns = 0
    public var synRef: FrameRef?
    public var synAcked = false
    /// SYN to the ACK of the SYN-ACK, as Wireshark's `tcp.analysis.initial_rtt` measures it: the
    /// round trip the capture point sees on both sides of it (nil without the whole handshake).
    public var handshakeRTTNs: Int64?

    public init() {}

    /// The side's figures: the client's for `byClient`.
    public func side(byClient: Bool) -> Side { byClient ? client : server }
}

/// What a flow keeps of every segment for its `TCPHealth`: a few words, since a SYN flood makes
/// 100,000 flows. Zero windows, which are rare, live in a box made at the first.
struct FlowHealthState {
    var syns: Int32 = 0
    var clientRsts: Int32 = 0
    var serverRsts: Int32 = 0
    /// Times of the SYN-ACK and of the client's ACK of it (-1: not seen).
    var synAckNs: Int64 = -1
    var handshakeAckNs: Int64 = -1
    var zeroWindows: ZeroWindowSides?

    /// Each side's zero-window figures, and the frame that opened the zero window in force.
    final class ZeroWindowSides {
        var client = TCPHealth.Side()
        var server = TCPHealth.Side()
        var clientSince: FrameRef?
        var serverSince: FrameRef?

        func window(_ window: UInt16, byClient: Bool, ref: FrameRef) {
            var since = byClient ? clientSince : serverSince
            if window == 0 {
                guard since == nil else { return }
                since = ref
                if byClient { client.zeroWindows += 1 } else { server.zeroWindows += 1 }
            } else {
                guard let open = since else { return }
                if byClient { client.closeZeroWindow(since: open, at: ref) } else { server.closeZeroWindow(since: open, at: ref) }
                since = nil
            }
            if byClient { clientSince = since } else { serverSince = since }
        }
    }

    /// Either side's zero window is in force.
    var zeroWindowOpen: Bool {
        guard let z = zeroWindows else { return false }
        return z.clientSince != nil || z.serverSince != nil
    }

    mutating func window(_ window: UInt16, byClient: Bool, ref: FrameRef) {
        if zeroWindows == nil {
            guard window == 0 else { return }
            zeroWindows = ZeroWindowSides()
        }
        zeroWindows!.window(window, byClient: byClient, ref: ref)
    }

    mutating func swapSides() {
        (clientRsts, serverRsts) = (serverRsts, clientRsts)
        if let z = zeroWindows {
            (z.client, z.server) = (z.server, z.client)
            (z.clientSince, z.serverSince) = (z.serverSince, z.clientSince)
        }
    }

    /// The health as of `end` (a zero window still in force counted up to it), with the flow's SYN.
    func health(syn: FrameRef?, end: FrameRef) -> TCPHealth {
        var h = TCPHealth()
        if let z = zeroWindows {
            h.client = z.client
            h.server = z.server
            if let since = z.clientSince { h.client.closeZeroWindow(since: since, at: end) }
            if let since = z.serverSince { h.server.closeZeroWindow(since: since, at: end) }
        }
        h.client.rsts = Int(clientRsts)
        h.server.rsts = Int(serverRsts)
        h.syns = Int(syns)
        h.synRef = syn
        h.synAcked = synAckNs >= 0
        if let s = syn, handshakeAckNs >= 0 { h.handshakeRTTNs = handshakeAckNs &- s.timeNs }
        return h
    }
}
