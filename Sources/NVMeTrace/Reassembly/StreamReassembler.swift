import DequeModule

/// Reassembles one direction of a TCP connection into an ordered byte stream.
///
/// In-order bytes are passed through without copying. Segments ahead of the next expected sequence
/// number are copied into a bounded out-of-order buffer; retransmitted and overlapping bytes are
/// trimmed. A hole is given up as a gap when the peer acknowledges bytes the capture never saw
/// (they were lost before the capture point and will not be sent again), when the buffer would
/// exceed its cap, or when the stream ends. Sequence numbers are tracked as 64-bit stream offsets
/// so wrap-around is harmless.
///
/// The cap counts each buffered piece's bytes plus `pieceOverhead`: pieces that store few or no
/// bytes (a segment cut by the snap length keeps only its length) still take memory and time, and
/// a flood of them must meet the cap too.
public final class StreamReassembler {
    struct Pending {
        var offset: UInt64         // stream offset of bytes[0]
        var bytes: [UInt8]
        var missingTail: Int       // bytes announced by IP but not captured (snap length)
        var ref: FrameRef          // the frame that brought them
        var end: UInt64 { offset + UInt64(bytes.count + missingTail) }
    }

    /// Where the stream's bytes go. Not retained: the sink's owner (the connection's handler)
    /// keeps it alive for as long as the stream; a retain and release per segment is measurable
    /// on the hot path.
    ///
    /// May be replaced from inside the sink's own callback (a probe or a scanner that decides the
    /// connection is NVMe/TCP hands the stream to a framer): every delivery reads the sink anew,
    /// so the bytes after go to the new sink, and the replaced one must stay alive until its call
    /// returns (`ConnectionHandler` keeps the sinks of the states it left).
    public var sink: StreamSink? {
        get { sinkRef?.object }
        set { sinkRef = newValue.map { Unretained($0) } }
    }
    private var sinkRef: Unretained<StreamSink>?
    public var maxBufferedBytes: Int
    public private(set) var stats = StreamStats()

    /// True once the first sequence number is known (from a SYN or the first data segment).
    public private(set) var started = false
    /// True when the stream's start was seen (SYN); false for a connection picked up mid-stream.
    public private(set) var sawSYN = false
    private var baseSeq: UInt32 = 0        // sequence number of stream offset 0
    private var nextOffset: UInt64 = 0     // next stream offset expected
    private var pending = Deque<Pending>() // sorted by offset, non-overlapping
    /// `pending.count`, kept apart so the common in-order path does not touch the deque.
    private var pendingCount = 0
    public private(set) var bufferedBytes = 0
    public private(set) var finOffset: UInt64?
    private var maxAckedOffset: UInt64 = 0

    /// What one buffered piece costs beyond its stored bytes (its entry, the array's header and
    /// allocation), counted toward `maxBufferedBytes`.
    static let pieceOverhead = 64

    /// The out-of-order pieces buffered now.
    var pendingPieces: Int { pendingCount }

    /// What the out-of-order buffer counts against `maxBufferedBytes`: its bytes and, per piece,
    /// `pieceOverhead`.
    var bufferedCost: Int { bufferedBytes + pendingCount * Self.pieceOverhead }

    public init(maxBufferedBytes: Int = 1 << 20) {
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// The stream offset of a sequence number, relative to the next expected byte: sequence
    /// numbers within ±2 GiB of it are unambiguous.
    @inline(__always)
    private func offset(of seq: UInt32) -> UInt64? {
        let delta = Int64(Int32(bitPattern: seq &- baseSeq &- UInt32(truncatingIfNeeded: nextOffset)))
        let o = Int64(bitPattern: nextOffset) + delta
        return o >= 0 ? UInt64(o) : nil
    }

    public var nextExpectedOffset: UInt64 { nextOffset }

    public func syn(seq: UInt32) {
        if started {
            return  // retransmitted SYN (or SYN-ACK); the stream start is already fixed
        }
        started = true
        sawSYN = true
        baseSeq = seq &+ 1
        nextOffset = 0
    }

    /// A data-bearing (or FIN) segment of this direction.
    public func segment(seq: UInt32, payload: UnsafeRawBufferPointer, announcedLength: Int, fin: Bool, ref: FrameRef) {
        if !started {
            // Picked up mid-stream: this segment's first byte is stream offset 0.
            started = true
            baseSeq = seq
            nextOffset = 0
        }
        guard let start = offset(of: seq) else {
            // Entirely before the stream start: an old retransmission.
            if announcedLength > 0 { stats.retransmitted(ref) }
            return
        }
        let length = max(announcedLength, payload.count)
        let end = start + UInt64(length)
        if fin {
            if finOffset == nil { finOffset = end }
        }
        if length == 0 { return }

        if end <= nextOffset {
            oldBytes(end: end, ref: ref)
            return
        }
        if start <= nextOffset {
            if start < nextOffset {
                oldBytes(end: end, ref: ref)
            } else if pendingCount > 0 {
                fillsBehind(end: end, ref: ref)
            }
            let skip = Int(nextOffset - start)
            if pendingCount == 0 { advancedNs = ref.timeNs }
            deliver(payload: payload, missingTail: length - payload.count, skip: skip, ref: ref)
            if pendingCount > 0 { drainPending(ref: ref) }
            if ackedHoleAge >= 0 && maxAckedOffset <= nextOffset { ackedHoleAge = -1 }
        } else {
            if pendingCount > 0 && start < highestEnd {
                fillsBehind(end: end, ref: ref)
            } else {
                // Ahead of a hole (Wireshark: "previous segment not captured"): the newest bytes.
                highestEnd = end
                highestEndNs = ref.timeNs
            }
            buffer(offset: start, payload: payload, missingTail: length - payload.count, ref: ref)
            if bufferedCost > maxBufferedBytes {
                // One segment can add several pieces: give up holes until the buffer fits again.
                repeat { skipToFirstPending(ref: ref) } while pendingCount > 0 && bufferedCost > maxBufferedBytes
            } else {
                ageAckedHole(ref: ref)
            }
        }
    }

    /// The fast path for the common segment: exactly the next expected bytes, all captured,
    /// nothing buffered and no acknowledged hole ageing, whose bytes the sink does not need to see.
    /// Returns false (having changed nothing) when the segment needs the full `segment` path.
    @inline(__always)
    func skipInOrder(seq: UInt32, length: Int, timeNs: Int64) -> Bool {
        guard started, pendingCount == 0, ackedHoleAge < 0,
              seq == baseSeq &+ UInt32(truncatingIfNeeded: nextOffset),
              let sinkRef, sinkRef.with({ $0.skipIfUnneeded(length) }) else { return false }
        nextOffset += UInt64(length)
        stats.deliveredBytes += UInt64(length)
        advancedNs = timeNs
        return true
    }

    /// While bytes are buffered ahead of a hole: the end of the newest of them, and when it came.
    /// Read only when `pendingCount` > 0 (the fast path, which never buffers, keeps neither).
    private var highestEnd: UInt64 = 0
    private var highestEndNs: Int64 = 0
    /// A segment that fills a hole behind newer bytes within this time of them was reordered on
    /// the way; later, it is the sender's retransmission of one lost before the capture point.
    /// Wireshark's rule (tcp.analysis.out_of_order): the connection's handshake RTT, or 3 ms when
    /// the handshake is not in the capture. The flow sets it once the handshake is seen.
    public var reorderWindowNs: Int64 = 3_000_000

    /// When the newest bytes of the stream came while nothing is buffered (the fast path keeps it).
    private var advancedNs: Int64 = 0

    /// A segment that repeats bytes already delivered. Wireshark's rule again: within the RTT of
    /// the newest bytes and not a copy of them, it is out of order (a capture's own duplicate,
    /// say); otherwise the sender sent the bytes again.
    private func oldBytes(end: UInt64, ref: FrameRef) {
        let newest = pendingCount > 0 ? highestEnd : nextOffset
        let since = ref.timeNs &- (pendingCount > 0 ? highestEndNs : advancedNs)
        if since < reorderWindowNs && end != newest {
            stats.outOfOrderSegments += 1
        } else {
            stats.retransmitted(ref)
        }
    }

    /// A segment with new bytes behind newer ones: reordered, or a retransmission (see
    /// `reorderWindowNs`).
    private func fillsBehind(end: UInt64, ref: FrameRef) {
        if ref.timeNs &- highestEndNs < reorderWindowNs {
            stats.outOfOrderSegments += 1
        } else {
            stats.retransmitted(ref)
        }
        if end > highestEnd {
            highestEnd = end
            highestEndNs = ref.timeNs
        }
    }

    /// How many packets ago the peer acknowledged bytes this stream has not seen (-1: no such
    /// hole). A capture can show an acknowledgement before the data it covers (captures merged
    /// from two points, multi-queue timestamps); only when the hole stays open for a few more
    /// packets were the bytes really lost before the capture point.
    private(set) var ackedHoleAge = -1
    static let ackedHoleGrace = 8

    private func ageAckedHole(ref: FrameRef) {
        guard maxAckedOffset > nextOffset else { ackedHoleAge = -1; return }
        // One unseen sequence number at the very end may be a FIN the capture missed, not data.
        if pendingCount == 0 && maxAckedOffset - nextOffset <= 1 { return }
        if ackedHoleAge < 0 { ackedHoleAge = 0; return }
        ackedHoleAge += 1
        if ackedHoleAge >= Self.ackedHoleGrace { giveUpAckedHole(ref: ref) }
    }

    private func giveUpAckedHole(ref: FrameRef) {
        ackedHoleAge = -1
        if let first = pending.first, pendingCount > 0, first.offset <= maxAckedOffset {
            skipToFirstPending(ref: ref)
        } else if maxAckedOffset > nextOffset + 1 || (pendingCount > 0 && maxAckedOffset > nextOffset) {
            gap(maxAckedOffset - nextOffset, ref: ref)
            if pendingCount > 0 { drainPending(ref: ref, ownFrames: true) }
        }
    }

    /// The other direction acknowledged up to `ack`. Bytes acknowledged but never captured were
    /// lost before the capture point: the sender will not send them again, so they become a gap.
    public func peerAcknowledged(_ ack: UInt32, ref: FrameRef) {
        guard started, var o = offset(of: ack) else { return }
        // A FIN takes one sequence number: its acknowledgement is not a byte of data.
        if let fin = finOffset, o > fin { o = fin }
        // Ignore acknowledgements implausibly far ahead (garbage or a different connection).
        guard o <= nextOffset + (1 << 30) else { return }
        if o > maxAckedOffset { maxAckedOffset = o }
        if maxAckedOffset > nextOffset || ackedHoleAge >= 0 { ageAckedHole(ref: ref) }
    }

    /// A packet of the connection passed (either direction): an acknowledged hole ages.
    public func tick(ref: FrameRef) {
        if ackedHoleAge >= 0 { ageAckedHole(ref: ref) }
    }

    /// The connection ended (RST, or the capture ended): give up on every hole and deliver all
    /// buffered bytes.
    public func flush(ref: FrameRef) {
        ackedHoleAge = -1
        while pendingCount > 0 { skipToFirstPending(ref: ref) }
        if maxAckedOffset > nextOffset + 1 { gap(maxAckedOffset - nextOffset, ref: ref) }
        if let fin = finOffset, fin > nextOffset, maxAckedOffset >= fin {
            gap(fin - nextOffset, ref: ref)
        }
    }

    /// Forgets where the stream stands, so that the next segment starts it again at offset 0 as
    /// if picked up mid-stream; statistics are kept. For a flow that was set aside without
    /// reassembly and is decoded after all: the sequence numbers it skipped meanwhile are not
    /// trusted to say how far the stream moved (more than 2 GiB may have gone by).
    public func restart() {
        discard()
        started = false
        sawSYN = false
        baseSeq = 0
        nextOffset = 0
        finOffset = nil
        maxAckedOffset = 0
        ackedHoleAge = -1
    }

    /// Drops buffered bytes without delivering them (flow eviction).
    public func discard() {
        pending.removeAll()
        pendingCount = 0
        bufferedBytes = 0
    }

    // MARK: - internals

    private func peerAckCoversHole() -> Bool {
        guard pendingCount > 0, let first = pending.first else { return false }
        return maxAckedOffset > nextOffset && maxAckedOffset >= first.offset
    }

    /// Gives up the hole before the first buffered piece. The pieces then delivered carry the
    /// frames that brought them, not the one that gave the hole up: nothing arrived to complete
    /// them, and a Keep Alive seen at frame 128 must not be dated by the ACK at frame 131 that
    /// ended the wait for a retransmission (or, at a flush, by the end of the capture).
    private func skipToFirstPending(ref: FrameRef) {
        guard let first = pending.first else { return }
        if first.offset > nextOffset { gap(first.offset - nextOffset, ref: ref) }
        drainPending(ref: ref, ownFrames: true)
    }

    private func gap(_ length: UInt64, cause: GapCause = .lost, ref: FrameRef) {
        guard length > 0 else { return }
        if cause == .lost {
            stats.gaps += 1
            stats.gapBytes += length
        } else {
            stats.notCapturedBytes += length
        }
        nextOffset += length
        sinkRef?.with { $0.streamGap(length, cause: cause, ref: ref) }
    }

    private func deliver(payload: UnsafeRawBufferPointer, missingTail: Int, skip: Int, ref: FrameRef) {
        if skip < payload.count {
            let bytes = payload.dropFirst(skip)
            nextOffset += UInt64(bytes.count)
            stats.deliveredBytes += UInt64(bytes.count)
            sinkRef?.with { $0.streamData(bytes, ref: ref) }
            if missingTail > 0 { gap(UInt64(missingTail), cause: .notCaptured, ref: ref) }
        } else {
            // Only uncaptured bytes are left past `skip`: what was captured lies before it.
            let missing = payload.count + missingTail - skip
            if missing > 0 { gap(UInt64(missing), cause: .notCaptured, ref: ref) }
        }
    }

    /// Delivers the buffered pieces that now continue the stream: attributed to `ref`, the frame
    /// that filled the hole before them (as Wireshark shows a reassembled PDU), or with
    /// `ownFrames` (the hole was given up) each to the frame that brought it.
    private func drainPending(ref: FrameRef, ownFrames: Bool = false) {
        while pendingCount > 0, let first = pending.first, first.offset <= nextOffset {
            pending.removeFirst()
            pendingCount -= 1
            bufferedBytes -= first.bytes.count
            if first.end <= nextOffset { continue }
            let skip = Int(nextOffset - first.offset)
            first.bytes.withUnsafeBytes { raw in
                deliver(payload: raw, missingTail: first.missingTail, skip: skip, ref: ownFrames ? first.ref : ref)
            }
        }
    }

    /// The index of the first buffered piece that ends after `offset` (`pending` is sorted and
    /// disjoint, so its ends are sorted too): a segment past all of them (the common case) costs a
    /// binary search, not a walk over the buffer.
    private func firstPending(endingAfter offset: UInt64) -> Int {
        var low = 0, high = pending.count
        while low < high {
            let mid = low + (high - low) / 2
            if pending[mid].end <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Inserts a copy of the bytes not already buffered, keeping `pending` sorted and disjoint.
    private func buffer(offset start: UInt64, payload: UnsafeRawBufferPointer, missingTail: Int, ref: FrameRef) {
        var cursor = start
        let end = start + UInt64(payload.count + missingTail)
        var index = firstPending(endingAfter: start)
        var pieces: [(Int, Pending)] = []
        while cursor < end {
            // Skip past buffered segments that end before cursor.
            while index < pending.count && pending[index].end <= cursor { index += 1 }
            let limit = index < pending.count ? min(end, pending[index].offset) : end
            if cursor < limit {
                let from = Int(cursor - start)
                let to = Int(limit - start)
                let capturedTo = min(to, payload.count)
                let bytes = from < capturedTo ? Array(payload[from..<capturedTo]) : []
                let missing = (to - from) - bytes.count
                pieces.append((index, Pending(offset: cursor, bytes: bytes, missingTail: missing, ref: ref)))
                cursor = limit
            }
            if index < pending.count && cursor < end {
                // Overlap with an already-buffered segment: compare, keep the first copy.
                let p = pending[index]
                let ovStart = max(cursor, p.offset), ovEnd = min(end, p.offset + UInt64(p.bytes.count))
                if ovStart < ovEnd {
                    for o in ovStart..<ovEnd {
                        let i = Int(o - start)
                        if i < payload.count && payload[i] != p.bytes[Int(o - p.offset)] {
                            stats.conflictingOverlaps += 1
                            break
                        }
                    }
                }
                cursor = max(cursor, p.end)
                index += 1
            }
        }
        // Insert from the back so earlier indices stay valid.
        for (i, piece) in pieces.reversed() {
            pending.insert(piece, at: i)
            pendingCount += 1
            bufferedBytes += piece.bytes.count
        }
    }
}
