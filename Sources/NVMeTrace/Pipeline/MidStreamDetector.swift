/// Recognises NVMe/TCP on a connection picked up mid-stream (no SYN, so no ICReq to go by) on a
/// port not known to carry it, by the shape of the byte streams alone.
///
/// Each direction of an NVMe/TCP connection is an unbroken chain of PDUs: the common header at
/// stream offset p gives the PDU's whole length, PLEN, so the next header starts at p + PLEN
/// (NVMe/TCP Transport §3.6.2.1). A *run* is such a chain of headers found in the stream, each
/// passing the checks the framer uses to resynchronise (`PDUHeaderCheck.shape` and `.plausible`),
/// all of types one side sends (the host sends ICReq, H2CTermReq, CapsuleCmd and H2CData; the
/// controller ICResp, C2HTermReq, CapsuleResp, C2HData and R2T: §3.6.1) and all with the same
/// HDGST flag (header digests are negotiated once, by the DGST fields of ICReq and ICResp,
/// §3.6.2.2, §3.6.2.3, and then carried by every later PDU, as in sample D2). A run in either
/// direction decides: the connection is NVMe/TCP, and the side that sent the run's types is the
/// host or the controller.
///
/// How long a run: `decidingScore`, where a header counts 1, or 2 when its header digest was
/// captured and verifies (CRC32C over the HLEN header bytes, §3.6.2.7, as the framer checks it).
/// So 4 headers in a row without header digests, 2 with them. Why 4: the weakest header to take
/// by chance is a CapsuleCmd (type and HLEN bytes one value each, 2^-16 together; flags other
/// than the digest bits zero; PLEN between 72 and the 64 MiB limit; SGL descriptor type
/// non-zero: about 2^-28 for random bytes at a given offset); every other type also pins its
/// PLEN or ties it to DATAL, far rarer. Any of the 2^20 offsets of the scanned budget may start
/// a run, and each further header must match at the one offset the previous one names: 4 in a
/// row is below 2^20 · 2^-112 for random data. Real payload is not random: it can hold stray real
/// headers (a stored capture, a log of PDUs), and a stray data PDU whose PLEN happens to land on
/// the next stray one makes a run of 2 now and then (the stray-header test sees it with 2); 4
/// needs three such coincidences in a row. 4 costs one more PDU than 3, which a real connection
/// sends within milliseconds. A verified header digest adds 2^-32 on its own, so two such headers
/// in a row are as strong as four without.
///
/// Headers-only captures (`tcpdump -s 128`) keep only each segment's first bytes and report the
/// rest as gaps (`GapCause.notCaptured`), offsets exact. A header whose bytes were captured is
/// checked as usual, whatever was lost between it and the previous one. A header cut short (at
/// least its 8-byte common header captured) counts when its captured part passes: `plausible`
/// reads only checked fields, so a header cut before a field the check needs does not count; a
/// header digest that was not captured adds nothing. A header that was not captured at all ends
/// the run that expected it: its length, and so the next header's place, is unknown.
///
/// An ICReq or ICResp at the very first byte seen of a direction decides on its own: it is the
/// first PDU of a connection (§3.6.2.2, §3.6.2.3), so only the handshake was missed, and its many
/// fixed fields are what `ICReqProbe` accepts for a connection whose handshake was seen.
/// Anywhere else neither can be a PDU.
///
/// Memory and time are bounded per direction: the bytes held for replay cost at most
/// `heldByteCap` (16 KiB, counting `pieceCost` per held piece), and after `scanBudget` (1 MiB) of
/// stream without a run the direction stops looking (no per-byte work from then on). When both
/// directions have given up, the flow is ignored (a later ICReq to its target still covers it:
/// see `Analyzer`).
final class MidStreamDetector {
    /// The connection's handler owns the detector (its state) and outlives it.
    private unowned let handler: ConnectionHandler
    /// [0] was attached to the guessed client's stream, [1] to the guessed server's.
    let scanners: [PDURunScanner]
    /// Decided, covered by a proof or given up: nothing more to do.
    var finished = false

    init(handler: ConnectionHandler) {
        self.handler = handler
        let max = handler.analyzer.options.maxPDULength
        scanners = [PDURunScanner(maxPDULength: max), PDURunScanner(maxPDULength: max)]
        for s in scanners { s.owner = self }
    }

    func other(than scanner: PDURunScanner) -> PDURunScanner {
        scanner === scanners[0] ? scanners[1] : scanners[0]
    }

    /// A run was found in `scanner`'s direction.
    fileprivate func runFound(by scanner: PDURunScanner, fromHost: Bool, ref: FrameRef) {
        guard !finished else { return }
        finished = true
        handler.recognised(self, hostScanner: fromHost ? scanner : other(than: scanner), ref: ref)
    }

    fileprivate func held(_ cost: Int) {
        let analyzer = handler.analyzer
        analyzer.midStreamHeldHighWater = max(analyzer.midStreamHeldHighWater, cost)
    }

    fileprivate func directionExhausted(ref: FrameRef) {
        guard !finished, scanners.allSatisfy({ $0.state == .exhausted }) else { return }
        finished = true
        handler.scanningExhausted()
    }

    /// Hands what both directions held to the framers of `conn`: the host's bytes to
    /// `framers[0]`, the controller's to `framers[1]`, each from where its replay starts (a
    /// header the scanner found, so the unsynchronized framer starts on it), in capture order
    /// across the two (so commands come before their completions, as on the wire). The bytes
    /// before those starts are passed over without a gap warning; one warning per direction says
    /// they were not decoded, and `why`.
    func replay(into conn: NVMeTCPConnection, host: PDURunScanner, why: Diagnostic.Recognition, ref: FrameRef) {
        finished = true
        let pair = [host, other(than: host)]
        var items: [[PDURunScanner.ReplayItem]] = []
        for (d, s) in pair.enumerated() {
            let start = s.replayStart
            let list = s.replayItems(from: start)
            conn.startsLate(direction: d, skipping: start, ref: list.first?.ref ?? ref, why: why)
            items.append(list)
        }
        var next = [0, 0]
        while next[0] < items[0].count || next[1] < items[1].count {
            let d: Int
            if next[0] == items[0].count { d = 1 } else if next[1] == items[1].count { d = 0 } else {
                let a = items[0][next[0]].ref, b = items[1][next[1]].ref
                d = (b.file, b.frame) < (a.file, a.frame) ? 1 : 0
            }
            pair[d].feed(items[d][next[d]], to: conn.framers[d])
            next[d] += 1
        }
        for s in pair { s.replayed() }
    }
}

/// One direction of a `MidStreamDetector`: looks for a run of PDU headers and holds what it may
/// have to replay.
final class PDURunScanner: StreamSink {
    /// Held bytes for replay, per direction, counting `pieceCost` for each held piece (data or
    /// gap): enough for a run of the usual small PDUs and the data PDUs between them.
    static let heldByteCap = 16 * 1024
    static let pieceCost = 32
    /// Stream (bytes and gaps) a direction looks through before giving up.
    static let scanBudget: UInt64 = 1 << 20
    static let decidingScore = 4
    /// Candidate runs followed at once, and header offsets remembered as replay starts.
    static let maxRuns = 8
    static let maxAnchors = 32
    /// The most bytes a header check reads: HLEN 72 plus a header digest, or an ICReq/ICResp's 128.
    static let maxHeaderBytes = 132
    /// HLEN per PDU type (§3.6.1, Figure 21), for a quick look at each offset; 0 for the unused 8.
    private static let hlenByType: [UInt8] = [128, 128, 24, 24, 72, 24, 24, 24, 0, 24]

    enum State { case scanning, exhausted, done }
    private(set) var state = State.scanning
    /// The detector owns this scanner.
    weak var owner: MidStreamDetector?
    let maxPDULength: Int

    private struct Run {
        var next: UInt64       // where its next header must start
        var score: Int
        var fromHost: Bool
        var headerDigest: Bool
    }

    private struct Found {
        var type: PDUType
        var plen: UInt64
        var headerDigest: Bool
        var verified: Bool
        var isIC: Bool { type == .icReq || type == .icResp }
        var weight: Int { verified ? 2 : 1 }
    }

    private enum Examined { case wait, none, header(Found) }
    private enum Step { case next, wait, stop }

    /// Stream offset of the next byte to arrive (bytes and gaps so far).
    private(set) var offset: UInt64 = 0
    /// The next offset to look at as a header start.
    private var scanPos: UInt64 = 0
    private var runs: [Run] = []
    private var nearestNext = UInt64.max

    /// What is held: every byte and gap of [storeStart, storeEnd), in order. It always covers
    /// [scanPos, offset) (the bytes a header check may still need) and, while a header worth
    /// starting a replay on is held, everything from `holdFrom`.
    struct Piece {
        var length: UInt64
        var gap: GapCause?       // nil: data (its bytes are the next `length` of `storeBytes`)
        var ref: FrameRef
    }
    private var storeStart: UInt64 = 0
    private var storeEnd: UInt64 = 0
    private var storeBytes: [UInt8] = []
    private var pieces: [Piece] = []
    /// The earliest held header offset (a replay starts there); nil when none is held.
    private var holdFrom: UInt64?
    /// Header offsets found since `holdFrom` (the first is `holdFrom`), ascending.
    private var anchors: [UInt64] = []
    /// What the held bytes and pieces cost now, and the most they ever cost (tests).
    private(set) var heldCost = 0
    private(set) var maxHeldCost = 0

    // The chunk or gap being delivered, for a decision (and replay) from inside the call.
    private var chunk = UnsafeRawBufferPointer(start: nil, count: 0)
    private var chunkStart: UInt64 = 0
    private var currentRef = FrameRef.none
    private var pendingGap: (length: UInt64, cause: GapCause)?

    init(maxPDULength: Int) {
        self.maxPDULength = maxPDULength
        super.init()
    }

    // MARK: StreamSink

    override func streamData(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) {
        guard state == .scanning, bytes.count > 0 else {
            if state == .exhausted { offset += UInt64(bytes.count) }
            return
        }
        chunk = bytes
        chunkStart = offset
        currentRef = ref
        offset += UInt64(bytes.count)
        scanChunk()
        chunk = UnsafeRawBufferPointer(start: nil, count: 0)
        guard state == .scanning else {
            if state == .done { release() }
            return
        }
        keepChunk(bytes, ref: ref)
        if offset >= Self.scanBudget { exhaust(ref: ref) }
    }

    override func streamGap(_ length: UInt64, cause: GapCause, ref: FrameRef) {
        guard state == .scanning, length > 0 else {
            if state == .exhausted { offset += length }
            return
        }
        let gapStart = offset
        pendingGap = (length, cause)
        currentRef = ref
        offset += length
        // No more bytes will come for the offsets before the gap: check what was captured of
        // the headers that start there.
        let tail = Int(gapStart - scanPos)
        if tail >= 8 {
            let captured = Array(storeBytes.suffix(tail))
            let stopped = captured.withUnsafeBytes { t -> Bool in
                var p = scanPos
                while p + 8 <= gapStart {
                    if step(at: p, t.dropFirst(Int(p - scanPos)), complete: true) == .stop { return true }
                    p += 1
                }
                return false
            }
            if stopped {
                pendingGap = nil
                if state == .done { release() }
                return
            }
        }
        pendingGap = nil
        // Runs that expect a header in the gap, or in the few bytes before it (too few to
        // check), end: that header's length is unknown.
        runs.removeAll { $0.next < offset }
        nearestNext = runs.lazy.map(\.next).min() ?? .max
        scanPos = offset
        keepGap(length, cause: cause, ref: ref, gapStart: gapStart)
        if offset >= Self.scanBudget { exhaust(ref: ref) }
    }

    /// After giving up, bytes are passed over unseen (the reassembler's fast path), only counted
    /// so that a later decoding (by a proof of the target) knows where the stream stands.
    override func skipIfUnneeded(_ length: Int) -> Bool {
        guard state == .exhausted else { return false }
        offset += UInt64(length)
        return true
    }

    // MARK: scanning

    private func scanChunk() {
        let end = offset
        var p = scanPos
        if p < chunkStart {
            // Offsets before this chunk: their bytes are the last ones held, followed by the
            // chunk's first bytes (no header check reads more than `maxHeaderBytes`).
            let tail = Int(chunkStart - p)
            var scratch = [UInt8]()
            scratch.reserveCapacity(tail + Self.maxHeaderBytes)
            scratch.append(contentsOf: storeBytes.suffix(tail))
            scratch.append(contentsOf: chunk.prefix(Self.maxHeaderBytes))
            let base = p
            let step = scratch.withUnsafeBytes { s -> Step in
                while p < chunkStart && p + 8 <= end {
                    let r = self.step(at: p, s.dropFirst(Int(p - base)), complete: false)
                    if r != .next { return r }
                    p += 1
                }
                return .next
            }
            // Stopped, or the chunk is too short for the next offset's common header yet.
            if step != .next || p < chunkStart { scanPos = p; return }
        }
        guard let c = chunk.baseAddress else { scanPos = p; return }
        let count = chunk.count
        var i = Int(p - chunkStart)
        while i + 8 <= count {
            // Most offsets are not even a PDU type with its HLEN (§3.6.1). Eight at a time while
            // no run expects a header among them: the first that might be one, or none.
            if p + 8 <= nearestNext && i + 10 <= count {
                let found = Self.typeAndHLENCandidates(
                    UInt64(littleEndian: c.loadUnaligned(fromByteOffset: i, as: UInt64.self)),
                    UInt64(littleEndian: c.loadUnaligned(fromByteOffset: i + 2, as: UInt64.self)))
                let skip = found.trailingZeroBitCount >> 3   // 8 when there is none
                i += skip
                p += UInt64(skip)
                if skip == 8 { continue }
            }
            if p != nearestNext {
                let t = c.load(fromByteOffset: i, as: UInt8.self)
                if t > 9 || t == 8 || c.load(fromByteOffset: i + 2, as: UInt8.self) != Self.hlenByType[Int(t)] {
                    i += 1
                    p += 1
                    continue
                }
            }
            let r = step(at: p, UnsafeRawBufferPointer(start: c + i, count: count - i), complete: false)
            if r != .next { scanPos = p; return }
            i += 1
            p += 1
        }
        scanPos = p
    }

    /// One bit (the top one) per byte lane k of `w0` (bytes i..i+7, little-endian) where lane k
    /// could start a header: byte k below 10 (a PDU type or 8) and byte k + 2 (lane k of `w2`,
    /// bytes i+2..i+9) 24, 72 or 128 (an HLEN). Exact per lane (no carries between lanes), so
    /// the lowest set bit is the first candidate; a candidate still needs the full check.
    @inline(__always)
    static func typeAndHLENCandidates(_ w0: UInt64, _ w2: UInt64) -> UInt64 {
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F, high: UInt64 = 0x8080_8080_8080_8080, ones: UInt64 = 0x0101_0101_0101_0101
        // Byte < 10: its top bit clear and its low 7 bits plus 118 below 128.
        let below10 = ~(((w0 & low7) &+ (118 &* ones)) | w0) & high
        // Byte == v: x ^ v is zero, i.e. its low 7 bits plus 127 below 128 and its top bit clear.
        func equal(_ v: UInt64) -> UInt64 {
            let x = w2 ^ (v &* ones)
            return ~(((x & low7) &+ low7) | x) & high
        }
        return below10 & (equal(24) | equal(72) | equal(128))
    }

    /// Looks at offset `p`, whose bytes `v` starts with (all that are there, or at least a
    /// header's worth); `complete` when no more will come for it.
    private func step(at p: UInt64, _ v: UnsafeRawBufferPointer, complete: Bool) -> Step {
        let found: Found?
        switch examine(v, complete: complete) {
        case .wait: return .wait
        case .none: found = nil
        case .header(let f): found = f
        }
        return handle(p, found) ? .stop : .next
    }

    private func examine(_ v: UnsafeRawBufferPointer, complete: Bool) -> Examined {
        guard v.count >= 8 else { return complete ? .none : .wait }
        guard case .success(let s) = PDUHeaderCheck.shape(v.prefix(8), maxPDULength: maxPDULength) else { return .none }
        if v.count < s.headerBytes && !complete { return .wait }
        guard PDUHeaderCheck.plausible(s, header: v.prefix(s.hlen)) else { return .none }
        var verified = false
        if s.headerDigestLength == 4, v.count >= s.headerBytes, let received = v.le32(at: s.hlen) {
            guard received == CRC32C.checksum(v.prefix(s.hlen)) else { return .none }
            verified = true
        }
        return .header(Found(type: s.type, plen: UInt64(s.plen), headerDigest: s.headerDigestLength == 4,
                             verified: verified))
    }

    /// What offset `p` holds means for the runs; true when it decided.
    private func handle(_ p: UInt64, _ found: Found?) -> Bool {
        var continued = false
        if p == nearestNext {
            var i = 0
            while i < runs.count {
                guard runs[i].next == p else { i += 1; continue }
                if let f = found, !f.isIC, f.type.fromHost == runs[i].fromHost, f.headerDigest == runs[i].headerDigest {
                    runs[i].score += f.weight
                    runs[i].next = p + f.plen
                    continued = true
                    if runs[i].score >= Self.decidingScore {
                        noteHeader(at: p)
                        return decide(fromHost: runs[i].fromHost)
                    }
                    i += 1
                } else {
                    runs.remove(at: i)
                }
            }
            nearestNext = runs.lazy.map(\.next).min() ?? .max
        }
        guard let f = found else { return false }
        if f.isIC && !continued {
            guard p == 0 else { return false }
            noteHeader(at: p)
            return decide(fromHost: f.type == .icReq)
        }
        noteHeader(at: p)
        if !continued { addRun(Run(next: p + f.plen, score: f.weight, fromHost: f.type.fromHost, headerDigest: f.headerDigest)) }
        return false
    }

    private func addRun(_ run: Run) {
        if runs.count < Self.maxRuns {
            runs.append(run)
            nearestNext = min(nearestNext, run.next)
            return
        }
        // Full: the new one replaces the weakest run (of those, the one whose next header is
        // furthest away), unless all are stronger.
        var victim = 0
        for i in runs.indices.dropFirst() where runs[i].score < runs[victim].score
            || (runs[i].score == runs[victim].score && runs[i].next > runs[victim].next) {
            victim = i
        }
        guard runs[victim].score <= run.score else { return }
        runs[victim] = run
        nearestNext = runs.lazy.map(\.next).min() ?? .max
    }

    private func decide(fromHost: Bool) -> Bool {
        owner?.runFound(by: self, fromHost: fromHost, ref: currentRef)
        return true
    }

    /// A header starts at `p`: a replay could start there.
    private func noteHeader(at p: UInt64) {
        if holdFrom == nil {
            holdFrom = p
            anchors = [p]
        } else if anchors.last != p {
            anchors.append(p)
            // Forget the oldest but the first: the held start then moves forward in bigger steps.
            if anchors.count > Self.maxAnchors { anchors.remove(at: 1) }
        }
    }

    // MARK: holding

    /// What holding [from, storeEnd) costs, plus `extraBytes` more bytes in one more piece.
    private func cost(from: UInt64, extraBytes: UInt64, extraPiece: Bool) -> Int {
        var total = Int(extraBytes) + (extraPiece ? Self.pieceCost : 0)
        // The usual case: holding goes on from where the store starts (it was trimmed to it).
        if from <= storeStart { return heldCost + total }
        var end = storeEnd
        for piece in pieces.reversed() {
            guard end > from else { break }
            let start = end - piece.length
            let held = end - max(start, from)
            total += (piece.gap == nil ? Int(held) : 0) + Self.pieceCost
            end = start
        }
        return total
    }

    /// Moves the held start to the next header found, or to nothing.
    private func advanceHold() {
        if !anchors.isEmpty { anchors.removeFirst() }
        holdFrom = anchors.first
    }

    /// Drops what lies before `keep`.
    private func trimStore(to keep: UInt64) {
        guard keep > storeStart else { return }
        if keep >= storeEnd {
            storeBytes.removeAll(keepingCapacity: storeBytes.capacity <= 1024)
            pieces.removeAll(keepingCapacity: pieces.capacity <= 64)
            storeStart = keep
            storeEnd = keep
            return
        }
        var at = storeStart
        var dropPieces = 0, dropBytes = 0
        for i in pieces.indices {
            let end = at + pieces[i].length
            if end <= keep {
                if pieces[i].gap == nil { dropBytes += Int(pieces[i].length) }
                dropPieces += 1
                at = end
                continue
            }
            if at < keep {
                let cut = keep - at
                if pieces[i].gap == nil { dropBytes += Int(cut) }
                pieces[i].length -= cut
            }
            break
        }
        pieces.removeFirst(dropPieces)
        storeBytes.removeFirst(dropBytes)
        storeStart = keep
    }

    private func updateCost() {
        heldCost = storeBytes.count + pieces.count * Self.pieceCost
        if heldCost > maxHeldCost {
            maxHeldCost = heldCost
            owner?.held(heldCost)
        }
    }

    /// After a chunk: keep what a replay or the next header check needs, within the cap.
    private func keepChunk(_ bytes: UnsafeRawBufferPointer, ref: FrameRef) {
        while let h = holdFrom, cost(from: h, extraBytes: offset - max(h, chunkStart), extraPiece: true) > Self.heldByteCap {
            advanceHold()
        }
        let keep = holdFrom ?? scanPos
        trimStore(to: keep)
        let from = max(keep, chunkStart)
        if from < offset {
            storeBytes.append(contentsOf: bytes.dropFirst(Int(from - chunkStart)))
            pieces.append(Piece(length: offset - from, gap: nil, ref: ref))
            if storeStart == storeEnd { storeStart = from }
            storeEnd = offset
        }
        updateCost()
    }

    private func keepGap(_ length: UInt64, cause: GapCause, ref: FrameRef, gapStart: UInt64) {
        while let h = holdFrom, cost(from: h, extraBytes: 0, extraPiece: true) > Self.heldByteCap {
            advanceHold()
        }
        let keep = holdFrom ?? scanPos
        trimStore(to: keep)
        if keep <= gapStart {
            if storeStart == storeEnd { storeStart = gapStart }
            pieces.append(Piece(length: length, gap: cause, ref: ref))
            storeEnd = offset
        } else {
            storeStart = keep
            storeEnd = keep
        }
        updateCost()
    }

    private func exhaust(ref: FrameRef) {
        state = .exhausted
        release()
        owner?.directionExhausted(ref: ref)
    }

    private func release() {
        runs = []
        nearestNext = .max
        anchors = []
        holdFrom = nil
        storeBytes = []
        pieces = []
        storeStart = offset
        storeEnd = offset
        heldCost = 0
    }

    // MARK: replay

    struct ReplayItem {
        enum Kind {
            case held(Range<Int>)       // bytes of `storeBytes`
            case chunk(Range<Int>)      // bytes of the chunk being delivered
            case gap(UInt64, GapCause)
        }
        var kind: Kind
        var ref: FrameRef
    }

    /// Where a replay starts: the earliest held header, or (when none is held) the bytes a
    /// header check was still waiting for.
    var replayStart: UInt64 { state == .exhausted ? offset : holdFrom ?? scanPos }

    /// Everything held from `start` on, in stream order: held pieces, then the chunk or gap being
    /// delivered when the decision came from inside that call.
    func replayItems(from start: UInt64) -> [ReplayItem] {
        var items: [ReplayItem] = []
        var at = storeStart        // stream offset of the piece
        var byteIndex = 0          // where its bytes are in `storeBytes` (data pieces)
        for piece in pieces {
            let end = at + piece.length
            if end > start {
                let from = max(at, start)
                if let cause = piece.gap {
                    items.append(ReplayItem(kind: .gap(end - from, cause), ref: piece.ref))
                } else {
                    let first = byteIndex + Int(from - at)
                    items.append(ReplayItem(kind: .held(first..<(byteIndex + Int(piece.length))), ref: piece.ref))
                }
            }
            if piece.gap == nil { byteIndex += Int(piece.length) }
            at = end
        }
        if chunk.count > 0 {
            let from = max(start, chunkStart)
            if from < chunkStart + UInt64(chunk.count) {
                items.append(ReplayItem(kind: .chunk(Int(from - chunkStart)..<chunk.count), ref: currentRef))
            }
        }
        if let g = pendingGap {
            let gapStart = offset - g.length
            if offset > start {
                items.append(ReplayItem(kind: .gap(offset - max(gapStart, start), g.cause), ref: currentRef))
            }
        }
        return items
    }

    func feed(_ item: ReplayItem, to framer: PDUFramer) {
        switch item.kind {
        case .held(let r):
            storeBytes.withUnsafeBytes { framer.streamData(UnsafeRawBufferPointer(rebasing: $0[r]), ref: item.ref) }
        case .chunk(let r):
            framer.streamData(UnsafeRawBufferPointer(rebasing: chunk[r]), ref: item.ref)
        case .gap(let length, let cause):
            framer.streamGap(length, cause: cause, ref: item.ref)
        }
    }

    /// The replay is over: this scanner is no longer the stream's sink. Memory is released at
    /// once unless the scanner is inside one of its own calls (its caller releases it then).
    func replayed() {
        let inside = chunk.count > 0 || pendingGap != nil
        state = .done
        if !inside { release() }
    }
}
