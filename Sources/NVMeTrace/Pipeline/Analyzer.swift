/// Runs the decode pipeline: packets → TCP segments → flows and reassembly → PDU framing →
/// NVMe decode, handing each decoded PDU and each diagnostic to the caller, in capture order.
public final class Analyzer {
    public let options: AnalyzerOptions
    public private(set) var fileNames: [String] = []
    public let flows: FlowTable
    /// Each PDU, lent (see `PDURecordView`): the session model reads it in place.
    public var onPDUView: ((PDURecordView) -> Void)?
    /// Each PDU as an owned record, for consumers that keep or print them: a copy is made per PDU
    /// only when this is set.
    public var onPDU: ((PDURecord) -> Void)?
    /// When set (and `onPDU` is not), PDUs of plain I/O traffic (see
    /// `NVMeConnectionDecoder.decodePlainIO`) are summarised to this instead of being decoded in
    /// full and lent to `onPDUView`: for a consumer that needs no more of them (the session
    /// model). Set it before reading: each connection decides when it starts.
    public var onPlainIOPDU: ((PlainIOPDU) -> Void)?
    public var onDiagnostic: ((Diagnostic) -> Void)?
    /// Bytes the host sent on a connection were lost from the capture between PDUs (a hole no
    /// PDU header spans): a command may have been among them.
    public var onHostBytesLost: ((_ connection: Int, FrameRef) -> Void)?
    /// Called when a connection leaves the flow table (closed and lingered, evicted, or at the end
    /// of the input), after its last PDU.
    public var onFlowEnd: ((Flow) -> Void)?
    /// Called when an NVMe/TCP connection's FIN or RST is seen (its end is known from then on;
    /// `onFlowEnd` follows when it leaves the flow table).
    public var onFlowClose: ((Flow) -> Void)?
    /// Called every 65536 frames with the file and frame reached (for a progress line).
    public var onProgress: ((String, Int) -> Void)?

    public private(set) var packets = 0
    public private(set) var tcpSegments = 0
    public private(set) var pduCount = 0
    public private(set) var malformedPackets = 0
    /// Packets stored shorter than they were on the wire (a snap length), and the longest of them
    /// as stored: the snap length applied (`editcap -s` leaves the file header's as it was).
    public internal(set) var packetsCut = 0
    public private(set) var longestCutPacket = 0
    /// The snap length each file's header declares, in the order the files were read.
    public private(set) var snapLengths: [Int] = []
    /// The last packet read (the end of the capture, once everything is read).
    public private(set) var lastRef = FrameRef.none
    private var skipWarnings = 0

    public init(options: AnalyzerOptions = AnalyzerOptions()) {
        self.options = options
        flows = FlowTable(maxFlows: options.maxFlows, serverPorts: options.ports)
        flows.onCreate = { [unowned self] flow in self.attach(to: flow) }
        flows.onEvict = { [unowned self] flow, ref in self.end(flow, ref: ref) }
        flows.onClose = { [unowned self] flow in
            if flow.application is NVMeTCPConnection { self.onFlowClose?(flow) }
        }
    }

    /// Registers an input file name; returns its index for `FrameRef.file`.
    public func addFile(_ name: String) -> Int {
        fileNames.append(name)
        return fileNames.count - 1
    }

    public func fileName(_ index: Int) -> String {
        index >= 0 && index < fileNames.count ? fileNames[index] : "?"
    }

    /// Reads a whole capture file through the pipeline. Throws after delivering what was read
    /// when the file cannot be opened or ends in the middle of a record.
    public func read(path: String) throws(CaptureError) {
        let index = addFile(path)
        let source = try PcapFileSource(path: path, fileIndex: index)
        snapLengths.append(Int(source.snaplen))
        let progress = onProgress  // loaded once: a property load per packet costs a retain
        defer {
            packetsCut += source.packetsCut
            longestCutPacket = max(longestCutPacket, source.longestCutPacket)
        }
        try source.forEach { packet in
            process(packet)
            if let progress, packet.ref.frame & 0xFFFF == 0 { progress(path, packet.ref.frame) }
        }
    }

    /// Timestamp of each file's first packet: times are printed relative to it, as Wireshark's
    /// `frame.time_relative` is.
    public private(set) var fileStartNs: [Int: Int64] = [:]
    /// Frames read per file (the last frame number seen in it).
    public var framesPerFile: [Int: Int] {
        var out: [Int: Int] = [:]
        for (i, n) in lastFrameOfFile.enumerated() { out[i] = n }
        if currentFile >= 0 { out[currentFile] = lastRef.frame }
        return out
    }
    private var lastFrameOfFile: [Int] = []
    private var currentFile = -1
    /// The first packet of the whole input.
    public private(set) var firstRef: FrameRef?

    public func relativeSeconds(_ ref: FrameRef) -> Double {
        let start = fileStartNs[ref.file] ?? ref.timeNs
        return Double(ref.timeNs &- start) / 1e9
    }

    public func process(_ packet: Packet) {
        packets += 1
        if firstRef == nil { firstRef = packet.ref }
        if packet.ref.file != currentFile {
            // First packet of a file (files are read one after the other): the previous file's
            // last frame is the last packet seen before this one.
            if currentFile >= 0 { lastFrameOfFile[currentFile] = lastRef.frame }
            currentFile = packet.ref.file
            if fileStartNs[currentFile] == nil { fileStartNs[currentFile] = packet.ref.timeNs }
            while lastFrameOfFile.count <= max(currentFile, 0) { lastFrameOfFile.append(0) }
        }
        if packet.ref.timeNs &- lastRef.timeNs < -Self.backwardsToleranceNs && packets > 1 { timeWentBackwards(packet.ref) }
        lastRef = packet.ref
        // The common case (Ethernet, IPv4, TCP) without building a decode result.
        if packet.linkType == LinkType.ethernet.rawValue, let segment = PacketDecoder.ethernetIPv4TCP(packet.bytes) {
            tcpSegments += 1
            flows.process(segment, ref: packet.ref)
            return
        }
        switch PacketDecoder.decode(linkType: packet.linkType, bytes: packet.bytes) {
        case .tcp(let segment):
            tcpSegments += 1
            flows.process(segment, ref: packet.ref)
        case .skipped(let why):
            switch why {
            case .malformed(let message):
                malformedPackets += 1
                skipWarning(.malformedPacket, "malformed packet: \(message)", ref: packet.ref)
            case .unsupportedLinkType(let t):
                skipWarning(.unsupportedLinkType, "unsupported link-layer type \(t)", ref: packet.ref)
            case .fragment, .notIP, .notTCP:
                break
            }
        }
    }

    /// End of input: flush every connection still open (holes become gaps) and finish framing.
    public func finish() {
        for flow in flows.liveFlows {
            end(flow, ref: lastRef)
        }
        flows.removeAll()
        setAsideIndex.removeAll()
        setAsideEntries = 0
        if backwardSteps > 1, let (ref, ns) = largestBackwardStep {
            report(.warning, .timeBackwards, "timestamps went backwards \(backwardSteps) times in all; the largest step back (\(formatSeconds(Double(ns) / 1e9))) is at this frame",
                   ref: ref, connection: nil)
        }
    }

    /// Counts packets stored shorter than they were on the wire (live capture; files count them
    /// as they are read, `PcapFileSource.packetsCut`).
    public func noteCut(_ packet: Packet) {
        guard packet.bytes.count < packet.wireLength else { return }
        packetsCut += 1
        if packet.bytes.count > longestCutPacket { longestCutPacket = packet.bytes.count }
    }

    // MARK: - time going backwards

    /// Captures merged from several interfaces or queues can be a little out of time order; a
    /// step back larger than this makes durations and keep-alive gaps unreliable, so it is reported.
    static let backwardsToleranceNs: Int64 = 1_000_000
    /// Times the clock stepped back by more than the tolerance, and the largest step.
    public private(set) var backwardSteps = 0
    private var largestBackwardStep: (FrameRef, Int64)?

    private func timeWentBackwards(_ ref: FrameRef) {
        let step = lastRef.timeNs &- ref.timeNs
        backwardSteps += 1
        if largestBackwardStep.map({ step > $0.1 }) ?? true { largestBackwardStep = (ref, step) }
        if backwardSteps == 1 {
            report(.warning, .timeBackwards, "timestamp \(formatSeconds(Double(step) / 1e9)) earlier than frame \(lastRef.frame)'s: time goes backwards, so durations, keep-alive gaps and timer findings may be wrong",
                   ref: ref, connection: nil)
        }
    }

    // MARK: - wiring

    /// Out-of-order bytes buffered per direction while a flow is not yet known to be NVMe/TCP.
    static let undecidedReassemblyCap = 64 * 1024

    private func attach(to flow: Flow) {
        if options.ports.contains(flow.server.port) || options.ports.contains(flow.client.port) {
            startNVMe(on: flow, synchronized: flow.rolesFromHandshake)
            return
        }
        // A target an ICReq already showed to speak NVMe/TCP: decoded at once, from its first
        // byte when the handshake was seen, else by scanning for a PDU boundary. When the guess
        // made the target the client, the guess was wrong.
        if !provenTargets.isEmpty,
           provenTargets.contains(flow.server) || (provenTargets.contains(flow.client) && flow.swapGuessedRoles()) {
            startNVMe(on: flow, synchronized: flow.rolesFromHandshake)
            return
        }
        flow.enableReassembly(maxBufferedBytes: Self.undecidedReassemblyCap)
        if flow.rolesFromHandshake {
            attachICReqProbe(to: flow)
        } else {
            // Picked up mid-stream: no ICReq to wait for; look for a run of PDU headers.
            let detector = MidStreamDetector(flow: flow, analyzer: self)
            flow.application = detector
            flow.helper = detector
            flow.clientStream.sink = detector.scanners[0]
            flow.serverStream.sink = detector.scanners[1]
        }
        setAside(flow)
    }

    /// Another port, handshake seen: NVMe/TCP only if the client's first bytes are an ICReq.
    private func attachICReqProbe(to flow: Flow) {
        let probe = ICReqProbe { [unowned self, unowned flow] probe, ref in
            guard !flow.ignored, flow.application is ICReqProbe else { return }
            if probe.looksLikeICReq {
                let conn = self.startNVMe(on: flow, synchronized: true)
                probe.bytes.withUnsafeBytes { conn.framers[0].streamData($0, ref: ref) }
                // Proven even when the ICReq is not framed whole (a snap length cut it).
                self.targetProven(flow.server, ref: ref, by: flow.index)
            } else {
                flow.ignored = true
                flow.application = nil
            }
        }
        flow.application = probe
        flow.clientStream.sink = probe
        let reject = ICReqProbe { [unowned flow] _, _ in
            // The responder spoke first: not NVMe/TCP, whose host sends the first PDU.
            if flow.application is ICReqProbe { flow.ignored = true; flow.application = nil }
        }
        flow.serverStream.sink = reject
        // Streams do not retain their sinks; the probes live as long as the flow's state, past the
        // moment they hand the flow over to the NVMe/TCP decoder from inside their own callback.
        flow.helper = [probe, reject] as [AnyObject] as AnyObject
    }

    @discardableResult
    private func startNVMe(on flow: Flow, synchronized: Bool) -> NVMeTCPConnection {
        if isSetAside(flow) { setAsideFlows -= 1 }
        flow.enableReassembly(maxBufferedBytes: options.maxBufferedBytesPerDirection)
        let conn = NVMeTCPConnection(flow: flow, analyzer: self, synchronized: synchronized)
        flow.application = conn
        flow.clientStream.sink = conn.framers[0]
        flow.serverStream.sink = conn.framers[1]
        return conn
    }

    /// A mid-stream detector found a run of PDU headers: the flow is NVMe/TCP, and the run's PDU
    /// types told which side is the host. Called from inside the scanner's stream callback:
    /// swapping roles moves the reassembler objects, so the one delivering carries on with the
    /// framer now its sink.
    func recognised(_ detector: MidStreamDetector, hostScanner: PDURunScanner, ref: FrameRef) {
        let flow = detector.flow
        if flow.clientStream.sink !== hostScanner { flow.swapGuessedRoles() }
        let conn = startNVMe(on: flow, synchronized: false)
        detector.replay(into: conn, host: hostScanner, why: "a run of PDU headers showed this connection to be NVMe/TCP", ref: ref)
    }

    // MARK: - proven targets

    /// Target endpoints (address and port) an ICReq from their client showed to speak NVMe/TCP:
    /// every connection to them is decoded as NVMe/TCP, whatever its port.
    public private(set) var provenTargets: Set<Endpoint> = []
    /// Past this many, further proofs are not recorded (a bound on hostile input; real captures
    /// hold a handful of targets).
    static let maxProvenTargets = 65_536

    /// Flows set aside (ignored, or not yet decided), under each endpoint that may be their
    /// target: the server, and for guessed roles the client too. Entries of flows that left that
    /// state stay until looked up or until the index is compacted (`setAside(_:)`), so it holds
    /// at most a few times the flows set aside now.
    private var setAsideIndex: [Endpoint: [Flow]] = [:]
    private var setAsideEntries = 0
    /// Flows set aside now.
    private(set) var setAsideFlows = 0
    /// The most any mid-stream scanner held for replay at once (bytes and pieces as
    /// `PDURunScanner.heldByteCap` counts them), for tests of the bound.
    var midStreamHeldHighWater = 0

    /// Attached to (so reassembling, until its state is released at its end) but not decoded.
    private func isSetAside(_ flow: Flow) -> Bool {
        flow.reassembling && (flow.ignored || flow.application is MidStreamDetector || flow.application is ICReqProbe)
    }

    private func setAside(_ flow: Flow) {
        setAsideFlows += 1
        setAsideIndex[flow.server, default: []].append(flow)
        setAsideEntries += 1
        if !flow.rolesFromHandshake {
            setAsideIndex[flow.client, default: []].append(flow)
            setAsideEntries += 1
        }
        if setAsideEntries > 4 * setAsideFlows + 1024 {
            var fresh: [Endpoint: [Flow]] = [:]
            setAsideEntries = 0
            for (endpoint, list) in setAsideIndex {
                let live = list.filter { !$0.retired && isSetAside($0) }
                if !live.isEmpty { fresh[endpoint] = live; setAsideEntries += live.count }
            }
            setAsideIndex = fresh
        }
    }

    /// An ICReq from `target`'s client was framed on connection `prover` (or its first bytes
    /// were an ICReq): the target speaks NVMe/TCP. Connections to it that were set aside are
    /// decoded from now on.
    func targetProven(_ target: Endpoint, ref: FrameRef, by prover: Int) {
        guard provenTargets.count < Self.maxProvenTargets, provenTargets.insert(target).inserted,
              let flows = setAsideIndex.removeValue(forKey: target) else { return }
        setAsideEntries -= flows.count
        for flow in flows where !flow.retired && isSetAside(flow) {
            cover(flow, target: target, ref: ref, by: prover)
        }
    }

    /// Decodes a flow that was set aside, now that its target is proven.
    private func cover(_ flow: Flow, target: Endpoint, ref: FrameRef, by prover: Int) {
        // The target is the server, or the guessed client when the guess was wrong.
        let swap = flow.server != target
        guard !swap || (flow.client == target && !flow.rolesFromHandshake) else { return }
        // Ignored and over already: nothing more will come.
        if flow.ignored && flow.isClosed { return }
        if swap { flow.swapGuessedRoles() }
        let why = "\(target) was shown to speak NVMe/TCP by the ICReq of connection \(prover)"
        if flow.ignored {
            // Its bytes went by without being kept (only undecided flows hold any, and only a
            // bounded amount): decoded from its next segment on, stream offsets counted from
            // there as for a connection picked up mid-stream.
            startNVMe(on: flow, synchronized: false)
            flow.resumeAfterIgnoring()
            report(.warning, .decodedLate, "decoded as NVMe/TCP from here on: \(why); its earlier bytes were not kept",
                   ref: ref, connection: flow.index)
        } else if let detector = flow.application as? MidStreamDetector {
            // Still undecided: what its scanners hold is decoded too, then every byte that follows.
            guard let host = detector.scanners.first(where: { flow.clientStream.sink === $0 }) else { return }
            let conn = startNVMe(on: flow, synchronized: false)
            detector.replay(into: conn, host: host, why: why, ref: ref)
        } else if let probe = flow.application as? ICReqProbe {
            // Handshake seen, fewer than 8 bytes from the client, none from the server: all held
            // (no PDU can end in them, so the frame of their first byte is the one to give).
            let conn = startNVMe(on: flow, synchronized: true)
            probe.bytes.withUnsafeBytes { conn.framers[0].streamData($0, ref: probe.firstRef) }
        }
    }

    private func end(_ flow: Flow, ref: FrameRef) {
        if isSetAside(flow) { setAsideFlows -= 1 }
        if let conn = flow.application as? NVMeTCPConnection {
            flow.flush(ref: ref)
            conn.finish(ref: ref)
            for (stream, side) in [(flow.clientStream, "host→controller"), (flow.serverStream, "controller→host")]
            where stream.stats.conflictingOverlaps > 0 {
                report(.warning, .conflictingRetransmission, "\(side): \(stream.stats.conflictingOverlaps) retransmitted segment(s) carried bytes that differ from the first copy; the first copy was decoded",
                       ref: ref, connection: flow.index)
            }
        }
        onFlowEnd?(flow)
        flow.releaseState()
    }

    /// True for a flow the capture shows as NVMe/TCP: decoded as such, or to an NVMe/TCP port
    /// with more than a handshake's packets (a connection picked up at its FIN, say). SYNs alone
    /// (a flood, a refused connect) are not connections worth a line in a report.
    public func isNVMeTCP(_ flow: Flow) -> Bool {
        if flow.application is NVMeTCPConnection { return true }
        guard !flow.ignored || provenTargets.contains(flow.server),
              options.ports.contains(flow.server.port) || provenTargets.contains(flow.server) else { return false }
        return flow.packets > (flow.synRef != nil ? 2 : 0)
    }

    /// Bytes the framers of an NVMe/TCP flow skipped while looking for a PDU boundary (0 for other
    /// flows): for the account of what the capture missed.
    public func unframedBytes(of flow: Flow) -> UInt64 {
        guard let conn = flow.application as? NVMeTCPConnection else { return 0 }
        return conn.unframedBytes[0] + conn.unframedBytes[1]
    }

    func emit(_ plain: PlainIOPDU) {
        pduCount += 1
        onPlainIOPDU?(plain)
    }

    func emit(_ view: PDURecordView) {
        pduCount += 1
        onPDUView?(view)
        if let onPDU { onPDU(PDURecord(view)) }
    }

    func report(_ severity: Diagnostic.Severity, _ kind: Diagnostic.Kind, _ message: String, ref: FrameRef, connection: Int?) {
        onDiagnostic?(Diagnostic(severity: severity, kind: kind, file: fileName(ref.file), frame: ref.frame,
                                 connection: connection, message: message))
    }

    private func skipWarning(_ kind: Diagnostic.Kind, _ message: String, ref: FrameRef) {
        skipWarnings += 1
        if skipWarnings <= options.maxWarningsPerConnection {
            report(.warning, kind, message, ref: ref, connection: nil)
        } else if skipWarnings == options.maxWarningsPerConnection + 1 {
            report(.warning, .suppressed, "further packet-level warnings are suppressed", ref: ref, connection: nil)
        }
    }
}
