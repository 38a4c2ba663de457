/// What the pipeline does with one TCP connection, from its first payload byte until it leaves
/// the flow table: made by the analyzer (`Analyzer.flowStarted`), dropped at `end`.
///
/// It holds the connection's detection state and, once the connection is known to carry
/// NVMe/TCP, its decoder. A connection to a port known to carry NVMe/TCP, or to a target an ICReq
/// proved to, is decoded from its first byte. Any other connection is *set aside* (reassembled,
/// with a small buffer, not decoded) until its own bytes, or another connection's ICReq to its
/// target, decide:
/// - handshake seen: the client's first 8 bytes are an ICReq's common header, or not
///   (`ICReqProbe`); the server speaking first means not;
/// - picked up mid-stream: a run of PDU headers in either direction (`MidStreamDetector`), or
///   1 MiB of each direction without one.
final class ConnectionHandler {
    enum State {
        /// Handshake seen on a port not known to carry NVMe/TCP: waiting for the client's first
        /// bytes (the probe on the client's stream; the server's stream has one that rejects).
        case awaitingICReq(ICReqProbe)
        /// Picked up mid-stream on such a port: both directions scanned for a run of PDU headers.
        case scanning(MidStreamDetector)
        case decoding(NVMeTCPConnection)
        /// Not NVMe/TCP, or given up on (`Flow.ignored`): only its end is tracked, unless a proof
        /// for its target comes later (`cover`).
        case ignored
        /// The flow left the table; everything the handler held is released (`release`). An
        /// index of set-aside flows may still refer to the handler for a while.
        case ended
    }

    /// Retained: an index of set-aside flows may hold the handler after the flow left the table
    /// (the flow refers to no handler, so there is no cycle).
    let flow: Flow
    /// The analyzer owns the flow table, which owns the flows: it outlives every handler.
    private let analyzerRef: Unretained<Analyzer>
    var analyzer: Analyzer { analyzerRef.object }
    private(set) var state: State
    /// The stream sinks of the states left behind, kept until the handler is dropped: a state is
    /// left from inside one of its sinks' own callbacks (a probe deciding, a scanner finding a
    /// run), which the reassembler that called it is still executing.
    private var formerSinks: [StreamSink] = []

    init(flow: Flow, analyzer: Analyzer) {
        self.flow = flow
        analyzerRef = Unretained(analyzer)
        state = .ignored
        let ports = analyzer.options.ports
        let proven = analyzer.provenTargets
        if ports.contains(flow.server.port) || ports.contains(flow.client.port) {
            startDecoding(synchronized: flow.rolesFromHandshake)
            return
        }
        // A target an ICReq already showed to speak NVMe/TCP: decoded at once, from its first
        // byte when the handshake was seen, else by scanning for a PDU boundary. When the guess
        // made the target the client, the guess was wrong.
        if !proven.isEmpty, proven.contains(flow.server) || (proven.contains(flow.client) && flow.swapGuessedRoles()) {
            startDecoding(synchronized: flow.rolesFromHandshake)
            return
        }
        flow.enableReassembly(maxBufferedBytes: Analyzer.undecidedReassemblyCap)
        if flow.rolesFromHandshake {
            let probe = ICReqProbe(handler: self, client: true)
            let reject = ICReqProbe(handler: self, client: false)
            flow.clientStream.sink = probe
            flow.serverStream.sink = reject
            formerSinks = [probe, reject]
            state = .awaitingICReq(probe)
        } else {
            // Picked up mid-stream: no ICReq to wait for; look for a run of PDU headers.
            let detector = MidStreamDetector(handler: self)
            flow.clientStream.sink = detector.scanners[0]
            flow.serverStream.sink = detector.scanners[1]
            formerSinks = detector.scanners
            state = .scanning(detector)
        }
    }

    var isDecoding: Bool {
        if case .decoding = state { return true }
        return false
    }

    /// Reassembled (so holding state until its end) but not decoded.
    var isSetAside: Bool {
        guard flow.reassembling else { return false }
        switch state {
        case .awaitingICReq, .scanning: return true
        case .ignored: return flow.ignored
        case .decoding, .ended: return false
        }
    }

    /// Bytes the framers skipped while looking for a PDU boundary (0 unless decoding).
    var unframedBytes: UInt64 {
        guard case .decoding(let conn) = state else { return 0 }
        return conn.unframedBytes[0] + conn.unframedBytes[1]
    }

    /// The commands of this connection waiting for a completion (not AERs), and the last time
    /// controller→host bytes went missing (a completion may have been among them).
    func waitingCommands(limit: Int) -> (count: Int, oldest: [OutstandingCommand], completionsMissedAt: FrameRef?, replaced: Int) {
        guard case .decoding(let conn) = state else { return (0, [], nil, 0) }
        let w = conn.decoder.waitingCommands(limit: limit)
        return (w.count, w.oldest, conn.controllerMissedAt, conn.decoder.replacedUnanswered)
    }

    @discardableResult
    private func startDecoding(synchronized: Bool) -> NVMeTCPConnection {
        if isSetAside { analyzer.leftSetAside() }
        flow.enableReassembly(maxBufferedBytes: analyzer.options.maxBufferedBytesPerDirection)
        let conn = NVMeTCPConnection(flow: flow, analyzer: analyzer, synchronized: synchronized)
        flow.clientStream.sink = conn.framers[0]
        flow.serverStream.sink = conn.framers[1]
        state = .decoding(conn)
        return conn
    }

    private func ignore() {
        flow.ignored = true
        state = .ignored
    }

    // MARK: - detection

    /// The client's probe holds 8 bytes or more (or lost its first bytes).
    func icReqProbed(_ probe: ICReqProbe, ref: FrameRef) {
        guard case .awaitingICReq = state else { return }
        if probe.looksLikeICReq {
            let conn = startDecoding(synchronized: true)
            probe.bytes.withUnsafeBytes { conn.framers[0].streamData($0, ref: ref) }
            // Proven even when the ICReq is not framed whole (a snap length cut it).
            analyzer.targetProven(flow.server, ref: ref, by: flow.index)
        } else {
            ignore()
        }
    }

    /// The responder spoke first: not NVMe/TCP, whose host sends the first PDU.
    func responderSpokeFirst() {
        guard case .awaitingICReq = state else { return }
        ignore()
    }

    /// The mid-stream detector found a run of PDU headers: the flow is NVMe/TCP, and the run's
    /// PDU types told which side is the host. Called from inside the scanner's stream callback:
    /// swapping roles moves the reassembler objects, so the one delivering carries on with the
    /// framer now its sink.
    func recognised(_ detector: MidStreamDetector, hostScanner: PDURunScanner, ref: FrameRef) {
        if flow.clientStream.sink !== hostScanner { flow.swapGuessedRoles() }
        let conn = startDecoding(synchronized: false)
        detector.replay(into: conn, host: hostScanner, why: .runOfPDUHeaders, ref: ref)
    }

    /// Both directions of a mid-stream connection gave up looking.
    func scanningExhausted() {
        guard case .scanning = state else { return }
        ignore()
    }

    /// The flow was set aside, and its target (`target`) is now proven to speak NVMe/TCP (by the
    /// ICReq of connection `prover`): it is decoded from here on.
    func cover(target: Endpoint, ref: FrameRef, by prover: Int) {
        // The target is the server, or the guessed client when the guess was wrong.
        let swap = flow.server != target
        guard !swap || (flow.client == target && !flow.rolesFromHandshake) else { return }
        // Ignored and over already: nothing more will come.
        if flow.ignored && flow.isClosed { return }
        if swap { flow.swapGuessedRoles() }
        let why = Diagnostic.Recognition.targetProven(target, byConnection: prover)
        switch state {
        case .ignored:
            // Its bytes went by without being kept (only undecided flows hold any, and only a
            // bounded amount): decoded from its next segment on, stream offsets counted from
            // there as for a connection picked up mid-stream.
            startDecoding(synchronized: false)
            flow.resumeAfterIgnoring()
            analyzer.report(.warning, .decodedLate(why), ref: ref, connection: flow.index)
        case .scanning(let detector):
            // Still undecided: what its scanners hold is decoded too, then every byte that follows.
            guard let host = detector.scanners.first(where: { flow.clientStream.sink === $0 }) else { return }
            let conn = startDecoding(synchronized: false)
            detector.replay(into: conn, host: host, why: why, ref: ref)
        case .awaitingICReq(let probe):
            // Handshake seen, fewer than 8 bytes from the client, none from the server: all held
            // (no PDU can end in them, so the frame of their first byte is the one to give).
            let conn = startDecoding(synchronized: true)
            probe.bytes.withUnsafeBytes { conn.framers[0].streamData($0, ref: probe.firstRef) }
        case .decoding, .ended:
            break
        }
    }

    // MARK: - end

    /// The flow left the table and its streams have no sinks any more (`Flow.releaseState`):
    /// drops the decoder, the detection state and the sinks kept.
    func release() {
        state = .ended
        formerSinks = []
    }

    /// The flow leaves the table: flush what reassembly holds and finish framing.
    func end(ref: FrameRef) {
        guard case .decoding(let conn) = state else { return }
        flow.flush(ref: ref)
        conn.finish(ref: ref)
        for (stream, side) in [(flow.clientStream, Diagnostic.Side.hostToController), (flow.serverStream, .controllerToHost)]
        where stream.stats.conflictingOverlaps > 0 {
            analyzer.report(.warning, .conflictingRetransmission(side, segments: stream.stats.conflictingOverlaps),
                            ref: ref, connection: flow.index)
        }
    }
}

/// Watches the first bytes a client sends on a port not known to carry NVMe/TCP (an ICReq header
/// there makes it an NVMe/TCP connection), or, on the server's stream, that the server speaks
/// first.
final class ICReqProbe: StreamSink {
    var bytes: [UInt8] = []
    /// The frame of the first byte held.
    var firstRef = FrameRef.none
    /// The handler owns the probe (`formerSinks`) for its whole life.
    private unowned let handler: ConnectionHandler
    private let client: Bool

    init(handler: ConnectionHandler, client: Bool) {
        self.handler = handler
        self.client = client
        super.init()
    }

    /// ICReq common header: type 0, flags 0, HLEN 128, PDO 0, PLEN 128 (§3.6.2.2).
    var looksLikeICReq: Bool {
        bytes.count >= 8 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 128 && bytes[3] == 0
            && bytes.le32(at: 4) == 128
    }

    override func streamData(_ data: UnsafeRawBufferPointer, ref: FrameRef) {
        guard client else { return handler.responderSpokeFirst() }
        if bytes.isEmpty { firstRef = ref }
        bytes.append(contentsOf: data)
        if bytes.count >= 8 { handler.icReqProbed(self, ref: ref) }
    }

    override func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) {
        guard client else { return handler.responderSpokeFirst() }
        bytes.removeAll()
        handler.icReqProbed(self, ref: ref)
    }
}
