/// Why bytes of a stream are missing.
public enum GapCause: Sendable, Equatable {
    /// The packets carrying them were captured but cut by the snap length: IP announced the
    /// bytes, the capture did not store them. The normal case for headers-only captures
    /// (`tcpdump -s 128`), not a fault of the capture or the network.
    case notCaptured
    /// Never seen: lost before the capture point (the peer acknowledged them), or given up when
    /// the out-of-order buffer overflowed or the stream ended with a hole.
    case lost
}

/// What a reassembled TCP byte stream (one direction of a connection) delivers, in stream order:
/// any sequence of `streamData` and `streamGap` calls whose lengths add up to the stream's
/// offsets (nothing is delivered twice, nothing skipped without a gap), `skipIfUnneeded` offered
/// in between on the per-packet fast path. The end of the stream is not a call: the sink's owner
/// is told the flow ended (`FlowTableDelegate.flowEnded`) after the reassembler's last delivery
/// (`Flow.flush`).
///
/// A class rather than a protocol: the reassembler calls it through an unretained reference on
/// every segment, which needs a class (`Unretained`); subclasses override both methods.
open class StreamSink {
    public init() {}

    /// In-order bytes, valid only during the call. `ref` is the frame whose arrival made them
    /// deliverable (for a segment that filled a hole, the filling frame, as Wireshark shows it).
    open func streamData(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) {}

    /// `length` bytes of the stream will never be seen, for `cause`. Stream offsets stay exact
    /// either way: the next bytes delivered start `length` bytes further on.
    open func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) {}

    /// The next `length` in-order bytes, offered without their contents: returns true when the
    /// sink accounted for them without needing to see them (I/O payload it skips anyway), false
    /// when they must come through `streamData`. The per-packet fast path.
    open func skipIfUnneeded(_ length: Int) -> Bool { false }
}

/// Counters one direction of a stream keeps, for reports and tests.
public struct StreamStats: Sendable, Equatable {
    public var deliveredBytes: UInt64 = 0
    /// Bytes lost (`GapCause.lost`) and the gaps they came in.
    public var gapBytes: UInt64 = 0
    public var gaps = 0
    /// Bytes cut by the snap length (`GapCause.notCaptured`).
    public var notCapturedBytes: UInt64 = 0
    public var retransmittedSegments = 0
    /// The first and the latest retransmitted segment (evidence for a report).
    public var firstRetransmission: FrameRef?
    public var lastRetransmission: FrameRef?
    /// Segments with new bytes that came behind newer ones, within the reordering window
    /// (Wireshark's tcp.analysis.out_of_order); later ones count as retransmissions.
    public var outOfOrderSegments = 0
    /// Overlapping bytes that differ from what was buffered before (a retransmission that does
    /// not repeat the original: a sign of corruption or an attack).
    public var conflictingOverlaps = 0
    public init() {}

    mutating func retransmitted(_ ref: FrameRef) {
        retransmittedSegments += 1
        if firstRetransmission == nil { firstRetransmission = ref }
        lastRetransmission = ref
    }
}
