/// One TCP connection: its endpoints, handshake and teardown, and (once it is known to carry a
/// protocol worth decoding) a reassembler per direction.
public final class Flow {
    /// Connection index in order of first appearance, counted like Wireshark's `tcp.stream`.
    public let index: Int
    public let key: FlowKey
    /// The initiator (SYN sender), or a guess when the handshake was not captured.
    public private(set) var client: Endpoint
    public private(set) var server: Endpoint
    /// True when the roles come from the handshake rather than a guess.
    public private(set) var rolesFromHandshake: Bool
    public let firstRef: FrameRef
    public private(set) var lastRef: FrameRef
    public private(set) var synRef: FrameRef?
    public private(set) var packets = 0
    /// FIN/RST sent by each direction (indexed by `Direction.rawValue`), first one only.
    public private(set) var closes = CloseEvents()
    /// The handshake, zero windows and resets (see `TCPHealth`).
    private var healthState = FlowHealthState()
    /// Either side's zero window is in force: every segment takes the full path until it opens.
    private var zeroWindowOpen = false

    /// The handshake, zero windows and resets as of the flow's last packet.
    public var health: TCPHealth { healthState.health(syn: synRef, end: lastRef) }

    /// Two fields rather than an array: an array is an allocation per flow (100,000 in a SYN
    /// flood).
    public struct CloseEvents: Sendable {
        var clientToServer: CloseEvent?
        var serverToClient: CloseEvent?
        public subscript(_ direction: Int) -> CloseEvent? {
            get { direction == 0 ? clientToServer : serverToClient }
            set { if direction == 0 { clientToServer = newValue } else { serverToClient = newValue } }
        }
    }
    /// Reassemblers (initiator → responder, responder → initiator), present once the flow is
    /// being decoded. They do nothing until `enableReassembly`.
    public var clientStream: StreamReassembler { clientRef.object }
    public var serverStream: StreamReassembler { serverRef.object }
    /// The two reassemblers, owned for the flow's lifetime. `let` and created with the flow.
    private let firstStream: StreamReassembler
    private let secondStream: StreamReassembler
    /// Which of the two carries which direction, for calls on the per-packet path without
    /// retain/release (the flow owns both). Variables only so that `swapGuessedRoles` can hand
    /// each reassembler, with everything it already holds, to the direction its bytes belong to.
    private var clientRef: Unretained<StreamReassembler>
    private var serverRef: Unretained<StreamReassembler>
    public private(set) var reassembling = false
    private var clientLastAck: UInt32 = 0
    private var serverLastAck: UInt32 = 0
    private var clientAckSeen = false
    private var serverAckSeen = false

    public func stream(_ d: Direction) -> StreamReassembler {
        d == .clientToServer ? clientStream : serverStream
    }
    /// Decoding is attached when the first payload byte arrives, not at the SYN: a SYN flood costs
    /// a small flow each, not a decoder each.
    public var attachPending = true
    /// Set when the flow table's delegate decided this flow is not worth decoding: reassembly
    /// stops, only its end is tracked.
    public var ignored = false
    /// Set when the flow left the flow table: a cached reference to it must not be used again.
    public internal(set) var retired = false

    init(index: Int, key: FlowKey, first segment: TCPSegment, ref: FrameRef, serverPorts: Set<UInt16>) {
        self.index = index
        self.key = key
        self.firstRef = ref
        firstStream = StreamReassembler()
        secondStream = StreamReassembler()
        clientRef = Unretained(firstStream)
        serverRef = Unretained(secondStream)
        self.lastRef = ref
        if segment.flags.contains(.syn) {
            rolesFromHandshake = true
            if segment.flags.contains(.ack) {
                client = segment.dst; server = segment.src
            } else {
                client = segment.src; server = segment.dst
            }
        } else {
            // Picked up mid-stream: the side on a well-known NVMe/TCP port is the server; failing
            // that, the lower port (ephemeral ports are high).
            rolesFromHandshake = false
            let srcIsServer: Bool
            switch (serverPorts.contains(segment.src.port), serverPorts.contains(segment.dst.port)) {
            case (true, false): srcIsServer = true
            case (false, true): srcIsServer = false
            default: srcIsServer = segment.src.port < segment.dst.port
            }
            client = srcIsServer ? segment.dst : segment.src
            server = srcIsServer ? segment.src : segment.dst
        }
    }

    /// The roles were guessed (no handshake seen) and the protocol shows the guess was wrong: the
    /// guessed client is the server. Swaps the endpoints and everything kept per direction: the
    /// reassemblers themselves (with their sinks, buffered bytes, offsets and statistics, so each
    /// keeps following the bytes it was following), FIN/RST records and the last acknowledgements.
    /// Does nothing and returns false when the roles came from the handshake, which is the truth.
    ///
    /// Safe to call from inside a reassembler's callback to its sink: the reassembler objects are
    /// moved, not their state, so one that is delivering bytes carries on consistently.
    @discardableResult
    func swapGuessedRoles() -> Bool {
        guard !rolesFromHandshake else { return false }
        (client, server) = (server, client)
        (clientRef, serverRef) = (serverRef, clientRef)
        (clientLastAck, serverLastAck) = (serverLastAck, clientLastAck)
        (clientAckSeen, serverAckSeen) = (serverAckSeen, clientAckSeen)
        closes = CloseEvents(clientToServer: closes.serverToClient, serverToClient: closes.clientToServer)
        healthState.swapSides()
        return true
    }

    /// The analyzer had set this flow aside (`ignored`) and decodes it after all: both directions
    /// start again at their next segment, whose first byte becomes stream offset 0, as for a
    /// connection picked up mid-stream. The bytes that went by while the flow was ignored were
    /// never kept, so nothing of them can be decoded. Not to be called from a reassembler's own
    /// callback (it empties the reassemblers).
    func resumeAfterIgnoring() {
        ignored = false
        firstStream.restart()
        secondStream.restart()
    }

    public func direction(of segment: TCPSegment) -> Direction {
        segment.src == client ? .clientToServer : .serverToClient
    }

    /// Both sides sent FIN, or either sent RST (kept up to date by `process`: checked per packet).
    public private(set) var isClosed = false

    private func updateClosed() {
        isClosed = closes[0]?.kind == .rst || closes[1]?.kind == .rst || (closes[0] != nil && closes[1] != nil)
    }

    /// The first FIN or RST of the connection: who ended it.
    public var firstClose: (Direction, CloseEvent)? {
        var best: (Direction, CloseEvent)?
        for d in [Direction.clientToServer, .serverToClient] {
            if let c = closes[d.rawValue], best == nil || c.ref.timeNs < best!.1.ref.timeNs
                || (c.ref.timeNs == best!.1.ref.timeNs && c.ref.frame < best!.1.ref.frame) {
                best = (d, c)
            }
        }
        return best
    }

    /// Starts reassembly in both directions.
    public func enableReassembly(maxBufferedBytes: Int) {
        clientStream.maxBufferedBytes = maxBufferedBytes
        serverStream.maxBufferedBytes = maxBufferedBytes
        reassembling = true
    }

    /// Bookkeeping for one segment (handshake, teardown, counters) and reassembly when enabled.
    func process(_ segment: TCPSegment, ref: FrameRef) {
        process(segment, direction: direction(of: segment), ref: ref)
    }

    /// `process` with the segment's direction already known (the flow table's cache finds it).
    func process(_ segment: TCPSegment, direction dir: Direction, ref: FrameRef) {
        packets += 1
        lastRef = ref
        // Fast path for most packets of an NVMe/TCP connection: a data segment with nothing but
        // ACK/PSH set, the same acknowledgement as this side's previous one, and payload the
        // decoder skips. It changes exactly what the full path below would.
        if segment.flags.isSubset(of: [.ack, .psh]), reassembling, !ignored,
           segment.payloadLength > 0, segment.payload.count == segment.payloadLength,
           segment.window != 0, !zeroWindowOpen {
            let c2s = dir == .clientToServer
            let sameAck = !segment.flags.contains(.ack)
                || (c2s ? clientAckSeen && segment.ack == clientLastAck : serverAckSeen && segment.ack == serverLastAck)
            let stream = c2s ? clientRef : serverRef
            let reverse = c2s ? serverRef : clientRef
            if sameAck, reverse.with({ $0.ackedHoleAge < 0 }),
               stream.with({ $0.skipInOrder(seq: segment.seq, length: segment.payloadLength, timeNs: ref.timeNs) }) {
                return
            }
        }
        trackHealth(segment, direction: dir, ref: ref)
        if !segment.flags.isDisjoint(with: [.fin, .rst]) {
            if segment.flags.contains(.rst), closes[dir.rawValue] == nil {
                closes[dir.rawValue] = CloseEvent(kind: .rst, ref: ref)
            }
            if segment.flags.contains(.fin), closes[dir.rawValue] == nil {
                closes[dir.rawValue] = CloseEvent(kind: .fin, ref: ref)
            }
            updateClosed()
        }
        // Unretained: the flow owns both streams for the whole call, and a retain and release per
        // packet is measurable.
        let stream = dir == .clientToServer ? clientRef : serverRef
        let reverse = dir == .clientToServer ? serverRef : clientRef
        if segment.flags.contains(.syn) {
            // Recorded even before decoding is attached (at the first payload byte), so the stream
            // knows where it starts.
            stream.with { $0.syn(seq: segment.seq) }
        }
        guard reassembling, !ignored else { return }
        // Every packet of the connection ages an acknowledged hole in either direction.
        stream.with { if $0.ackedHoleAge >= 0 { $0.tick(ref: ref) } }
        reverse.with { if $0.ackedHoleAge >= 0 { $0.tick(ref: ref) } }
        // A burst of segments repeats the same acknowledgement: only a new one can reveal a loss.
        if segment.flags.contains(.ack) {
            let fresh = dir == .clientToServer ? segment.ack != clientLastAck || !clientAckSeen
                                               : segment.ack != serverLastAck || !serverAckSeen
            if fresh {
                if dir == .clientToServer { clientLastAck = segment.ack; clientAckSeen = true }
                else { serverLastAck = segment.ack; serverAckSeen = true }
                reverse.with { $0.peerAcknowledged(segment.ack, ref: ref) }
            }
        }
        if !segment.flags.contains(.rst) && (segment.payloadLength > 0 || segment.flags.contains(.fin)) {
            let seq = segment.flags.contains(.syn) ? segment.seq &+ 1 : segment.seq
            stream.with {
                $0.segment(seq: seq, payload: segment.payload, announcedLength: segment.payloadLength,
                           fin: segment.flags.contains(.fin), ref: ref)
            }
        }
        if segment.flags.contains(.rst) {
            stream.with { $0.flush(ref: ref) }
            reverse.with { $0.flush(ref: ref) }
        }
    }

    /// The handshake, resets and zero windows: what the full path records of every segment.
    @inline(__always)
    private func trackHealth(_ segment: TCPSegment, direction dir: Direction, ref: FrameRef) {
        // Most segments are neither SYN nor RST, come after the handshake's ACK and advertise an
        // open window while none is closed: two tests and nothing to record (callgrind: the
        // full path below cost 1.5% of a 4 KiB I/O capture's instructions).
        if segment.flags.isDisjoint(with: [.syn, .rst]) && !awaitingHandshakeACK && segment.window != 0 && !zeroWindowOpen { return }
        trackHealthFully(segment, direction: dir, ref: ref)
    }

    /// The SYN-ACK was seen and the client's ACK of it not yet.
    private var awaitingHandshakeACK = false

    @inline(never)
    private func trackHealthFully(_ segment: TCPSegment, direction dir: Direction, ref: FrameRef) {
        let c2s = dir == .clientToServer
        if segment.flags.contains(.syn) {
            if segment.flags.contains(.ack) {
                if !c2s, healthState.synAckNs < 0 {
                    healthState.synAckNs = ref.timeNs
                    awaitingHandshakeACK = true
                }
            } else {
                if synRef == nil { synRef = ref }
                if c2s { healthState.syns &+= 1 }
            }
            return  // a SYN's window is not scaled and says nothing of a full buffer
        }
        if awaitingHandshakeACK, c2s, segment.flags.contains(.ack) {
            awaitingHandshakeACK = false
            healthState.handshakeAckNs = ref.timeNs
            // Reordering is told from loss by the connection's RTT, as Wireshark tells it.
            if let syn = synRef, ref.timeNs > syn.timeNs {
                clientStream.reorderWindowNs = ref.timeNs &- syn.timeNs
                serverStream.reorderWindowNs = ref.timeNs &- syn.timeNs
            }
        }
        if segment.flags.contains(.rst) {
            if c2s { healthState.clientRsts &+= 1 } else { healthState.serverRsts &+= 1 }
            return  // a RST's window means nothing (RFC 9293 §3.10.7)
        }
        healthState.window(segment.window, byClient: c2s, ref: ref)
        zeroWindowOpen = healthState.zeroWindowOpen
    }

    /// Gives up on every hole and delivers what is buffered (end of capture, eviction).
    public func flush(ref: FrameRef) {
        guard reassembling else { return }
        clientStream.flush(ref: ref)
        serverStream.flush(ref: ref)
    }

    /// Drops per-connection decoding state once the connection is over.
    func releaseState() {
        reassembling = false
        firstStream.discard()
        secondStream.discard()
        firstStream.sink = nil
        secondStream.sink = nil
    }
}
