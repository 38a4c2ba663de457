import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// NVMe-level decode checked against the independent parser's facts in each ground truth.
@Suite struct NVMeDecodeTests {
    /// Our command names mapped to the independent parser's.
    static func parserName(_ name: String) -> String {
        switch name {
        case "Connect", "Property Get", "Property Set": "Fabrics " + name
        case "Asynchronous Event Request": "Async Event Request"
        default: name
        }
    }

    @Test(arguments: sampleNames)
    func commandsConnectResponsesAndDataMatchTheIndependentParser(sample: String) throws {
        let url = samplesDirectory.appendingPathComponent(sample + ".json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let parser = (root["independent_parser"] as! [String: Any])["connections"] as! [[String: Any]]
        let result = analyze(samplePath(sample))
        let flowByHost = Dictionary(result.flows.map { ($0.client.description, $0.id) }, uniquingKeysWith: { a, _ in a })
        for c in parser {
            let host = c["host"] as! String
            let index = try #require(flowByHost[host])
            let recs = result.records.filter { $0.connection == index }
            var names: [String: Int] = [:]
            var c2hBytes = 0, h2cBytes = 0, inCapsuleWrites = 0, r2tWrites = 0
            var responses: [(Int, Int)] = []
            var connectHostid: [String] = []
            for r in recs {
                switch r.body {
                case .command(let cmd):
                    names[Self.parserName(cmd.name), default: 0] += 1
                    if cmd.queue == .io && cmd.opcode == 0x01 {
                        if r.pdu.shape.dataLength > 0 { inCapsuleWrites += 1 } else { r2tWrites += 1 }
                    }
                    if case .connect = cmd.detail, let d = r.connectData { connectHostid.append(hexString(d.hostid ?? [])) }
                case .completion(let cqe):
                    let done = r.completed
                    if case .connect(let cntlid, _)? = done?.detail { responses.append((Int(cqe.status?.code ?? 0xFFFF), Int(cntlid))) }
                    else if done?.command.fctype == 0x01 { responses.append((Int(cqe.status?.code ?? 0xFFFF), -1)) }
                case .c2hData(let dh, _):
                    c2hBytes += Int(dh?.length ?? 0)
                case .h2cData(let dh):
                    h2cBytes += Int(dh?.length ?? 0)
                default: break
                }
            }
            #expect(names == c["commands"] as! [String: Int], "\(sample) \(host) command names")
            #expect(c2hBytes == c["c2h_data_bytes"] as! Int)
            #expect(h2cBytes == c["h2c_data_bytes"] as! Int)
            #expect(inCapsuleWrites == c["writes_in_capsule"] as! Int)
            #expect(r2tWrites == c["writes_with_r2t"] as! Int)
            let connects = c["connects"] as! [[String: Any]]
            #expect(responses.map(\.0) == connects.map { $0["response_status"] as! Int })
            #expect(responses.map(\.1) == connects.map { $0["response_cntlid"] as! Int })
            #expect(connectHostid == connects.map { $0["hostid"] as! String })
            // ICReq / ICResp parameters.
            let icreq = c["icreq"] as! [String: Any], icresp = c["icresp"] as! [String: Any]
            var icreqs = 0, icresps = 0
            for r in recs {
                if case .icReq(let ic?) = r.body {
                    icreqs += 1
                    #expect(ic.headerDigest == icreq["hdgst"] as! Bool)
                    #expect(ic.dataDigest == icreq["ddgst"] as! Bool)
                    #expect(Int(ic.pda) == icreq["hpda"] as! Int)
                    #expect(Int(ic.maxValue) == icreq["maxr2t"] as! Int)
                }
                if case .icResp(let ic?) = r.body {
                    icresps += 1
                    #expect(ic.headerDigest == icresp["hdgst"] as! Bool)
                    #expect(Int(ic.pda) == icresp["cpda"] as! Int)
                    #expect(Int(ic.maxValue) == icresp["maxh2cdata"] as! Int)
                }
            }
            // Every sample connection starts with its handshake: the checks above did run.
            #expect(icreqs == 1 && icresps == 1, "\(sample) \(host): \(icreqs) ICReq, \(icresps) ICResp decoded")
        }
    }

    /// Every Identify Controller in every sample decodes to what tshark decodes: CNTRLTYPE, KAS,
    /// CTRATT.TBKAS, SUBNQN (nvmet's discovery controller: type 2, KAS 0, no TBKAS; its I/O
    /// controller: type 1, KAS 10, TBKAS).
    @Test(arguments: sampleNames)
    func identifyControllerFieldsAsTsharkDecodesThem(sample: String) throws {
        let ours: [IdentifyController] = analyze(samplePath(sample)).records.compactMap {
            if case .completion = $0.body, let done = $0.completed, case .identifyController(let id) = done.detail { return id }
            return nil
        }
        let theirs = try Tshark.fields(samplePath(sample), filter: "nvme.cmd.identify.ctrl.cntrltype", [
            "nvme.cmd.identify.ctrl.cntrltype", "nvme.cmd.identify.ctrl.kas", "nvme.cmd.identify.ctrl.ctratt.tbkas",
            "nvme.cmd.identify.ctrl.subnqn"])
        #expect(ours.count == theirs.count, "\(sample): \(ours.count) Identify Controller decoded, tshark \(theirs.count)")
        for (id, t) in zip(ours, theirs) {
            #expect(id.cntrltype.map(Int.init) == Tshark.int(t[0]))
            #expect(id.kas.map(Int.init) == Tshark.int(t[1]))
            #expect(id.tbkas == (Tshark.int(t[2]).map { $0 != 0 }))
            #expect(id.subnqn == String(t[3]))
        }
    }

    /// Every discovery log page with entries decodes to tshark's records: NUMREC, and per record
    /// SUBTYPE, TRTYPE, TRADDR, TRSVCID and SUBNQN.
    @Test(arguments: sampleNames)
    func discoveryLogEntriesAsTsharkDecodesThem(sample: String) throws {
        let ours: [DiscoveryLog] = analyze(samplePath(sample)).records.compactMap {
            if case .completion = $0.body, let done = $0.completed, case .discoveryLog(let l) = done.detail, !l.entries.isEmpty { return l }
            return nil
        }
        let theirs = try Tshark.fields(samplePath(sample), filter: "nvme.cmd.get_logpage.identify.rcrd.subtype", [
            "nvme.cmd.get_logpage.identify.numrec", "nvme.cmd.get_logpage.identify.rcrd.subtype",
            "nvme.cmd.get_logpage.identify.rcrd.trtype", "nvme.cmd.get_logpage.identify.rcrd.traddr",
            "nvme.cmd.get_logpage.identify.rcrd.trsvcid", "nvme.cmd.get_logpage.identify.rcrd.subnqn"])
        #expect(ours.count == theirs.count, "\(sample): \(ours.count) discovery logs decoded, tshark \(theirs.count)")
        for (log, t) in zip(ours, theirs) {
            func list(_ s: Substring) -> [String] { s.split(separator: ",").map(String.init) }
            #expect(Int(log.numrec) == Tshark.int(t[0]))
            #expect(log.entries.map { Int($0.subtype) } == list(t[1]).compactMap { Tshark.int(Substring($0)) })
            #expect(log.entries.map { Int($0.trtype) } == list(t[2]).compactMap { Tshark.int(Substring($0)) })
            #expect(log.entries.map(\.traddr) == list(t[3]))
            #expect(log.entries.map(\.trsvcid) == list(t[4]))
            #expect(log.entries.map(\.subnqn) == list(t[5]))
        }
        // The samples with a discovery controller read a log with entries; the check above ran.
        if sample.contains("discovery") { #expect(!ours.isEmpty) }
    }

    @Test func asyncEventCompletionIsDecodedOnlyOnSuccess() {
        let decoder = NVMeConnectionDecoder()
        func feed(_ bytes: [UInt8]) -> (body: PDUBody, connectData: ConnectData?, completed: CompletedCommand?) {
            let rec = frame([bytes])
            return decoder.decode(rec.pdus[0])
        }
        _ = feed(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 0)))
        _ = feed(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: 5)))
        // Notice (2) / Discovery Log Page Change (0xF0) / log 0x70.
        let ok = feed(PDUBuilder.capsuleResp(cid: 5, dw0: 0x0070_F002))
        guard case .completion = ok.body, let done = ok.completed, case .asyncEvent(let e) = done.detail else {
            Issue.record("AER not decoded"); return
        }
        #expect(e.type == 2 && e.info == 0xF0 && e.logPage == 0x70)
        #expect(e.infoName == "Discovery Log Page Change")
        _ = feed(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: 6)))
        // Aborted at teardown: Internal Error with DNR; dw0 is not an event.
        let aborted = feed(PDUBuilder.capsuleResp(cid: 6, status: 0x06 | 0x4000, dw0: 0x0001_0100))
        guard case .completion(let cqe) = aborted.body, let d2 = aborted.completed else { Issue.record("no completion"); return }
        #expect(d2.detail == .none)
        #expect(cqe.status?.name() == "Internal Error (DNR)")
    }

    @Test func statusNames() {
        // Status field bits: SC 8:1, SCT 11:9, DNR 15 (with phase in bit 0).
        func st(sct: UInt16, sc: UInt16, dnr: Bool = false) -> NVMeStatus {
            NVMeStatus(raw: (sc << 1) | (sct << 9) | (dnr ? 0x8000 : 0))
        }
        #expect(st(sct: 0, sc: 0).name() == "Success")
        #expect(st(sct: 1, sc: 0x82).name(fabricsCommand: 0x01) == "Connect Invalid Parameters")
        #expect(st(sct: 1, sc: 0x84, dnr: true).name(fabricsCommand: 0x01) == "Connect Invalid Host (DNR)")
        #expect(st(sct: 0, sc: 0x19).name() == "Keep Alive Timer Expired")
        #expect(st(sct: 2, sc: 0x81).name() == "Unrecovered Read Error")
        #expect(st(sct: 1, sc: 0x82).code == 0x182)
    }

    @Test func connectDataInH2CDataIsDecoded() {
        // A Connect whose data comes by R2T + H2CData instead of in-capsule.
        let decoder = NVMeConnectionDecoder()
        let data = PDUBuilder.connectData(cntlid: 3, subnqn: "nqn.h2c:sub", hostnqn: "nqn.h2c:host")
        let stream = PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 9, qid: 2, kato: 0))
            + PDUBuilder.h2cData(cid: 9, ttag: 1, offset: 0, data: Array(data[0..<512]), last: false)
            + PDUBuilder.h2cData(cid: 9, ttag: 1, offset: 512, data: Array(data[512...]))
            + PDUBuilder.capsuleResp(cid: 9, dw0: 3)
        let rec = FramerRecorder()
        let f = PDUFramer(synchronized: true)
        f.delegate = rec
        rec.keep = { _ in 0 }
        var decoded: [OwnedPDURecord] = []
        final class Bridge: PDUFramerDelegate {
            let decoder: NVMeConnectionDecoder
            var out: [OwnedPDURecord] = []
            let host = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 40000)
            let target = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 4420)
            init(_ d: NVMeConnectionDecoder) { decoder = d }
            override func framer(_ framer: PDUFramer, dataBytesToKeepFor shape: PDUShape, header: UnsafeRawBufferPointer) -> Int {
                decoder.dataBytesToKeep(shape, header: header)
            }
            override func framer(_ framer: PDUFramer, didFrame pdu: LentPDU) { 
                let d = decoder.decode(pdu.owned())
                let fromHost = pdu.type.fromHost
                out.append(OwnedPDURecord(connection: 0, src: fromHost ? host : target, dst: fromHost ? target : host, qid: 2,
                                          pdu: pdu.owned(), body: d.body, connectData: d.connectData, completed: d.completed))
             }
            override func framer(_ framer: PDUFramer, event: FramingEvent, ref: FrameRef) {}
        }
        let bridge = Bridge(decoder)
        f.delegate = bridge
        stream.withUnsafeBytes { f.streamData($0, ref: FrameRef(file: 0, frame: 1, timeNs: 0)) }
        decoded = bridge.out
        #expect(decoded.count == 4)
        guard case .h2cData = decoded[2].body, let cd = decoded[2].connectData else { Issue.record("no Connect data on the last H2CData"); return }
        #expect(cd.subnqn == "nqn.h2c:sub" && cd.hostnqn == "nqn.h2c:host" && cd.cntlid == 3)
        guard case .completion = decoded[3].body, let done = decoded[3].completed else { Issue.record("no completion"); return }
        #expect(done.connectData?.hostnqn == "nqn.h2c:host")
        #expect(done.detail == .connect(cntlid: 3, authreq: 0))
        #expect(decoder.qid == 2)

        // The session model learns the NQNs and the controller id from the H2CData as it does
        // from in-capsule data.
        let tracker = SessionTracker()
        for record in decoded { tracker.record(record) }
        let model = tracker.model(files: [], packets: 4, captureStart: nil, captureEnd: FrameRef(file: 0, frame: 1, timeNs: 0))
        #expect(model.connections.count == 1)
        #expect(model.connections.first?.subnqn == "nqn.h2c:sub")
        #expect(model.connections.first?.hostnqn == "nqn.h2c:host")
        #expect(model.connections.first?.cntlid == 3)
        #expect(model.connections.first?.qid == 2)
    }

    @Test func fixedStringsAreTrimmedAndEscaped() {
        // NQN fields are NUL-padded; trailing spaces go, and bytes that are not printable ASCII
        // are escaped (the fast path takes plain ASCII as it is).
        var field = [UInt8](repeating: 0, count: 32)
        let plain = Array("nqn.2014-08.org.example:x  ".utf8)
        field.replaceSubrange(0..<plain.count, with: plain)
        #expect(field.fixedString(at: 0, length: 32) == "nqn.2014-08.org.example:x")
        var odd = [UInt8](repeating: 0x20, count: 16)
        odd[0] = 0x41; odd[1] = 0x01; odd[2] = 0x20; odd[3] = 0xC3; odd[4] = 0xA9
        #expect(odd.fixedString(at: 0, length: 16) == "A\\x01 \\xc3\\xa9")
        #expect(odd.fixedString(at: 10, length: 6) == "")
        #expect(odd.fixedString(at: 12, length: 8) == nil)
        #expect([UInt8](repeating: 0, count: 4).fixedString(at: 0, length: 4) == "")
    }
}
