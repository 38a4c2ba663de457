
@testable import NVMeTrace
import NVMeTraceSynth

/// Collects what a framer reports.
final class FramerRecorder: PDUFramerDelegate {
    var pdus: [PDU] = []
    var events: [FramingEvent] = []
    var keep: (PDUShape) -> Int = { _ in 0 }

    override func framer(_ framer: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int { keep(shape) }
    override func framer(_ framer: PDUFramer, didFrame pdu: LentPDU) { pdus.append(pdu.owned()) }
    override func framer(_ framer: PDUFramer, event: FramingEvent, ref: FrameRef) { events.append(event) }
}

/// Feeds byte chunks to a framer, each chunk as its own frame.
func frame(_ chunks: [[UInt8]], synchronized: Bool = true, verify: Bool = false, keep: @escaping (PDUShape) -> Int = { _ in 0 })
    -> FramerRecorder
{
    let rec = FramerRecorder()
    rec.keep = keep
    let framer = PDUFramer(synchronized: synchronized, verifyDataDigests: verify)
    framer.delegate = rec
    for (i, c) in chunks.enumerated() {
        c.withUnsafeBytes { framer.streamData($0, ref: FrameRef(file: 0, frame: i + 1, timeNs: Int64(i))) }
    }
    framer.finish(ref: FrameRef(file: 0, frame: chunks.count, timeNs: 0))
    return rec
}

