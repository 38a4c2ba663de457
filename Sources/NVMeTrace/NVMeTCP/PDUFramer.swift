/// What the framer reports to the stage after it; subclasses override all three.
///
/// A class rather than a protocol, like `StreamSink`: the framer calls it for every PDU through
/// an unretained reference (`Unretained`, which needs a class). Loading an `unowned(unsafe)` protocol
/// reference costs an atomic retain and a release per call.
open class PDUFramerDelegate {
    public init() {}
    /// Called once a PDU's header is complete: how many of its data bytes to keep (0 to skip
    /// them). I/O payloads are skipped; Connect data, Identify and log pages are kept.
    open func framer(_ framer: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int { 0 }
    /// A PDU is complete. It is lent: its header and data point into the framer's buffers and
    /// are valid only during the call (`pdu.owned()` makes a copy).
    open func framer(_ framer: PDUFramer, didFrame pdu: LentPDU) {}
    open func framer(_ framer: PDUFramer, event: FramingEvent, ref: FrameRef) {}
}

/// Splits one direction's reassembled byte stream into NVMe/TCP PDUs.
///
/// A PDU may arrive split across any number of segments, or many in one segment: the framer
/// keeps at most one header (≤ 132 bytes, in a buffer allocated once) and the data bytes its
/// delegate asked for, and skips
/// the rest by length. After a gap it lost its place, so it scans for the next plausible header
/// (`PDUHeaderCheck.plausible`, confirmed by the header digest when there is one).
public final class PDUFramer: StreamSink {
    /// The owner of the framer (it outlives it), so not retained.
    public var delegate: PDUFramerDelegate? {
        get { delegateRef?.object }
        set { delegateRef = newValue.map { Unretained($0) } }
    }
    private var delegateRef: Unretained<PDUFramerDelegate>?
    public let verifyDataDigests: Bool
    public let maxPDULength: Int
    /// How many bytes the resync window may hold before unmatched bytes are dropped.
    static let resyncWindow = 4096

    private enum Phase {
        case header          // collecting header bytes into `headerStore`
        case body            // consuming the rest of the PDU
        case resync          // hunting for a PDU boundary
    }

    private var phase: Phase
    private var streamOffset: UInt64 = 0
    // Current PDU. The header is collected into a fixed buffer and lent to the delegate: an
    // array appended to, handed on and emptied per PDU cost ~250 instructions (callgrind).
    private let headerStore: UnsafeMutableRawPointer
    private var headerCount = 0
    /// The largest header plus header digest (ICReq, ICResp, TermReq: 128 + 4, §3.6.2).
    static let headerCapacity = 132
    private var headerNeed = 8
    private var shape: PDUShape?
    private var pduStart: UInt64 = 0
    private var firstRef = FrameRef.none
    /// The frame that brought the current PDU's last header or data bytes collected: a PDU the end
    /// of the stream cuts short is handed on there. Not set on the in-place and skipping paths
    /// (a store per PDU there is measurable); see `finish`.
    private var pduLastRef = FrameRef.none
    private var bodyPos = 0             // bytes of the PDU consumed so far (from its start)
    private var keep = 0                // data bytes to keep
    /// Body position up to which bytes can be skipped without looking at them (data already kept
    /// and no digest to compute): the fast path for I/O payload.
    private var blindUntil = 0
    private var data: [UInt8] = []
    private var crc = CRC32C()
    private var ddgst: [UInt8] = []
    private var incomplete = false
    private var headerDigest: DigestStatus = .absent
    // Resync
    private var window: [UInt8] = []
    private var windowRefs: [(Int, FrameRef)] = []
    private var windowStart: UInt64 = 0
    private var scanFrom = 0
    private var skipped: UInt64 = 0
    /// Why the framer is hunting for a PDU boundary (reported with the resynchronisation).
    private var lostPlace = LostPlace.streamStart

    public private(set) var pduCount = 0

    /// `synchronized` is false for a stream picked up mid-way: the first bytes are then scanned
    /// for a PDU boundary instead of being trusted as one.
    public init(synchronized: Bool, verifyDataDigests: Bool = false,
                maxPDULength: Int = PDUHeaderCheck.defaultMaxPDULength) {
        self.verifyDataDigests = verifyDataDigests
        self.maxPDULength = maxPDULength
        phase = synchronized ? .header : .resync
        headerStore = .allocate(byteCount: Self.headerCapacity, alignment: 8)
        super.init()
    }

    deinit { headerStore.deallocate() }

    /// The header bytes collected so far.
    private var headerBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: headerStore, count: headerCount) }

    /// Appends to the header (never past its capacity: `PDUHeaderCheck.shape` bounds HLEN).
    @inline(__always)
    private func appendHeader(_ bytes: UnsafeRawBufferPointer) {
        let n = min(bytes.count, Self.headerCapacity - headerCount)
        guard n > 0, let src = bytes.baseAddress else { return }
        (headerStore + headerCount).copyMemory(from: src, byteCount: n)
        headerCount += n
    }

    /// Bytes the framer holds for PDU data between PDUs (tests: none once a PDU is handed on).
    var dataBufferCapacity: Int { data.capacity }

    /// True while the framer is looking for a PDU boundary.
    public var isResynchronizing: Bool { phase == .resync }

    // MARK: StreamSink

    public override func streamData(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) {
        var rest = bytes
        while !rest.isEmpty {
            switch phase {
            case .header:
                rest = consumeHeader(rest, ref: ref)
            case .body:
                rest = consumeBody(rest, ref: ref)
            case .resync:
                appendWindow(rest, ref: ref)
                rest = UnsafeRawBufferPointer(start: nil, count: 0)
                scanWindow(ref: ref)
            }
        }
    }

    /// Payload inside the current PDU that nobody needs and that does not complete it (that goes
    /// through `consumeBody`) is counted without being looked at. `blindUntil` is 0 outside a body.
    public override func skipIfUnneeded(_ length: Int) -> Bool {
        guard bodyPos + length < blindUntil else { return false }
        bodyPos += length
        streamOffset += UInt64(length)
        return true
    }

    public override func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) {
        let at = streamOffset
        // Hunting for a boundary, the bytes before the gap may hold the start of a header the gap
        // cut: in a headers-only capture that is where most PDUs start.
        if phase == .resync { resumeAtPartialHeader(ref: ref) }
        switch phase {
        case .body:
            gapInBody(length, cause: cause, at: at, ref: ref)
        case .header:
            if let s = shape, headerCount >= 8 {
                // The common header was captured, so the PDU's length is known (NVMe/TCP §3.6.2.1,
                // PLEN): framing keeps its place through the missing bytes, and the PDU is handed on
                // with the part of its header that was captured. What lies past it is unknown.
                startBody(s, captured: headerCount, ref: ref)
                if phase == .body { gapInBody(length, cause: cause, at: at, ref: ref) }
                return
            }
            delegate?.framer(self, event: .gap(bytes: length, insidePDU: false, cause: cause, streamOffset: at), ref: ref)
            let partial = UInt64(headerCount)
            headerCount = 0
            streamOffset += length
            enterResync(skippedSoFar: partial, because: cause == .lost ? .lost : .notCaptured)
        case .resync:
            delegate?.framer(self, event: .gap(bytes: length, insidePDU: false, cause: cause, streamOffset: at), ref: ref)
            if cause == .lost { lostPlace = .lost }
            skipped += UInt64(window.count)
            window.removeAll(keepingCapacity: true)
            windowRefs.removeAll(keepingCapacity: true)
            scanFrom = 0
            streamOffset += length
            windowStart = streamOffset
        }
    }

    /// Bytes missing inside a PDU whose length is known: skip them and stay in step; when they run
    /// past the PDU's end, the next PDU's start is lost too.
    private func gapInBody(_ length: UInt64, cause: GapCause, at: UInt64, ref: FrameRef) {
        guard let shape else { return }
        let left = UInt64(shape.plen - bodyPos)
        if length < left {
            delegate?.framer(self, event: .gap(bytes: length, insidePDU: true, cause: cause, streamOffset: at), ref: ref)
            incomplete = true
            advanceBody(by: Int(length))
            streamOffset += length
            return
        }
        incomplete = true
        advanceBody(by: Int(left))
        streamOffset += left
        finishPDU(ref: ref)
        let remaining = length - left
        if remaining == 0 {
            delegate?.framer(self, event: .gap(bytes: length, insidePDU: true, cause: cause, streamOffset: at), ref: ref)
            return
        }
        delegate?.framer(self, event: .gap(bytes: length, insidePDU: false, cause: cause, streamOffset: at), ref: ref)
        streamOffset += remaining
        enterResync(skippedSoFar: 0, because: cause == .lost ? .lost : .notCaptured)
    }

    /// The stream is over: report a PDU cut short.
    public func finish(ref: FrameRef) {
        // The capture's end may cut a header the way a gap does.
        if phase == .resync { resumeAtPartialHeader(ref: windowRefs.last?.1 ?? ref) }
        switch phase {
        case .header where headerCount > 0:
            delegate?.framer(self, event: .truncatedAtEnd(bytesMissing: headerNeed - headerCount, streamOffset: pduStart), ref: ref)
            if let s = shape, headerCount >= 8 {
                // Its common header was captured: framed with what the capture held of it.
                startBody(s, captured: headerCount, ref: pduLastRef)
                if phase == .body { finishPDU(ref: pduLastRef) }
            }
        case .body:
            if let shape {
                delegate?.framer(self, event: .truncatedAtEnd(bytesMissing: shape.plen - bodyPos, streamOffset: pduStart), ref: ref)
                incomplete = true
                // `pduLastRef` is not kept up to date on the paths that skip payload unseen: when
                // it is older than the PDU's first frame, the PDU is handed on there.
                let last = (pduLastRef.file, pduLastRef.frame) >= (firstRef.file, firstRef.frame) ? pduLastRef : firstRef
                finishPDU(ref: last)
            }
        case .resync where skipped + UInt64(window.count) > 0:
            delegate?.framer(self, event: .unframedAtEnd(skippedBytes: skipped + UInt64(window.count), streamOffset: streamOffset,
                                                         lostPlace: lostPlace), ref: ref)
        default: break
        }
        headerCount = 0
        window.removeAll()
        shape = nil
    }

    // MARK: header

    private func consumeHeader(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) -> UnsafeRawBufferPointer {
        if headerCount == 0 {
            pduStart = streamOffset
            firstRef = ref
            // The whole header is in this chunk (the usual case): check it in place and copy it
            // once. Anything else takes the byte-collecting path below.
            if bytes.count >= 8, case .success(let s) = PDUHeaderCheck.shape(bytes.prefix(8), maxPDULength: maxPDULength),
               bytes.count >= s.headerBytes {
                // The whole PDU is here (commands, responses, R2Ts, small data PDUs): framed and
                // lent in place, without the header copy and the body state machine.
                if bytes.count >= s.plen { return framedInPlace(s, bytes, ref: ref) }
                appendHeader(bytes.prefix(s.headerBytes))
                streamOffset += UInt64(s.headerBytes)
                shape = s
                headerNeed = s.headerBytes
                headerComplete(ref: ref)
                return bytes.dropFirst(s.headerBytes)
            }
        }
        pduLastRef = ref
        let take = min(headerNeed - headerCount, bytes.count)
        appendHeader(bytes.prefix(take))
        streamOffset += UInt64(take)
        let rest = bytes.dropFirst(take)
        guard headerCount == headerNeed else { return rest }
        if headerNeed == 8 {
            let result = PDUHeaderCheck.shape(headerBytes, maxPDULength: maxPDULength)
            switch result {
            case .failure(let problem):
                delegate?.framer(self, event: .invalidHeader(problem, streamOffset: pduStart), ref: ref)
                // Rescan from the byte after the bad header's first byte.
                let retained = Array(headerBytes.dropFirst(1))
                headerCount = 0
                streamOffset = pduStart + 1
                enterResync(skippedSoFar: 1, because: .invalidHeader)
                retained.withUnsafeBytes { appendWindow($0, ref: ref) }
                streamOffset = pduStart + 8
                scanWindow(ref: ref)
                return rest
            case .success(let s):
                shape = s
                headerNeed = s.headerBytes
                if headerCount < headerNeed { return rest }
            }
        }
        headerComplete(ref: ref)
        return rest
    }

    /// Frames a PDU that lies whole in `bytes` (which start with it) and lends it to the delegate
    /// straight from them; exactly what the header and body paths would hand on.
    private func framedInPlace(_ s: PDUShape, _ bytes: UnsafeRawBufferPointer, ref: FrameRef) -> UnsafeRawBufferPointer {
        let header = bytes.prefix(s.hlen)
        let hd = Self.headerDigestStatus(s, bytes)
        var keepBytes = 0
        if s.dataLength > 0 {
            let wanted = delegateRef?.with { $0.framer(self, dataBytesToKeepFor: s, header: header) } ?? 0
            keepBytes = max(0, min(wanted, s.dataLength))
        }
        let dd = dataDigestStatus(s, incomplete: false, received: bytes.le32(at: s.dataStart + s.dataLength) ?? 0) {
            CRC32C.checksum(bytes.slice(s.dataStart, s.dataLength) ?? UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let data = keepBytes > 0 ? bytes.slice(s.dataStart, keepBytes) ?? UnsafeRawBufferPointer(start: nil, count: 0)
                                 : UnsafeRawBufferPointer(start: nil, count: 0)
        streamOffset += UInt64(s.plen)
        pduCount += 1
        emit(LentPDU(shape: s, header: header, data: data, headerDigest: hd, dataDigest: dd, incomplete: false,
                       firstRef: ref, ref: ref, streamOffset: pduStart))
        return bytes.dropFirst(s.plen)
    }

    /// The header digest of a PDU whose header (and digest) start `bytes` (§3.6.2.1: CRC32C over
    /// the HLEN header bytes).
    @inline(__always)
    private static func headerDigestStatus(_ s: PDUShape, _ bytes: UnsafeRawBufferPointer) -> DigestStatus {
        guard s.headerDigestLength == 4 else { return .absent }
        return .checked(received: bytes.le32(at: s.hlen) ?? 0, computed: CRC32C.checksum(bytes.prefix(s.hlen)))
    }

    /// The data digest: computed only with `--verify-data-digests`, and not at all when some of
    /// the data was lost.
    @inline(__always)
    private func dataDigestStatus(_ s: PDUShape, incomplete: Bool, received: @autoclosure () -> UInt32,
                                  computed: () -> UInt32) -> DigestStatus {
        guard s.dataDigestLength == 4 else { return .absent }
        if incomplete { return .unverifiable }
        if !verifyDataDigests { return .notVerified }
        return .checked(received: received(), computed: computed())
    }

    private func headerComplete(ref: FrameRef) {
        guard let s = shape else { return }
        startBody(s, captured: s.headerBytes, ref: ref)
    }

    /// Moves on to the body of a PDU whose first `captured` header bytes are in `headerStore`:
    /// all of them (and the header digest) normally, a prefix of at least the common header when
    /// the capture cut the header.
    private func startBody(_ s: PDUShape, captured: Int, ref: FrameRef) {
        let partial = captured < s.headerBytes
        headerDigest = partial ? (s.headerDigestLength == 4 ? .unverifiable : .absent) : Self.headerDigestStatus(s, headerBytes)
        bodyPos = captured
        incomplete = partial
        // Usually empty already; emptying an empty array still costs a generic call.
        if !data.isEmpty { data.removeAll(keepingCapacity: true) }
        if !ddgst.isEmpty { ddgst.removeAll(keepingCapacity: true) }
        crc = CRC32C()
        keep = 0
        if s.dataLength > 0 {
            let header = headerBytes.prefix(min(s.hlen, captured))
            let wanted = delegateRef?.with { $0.framer(self, dataBytesToKeepFor: s, header: header) } ?? 0
            keep = max(0, min(wanted, s.dataLength))
            if keep > 0 { data.reserveCapacity(keep) }
        }
        phase = .body
        updateBlindUntil(s)
        if bodyPos == s.plen { finishPDU(ref: ref) }
    }

    private func updateBlindUntil(_ s: PDUShape) {
        let computingDigest = verifyDataDigests && s.dataDigestLength == 4
        // Bytes before the data that are not header (padding) and data past what is kept can be
        // skipped; the data digest bytes cannot.
        if computingDigest || s.dataLength == 0 || keep > 0 && data.count < keep {
            blindUntil = 0
        } else {
            blindUntil = s.dataStart + s.dataLength
        }
    }

    // MARK: body

    private func consumeBody(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) -> UnsafeRawBufferPointer {
        if skipIfUnneeded(bytes.count) { return UnsafeRawBufferPointer(start: nil, count: 0) }
        pduLastRef = ref
        guard let s = shape else { phase = .header; return bytes }
        let take = min(s.plen - bodyPos, bytes.count)
        let chunk = bytes.prefix(take)
        // Data region [dataStart, dataStart + dataLength), then the digest.
        let dataEnd = s.dataStart + s.dataLength
        let from = bodyPos, to = bodyPos + take
        let dFrom = max(from, s.dataStart), dTo = min(to, dataEnd)
        if dFrom < dTo {
            let piece = chunk.slice(dFrom - from, dTo - dFrom)!
            // Only data contiguous from its first byte is kept: after a gap, bytes would land at
            // the wrong offsets.
            if data.count < keep && dFrom - s.dataStart == data.count {
                data.append(contentsOf: piece.prefix(keep - data.count))
                if data.count >= keep { updateBlindUntil(s) }
            }
            if verifyDataDigests && s.dataDigestLength == 4 { crc.update(piece) }
        }
        if s.dataDigestLength == 4 {
            let gFrom = max(from, dataEnd), gTo = min(to, s.plen)
            if gFrom < gTo { ddgst.append(contentsOf: chunk.slice(gFrom - from, gTo - gFrom)!) }
        }
        bodyPos += take
        streamOffset += UInt64(take)
        if bodyPos == s.plen { finishPDU(ref: ref) }
        return bytes.dropFirst(take)
    }

    /// Bytes of the body lost in a gap: account for them without data.
    private func advanceBody(by n: Int) {
        guard let s = shape else { return }
        let dataEnd = s.dataStart + s.dataLength
        let from = bodyPos, to = bodyPos + n
        // Keep the digest buffer aligned with its position: pad lost digest bytes.
        if s.dataDigestLength == 4 {
            let gFrom = max(from, dataEnd), gTo = min(to, s.plen)
            if gFrom < gTo { ddgst.append(contentsOf: repeatElement(0, count: gTo - gFrom)) }
        }
        bodyPos = to
    }

    private func finishPDU(ref: FrameRef) {
        guard let s = shape else { return }
        let dataDigest = dataDigestStatus(s, incomplete: incomplete, received: ddgst.le32(at: 0) ?? 0) { crc.value }
        pduCount += 1
        shape = nil
        blindUntil = 0
        headerNeed = 8
        phase = .header
        let header = headerBytes.prefix(s.hlen)
        if data.isEmpty {
            emit(LentPDU(shape: s, header: header, data: UnsafeRawBufferPointer(start: nil, count: 0),
                           headerDigest: headerDigest, dataDigest: dataDigest, incomplete: incomplete,
                           firstRef: firstRef, ref: ref, streamOffset: pduStart))
        } else {
            data.withUnsafeBytes { d in
                emit(LentPDU(shape: s, header: header, data: d, headerDigest: headerDigest, dataDigest: dataDigest,
                               incomplete: incomplete, firstRef: firstRef, ref: ref, streamOffset: pduStart))
            }
        }
        headerCount = 0
        // Data is kept for a few PDUs of a connection (Connect, Identify, the discovery log): its
        // buffer is not worth keeping (up to 4 KiB per connection, 39% of the heap with 10,000).
        if !data.isEmpty { data = [] }
    }

    /// Lends a PDU to the delegate.
    private func emit(_ pdu: LentPDU) {
        delegateRef?.with { $0.framer(self, didFrame: pdu) }
    }

    // MARK: resync

    private func enterResync(skippedSoFar: UInt64, because why: LostPlace) {
        phase = .resync
        lostPlace = why
        shape = nil
        blindUntil = 0
        headerCount = 0
        headerNeed = 8
        window.removeAll(keepingCapacity: true)
        windowRefs.removeAll(keepingCapacity: true)
        windowStart = streamOffset
        scanFrom = 0
        skipped = skippedSoFar
    }

    private func appendWindow(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) {
        if window.isEmpty { windowStart = streamOffset }
        windowRefs.append((window.count, ref))
        window.append(contentsOf: bytes)
        streamOffset += UInt64(bytes.count)
    }

    private func refForWindowOffset(_ offset: Int) -> FrameRef {
        var result = windowRefs.first?.1 ?? .none
        for (start, ref) in windowRefs where start <= offset { result = ref }
        return result
    }

    /// Looks for a PDU boundary in the window and replays what follows it through the normal
    /// path. A replay that loses its place again refills the window and scans again in this loop,
    /// not by recursion: hostile bytes can lose it once every 25 bytes.
    private func scanWindow(ref: FrameRef) {
        if scanning { rescanRequested = true; return }  // called from inside a replay
        scanning = true
        defer { scanning = false }
        var again = true
        while again {
            rescanRequested = false
            again = scanWindowOnce(ref: ref) || (rescanRequested && phase == .resync)
        }
    }
    private var scanning = false
    private var rescanRequested = false

    /// Resumes framing at window offset `p`: replays the bytes retained from there through the
    /// normal path (the first PDU starts in the frame that brought `p`). True when the replay lost
    /// its place again and left new bytes in the window to scan.
    private func resume(at p: Int, ref: FrameRef) -> Bool {
        let resumeOffset = windowStart + UInt64(p)
        delegate?.framer(self, event: .resynchronized(skippedBytes: skipped + UInt64(p), streamOffset: resumeOffset,
                                                      lostPlace: lostPlace), ref: ref)
        let startRef = refForWindowOffset(p)
        let tail = Array(window[p...])
        window.removeAll(keepingCapacity: true)
        windowRefs.removeAll(keepingCapacity: true)
        skipped = 0
        scanFrom = 0
        phase = .header
        streamOffset = resumeOffset
        var rescan = false
        tail.withUnsafeBytes { raw in
            var rest = raw
            var first = true
            while !rest.isEmpty {
                if first && phase == .header && headerCount == 0 {
                    pduStart = streamOffset
                    firstRef = startRef
                    appendHeader(rest.prefix(1))
                    streamOffset += 1
                    rest = rest.dropFirst(1)
                    first = false
                    continue
                }
                first = false
                switch phase {
                case .header: rest = consumeHeader(rest, ref: ref)
                case .body: rest = consumeBody(rest, ref: ref)
                case .resync:
                    appendWindow(rest, ref: ref)
                    rest = UnsafeRawBufferPointer(start: nil, count: 0)
                    rescan = true
                }
            }
        }
        return rescan
    }

    /// Called at a gap while hunting for a boundary. In a headers-only capture the snap length
    /// cuts most PDU headers: a header whose common header and captured fields are plausible
    /// (`PDUHeaderCheck.plausible` on the captured prefix) and that runs into the gap is taken as
    /// a boundary, so the PDU is framed with its captured prefix and the framer is in step after
    /// it. A complete header was already looked for by `scanWindow`.
    private func resumeAtPartialHeader(ref: FrameRef) {
        var found: Int?
        window.withUnsafeBytes { w in
            var p = scanFrom
            while p + 8 <= w.count {
                if case .success(let s) = PDUHeaderCheck.shape(w.slice(p, 8)!, maxPDULength: maxPDULength),
                   p + s.headerBytes > w.count,
                   PDUHeaderCheck.plausible(s, header: w.slice(p, min(s.hlen, w.count - p))!) {
                    found = p
                    return
                }
                p += 1
            }
        }
        guard let p = found else { return }
        // The replay ends inside the header (it runs into the gap), so it cannot lose its place.
        _ = resume(at: p, ref: ref)
    }

    /// One scan; true when the replay went back to resync with new bytes in the window.
    private func scanWindowOnce(ref: FrameRef) -> Bool {
        var p = scanFrom
        var found: Int?
        window.withUnsafeBytes { w in
            while p + 8 <= w.count {
                if case .success(let s) = PDUHeaderCheck.shape(w.slice(p, 8)!, maxPDULength: maxPDULength) {
                    if w.count - p < s.headerBytes { return }  // wait for the rest of this header
                    let header = w.slice(p, s.hlen)!
                    if PDUHeaderCheck.plausible(s, header: header) {
                        if s.headerDigestLength == 4 {
                            let received = w.le32(at: p + s.hlen) ?? 0
                            if received == CRC32C.checksum(header) { found = p; return }
                        } else {
                            found = p
                            return
                        }
                    }
                }
                p += 1
            }
        }
        if let p = found { return resume(at: p, ref: ref) }
        scanFrom = p
        // Bound the window: drop bytes that can no longer start a PDU.
        if window.count > PDUFramer.resyncWindow {
            let drop = min(scanFrom, window.count - 7)
            if drop > 0 {
                skipped += UInt64(drop)
                window.removeFirst(drop)
                windowStart += UInt64(drop)
                windowRefs = windowRefs.compactMap { (start, r) in
                    start - drop >= 0 ? (start - drop, r) : nil
                }
                if windowRefs.isEmpty || windowRefs[0].0 > 0 { windowRefs.insert((0, ref), at: 0) }
                scanFrom -= drop
            }
        }
        return false
    }
}
