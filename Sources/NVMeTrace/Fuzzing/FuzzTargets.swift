#if canImport(Glibc)
import Glibc
#endif

/// Entry points for fuzzing (`Fuzz/run`) and for replaying the inputs fuzzing found
/// (`Fuzz/regressions`, run by the tests). Each takes arbitrary bytes and must neither trap nor
/// hang nor grow without bound.
public enum FuzzTargets {
    public static let names = ["pipeline", "framer", "reassembler"]

    /// Runs one target; returns how many PDUs it decoded (for tests of the seeds).
    @discardableResult
    public static func run(_ target: String, _ data: UnsafeRawBufferPointer) -> Int {
        switch target {
        case "pipeline": pipeline(data)
        case "framer": framer(data)
        case "reassembler": reassembler(data)
        default: 0
        }
    }

    /// Raw capture-file bytes → libpcap → the whole pipeline → session model → findings. (Report
    /// rendering is left out: it is covered by the tests, and would make each run 10x slower.)
    @discardableResult
    public static func pipeline(_ data: UnsafeRawBufferPointer) -> Int {
        let analysis = CaptureAnalysis()
        guard data.count > 0, let file = fmemopen(UnsafeMutableRawPointer(mutating: data.baseAddress), data.count, "rb") else {
            return 0
        }
        let index = analysis.analyzer.addFile("fuzz.pcap")
        do {
            let source = try PcapFileSource(file: file, name: "fuzz.pcap", fileIndex: index)
            try source.forEach { analysis.analyzer.process($0) }
        } catch {}
        analysis.analyzer.finish()
        _ = RuleEngine().run(analysis.model())
        return analysis.analyzer.pduCount
    }

    /// A byte stream → PDU framer (split into chunks and gaps as the first bytes say) → NVMe decode.
    /// Byte 0: bit 0 synchronized start, bit 1 verify data digests; byte 1: chunk size; byte 2:
    /// every n-th chunk is replaced by a gap of the same length (0: no gaps).
    @discardableResult
    public static func framer(_ data: UnsafeRawBufferPointer) -> Int {
        guard data.count >= 3 else { return 0 }
        let flags = data[0], chunk = Int(data[1]) + 1, gapEvery = Int(data[2])
        let stream = data.dropFirst(3)
        let sink = FuzzPDUSink()
        let framer = PDUFramer(synchronized: flags & 1 != 0, verifyDataDigests: flags & 2 != 0)
        framer.delegate = sink
        var offset = 0, n = 0
        while offset < stream.count {
            let len = min(chunk, stream.count - offset)
            let ref = FrameRef(file: 0, frame: n + 1, timeNs: Int64(n))
            if gapEvery > 0 && n % gapEvery == gapEvery - 1 {
                framer.streamGap(UInt64(len), cause: flags & 4 != 0 ? .notCaptured : .lost, ref: ref)
            } else {
                framer.streamData(stream.slice(offset, len)!, ref: ref)
            }
            offset += len
            n += 1
        }
        framer.finish(ref: FrameRef(file: 0, frame: n + 1, timeNs: Int64(n)))
        return framer.pduCount
    }

    /// TCP segment sequences (sequence numbers, flags, overlaps, both directions) → flow table and
    /// reassembly → framing and NVMe decode → session model and rules. Each record: byte 0 flags
    /// (bit 0..4 FIN SYN RST PSH ACK, bit 7 direction), bytes 1-2 sequence delta (signed, from the
    /// direction's running sequence), bytes 3-4 ack delta, byte 5 payload length; then the payload.
    @discardableResult
    public static func reassembler(_ data: UnsafeRawBufferPointer) -> Int {
        var options = AnalyzerOptions()
        options.maxBufferedBytesPerDirection = 4096
        let analysis = CaptureAnalysis(options: options)
        let index = analysis.analyzer.addFile("fuzz")
        let host = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40000)
        let target = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 4420)
        var seq: [UInt32] = [1000, 5000]
        var at = 0, frame = 0
        while at + 6 <= data.count {
            let flags = data[at]
            let dir = Int(flags >> 7)
            let seqDelta = Int16(bitPattern: UInt16(data[at + 1]) | UInt16(data[at + 2]) << 8)
            let ackDelta = Int16(bitPattern: UInt16(data[at + 3]) | UInt16(data[at + 4]) << 8)
            let len = min(Int(data[at + 5]), data.count - at - 6)
            let payload = data.slice(at + 6, len)!
            at += 6 + len
            frame += 1
            let s = seq[dir] &+ UInt32(bitPattern: Int32(seqDelta))
            let segment = TCPSegment(
                src: dir == 0 ? host : target, dst: dir == 0 ? target : host,
                seq: s, ack: seq[1 - dir] &+ UInt32(bitPattern: Int32(ackDelta)),
                flags: TCPFlags(rawValue: flags & 0x1F), payload: payload, payloadLength: len)
            seq[dir] = s &+ UInt32(len)
            let ref = FrameRef(file: index, frame: frame, timeNs: Int64(frame) * 1_000_000)
            analysis.analyzer.flows.process(segment, ref: ref)
        }
        analysis.analyzer.finish()
        _ = RuleEngine().run(analysis.model())
        return analysis.analyzer.pduCount
    }
}

final class FuzzPDUSink: PDUFramerDelegate {
    let decoder = NVMeConnectionDecoder()
    override func framer(_ framer: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int {
        decoder.dataBytesToKeep(shape, header: header)
    }
    override func framer(_ framer: PDUFramer, didFrame pdu: LentPDU) {
        var connectData: ConnectData?
        var completed: CompletedCommand?
        let body = decoder.decode(pdu, connectData: &connectData, completed: &completed)
        _ = PDUDescription.summary(OwnedPDURecord(connection: 0, src: Endpoint(address: IPAddress(v4: 1), port: 1),
                                                  dst: Endpoint(address: IPAddress(v4: 2), port: 2), qid: decoder.qid,
                                                  pdu: pdu.owned(), body: body, connectData: connectData, completed: completed))
    }
    override func framer(_ framer: PDUFramer, event: FramingEvent, ref: FrameRef) {}
}
