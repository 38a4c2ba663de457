/// The NVMe/TCP decoding attached to one TCP connection: a framer per direction feeding one
/// NVMe decoder.
final class NVMeTCPConnection: PDUFramerDelegate {
    let flowIndex: Int
    let client: Endpoint
    let server: Endpoint
    let framers: [PDUFramer]
    let decoder = NVMeConnectionDecoder()
    /// The analyzer owns the flow table, which owns this, so it is not retained (`Unretained`):
    /// an `unowned` reference costs an atomic retain and a release at every PDU.
    private let analyzerRef: Unretained<Analyzer>
    var analyzer: Analyzer { analyzerRef.object }
    var warnings = 0
    /// Plain I/O PDUs are summarised (the consumer's `RecordDetail`), fixed when the connection
    /// starts.
    let plainIO: Bool
    /// The handshake was seen: the capture starts at the connection's first byte.
    let rolesFromHandshake: Bool
    /// The host's first byte was a TLS handshake record: framing warnings would only describe
    /// ciphertext, so after saying so once they are dropped.
    var looksLikeTLS = false
    /// Bytes of each direction (host→controller, controller→host) missing so far, for any reason
    /// (cut by the snap length, lost, or not framed): a command or completion may have been among
    /// them, so an unmatched completion or a reused CID is no news there.
    var missedBytes = [false, false]
    /// The last time controller→host bytes went missing (a completion may have been among them).
    private(set) var controllerMissedAt: FrameRef?

    private func missed(_ d: Int, at ref: FrameRef) {
        missedBytes[d] = true
        if d == 1 { controllerMissedAt = ref }
    }
    /// Bytes skipped while looking for a PDU boundary, per direction.
    var unframedBytes: [UInt64] = [0, 0]
    /// Set while the framers are moved past bytes that went by before decoding started
    /// (`startsLate`): that is not a gap in the capture, and is reported once, differently.
    private var quiet = false

    init(flow: Flow, analyzer: Analyzer, synchronized: Bool) {
        flowIndex = flow.index
        client = flow.client
        server = flow.server
        analyzerRef = Unretained(analyzer)
        let opts = analyzer.options
        plainIO = analyzer.consumer?.detail == .summaryForPlainIO
        rolesFromHandshake = flow.rolesFromHandshake
        framers = [
            PDUFramer(synchronized: synchronized, verifyDataDigests: opts.verifyDataDigests, maxPDULength: opts.maxPDULength),
            PDUFramer(synchronized: synchronized, verifyDataDigests: opts.verifyDataDigests, maxPDULength: opts.maxPDULength),
        ]
        super.init()
        framers[0].delegate = self
        framers[1].delegate = self
    }

    /// What the decoder noticed while decoding the last PDU, judged against what the capture
    /// missed of this connection.
    private func decoderEvents() {
        for (event, ref) in decoder.takeEvents() {
            switch event {
            case .unmatchedCompletion(let cid):
                // Expected right after a mid-stream start or where host→controller bytes are
                // missing; worth a warning otherwise.
                if rolesFromHandshake && !missedBytes[0] {
                    warn(.unmatchedCompletion(cid: cid), ref)
                }
            case .cidReused(let cid):
                // Where controller→host bytes are missing, the earlier command's completion may
                // simply not have been captured.
                if !missedBytes[1] {
                    warn(.cidReused(cid: cid), ref)
                }
            case .shortConnectData(let bytes):
                warn(.shortConnectData(bytes: bytes), ref)
            }
        }
    }

    /// Decoding of one direction (0: host → controller, 1: controller → host) starts `bytes` into
    /// its stream: the connection was recognised as NVMe/TCP only after they went by (`why`), and
    /// they were not kept. The framer is moved past them so that stream offsets stay those of the
    /// capture; one warning says what was not decoded.
    func startsLate(direction: Int, skipping bytes: UInt64, ref: FrameRef, why: Diagnostic.Recognition) {
        guard bytes > 0 else { return }
        quiet = true
        framers[direction].streamGap(bytes, cause: .notCaptured, ref: ref)
        quiet = false
        warn(.decodingStartsLate(direction == 0 ? .hostToController : .controllerToHost, skipped: bytes, why: why), ref)
    }

    func direction(of framer: PDUFramer) -> Direction {
        framer === framers[0] ? .clientToServer : .serverToClient
    }

    func finish(ref: FrameRef) {
        framers[0].finish(ref: ref)
        framers[1].finish(ref: ref)
        if !decoder.timings.isEmpty { handOnTimings() }
    }

    /// The decoder's timed commands, to the consumer (a batch, or the rest at the end).
    @inline(never)
    private func handOnTimings() {
        analyzerRef.with { $0.commandsTimed(connection: flowIndex, decoder.timings) }
        decoder.timingsTaken()
    }

    func warn(_ event: Diagnostic.Event, _ ref: FrameRef) {
        warnings += 1
        let limit = analyzer.options.maxWarningsPerConnection
        if warnings <= limit {
            analyzer.report(.warning, event, ref: ref, connection: flowIndex)
        } else if warnings == limit + 1 {
            analyzer.report(.warning, .suppressed(connection: true), ref: ref, connection: flowIndex)
        }
    }

    // MARK: PDUFramerDelegate

    override func framer(_ framer: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int {
        decoder.dataBytesToKeep(shape, header: header)
    }

    override func framer(_ framer: PDUFramer, didFrame pdu: LentPDU) {
        let dir = direction(of: framer)
        // Plain I/O traffic, for a consumer that needs only its summary: no warning can apply
        // (digests matched, sent the right way), and the decoder takes only what it can decode
        // as `decode` would.
        if plainIO, pdu.type.fromHost == (dir == .clientToServer), !pdu.dataDigest.isMismatch,
           let command = decoder.decodePlainIO(pdu) {
            let fromHost = dir == .clientToServer
            // Built in the call (a record built before it was copied once more: callgrind).
            analyzerRef.with {
                $0.emit(LentPDURecord(connection: flowIndex, src: fromHost ? client : server, dst: fromHost ? server : client,
                                      qid: decoder.qid, pdu: pdu, body: .ioSummary(command: command.kind)))
            }
            if decoder.timingsReady { handOnTimings() }
            return
        }
        // A header cut by the snap length may hide the CID a later PDU refers to.
        if pdu.headerIsPartial { missed(dir == .clientToServer ? 0 : 1, at: pdu.ref) }
        if case .mismatch(let received, let computed) = pdu.headerDigest {
            warn(.headerDigestMismatch(pdu.type, received: received, computed: computed), pdu.ref)
        }
        if case .mismatch(let received, let computed) = pdu.dataDigest {
            warn(.dataDigestMismatch(pdu.type, received: received, computed: computed), pdu.ref)
        }
        if pdu.type.fromHost != (dir == .clientToServer) {
            warn(.wrongDirection(pdu.type, byInitiator: dir == .clientToServer), pdu.ref)
        }
        var connectData: ConnectData?
        var completed: CompletedCommand?
        let body = decoder.decode(pdu, connectData: &connectData, completed: &completed)
        if !decoder.events.isEmpty { decoderEvents() }
        let src = dir == .clientToServer ? client : server
        let dst = dir == .clientToServer ? server : client
        analyzerRef.with {
            $0.emit(LentPDURecord(connection: flowIndex, src: src, dst: dst, qid: decoder.qid, pdu: pdu, body: body,
                                  connectData: connectData, completed: completed))
        }
        if decoder.timingsReady { handOnTimings() }
        if pdu.type == .icReq, dir == .clientToServer, PDUHeaderCheck.plausible(pdu.shape, header: pdu.header) {
            // An ICReq from the initiator: its target speaks NVMe/TCP, on every connection to it
            // (connections set aside so far are decoded from here on).
            analyzerRef.with { $0.targetProven(server, ref: pdu.ref, by: flowIndex) }
        }
    }

    override func framer(_ framer: PDUFramer, event: FramingEvent, ref: FrameRef) {
        if quiet { return }
        let dir = direction(of: framer)
        let side: Diagnostic.Side = dir == .clientToServer ? .hostToController : .controllerToHost
        // NVMe/TCP secured with TLS starts with a TLS ClientHello (record type 0x16) where the
        // ICReq (PDU type 0x00) would be.
        if case .invalidHeader(.unknownType(0x16), 0) = event, dir == .clientToServer {
            looksLikeTLS = true
            warn(.tls, ref)
            return
        }
        let d = dir == .clientToServer ? 0 : 1
        if case .gap(_, false, .lost, _) = event, dir == .clientToServer {
            analyzerRef.with { $0.hostBytesLost(connection: flowIndex, ref: ref) }
        }
        switch event {
        case let .gap(_, inside, _, _): if !inside { missed(d, at: ref) }
        case .invalidHeader: missed(d, at: ref)
        case let .resynchronized(skipped, _, _), let .unframedAtEnd(skipped, _, _):
            unframedBytes[d] += skipped
            if skipped > 0 { missed(d, at: ref) }
        case .truncatedAtEnd: break
        }
        if looksLikeTLS { return }
        // Bytes cut by the snap length and streams picked up mid-way are how field captures are
        // taken: they are counted for the report's account of the capture, not warned about one
        // by one. Lost bytes and invalid headers are worth a warning each.
        switch event {
        case let .invalidHeader(problem, offset):
            warn(.invalidHeader(side, streamOffset: offset, problem), ref)
        case let .gap(bytes, inside, cause, offset):
            guard cause == .lost else { return }
            warn(.bytesMissing(side, streamOffset: offset, bytes: bytes, insidePDU: inside), ref)
        case let .resynchronized(skipped, offset, lostPlace):
            if skipped > 0 && (lostPlace == .lost || lostPlace == .invalidHeader) {
                warn(.resynchronized(side, streamOffset: offset, skipped: skipped), ref)
            }
        case let .unframedAtEnd(skipped, offset, lostPlace):
            guard lostPlace == .lost || lostPlace == .invalidHeader else { return }
            warn(.unframedAtEnd(side, streamOffset: offset, skipped: skipped), ref)
        case let .truncatedAtEnd(missing, offset):
            warn(.truncatedAtEnd(side, streamOffset: offset, missing: missing), ref)
        }
    }
}
