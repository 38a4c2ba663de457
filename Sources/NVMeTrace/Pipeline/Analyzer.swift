/// Runs the decode pipeline: packets → TCP segments → flows and reassembly → PDU framing →
/// NVMe decode, handing each decoded PDU, each diagnostic and each connection's summary to its
/// `consumer`, in capture order. It is the flow table's delegate: it gives each flow that carries
/// payload a `ConnectionHandler`, and keeps what spans connections (targets proven to speak
/// NVMe/TCP, flows set aside until one is).
public final class Analyzer: FlowTableDelegate {
    public let options: AnalyzerOptions
    public private(set) var fileNames: [String] = []
    public let flows: FlowTable
    /// Where decoded PDUs, diagnostics and connection summaries go (`AnalyzerConsumer` gives the
    /// call order). Set before reading.
    public var consumer: (any AnalyzerConsumer)?
    /// Called every 65536 frames with the file and frame reached (for a progress line).
    public var onProgress: ((String, Int) -> Void)?
    /// The handler of each flow that carried payload, by flow index, from its first payload byte
    /// until it leaves the flow table.
    private var handlers: [Int: ConnectionHandler] = [:]
    /// Handlers held now (tests of the bound: none once the input is finished).
    var liveHandlers: Int { handlers.count }

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
        flows.delegate = self
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
                skipWarning(.malformedPacket(message), ref: packet.ref)
            case .unsupportedLinkType(let t):
                skipWarning(.unsupportedLinkType(t), ref: packet.ref)
            case .fragment, .notIP, .notTCP:
                break
            }
        }
    }

    /// End of input: flush every connection still open (holes become gaps) and finish framing.
    public func finish() {
        flows.endAll(ref: lastRef)
        setAsideIndex.removeAll()
        setAsideEntries = 0
        if backwardSteps > 1, let (ref, ns) = largestBackwardStep {
            report(.warning, .timeBackwardsRepeatedly(times: backwardSteps, largestStepNs: ns), ref: ref, connection: nil)
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
            report(.warning, .timeBackwards(stepNs: step, previousFrame: lastRef.frame), ref: ref, connection: nil)
        }
    }

    // MARK: - flows (FlowTableDelegate)

    /// Out-of-order bytes buffered per direction while a flow is not yet known to be NVMe/TCP.
    static let undecidedReassemblyCap = 64 * 1024

    /// A flow's first payload byte: its handler decides whether (and how) to decode it.
    public func flowStarted(_ flow: Flow) {
        let handler = ConnectionHandler(flow: flow, analyzer: self)
        handlers[flow.index] = handler
        if handler.isSetAside { setAside(handler) }
    }

    public func flowClosed(_ flow: Flow) {
        guard let handler = handlers[flow.index], handler.isDecoding else { return }
        consumer?.connectionClosed(summary(of: flow, handler: handler))
    }

    public func flowEnded(_ flow: Flow, ref: FrameRef) {
        let handler = handlers.removeValue(forKey: flow.index)
        if let handler {
            if handler.isSetAside { setAsideFlows -= 1 }
            handler.end(ref: ref)
        }
        consumer?.connectionEnded(summary(of: flow, handler: handler))
        flow.releaseState()
        handler?.release()
    }

    // MARK: - proven targets

    /// Target endpoints (address and port) an ICReq from their client showed to speak NVMe/TCP:
    /// every connection to them is decoded as NVMe/TCP, whatever its port.
    public private(set) var provenTargets: Set<Endpoint> = []
    /// Past this many, further proofs are not recorded (a bound on hostile input; real captures
    /// hold a handful of targets).
    static let maxProvenTargets = 65_536

    /// Handlers of flows set aside (ignored, or not yet decided), under each endpoint that may be
    /// their target: the server, and for guessed roles the client too. Entries of flows that left
    /// that state stay until looked up or until the index is compacted (`setAside(_:)`), so it
    /// holds at most a few times the flows set aside now.
    private var setAsideIndex: [Endpoint: [ConnectionHandler]] = [:]
    private var setAsideEntries = 0
    /// Flows set aside now.
    private(set) var setAsideFlows = 0
    /// The most any mid-stream scanner held for replay at once (bytes and pieces as
    /// `PDURunScanner.heldByteCap` counts them), for tests of the bound.
    var midStreamHeldHighWater = 0

    private func setAside(_ handler: ConnectionHandler) {
        let flow = handler.flow
        setAsideFlows += 1
        setAsideIndex[flow.server, default: []].append(handler)
        setAsideEntries += 1
        if !flow.rolesFromHandshake {
            setAsideIndex[flow.client, default: []].append(handler)
            setAsideEntries += 1
        }
        if setAsideEntries > 4 * setAsideFlows + 1024 {
            var fresh: [Endpoint: [ConnectionHandler]] = [:]
            setAsideEntries = 0
            for (endpoint, list) in setAsideIndex {
                let live = list.filter { !$0.flow.retired && $0.isSetAside }
                if !live.isEmpty { fresh[endpoint] = live; setAsideEntries += live.count }
            }
            setAsideIndex = fresh
        }
    }

    /// A set-aside flow's handler starts decoding it.
    func leftSetAside() {
        setAsideFlows -= 1
    }

    /// An ICReq from `target`'s client was framed on connection `prover` (or its first bytes
    /// were an ICReq): the target speaks NVMe/TCP. Connections to it that were set aside are
    /// decoded from now on.
    func targetProven(_ target: Endpoint, ref: FrameRef, by prover: Int) {
        guard provenTargets.count < Self.maxProvenTargets, provenTargets.insert(target).inserted,
              let handlers = setAsideIndex.removeValue(forKey: target) else { return }
        setAsideEntries -= handlers.count
        for handler in handlers where !handler.flow.retired && handler.isSetAside {
            handler.cover(target: target, ref: ref, by: prover)
        }
    }

    /// True for a flow the capture shows as NVMe/TCP: decoded as such, or to an NVMe/TCP port
    /// with more than a handshake's packets (a connection picked up at its FIN, say). SYNs alone
    /// (a flood, a refused connect) are not connections worth a line in a report.
    func isNVMeTCP(_ flow: Flow, handler: ConnectionHandler?) -> Bool {
        if handler?.isDecoding == true { return true }
        guard !flow.ignored || provenTargets.contains(flow.server),
              options.ports.contains(flow.server.port) || provenTargets.contains(flow.server) else { return false }
        return flow.packets > (flow.synRef != nil ? 2 : 0)
    }

    /// Waiting commands a connection summary names one by one (the rest are counted).
    static let waitingCommandsKept = 8

    /// The summary of `flow` as it stands, for the consumer.
    func summary(of flow: Flow, handler: ConnectionHandler?) -> ConnectionSummary {
        var s = ConnectionSummary(
            id: flow.index, client: flow.client, server: flow.server, firstRef: flow.firstRef, lastRef: flow.lastRef,
            sawSYN: flow.synRef != nil,
            firstClose: flow.firstClose.map { (byClient: $0.0 == .clientToServer, kind: $0.1.kind, ref: $0.1.ref) },
            clientStream: flow.clientStream.stats, serverStream: flow.serverStream.stats,
            unframedBytes: handler?.unframedBytes ?? 0, nvmeTCP: isNVMeTCP(flow, handler: handler))
        s.health = flow.health
        s.packets = flow.packets
        // A SYN the capture shows no SYN-ACK for, on a flow that carried no PDU (one that did was
        // accepted, whatever the capture missed of its handshake).
        if let syn = s.health.synRef, !s.health.synAcked, handler?.isDecoding != true,
           options.ports.contains(flow.server.port) || provenTargets.contains(flow.server) {
            s.nvmeTCP = false
            if let close = flow.closes[Direction.serverToClient.rawValue], close.kind == .rst {
                s.failedConnect = .refused(syn: syn, rst: close.ref)
            } else if flow.closes[Direction.serverToClient.rawValue] == nil {
                s.failedConnect = .unanswered(syn: syn, syns: s.health.syns, last: flow.lastRef)
            }
        }
        if let waiting = handler?.waitingCommands(limit: Self.waitingCommandsKept) {
            (s.waitingCommands, s.oldestWaitingCommands, s.completionsMissedAt, s.replacedUnanswered) = waiting
        }
        return s
    }

    // MARK: - to the consumer

    func emit(_ record: LentPDURecord) {
        pduCount += 1
        consumer?.pdu(record)
    }

    func hostBytesLost(connection: Int, ref: FrameRef) {
        consumer?.hostBytesLost(connection: connection, ref: ref)
    }

    func commandsTimed(connection: Int, _ timings: [CommandTiming]) {
        consumer?.commandsTimed(connection: connection, timings)
    }

    func report(_ severity: Diagnostic.Severity, _ event: Diagnostic.Event, ref: FrameRef, connection: Int?) {
        consumer?.diagnostic(Diagnostic(severity: severity, event: event, file: fileName(ref.file), frame: ref.frame,
                                        connection: connection))
    }

    private func skipWarning(_ event: Diagnostic.Event, ref: FrameRef) {
        skipWarnings += 1
        if skipWarnings <= options.maxWarningsPerConnection {
            report(.warning, event, ref: ref, connection: nil)
        } else if skipWarnings == options.maxWarningsPerConnection + 1 {
            report(.warning, .suppressed(connection: false), ref: ref, connection: nil)
        }
    }
}
