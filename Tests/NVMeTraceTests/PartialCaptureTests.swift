import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Headers-only and mid-stream captures (issue #13), piece by piece: each decoder yields exactly
/// the fields whose bytes were captured; the framer keeps only contiguous data; the session model
/// and the rules infer from evidence, say so, and list what they cannot judge. Expected values are
/// the bytes the tests build, never nvmetrace's own output.
@Suite struct PartialCaptureTests {
    // MARK: fields from the bytes captured

    /// A Connect SQE (QID 0, SQSIZE 31, KATO 10000) cut at every length: QID needs SQE bytes
    /// 42-43, SQSIZE 44-45, KATO 48-51 (NVMe over Fabrics Figure 20), FCTYPE byte 4.
    @Test(arguments: [3, 4, 5, 8, 43, 44, 45, 46, 51, 52, 63, 64])
    func connectFieldsAreKnownExactlyWhenCaptured(bytes: Int) {
        let sqe = PDUBuilder.connectSQE(cid: 7, qid: 0, sqsize: 31, kato: 10_000)
        let cmd = sqe.prefix(bytes).withUnsafeBytes { NVMeCommand(capturedSQE: $0, qid: nil) }
        guard bytes >= 4 else { #expect(cmd == nil); return }
        guard let cmd else { Issue.record("no command from \(bytes) bytes"); return }
        #expect(cmd.opcode == 0x7F && cmd.cid == 7)
        #expect(Int(cmd.capturedBytes) == bytes)
        #expect(cmd.fctype == (bytes >= 5 ? 0x01 : nil))
        guard bytes >= 5 else { #expect(cmd.detail == .other); return }
        guard case .connect(let c) = cmd.detail else { Issue.record("not a Connect at \(bytes)"); return }
        #expect(c.qid == (bytes >= 44 ? 0 : nil))
        #expect(c.sqsize == (bytes >= 46 ? 31 : nil))
        #expect(c.kato == (bytes >= 52 ? 10_000 : nil))
        #expect(cmd.qid == (bytes >= 44 ? 0 : nil))
    }

    /// Get Log Page: the LID (CDW10, SQE bytes 40-43) is what tells a discovery log read; length
    /// and offset come later in the SQE and are unknown until captured. Fields from the padding
    /// (NSID, CDW10/11) read as unknown, not as zero values of a real command.
    @Test func getLogPageKeepsItsLIDWhenItsOffsetIsCut() {
        let sqe = PDUBuilder.sqe(opcode: 0x02, cid: 9, nsid: 0xFFFF_FFFF, cdw10: 0x70 | (255 << 16), cdw12: 4096)
        func decode(_ n: Int) -> NVMeCommand? { sqe.prefix(n).withUnsafeBytes { NVMeCommand(capturedSQE: $0, qid: 0) } }
        #expect(decode(43)?.detail == .other)
        guard case .getLogPage(let lid, _, _, _)? = decode(44)?.detail else { Issue.record("no LID at 44 bytes"); return }
        #expect(lid == 0x70)
        #expect(decode(44)?.logPageLength == nil && decode(44)?.logPageOffset == nil)
        #expect(decode(48)?.logPageLength == 1024 && decode(48)?.logPageOffset == nil)
        #expect(decode(56)?.logPageLength == 1024 && decode(56)?.logPageOffset == 4096)
        #expect(decode(7)?.nsid == 0 && decode(7)?.known(upTo: 8) == false)
        #expect(decode(8)?.nsid == 0xFFFF_FFFF)
    }

    /// A CQE cut before its status still names its command (CID, CQE bytes 12-13); the status
    /// (bytes 14-15) is unknown, not success.
    @Test(arguments: [13, 14, 15, 16])
    func completionStatusIsUnknownWhenCut(bytes: Int) {
        let resp = PDUBuilder.capsuleResp(cid: 0x1234, status: 0x0002)
        let cqe = resp.dropFirst(8).prefix(bytes).withUnsafeBytes { NVMeCompletion(cqe: $0) }
        guard bytes >= 14 else { #expect(cqe == nil); return }
        #expect(cqe?.cid == 0x1234)
        #expect(cqe?.status == (bytes >= 16 ? NVMeStatus(raw: 0x0002 << 1) : nil))
        #expect(cqe?.succeeded == false)
    }

    /// Connect data cut: host id and CNTLID from the first 18 bytes; an NQN is known once its
    /// terminating NUL was captured, never from a prefix of it.
    @Test func connectDataFieldsFromTheCapturedPrefix() throws {
        let sub = "nqn.2014-08.org.nvmexpress.discovery"
        let data = PDUBuilder.connectData(cntlid: 0x0102, subnqn: sub, hostnqn: "nqn.host")
        #expect(ConnectData(captured: Array(data.prefix(15)))?.hostid == nil)
        let cut18 = try #require(ConnectData(captured: Array(data.prefix(18))))
        #expect(cut18.hostid == Array(1...16).map(UInt8.init) && cut18.cntlid == 0x0102 && cut18.subnqn == nil)
        #expect(ConnectData(captured: Array(data.prefix(256 + sub.utf8.count)))?.subnqn == nil)
        #expect(ConnectData(captured: Array(data.prefix(256 + sub.utf8.count + 1)))?.subnqn == sub)
        #expect(ConnectData(captured: Array(data.prefix(520)))?.hostnqn == nil)
        #expect(ConnectData(captured: Array(data.prefix(521)))?.hostnqn == "nqn.host")
        #expect(ConnectData(captured: Array(data.prefix(600)))?.isComplete == false)
        #expect(ConnectData(data)?.isComplete == true)
    }

    /// Identify Controller cut: CTRATT (bytes 96-99, TBKAS bit 6) and CNTRLTYPE (byte 111) each
    /// known only when captured.
    @Test(arguments: [99, 100, 111, 112, 322])
    func identifyFieldsFromTheCapturedPrefix(bytes: Int) throws {
        var id = [UInt8](repeating: 0, count: 4096)
        id[96] = 0x40; id[111] = 2; id[320] = 10
        let c = try #require(IdentifyController(Array(id.prefix(bytes))))
        #expect(c.tbkas == (bytes >= 100 ? true : nil))
        #expect(c.cntrltype == (bytes >= 112 ? 2 : nil))
        #expect(c.kas == (bytes >= 322 ? 10 : nil))
    }

    // MARK: framing

    /// Data kept for decode (Connect data here) is only what lies contiguous from its first byte:
    /// after a gap inside it, later bytes would land at the wrong offsets.
    @Test func keptDataStopsAtTheFirstGap() throws {
        let data = PDUBuilder.connectData(cntlid: 0x0A0B, subnqn: "nqn.sub", hostnqn: "nqn.host")
        let pdu = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 1, kato: 0), data: data)
        final class Keep: PDUFramerDelegate {
            var data: [[UInt8]] = []
            var incomplete: [Bool] = []
            override func framer(_ f: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int { 1024 }
            override func framer(_ f: PDUFramer, didFrame pdu: LentPDU) {
                data.append(Array(pdu.data)); incomplete.append(pdu.incomplete)
            }
        }
        let keep = Keep()
        let f = PDUFramer(synchronized: true)
        f.delegate = keep
        let ref = FrameRef(file: 0, frame: 1, timeNs: 0)
        // Header and the first 100 data bytes, 200 bytes cut by the snap length, then the rest.
        pdu.withUnsafeBytes { f.streamData($0.prefix(172), ref: ref) }
        f.streamGap(200, cause: .notCaptured, ref: ref)
        pdu.withUnsafeBytes { f.streamData($0.dropFirst(372), ref: ref) }
        #expect(keep.data == [Array(data.prefix(100))])
        #expect(keep.incomplete == [true])
    }

    /// Hunting for a boundary in a headers-only stream: the header the snap length cut is taken
    /// as a boundary when its captured part is plausible and runs into the gap, and the framer is
    /// in step again after it.
    @Test func resynchronisesOnAHeaderTheSnapLengthCut() {
        let ka1 = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 1))
        let ka2 = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 2))
        let rec = FramerRecorder()
        let f = PDUFramer(synchronized: false)  // picked up mid-stream
        f.delegate = rec
        let ref = FrameRef(file: 0, frame: 1, timeNs: 0)
        // Segment 1: 10 bytes of something, then ka1 cut at 40 of its 72 bytes.
        let garbage = [UInt8](repeating: 0xAB, count: 10)
        (garbage + ka1.prefix(40)).withUnsafeBytes { f.streamData($0, ref: ref) }
        f.streamGap(32, cause: .notCaptured, ref: ref)
        // Segment 2: ka2 cut at 40 bytes too.
        ka2.prefix(40).withUnsafeBytes { f.streamData($0, ref: FrameRef(file: 0, frame: 2, timeNs: 1)) }
        f.streamGap(32, cause: .notCaptured, ref: FrameRef(file: 0, frame: 2, timeNs: 1))
        #expect(rec.pdus.map(\.streamOffset) == [10, 82])
        #expect(rec.pdus.allSatisfy { $0.type == .capsuleCmd && $0.header.count == 40 && $0.incomplete })
        #expect(rec.events.first == .resynchronized(skippedBytes: 10, streamOffset: 10, lostPlace: .streamStart))
    }

    /// A PDU whose common header was captured but nothing more of its SQE is framed, counted, not
    /// decoded: no command is made up from it and no warning calls it malformed.
    @Test func aHeaderCutBeforeTheCIDIsNotDecoded() {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        // 54 bytes of headers + 10: the CapsuleCmd's common header and SQE opcode and flags only.
        let path = s.write(snaplen: 64)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = analyze(path)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let connect = result.records.first { $0.pdu.type == .capsuleCmd }
        #expect(connect?.pdu.header.count == 10)
        if case .notCaptured? = connect?.body {} else { Issue.record("decoded: \(String(describing: connect?.body))") }
    }

    // MARK: KATO from the Keep Alive cadence

    /// An admin queue picked up mid-stream (no Connect): Keep Alives every 2.5 s bound KATO to
    /// 5-10 s (KATO/2, or KATO/4 under TBKAS, which the capture does not show). A silence past
    /// 10 s is a finding that says it rests on the inference; one between 5 and 10 s cannot be
    /// judged; one under 5 s is on time. The same for a target teardown (keep-alive-expired) and
    /// for a silence at the end of the capture (keep-alive-overdue).
    @Test(arguments: ["keep-alive-expired", "keep-alive-overdue"], [(25.0, "finding"), (7.0, "unjudged"), (3.0, "on time")])
    func kaCadenceBoundsAnUnknownKATO(rule: String, silence: (Double, String)) throws {
        let (seconds, verdict) = silence
        let s = SynthCapture()
        let admin = s.connection()
        for k in 0..<4 { admin.keepAlive(at: s.t(Double(k) * 2.5)) }
        if rule == "keep-alive-expired" {
            admin.tcp.fin(fromClient: false, at: s.t(7.5 + seconds))
        } else {
            // The capture ends `seconds` after the last Keep Alive, with a handshake elsewhere.
            s.connection(port: 9999).tcp.handshake(at: s.t(7.5 + seconds))
        }
        let r = s.report()
        let c = try #require(r.model.connections.first)
        #expect(c.midStream && c.queueKind == .admin && c.queueBasis?.inferred == true)
        let found = r.findings(rule)
        let unjudged = r.unjudged.filter { $0.rule == rule }
        switch verdict {
        case "finding":
            let f = try #require(found.first)
            #expect(f.isInferred && f.title.contains("5 s–10 s, inferred"))
            #expect(f.basis.contains { $0.inferred && $0.evidence.contains("between 5 s and 10 s") && $0.evidence.contains("cadence") })
            #expect(unjudged.isEmpty)
        case "unjudged":
            #expect(found.isEmpty)
            #expect(unjudged.first?.reason.contains("within the bounds") == true)
        default:
            #expect(found.isEmpty && unjudged.isEmpty)
        }
    }

    /// Two Keep Alives are not a cadence: KATO stays unknown, and the rule says so.
    @Test func tooFewKeepAlivesLeaveKATOUnknown() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.keepAlive(at: s.t(0)); admin.keepAlive(at: s.t(2.5))
        admin.tcp.fin(fromClient: false, at: s.t(60))
        let r = s.report()
        #expect(r.findings("keep-alive-expired").isEmpty)
        let u = try #require(r.unjudged.first { $0.rule == "keep-alive-expired" })
        #expect(u.reason.contains("only 2 Keep Alives"))
    }

    // MARK: controller type and I/O queues without the Connect data

    /// A KATO 0 Connect whose data (the subsystem NQN) the snap length cut, torn down by the
    /// target 200 s later: on port 8009 the well-known discovery port makes it a discovery
    /// controller (inferred, and the findings say so); on port 4420 nothing tells, and the rules
    /// list it as not judged instead of calling it an admin queue of an I/O controller.
    @Test(arguments: [UInt16(8009), 4420])
    func discoveryByPortWhenTheNQNIsCut(port: UInt16) throws {
        let s = SynthCapture()
        let c = s.connection(port: port)
        c.connect(at: s.t(0), kato: 0, subnqn: NVMeScript.discoveryNQN, hostnqn: SynthCapture.hostnqn)
        c.asyncEventRequest(at: s.t(0.1))
        c.tcp.fin(fromClient: false, at: s.t(200))
        // Header (72) and the first 40 data bytes of the Connect: no NQN.
        let r = s.report(snaplen: 54 + 72 + 40)
        let conn = try #require(r.model.connections.first)
        #expect(conn.subnqn == nil && conn.connect?.kato == 0)
        if port == 8009 {
            #expect(r.kind(conn) == "discovery" && conn.discoveryBasis?.inferred == true)
            let kz = try #require(r.findings("discovery-kato-zero").first)
            #expect(kz.basis.contains { $0.inferred && $0.evidence.contains("port 8009") })
            let ke = try #require(r.findings("keep-alive-expired").first)
            #expect(ke.isInferred)
        } else {
            #expect(r.kind(conn) == "?" && conn.discovery == nil)
            #expect(r.findings.filter { $0.severity >= .warning }.isEmpty)
            let rules = Set(r.unjudged.filter { $0.connection == conn.id }.map(\.rule))
            #expect(rules.isSuperset(of: ["discovery-kato-zero", "keep-alive-expired"]))
        }
    }

    /// An I/O queue whose Connect data was cut joins the one admin queue of the same host and
    /// target that is open (inferred, with the evidence); with two such admin queues open (two
    /// subsystems behind one port) the Connect response's CNTLID decides, and with the same
    /// CNTLID on both it stays unjoined rather than guessed.
    @Test(arguments: [(1, UInt16(1), true), (2, UInt16(2), true), (2, UInt16(1), false)])
    func ioQueueJoinsByInference(admins: Int, ioCNTLID: UInt16, joins: Bool) throws {
        let s = SynthCapture()
        var adminConns: [NVMeScript] = []
        for i in 0..<admins {
            let a = s.connection()
            // Two subsystems; the second controller gets CNTLID 2 unless the test wants a tie.
            a.connect(at: s.t(Double(i) * 0.01), kato: 10_000, subnqn: SynthCapture.subnqn + "\(i)", hostnqn: SynthCapture.hostnqn,
                      cntlid: joins || i == 0 ? UInt16(i + 1) : 1)
            adminConns.append(a)
        }
        let io = s.connection()
        io.connect(at: s.t(1), qid: 1, kato: 0, subnqn: SynthCapture.subnqn + "1", hostnqn: SynthCapture.hostnqn, cntlid: ioCNTLID)
        io.read(at: s.t(2), bytes: 4096)
        // Header and 10 bytes of each Connect's data: no CNTLID, no NQN.
        let r = s.report(snaplen: 54 + 72 + 10)
        let ioConn = try #require(r.model.connections.first { $0.queueKind == .io })
        #expect((ioConn.controller != nil) == joins)
        if joins {
            let ctl = r.model.controllers[ioConn.controller!]
            #expect(ctl.cntlid == ioCNTLID)
            #expect(ioConn.controllerBasis?.inferred == true && ioConn.controllerBasis?.evidence.contains("connection \(ctl.adminConnection)") == true)
            #expect(r.inferences.contains { $0.connection == ioConn.id && $0.what.hasPrefix("I/O queue of controller") })
        }
    }

    // MARK: reports

    /// The report says what kind of capture it was, in every format: the snap length applied and
    /// the bytes it cut, and the connections picked up mid-stream.
    @Test func reportsStateTheCaptureQuality() throws {
        let s = SynthCapture()
        let admin = s.connection()
        admin.connect(at: s.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        admin.identify(at: s.t(0.1), cntrltype: 1, tbkas: true)
        for k in 1...4 { admin.keepAlive(at: s.t(Double(k) * 2.5)) }
        let r = s.report(snaplen: 128)
        #expect(r.capture.packetsCut > 0 && r.capture.cutTo == 128 && r.capture.notCapturedBytes > 0)
        #expect(r.capture.midStream.isEmpty && !r.capture.isWhole)
        let text = TextReport.render(r, color: false)
        #expect(text.contains("Capture: packets cut to 128 bytes"))
        #expect(MarkdownReport.render(r).contains("Capture: packets cut to 128 bytes"))
        #expect(HTMLReport.render(r).contains("packets cut to 128 bytes"))
        let json = try JSONSerialization.jsonObject(with: Data(JSONReport.render(r).utf8)) as! [String: Any]
        let quality = try #require((json["capture"] as? [String: Any])?["quality"] as? [String: Any])
        #expect(quality["cutTo"] as? Int == 128 && quality["whole"] as? Bool == false)
        #expect((quality["notCapturedBytes"] as? Int ?? 0) == Int(r.capture.notCapturedBytes))

        let late = SynthCapture()
        let a = late.connection()
        a.connect(at: late.t(0), kato: 10_000, subnqn: SynthCapture.subnqn, hostnqn: SynthCapture.hostnqn)
        for k in 1...4 { a.keepAlive(at: late.t(Double(k) * 2.5)) }
        // Leave out the handshake, ICReq/ICResp and Connect (and their ACKs).
        let mid = late.report(dropFirst: 12)
        #expect(mid.capture.midStream == [0])
        #expect(TextReport.render(mid, color: false).contains("picked up mid-stream (#0"))
    }
}
