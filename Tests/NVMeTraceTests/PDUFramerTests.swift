import Testing
@testable import NVMeTrace
import NVMeTraceSynth

@Suite struct PDUFramerTests {
    /// A stream with one PDU of every type, small and large, as one host/controller would never
    /// send in one direction, but the framer does not care about direction.
    static func mixedStream(hdgst: Bool = false, ddgst: Bool = false) -> [UInt8] {
        let connect = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 5000),
                                            data: PDUBuilder.connectData(subnqn: "nqn.test:sub", hostnqn: "nqn.test:host"),
                                            hdgst: hdgst, ddgst: ddgst)
        return PDUBuilder.icReq() + PDUBuilder.icResp()
            + connect
            + PDUBuilder.capsuleResp(cid: 1, dw0: 7, hdgst: hdgst)
            + PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 2), hdgst: hdgst)
            + PDUBuilder.c2hData(cid: 3, data: [UInt8](repeating: 0x5A, count: 5000), success: true, hdgst: hdgst, ddgst: ddgst)
            + PDUBuilder.r2t(cid: 4, ttag: 9, length: 8192, hdgst: hdgst)
            + PDUBuilder.h2cData(cid: 4, ttag: 9, data: [UInt8](repeating: 1, count: 8192), hdgst: hdgst, ddgst: ddgst)
            + PDUBuilder.termReq(c2h: true, fes: 2, offending: [UInt8](repeating: 3, count: 24))
    }

    static let expectedTypes: [PDUType] = [.icReq, .icResp, .capsuleCmd, .capsuleResp, .capsuleCmd, .c2hData, .r2t, .h2cData, .c2hTermReq]

    @Test func manyPDUsInOneSegment() {
        let rec = frame([Self.mixedStream()])
        #expect(rec.pdus.map(\.type) == Self.expectedTypes)
        #expect(rec.events.isEmpty)
        #expect(rec.pdus[5].shape.dataLength == 5000)
        #expect(rec.pdus[5].flags.contains(.success))
    }

    @Test(arguments: [false, true])
    func splitAtEveryByteBoundaryDecodesTheSame(digests: Bool) {
        let stream = Self.mixedStream(hdgst: digests, ddgst: digests)
        let keepAll: (PDUShape) -> Int = { $0.dataLength }
        let whole = frame([stream], verify: true, keep: keepAll)
        #expect(whole.pdus.map(\.type) == Self.expectedTypes)
        for cut in 1..<stream.count {
            let rec = frame([Array(stream[..<cut]), Array(stream[cut...])], verify: true, keep: keepAll)
            #expect(rec.pdus.map(\.type) == Self.expectedTypes, "cut at \(cut)")
            #expect(rec.pdus.map(\.header) == whole.pdus.map(\.header), "cut at \(cut)")
            #expect(rec.pdus.map(\.data) == whole.pdus.map(\.data), "cut at \(cut)")
            #expect(rec.pdus.map(\.dataDigest) == whole.pdus.map(\.dataDigest), "cut at \(cut)")
            #expect(rec.events.isEmpty, "cut at \(cut)")
            if rec.pdus.count != Self.expectedTypes.count { break }
        }
        // One byte per segment: every PDU starts and completes in the right frames.
        let bytewise = frame(stream.map { [$0] }, verify: true, keep: keepAll)
        #expect(bytewise.pdus.map(\.data) == whole.pdus.map(\.data))
        var offset = 0
        for p in bytewise.pdus {
            #expect(p.firstRef.frame == offset + 1)
            #expect(p.ref.frame == offset + p.shape.plen)
            #expect(p.streamOffset == UInt64(offset))
            offset += p.shape.plen
        }
        if digests {
            #expect(whole.pdus.dropFirst(2).allSatisfy { $0.headerDigest == .ok || $0.type == .c2hTermReq })
            #expect(whole.pdus.filter { $0.dataDigest == .ok }.count == 3)
        }
    }

    /// PDUs that lie whole in one chunk are framed in place; split ones go through the header and
    /// body paths. Both must hand on the same PDUs, field for field, whatever is verified or kept.
    @Test(arguments: [(false, false, false), (true, false, false), (true, true, false), (true, false, true), (false, false, true)])
    func wholeAndSplitPDUsAreFramedAlike(digests: Bool, verify: Bool, keep: Bool) {
        var stream = Self.mixedStream(hdgst: digests, ddgst: digests)
        if digests {
            // One bad data digest (the last byte of the H2CData's) and one bad header digest (the
            // R2T's), so that mismatches are compared too.
            let h2cEnd = stream.count - 48
            stream[h2cEnd - 1] ^= 0x01
            stream[h2cEnd - 8192 - 4 - 28 - 1] ^= 0x01
        }
        let keepFn: (PDUShape) -> Int = keep ? { $0.dataLength / 2 } : { _ in 0 }
        // All in one chunk (every PDU whole), and every PDU cut in two at its middle.
        let whole = frame([stream], verify: verify, keep: keepFn)
        var chunks: [[UInt8]] = []
        var offset = 0
        for p in whole.pdus {
            let n = p.shape.plen
            chunks.append(Array(stream[offset..<offset + n / 2]))
            chunks.append(Array(stream[offset + n / 2..<offset + n]))
            offset += n
        }
        let split = frame(chunks, verify: verify, keep: keepFn)
        #expect(whole.pdus.count == Self.expectedTypes.count)
        #expect(whole.events.isEmpty && split.events.isEmpty)
        // Frame numbers differ by construction (one chunk each); compare everything else.
        func sansFrames(_ p: PDU) -> String {
            "\(p.type) \(p.header) \(p.data) \(p.headerDigest) \(p.dataDigest) \(p.incomplete) \(p.streamOffset)"
        }
        #expect(split.pdus.map(sansFrames) == whole.pdus.map(sansFrames))
        for (i, p) in split.pdus.enumerated() {
            #expect(p.firstRef.frame == 2 * i + 1 && p.ref.frame == 2 * i + 2)
        }
        if keep { #expect(whole.pdus.contains { !$0.data.isEmpty }) }
        if digests && verify {
            #expect(whole.pdus.contains { $0.dataDigest.isMismatch } && whole.pdus.contains { $0.headerDigest.isMismatch })
        }
    }

    @Test func dataIsLocatedByPDONotByFixedOffset() {
        // CPDA padding: PDO lies 16 bytes past header + digest; the data must come from PDO.
        let data = PDUBuilder.connectData(subnqn: "nqn.pad:sub", hostnqn: "nqn.pad:host")
        let cmd = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 5, qid: 0, kato: 0), data: data, hdgst: true, ddgst: true, pad: 16)
        let c2h = PDUBuilder.c2hData(cid: 6, data: [1, 2, 3, 4, 5, 6, 7, 8], hdgst: true, ddgst: true, pad: 12)
        let rec = frame([cmd + c2h], verify: true, keep: { $0.dataLength })
        #expect(rec.pdus.count == 2)
        #expect(rec.pdus[0].shape.pdo == 72 + 4 + 16)
        #expect(rec.pdus[0].data == data)
        #expect(rec.pdus[0].dataDigest == .ok)
        #expect(rec.pdus[1].data == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(rec.pdus[1].dataDigest == .ok)
        let decoder = NVMeConnectionDecoder()
        let d = decoder.decode(rec.pdus[0])
        guard case .command(let c) = d.body, case .connect = c.detail else {
            Issue.record("not a Connect"); return
        }
        #expect(d.connectData?.subnqn == "nqn.pad:sub")
        #expect(d.connectData?.hostnqn == "nqn.pad:host")
    }

    @Test func keptDataLeavesNoBufferBehind() {
        // A connection keeps data for a few PDUs (Connect, Identify, the discovery log); holding
        // their buffers afterwards cost up to 4 KiB per connection.
        let data = PDUBuilder.connectData(subnqn: "nqn.keep:sub", hostnqn: "nqn.keep:host")
        let rec = FramerRecorder()
        rec.keep = { $0.dataLength }
        let framer = PDUFramer(synchronized: true)
        framer.delegate = rec
        let bytes = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 0), data: data)
        bytes.withUnsafeBytes { framer.streamData($0, ref: FrameRef(file: 0, frame: 1, timeNs: 0)) }
        #expect(rec.pdus.count == 1)
        #expect(rec.pdus.first?.data == data)
        #expect(framer.dataBufferCapacity == 0)
    }

    @Test func headerDigestMismatchIsReportedAndNotTrusted() {
        var bad = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 77), hdgst: true)
        bad[72] ^= 0xFF  // corrupt the header digest
        let good = PDUBuilder.capsuleResp(cid: 77, hdgst: true)
        let rec = frame([bad + good])
        #expect(rec.pdus.count == 2)
        guard case .mismatch(let received, let computed) = rec.pdus[0].headerDigest else {
            Issue.record("mismatch not reported"); return
        }
        #expect(received != computed)
        #expect(rec.pdus[1].headerDigest == .ok)
        let decoder = NVMeConnectionDecoder()
        if case .untrusted = decoder.decode(rec.pdus[0]).body {} else { Issue.record("decoded an untrusted header") }
    }

    @Test func dataDigestMismatchOnlyWhenVerifying() {
        var pdu = PDUBuilder.c2hData(cid: 1, data: [UInt8](repeating: 9, count: 100), ddgst: true)
        pdu[pdu.count - 1] ^= 0x01
        let verified = frame([pdu], verify: true)
        if case .mismatch = verified.pdus[0].dataDigest {} else { Issue.record("expected mismatch") }
        let unverified = frame([pdu], verify: false)
        #expect(unverified.pdus[0].dataDigest == .notVerified)
    }

    @Test func gapInsideAPDUKeepsFramingByLength() {
        let big = PDUBuilder.c2hData(cid: 1, data: [UInt8](repeating: 7, count: 10_000))
        let next = PDUBuilder.capsuleResp(cid: 1)
        let rec = FramerRecorder()
        let f = PDUFramer(synchronized: true)
        f.delegate = rec
        let ref = FrameRef(file: 0, frame: 1, timeNs: 0)
        big.withUnsafeBytes { f.streamData($0.prefix(3000), ref: ref) }
        f.streamGap(4000, cause: .lost, ref: ref)
        big.withUnsafeBytes { f.streamData($0.dropFirst(7000), ref: ref) }
        next.withUnsafeBytes { f.streamData($0, ref: ref) }
        #expect(rec.pdus.map(\.type) == [.c2hData, .capsuleResp])
        #expect(rec.pdus[0].incomplete)
        #expect(rec.events == [.gap(bytes: 4000, insidePDU: true, cause: .lost, streamOffset: 3000)])
    }

    @Test func gapAcrossAHeaderResynchronisesOnTheNextPDU() {
        let a = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 1, nsid: 1, cdw12: 7))
        let b = PDUBuilder.c2hData(cid: 1, data: [UInt8](repeating: 0, count: 4096))
        let c = PDUBuilder.capsuleResp(cid: 1)
        let d = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 2))
        let stream = a + b + c + d
        let rec = FramerRecorder()
        let f = PDUFramer(synchronized: true)
        f.delegate = rec
        let ref = FrameRef(file: 0, frame: 1, timeNs: 0)
        // Lose bytes 60..<100: the end of `a`'s header and the start of `b`'s.
        stream.withUnsafeBytes { f.streamData($0.prefix(60), ref: ref) }
        f.streamGap(40, cause: .lost, ref: ref)
        stream.withUnsafeBytes { f.streamData($0.dropFirst(100), ref: ref) }
        // `a`'s common header was there, so its length was known: it is framed with the 60 header
        // bytes captured. `b`'s start is lost; the framer finds `c` and `d` again.
        #expect(rec.pdus.map(\.type) == [.capsuleCmd, .capsuleResp, .capsuleCmd])
        #expect(rec.pdus[0].header.count == 60 && rec.pdus[0].incomplete && rec.pdus[0].streamOffset == 0)
        #expect(rec.pdus[1].streamOffset == UInt64(a.count + b.count))
        let resumeAt = UInt64(a.count + b.count)
        // Skipped: the bytes of `b` received after the gap.
        let expected = FramingEvent.resynchronized(skippedBytes: resumeAt - 100, streamOffset: resumeAt, lostPlace: .lost)
        #expect(rec.events.contains(expected))
    }

    @Test func midStreamStartFindsTheFirstWholePDU() {
        let payload = [UInt8](repeating: 0, count: 3000)
        let pdus = PDUBuilder.c2hData(cid: 9, data: payload) + PDUBuilder.capsuleResp(cid: 9)
            + PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 10, nsid: 1))
        // Start 500 bytes into the C2HData: its header is gone.
        let rec = frame([Array(pdus[500...])], synchronized: false)
        #expect(rec.pdus.map(\.type) == [.capsuleResp, .capsuleCmd])
        let skipped = UInt64(pdus.count - 500 - 24 - 72)
        let expected = FramingEvent.resynchronized(skippedBytes: skipped, streamOffset: skipped, lostPlace: .streamStart)
        #expect(rec.events.first == expected)
    }

    @Test func randomPayloadDoesNotLookLikePDUs() {
        // Resync must not latch onto I/O payload: 1 MiB of random bytes yields no PDU.
        var rng = SplitMix64(seed: 42)
        let noise = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let rec = frame(stride(from: 0, to: noise.count, by: 1448).map { Array(noise[$0..<min($0 + 1448, noise.count)]) },
                        synchronized: false)
        #expect(rec.pdus.isEmpty)
        // It says so at the end, rather than claiming framing resumed.
        #expect(rec.events.last == .unframedAtEnd(skippedBytes: UInt64(noise.count), streamOffset: UInt64(noise.count), lostPlace: .streamStart))
        #expect(!rec.events.contains { if case .resynchronized = $0 { true } else { false } })
    }

    @Test(arguments: [
        ([UInt8]([0x0B, 0, 24, 0, 24, 0, 0, 0]), "unknown PDU type 0x0b"),
        ([UInt8]([0x05, 0, 72, 0, 72, 0, 0, 0]), "CapsuleResp with HLEN 72 (must be 24)"),
        ([UInt8]([0x04, 0, 72, 0, 8, 0, 0, 0]), "CapsuleCmd with PLEN 8 < 72"),
        ([UInt8]([0x07, 0, 24, 0, 0xFF, 0xFF, 0xFF, 0xFF]), "C2HData with PLEN 4294967295 > 67108864"),
        ([UInt8]([0x04, 0, 72, 200, 100, 0, 0, 0]), "CapsuleCmd with PDO 200 outside its header/length (PLEN 100)"),
        ([UInt8]([0x05, 0, 24, 0, 28, 0, 0, 0]), "CapsuleResp with PLEN 28 (not allowed for this type)"),
        ([UInt8]([0x00, 1, 128, 0, 128, 0, 0, 0]), "ICReq with a digest flag (ICReq/ICResp never carry digests)"),
    ])
    func invalidHeadersAreReportedThenSkipped(header: [UInt8], message: String) {
        let after = PDUBuilder.capsuleResp(cid: 3)
        let rec = frame([header + after])
        guard case .invalidHeader(let problem, let offset)? = rec.events.first else {
            Issue.record("no invalid-header event: \(rec.events)"); return
        }
        #expect(problem.description == message)
        #expect(offset == 0)
        #expect(rec.pdus.map(\.type) == [.capsuleResp])
    }

    /// The capture ends inside a PDU: it is reported, and the PDU is still handed on (incomplete)
    /// with what was captured of it, as far as its header.
    @Test func streamEndingInsideAPDUIsReported() {
        let pdu = PDUBuilder.c2hData(cid: 1, data: [UInt8](repeating: 0, count: 100))
        let rec = frame([Array(pdu.prefix(50))])
        #expect(rec.pdus.map(\.type) == [.c2hData])
        #expect(rec.pdus.first?.incomplete == true && rec.pdus.first?.header.count == 24)
        #expect(rec.events == [.truncatedAtEnd(bytesMissing: pdu.count - 50, streamOffset: 0)])
    }

    /// The capture ends inside a header: with the common header captured the PDU is framed from
    /// it (its header partial); with less, nothing is.
    @Test(arguments: [7, 8, 13, 71])
    func streamEndingInsideAHeader(captured: Int) {
        let pdu = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 4))
        let rec = frame([Array(pdu.prefix(captured))])
        #expect(rec.pdus.count == (captured >= 8 ? 1 : 0))
        if let p = rec.pdus.first {
            #expect(p.type == .capsuleCmd && p.incomplete && p.header.count == captured && p.headerIsPartial)
        }
        #expect(rec.events == [.truncatedAtEnd(bytesMissing: (captured >= 8 ? 72 : 8) - captured, streamOffset: 0)])
    }
}

/// CRC32C known answers (RFC 3720 §B.4, and the "123456789" check value), for the CPU
/// instruction and the table fallback alike.
@Suite struct CRC32CTests {
    static let vectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
    ]

    @Test func knownAnswers() {
        for (bytes, expected) in Self.vectors {
            #expect(CRC32C.checksum(bytes) == expected)
            var t = CRC32C()
            bytes.withUnsafeBytes { t.updateWithTables($0) }
            #expect(t.value == expected)
        }
    }

    @Test func instructionAndTablesAgreeOnEveryLengthAndSplit() {
        var rng = SplitMix64(seed: 9)
        let data = (0..<9000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        // Around the instruction path's three-lane blocks (3 × 256 and 3 × 64 bytes), MSS-sized and jumbo.
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 191, 192, 193, 400, 767, 768, 769, 960, 999, 1000, 1448, 1535, 1536, 2311, 8948, 9000] {
            var a = CRC32C(), b = CRC32C()
            data.withUnsafeBytes { raw in
                a.update(raw.prefix(n / 3))
                a.update(raw.prefix(n).dropFirst(n / 3))
                b.updateWithTables(raw.prefix(n))
            }
            #expect(a.value == b.value, "length \(n)")
        }
    }
}
