import Testing
@testable import NVMeTrace

/// Records the byte stream and gaps a reassembler delivers.
final class StreamRecorder: StreamSink {
    var bytes: [UInt8] = []
    var gaps: [(offset: Int, length: UInt64)] = []
    var causes: [GapCause] = []
    var frames: [Int] = []
    override func streamData(_ b: UnsafeRawBufferPointer, ref: FrameRef) {
        bytes.append(contentsOf: b)
        frames.append(ref.frame)
    }
    override func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) {
        gaps.append((bytes.count, length))
        causes.append(cause)
        bytes.append(contentsOf: [UInt8](repeating: 0xEE, count: Int(length)))
    }
}

@Suite struct StreamReassemblerTests {
    static let isn: UInt32 = 1000
    static let data: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    func ref(_ n: Int) -> FrameRef { FrameRef(file: 0, frame: n, timeNs: Int64(n) * 1000) }

    /// Sends `data[range]` as a segment.
    func send(_ r: StreamReassembler, _ range: Range<Int>, frame: Int, isn: UInt32 = isn, data: [UInt8] = data, fin: Bool = false) {
        let seq = isn &+ 1 &+ UInt32(range.lowerBound)
        data[range].withUnsafeBytes { r.segment(seq: seq, payload: $0, announcedLength: range.count, fin: fin, ref: ref(frame)) }
    }

    func make(cap: Int = 1 << 20, isn: UInt32 = isn) -> (StreamReassembler, StreamRecorder) {
        let r = StreamReassembler(maxBufferedBytes: cap)
        let rec = StreamRecorder()
        r.sink = rec
        r.syn(seq: isn)
        return (r, rec)
    }

    @Test func inOrder() {
        let (r, rec) = make()
        for (i, start) in stride(from: 0, to: 5000, by: 1000).enumerated() { send(r, start..<start + 1000, frame: i + 2) }
        #expect(rec.bytes == Self.data)
        #expect(rec.gaps.isEmpty)
        #expect(r.stats.outOfOrderSegments == 0)
    }

    @Test func outOfOrderSegmentsAreBufferedAndDeliveredInOrder() {
        let (r, rec) = make()
        let order = [3, 0, 4, 2, 1]
        for (i, k) in order.enumerated() { send(r, k * 1000..<(k + 1) * 1000, frame: i + 2) }
        #expect(rec.bytes == Self.data)
        // Segments 0, 2 and 1 came behind newer bytes (3 and 4), within the reordering window.
        #expect(r.stats.outOfOrderSegments == 3 && r.stats.retransmittedSegments == 0)
        #expect(r.bufferedBytes == 0)
        // Bytes buffered early are delivered when the hole is filled, attributed to that frame.
        #expect(rec.frames.last == 6)
    }

    @Test func duplicatesAndOverlapsAreTrimmed() {
        let (r, rec) = make()
        send(r, 0..<1000, frame: 2)
        send(r, 0..<1000, frame: 3)          // full retransmission
        send(r, 500..<1500, frame: 4)        // overlaps delivered bytes
        send(r, 3000..<4000, frame: 5)       // ahead: buffered
        send(r, 2500..<3500, frame: 6)       // overlaps the buffered segment
        send(r, 3200..<3300, frame: 7)       // inside the buffered range
        send(r, 1500..<2500, frame: 8)       // fills the hole
        send(r, 3900..<5000, frame: 9)
        #expect(rec.bytes == Self.data)
        #expect(rec.gaps.isEmpty)
        // Frames come 1 µs apart, within the 3 ms reordering window: a segment carrying bytes
        // already delivered is a retransmission only when it copies the newest (frame 3);
        // frames 4 and 9 reach past them and count as out of order, as do 6 and 7 (behind the
        // buffered 3000..<4000) and 8 (the fill). Wireshark's tcp.analysis rule.
        #expect(r.stats.retransmittedSegments == 1)
        #expect(r.stats.outOfOrderSegments == 5)
        #expect(r.stats.conflictingOverlaps == 0)
    }

    /// Past the reordering window, a segment repeating delivered bytes, or filling a hole behind
    /// newer ones, is the sender's retransmission; within it, reordering.
    @Test(arguments: [(2_999_999 as Int64, false), (3_000_000, true)])
    func theReorderingWindow(afterNs: Int64, retransmission: Bool) {
        let (r, rec) = make()
        defer { withExtendedLifetime(rec) {} }  // the reassembler does not retain its sink
        func at(_ ns: Int64, _ range: Range<Int>) {
            let seq = Self.isn &+ 1 &+ UInt32(range.lowerBound)
            Self.data[range].withUnsafeBytes { r.segment(seq: seq, payload: $0, announcedLength: range.count, fin: false,
                                                           ref: FrameRef(file: 0, frame: 1, timeNs: ns)) }
        }
        at(1_000, 0..<1000)
        at(2_000, 0..<500)                      // old bytes, not the newest copy
        at(3_000, 2000..<3000)                  // ahead of a hole
        at(3_000 + afterNs, 1000..<2000)        // the fill
        #expect(r.stats.retransmittedSegments == (retransmission ? 1 : 0))
        #expect(r.stats.outOfOrderSegments == (retransmission ? 1 : 2))
    }

    @Test func conflictingOverlapIsCounted() {
        let (r, rec) = make()
        send(r, 0..<100, frame: 2)
        send(r, 200..<300, frame: 3)
        var other = Self.data
        other[250] ^= 0xFF
        send(r, 200..<300, frame: 4, data: other)  // same range, different bytes
        send(r, 100..<200, frame: 5)
        #expect(r.stats.conflictingOverlaps == 1)
        #expect(Array(rec.bytes) == Array(Self.data[0..<300]))  // the first copy wins
    }

    @Test func lostSegmentBecomesAGapWhenThePeerAcknowledgesPastIt() {
        let (r, rec) = make()
        send(r, 0..<1000, frame: 2)
        send(r, 2000..<3000, frame: 3)  // 1000..<2000 never captured
        #expect(rec.gaps.isEmpty)       // could still be a reordering
        r.peerAcknowledged(Self.isn &+ 1 &+ 3000, ref: ref(4))
        // Acknowledged, but the capture may still show the bytes late: a few packets of grace.
        for f in 0..<(StreamReassembler.ackedHoleGrace - 1) { r.tick(ref: ref(5 + f)) }
        #expect(rec.gaps.isEmpty)
        r.tick(ref: ref(20))
        #expect(rec.gaps.count == 1)
        #expect(rec.gaps.first?.offset == 1000)
        #expect(rec.gaps.first?.length == 1000)
        #expect(Array(rec.bytes[2000..<3000]) == Array(Self.data[2000..<3000]))
        // The bytes after the hole are dated by the frame that brought them (3), not by the one
        // that ended the wait (20): a command in them happened at frame 3's time.
        #expect(rec.frames == [2, 3])
        send(r, 3000..<4000, frame: 21)
        #expect(rec.bytes.count == 4000)
        #expect(rec.frames == [2, 3, 21])
    }

    /// At the end (RST, end of capture) every hole is given up: buffered bytes keep their frames.
    @Test func flushKeepsTheFramesOfBufferedBytes() {
        let (r, rec) = make()
        send(r, 0..<1000, frame: 2)
        send(r, 2000..<2500, frame: 3)
        send(r, 3000..<4000, frame: 7)
        r.flush(ref: ref(99))
        #expect(rec.frames == [2, 3, 7])
        #expect(rec.gaps.map(\.offset) == [1000, 2500])
    }

    /// Captures merged from two points (or multi-queue timestamps) can show an ACK before the
    /// data it covers: the data still fills the hole.
    @Test func acknowledgementBeforeItsDataIsNotALoss() {
        let (r, rec) = make()
        send(r, 0..<1000, frame: 2)
        r.peerAcknowledged(Self.isn &+ 1 &+ 2000, ref: ref(3))  // ACK of bytes not seen yet
        r.tick(ref: ref(4))
        send(r, 1000..<2000, frame: 5)
        for f in 0..<20 { r.tick(ref: ref(6 + f)) }
        #expect(rec.gaps.isEmpty)
        #expect(rec.bytes == Array(Self.data[0..<2000]))
    }

    @Test func finAcknowledgementIsNotAGap() {
        let (r, rec) = make()
        send(r, 0..<100, frame: 2, fin: true)
        r.peerAcknowledged(Self.isn &+ 1 &+ 101, ref: ref(3))  // ACK of data + FIN
        r.flush(ref: ref(4))
        #expect(rec.gaps.isEmpty)
        #expect(rec.bytes.count == 100)
    }

    @Test func overflowingTheOutOfOrderCapGivesUpTheHole() {
        let (r, rec) = make(cap: 2500)
        send(r, 0..<500, frame: 2)
        send(r, 1000..<2000, frame: 3)
        send(r, 2000..<3000, frame: 4)
        #expect(rec.gaps.isEmpty)
        send(r, 3000..<4000, frame: 5)  // 3000 bytes buffered > cap
        #expect(rec.gaps.count == 1)
        #expect(rec.gaps.first?.length == 500)
        #expect(rec.bytes.count == 4000)
        #expect(r.bufferedBytes == 0)
    }

    /// A flood of one-byte segments out of order, a byte apart, that store (almost) nothing: cut
    /// by the snap length to no bytes at all, or with their one byte captured. Each is still a
    /// buffered piece, and the pieces must meet the cap (each counts `pieceOverhead`) rather than
    /// grow the buffer, and the cost of every insertion, without bound. Past the cap, holes are
    /// given up as gaps as for any other overflow.
    @Test(arguments: [false, true])
    func tinyOutOfOrderPiecesMeetTheCap(captured: Bool) {
        let cap = 64 * 1024
        let (r, rec) = make(cap: cap)
        let bound = cap / (StreamReassembler.pieceOverhead + (captured ? 1 : 0))
        let count = 50_000
        let byte: [UInt8] = [0x5A]
        var peak = 0
        for i in 0..<count {
            let seq = Self.isn &+ 1 &+ UInt32(2 + 2 * i)  // stream offsets 2, 4, 6, ...: a hole before each
            byte.withUnsafeBytes { raw in
                r.segment(seq: seq, payload: UnsafeRawBufferPointer(rebasing: raw.prefix(captured ? 1 : 0)),
                          announcedLength: 1, fin: false, ref: ref(i + 2))
            }
            peak = max(peak, r.pendingPieces)
            if r.pendingPieces > bound || r.bufferedCost > cap {
                Issue.record("segment \(i): \(r.pendingPieces) pieces buffered (\(r.bufferedCost) counted), cap \(cap)")
                break  // without the bound the rest would only take long
            }
        }
        #expect(peak == bound)  // the buffer filled up to the cap, no further
        // Holes given up are lost bytes; an uncaptured byte (snap length) is a gap of its own cause.
        let lost = rec.causes.filter { $0 == .lost }.count
        #expect(r.stats.gaps == lost && lost >= count - bound)
        #expect(r.stats.notCapturedBytes == UInt64(rec.causes.filter { $0 == .notCaptured }.count))
        #expect(captured || r.stats.notCapturedBytes > 0)
        r.flush(ref: ref(count + 2))
        #expect(r.pendingPieces == 0 && r.bufferedBytes == 0)
        #expect(rec.bytes.count == 2 * count + 1)  // every stream byte delivered or reported missing
    }

    @Test func sequenceNumbersWrapAround() {
        let isn: UInt32 = 0xFFFF_FF00
        let (r, rec) = make(isn: isn)
        send(r, 1000..<2000, frame: 3, isn: isn)
        send(r, 0..<1000, frame: 2, isn: isn)
        send(r, 2000..<5000, frame: 4, isn: isn)
        #expect(rec.bytes == Self.data)
    }

    @Test func midStreamStartBeginsAtTheFirstSegment() {
        let r = StreamReassembler()
        let rec = StreamRecorder()
        r.sink = rec
        send(r, 2000..<3000, frame: 1)
        send(r, 1500..<2500, frame: 2)  // partly before the start: its new tail only
        send(r, 3000..<4000, frame: 3)
        #expect(!r.sawSYN)
        #expect(rec.bytes == Array(Self.data[2000..<4000]))
    }

    @Test func snapLengthCutBytesAreAGap() {
        let (r, rec) = make()
        let seq = Self.isn &+ 1
        Self.data[0..<100].withUnsafeBytes { r.segment(seq: seq, payload: $0, announcedLength: 1000, fin: false, ref: ref(2)) }
        send(r, 1000..<1100, frame: 3)
        #expect(rec.gaps.count == 1)
        #expect(rec.gaps[0].offset == 100 && rec.gaps[0].length == 900)
        #expect(Array(rec.bytes[1000..<1100]) == Array(Self.data[1000..<1100]))
    }

    @Test func flushDeliversBufferedDataAfterAGap() {
        let (r, rec) = make()
        send(r, 0..<100, frame: 2)
        send(r, 200..<300, frame: 3)
        r.flush(ref: ref(4))
        #expect(rec.gaps.count == 1)
        #expect(rec.bytes.count == 300)
    }

    /// A sink that, like the framer inside I/O payload, does not need to see the bytes: segments
    /// of its stream take the flow's fast path.
    final class SkippingRecorder: StreamSink {
        var skipped = 0
        var gaps: [(length: UInt64, frame: Int)] = []
        var data: [(count: Int, frame: Int)] = []
        override func skipIfUnneeded(_ length: Int) -> Bool { skipped += length; return true }
        override func streamData(_ b: UnsafeRawBufferPointer, ref: FrameRef) { data.append((b.count, ref.frame)) }
        override func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) { gaps.append((length, ref.frame)) }
    }

    /// The fast path for in-order data must still act on a new acknowledgement it carries: here
    /// the host's data segments acknowledge controller bytes the capture lost, and the hole
    /// becomes a gap while the connection runs (after the grace packets), not at its end.
    @Test func fastPathSegmentsStillReportAcknowledgedLoss() {
        let host = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40000)
        let target = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 4420)
        let table = FlowTable(serverPorts: [4420])
        let hostSink = SkippingRecorder(), targetSink = StreamRecorder()
        let hooks = TableHooks(started: { flow in
            flow.enableReassembly(maxBufferedBytes: 1 << 20)
            flow.clientStream.sink = hostSink
            flow.serverStream.sink = targetSink
        })
        table.delegate = hooks
        defer { withExtendedLifetime(hooks) {} }
        var frame = 0
        let payload = [UInt8](repeating: 7, count: 100)
        func send(_ from: Endpoint, _ to: Endpoint, seq: UInt32, ack: UInt32, flags: TCPFlags, length: Int = 0) {
            frame += 1
            payload.withUnsafeBytes { raw in
                let segment = TCPSegment(src: from, dst: to, seq: seq, ack: ack, flags: flags,
                                         payload: UnsafeRawBufferPointer(rebasing: raw.prefix(length)), payloadLength: length)
                table.process(segment, ref: FrameRef(file: 0, frame: frame, timeNs: Int64(frame) * 1000))
            }
        }
        send(host, target, seq: 1000, ack: 0, flags: [.syn])
        send(target, host, seq: 5000, ack: 1001, flags: [.syn, .ack])
        send(host, target, seq: 1001, ack: 5001, flags: [.ack], length: 100)       // host data, attaches decoding
        send(target, host, seq: 5001, ack: 1101, flags: [.ack, .psh], length: 100)  // controller bytes 0..<100
        // Controller bytes 100..<200 are lost before the capture point; 200..<300 arrive.
        send(target, host, seq: 5201, ack: 1101, flags: [.ack, .psh], length: 100)
        // The host's next data segments acknowledge all 300 bytes, then keep that acknowledgement.
        for i in 0..<12 {
            send(host, target, seq: 1101 + UInt32(i * 100), ack: 5301, flags: [.ack, .psh], length: 100)
        }
        let lastFrame = frame
        // The first carries the new acknowledgement and the next 8 age the hole (full path); the
        // last 3 take the fast path.
        #expect(hostSink.skipped == 300)
        #expect(targetSink.gaps.map(\.length) == [100])
        #expect(targetSink.bytes.count == 300)
        #expect(targetSink.frames.last.map { $0 < lastFrame } == true, "the gap must not wait for the end")
    }
}
