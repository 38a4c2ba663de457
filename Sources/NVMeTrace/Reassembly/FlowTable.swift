/// All TCP connections of a capture, keyed by 4-tuple, with a cap on how many are kept.
///
/// Memory is bounded by the number of live connections: closed connections are dropped a while
/// after their end, and when the table is full the least recently active ones are evicted.
public final class FlowTable {
    public private(set) var flows: [FlowKey: Flow] = [:]
    public let maxFlows: Int
    /// Closed flows linger this long (capture time) so late ACKs and retransmitted FINs still find
    /// them rather than starting a new connection.
    public let closedLingerNs: Int64
    public var serverPorts: Set<UInt16>
    public private(set) var nextIndex = 0
    public private(set) var evictedLive = 0
    private var nextSweepNs: Int64 = 0
    /// The flow of the previous segment, unretained: cleared whenever a flow leaves the table.
    private var lastFlowRef: Unmanaged<Flow>?

    /// Called before the first segment of a flow that carries payload is processed (to attach
    /// decoding).
    public var onCreate: ((Flow) -> Void)?
    /// Called for a flow about to leave the table (its state should be flushed and finished).
    public var onEvict: ((Flow, FrameRef) -> Void)?

    public init(maxFlows: Int = 200_000, closedLingerSeconds: Int64 = 60, serverPorts: Set<UInt16>) {
        self.maxFlows = max(1, maxFlows)
        self.closedLingerNs = closedLingerSeconds * 1_000_000_000
        self.serverPorts = serverPorts
    }

    /// Called after a segment with FIN or RST was processed (the connection's end is known).
    public var onClose: ((Flow) -> Void)?

    /// Finds or creates the flow a segment belongs to and updates it.
    public func process(_ segment: TCPSegment, ref: FrameRef) {
        // Segments come in bursts per connection: try the last flow before hashing, through an
        // unretained reference (the table holds it). Matching its endpoints also gives the
        // direction.
        if let last = lastFlowRef {
            let hit = last._withUnsafeGuaranteedRef { flow -> Bool in
                let direction: Direction
                if segment.src == flow.client && segment.dst == flow.server {
                    direction = .clientToServer
                } else if segment.src == flow.server && segment.dst == flow.client {
                    direction = .serverToClient
                } else {
                    return false
                }
                guard !(segment.flags.contains(.syn) && flow.isClosed) else { return false }
                if flow.attachPending && segment.payloadLength > 0 { attach(flow) }
                flow.process(segment, direction: direction, ref: ref)
                return true
            }
            if hit {
                if !segment.flags.isDisjoint(with: [.fin, .rst]), let onClose { onClose(last.takeUnretainedValue()) }
                return
            }
        }
        let key = FlowKey(segment.src, segment.dst)
        let flow: Flow
        if let existing = flows[key],
           !(existing.isClosed && segment.flags.contains(.syn) && !segment.flags.contains(.ack)) {
            flow = existing
            setLast(flow)
            if flow.attachPending && segment.payloadLength > 0 { attach(flow) }
            flow.process(segment, ref: ref)
        } else {
            if let existing = flows[key] {
                // A new SYN on a finished connection starts a new one, as Wireshark counts streams.
                onEvict?(existing, ref)
                flows[key] = nil
                setLast(nil)
            }
            if ref.timeNs >= nextSweepNs { sweep(now: ref) }
            if flows.count >= maxFlows { evictLeastRecent(ref: ref) }
            flow = Flow(index: nextIndex, key: key, first: segment, ref: ref, serverPorts: serverPorts)
            nextIndex += 1
            flows[key] = flow
            setLast(flow)
            if segment.payloadLength > 0 { attach(flow) }
            flow.process(segment, ref: ref)
        }
        if !segment.flags.isDisjoint(with: [.fin, .rst]) { onClose?(flow) }
    }

    private func setLast(_ flow: Flow?) {
        lastFlowRef = flow.map { Unmanaged.passUnretained($0) }
    }

    private func attach(_ flow: Flow) {
        flow.attachPending = false
        onCreate?(flow)
    }

    /// Removes closed flows whose linger time has passed.
    private func sweep(now: FrameRef) {
        nextSweepNs = now.timeNs &+ 1_000_000_000
        var gone: [FlowKey] = []
        for (key, flow) in flows where flow.isClosed && now.timeNs &- flow.lastRef.timeNs > closedLingerNs {
            gone.append(key)
        }
        for key in gone {
            if let flow = flows.removeValue(forKey: key) { onEvict?(flow, now) }
        }
        setLast(nil)
    }

    /// The table is full: drop closed flows first, then the longest idle tenth of the rest.
    private func evictLeastRecent(ref: FrameRef) {
        let closed = flows.filter { $0.value.isClosed }.map(\.key)
        for key in closed { if let f = flows.removeValue(forKey: key) { onEvict?(f, ref) } }
        setLast(nil)
        guard flows.count >= maxFlows else { return }
        let victims = flows.values.sorted { $0.lastRef.timeNs < $1.lastRef.timeNs }
            .prefix(max(1, flows.count / 10))
        for flow in victims {
            flows[flow.key] = nil
            evictedLive += 1
            onEvict?(flow, ref)
        }
        setLast(nil)
    }

    /// Every flow still in the table, in index order (for end-of-capture processing).
    public var liveFlows: [Flow] { flows.values.sorted { $0.index < $1.index } }

    public func removeAll() {
        flows.removeAll()
        setLast(nil)
    }
}
