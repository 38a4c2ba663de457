/// Who decodes the flows of a `FlowTable` (the analyzer). For each flow, in this order:
/// 1. `flowStarted` once, just before the flow's first segment with payload is processed: attach
///    decoding (enable reassembly, set the streams' sinks). It may swap the flow's guessed roles
///    (`Flow.swapGuessedRoles`). A flow that never carries payload never gets it.
/// 2. `flowClosed` after each segment with FIN or RST is processed (the end is known).
/// 3. `flowEnded` exactly once, when the flow leaves the table: closed and lingered, evicted
///    when the table is full, replaced by a new connection on the same endpoints, or at the end
///    of the input (`endAll`). The delegate flushes and releases its state there
///    (`Flow.releaseState`); the flow is `retired` and never handed on again.
public protocol FlowTableDelegate: AnyObject {
    func flowStarted(_ flow: Flow)
    func flowClosed(_ flow: Flow)
    func flowEnded(_ flow: Flow, ref: FrameRef)
}

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
    /// Recently used flows by a cheap hash of their endpoints, in front of the dictionary:
    /// segments of a few busy connections interleave (each direction's data and the other's ACKs,
    /// several queues), and a SipHash lookup of the key costs ~320 instructions, 35% of packets
    /// missing the last-flow check in coalesced 4 KiB traffic (callgrind). Only a cache: a
    /// collision costs a dictionary lookup, so crafted endpoints cannot make it slower than the
    /// dictionary.
    ///
    /// Read through `recent` (unretained, no reference counting per packet); `recentAlive` holds
    /// the same flows retained, so no entry can dangle. A flow that leaves the table is marked
    /// `retired` and never matched again, so nothing needs clearing when flows are removed.
    private var recent = [Unretained<Flow>?](repeating: nil, count: FlowTable.recentSlots)
    private var recentAlive = [Flow?](repeating: nil, count: FlowTable.recentSlots)
    private static let recentSlots = 256
    /// The flow of the previous segment. Always also in `recent` (it is set only together with a
    /// slot, or from one), so it is retained there too.
    private var lastFlowRef: Unretained<Flow>?

    /// Told when flows start, close and end (`FlowTableDelegate`). Its owner, so not retained.
    public weak var delegate: (any FlowTableDelegate)?

    public init(maxFlows: Int = 200_000, closedLingerSeconds: Int64 = 60, serverPorts: Set<UInt16>) {
        self.maxFlows = max(1, maxFlows)
        self.closedLingerNs = closedLingerSeconds * 1_000_000_000
        self.serverPorts = serverPorts
    }

    /// Finds or creates the flow a segment belongs to and updates it.
    public func process(_ segment: TCPSegment, ref: FrameRef) {
        // Segments come in bursts per connection: try the last flow before hashing, then the
        // recently used ones, through unretained references (the table holds them).
        if let last = lastFlowRef, processIfItsFlow(segment, ref: ref, last) { return }
        let slot = Self.recentSlot(segment)
        if let cached = recent[slot], processIfItsFlow(segment, ref: ref, cached) {
            lastFlowRef = cached
            return
        }
        let key = FlowKey(segment.src, segment.dst)
        let flow: Flow
        if let existing = flows[key],
           !(existing.isClosed && segment.flags.contains(.syn) && !segment.flags.contains(.ack)) {
            flow = existing
            setLast(flow, slot: slot)
            if flow.attachPending && segment.payloadLength > 0 { attach(flow) }
            flow.process(segment, ref: ref)
        } else {
            if let existing = flows[key] {
                // A new SYN on a finished connection starts a new one, as Wireshark counts streams.
                delegate?.flowEnded(existing, ref: ref)
                remove(key)
            }
            if ref.timeNs >= nextSweepNs { sweep(now: ref) }
            if flows.count >= maxFlows { evictLeastRecent(ref: ref) }
            flow = Flow(index: nextIndex, key: key, first: segment, ref: ref, serverPorts: serverPorts)
            nextIndex += 1
            flows[key] = flow
            setLast(flow, slot: slot)
            if segment.payloadLength > 0 { attach(flow) }
            flow.process(segment, ref: ref)
        }
        if !segment.flags.isDisjoint(with: [.fin, .rst]) { delegate?.flowClosed(flow) }
    }

    /// Processes the segment if it belongs to this flow (matching its endpoints also gives the
    /// direction); false when it does not, or when it is a SYN starting a new connection on a
    /// closed flow's endpoints (the dictionary path handles that).
    @inline(__always)
    private func processIfItsFlow(_ segment: TCPSegment, ref: FrameRef, _ candidate: Unretained<Flow>) -> Bool {
        let hit = candidate.with { flow -> Bool in
            guard !flow.retired else { return false }
            let direction: Direction
            if segment.src == flow.client && segment.dst == flow.server {
                direction = .clientToServer
            } else if segment.src == flow.server && segment.dst == flow.client {
                direction = .serverToClient
            } else {
                return false
            }
            guard !(segment.flags.contains(.syn) && flow.isClosed) else { return false }
            if flow.attachPending && segment.payloadLength > 0 {
                attachAndProcess(flow, segment, ref: ref)
            } else {
                flow.process(segment, direction: direction, ref: ref)
            }
            return true
        }
        if hit, !segment.flags.isDisjoint(with: [.fin, .rst]) { delegate?.flowClosed(candidate.object) }
        return hit
    }

    /// The same slot for both directions of a connection: the endpoints are combined with XOR.
    @inline(__always)
    static func recentSlot(_ segment: TCPSegment) -> Int {
        let a = segment.src.address, b = segment.dst.address
        let mixed = (a.lo ^ b.lo ^ a.hi ^ b.hi) << 16 ^ UInt64(segment.src.port ^ segment.dst.port)
        return Int(truncatingIfNeeded: (mixed &* 0x9E37_79B9_7F4A_7C15) >> 56)
    }

    private func setLast(_ flow: Flow, slot: Int) {
        let ref = Unretained(flow)
        lastFlowRef = ref
        recent[slot] = ref
        recentAlive[slot] = flow
    }

    /// Takes a flow out of the table; the only way one leaves it.
    @discardableResult
    private func remove(_ key: FlowKey) -> Flow? {
        let flow = flows.removeValue(forKey: key)
        flow?.retired = true
        return flow
    }

    /// A flow's first segment with payload: decoding is attached, which may swap guessed roles (a
    /// proven NVMe/TCP target turned out to be the guessed client), so the segment's direction
    /// is found again. Kept out of line: once per flow, off the per-packet path.
    @inline(never)
    private func attachAndProcess(_ flow: Flow, _ segment: TCPSegment, ref: FrameRef) {
        attach(flow)
        flow.process(segment, ref: ref)
    }

    private func attach(_ flow: Flow) {
        flow.attachPending = false
        delegate?.flowStarted(flow)
    }

    /// The clock moved on without a segment (a live capture's timer): closed flows whose linger
    /// time has passed end now, not at the next segment of another flow (segments of one busy
    /// flow take the fast path and never sweep).
    public func clock(_ now: FrameRef) {
        if now.timeNs >= nextSweepNs { sweep(now: now) }
    }

    /// Removes closed flows whose linger time has passed.
    private func sweep(now: FrameRef) {
        nextSweepNs = now.timeNs &+ 1_000_000_000
        var gone: [FlowKey] = []
        for (key, flow) in flows where flow.isClosed && now.timeNs &- flow.lastRef.timeNs > closedLingerNs {
            gone.append(key)
        }
        for key in gone {
            if let flow = remove(key) { delegate?.flowEnded(flow, ref: now) }
        }
    }

    /// The table is full: drop closed flows first, then the longest idle tenth of the rest.
    private func evictLeastRecent(ref: FrameRef) {
        let closed = flows.filter { $0.value.isClosed }.map(\.key)
        for key in closed { if let f = remove(key) { delegate?.flowEnded(f, ref: ref) } }
        guard flows.count >= maxFlows else { return }
        let victims = flows.values.sorted { $0.lastRef.timeNs < $1.lastRef.timeNs }
            .prefix(max(1, flows.count / 10))
        for flow in victims {
            remove(flow.key)
            evictedLive += 1
            delegate?.flowEnded(flow, ref: ref)
        }
    }

    /// Every flow still in the table, in index order (for end-of-capture processing).
    public var liveFlows: [Flow] { flows.values.sorted { $0.index < $1.index } }

    /// The end of the input: every flow still in the table ends, in index order, and the table is
    /// emptied.
    public func endAll(ref: FrameRef) {
        for flow in liveFlows {
            remove(flow.key)
            delegate?.flowEnded(flow, ref: ref)
        }
        flows.removeAll()
        lastFlowRef = nil
        recent = recent.map { _ in nil }
        recentAlive = recentAlive.map { _ in nil }
    }
}
