/// Human-readable one-line summaries of decoded PDUs, commands and completions.
public enum PDUDescription {
    public static func summary<Bytes>(_ record: PDURecord<Bytes>) -> String {
        let pdu = record.pdu
        var parts: [String] = []
        switch record.body {
        case .icReq(let ic):
            if let ic { parts.append("pfv=\(ic.pfv) hpda=\(ic.pda) hdgst=\(ic.headerDigest ? 1 : 0) ddgst=\(ic.dataDigest ? 1 : 0) maxr2t=\(ic.maxValue)") }
        case .icResp(let ic):
            if let ic { parts.append("pfv=\(ic.pfv) cpda=\(ic.pda) hdgst=\(ic.headerDigest ? 1 : 0) ddgst=\(ic.dataDigest ? 1 : 0) maxh2cdata=\(ic.maxValue)") }
        case .termReq(let t):
            if let t { parts.append("FES \(t.fes) \(TermReqFES.name(t.fes, fromHost: pdu.type == .h2cTermReq)) fei=\(hexValue(t.fei))") }
        case .command(let cmd):
            parts.append("cid=\(cmd.cid) \(cmd.name)")
            parts.append(contentsOf: commandFields(cmd, connectData: record.connectData))
        case .completion(let cqe):
            parts.append(completionText(cqe, record.completed))
        case .h2cData(let dh):
            if let dh { parts.append("cccid=\(dh.cccid) ttag=\(dh.ttag) datao=\(dh.offset) datal=\(dh.length)") }
            if let cd = record.connectData { parts.append(connectDataText(cd)) }
        case .c2hData(let dh, let cqe):
            if let dh { parts.append("cccid=\(dh.cccid) datao=\(dh.offset) datal=\(dh.length)") }
            if pdu.flags.contains(.last) { parts.append("LAST") }
            if let cqe { parts.append("SUCCESS → " + completionText(cqe, record.completed)) }
        case .r2t(let dh):
            if let dh { parts.append("cccid=\(dh.cccid) ttag=\(dh.ttag) r2to=\(dh.offset) r2tl=\(dh.length)") }
        case .untrusted:
            parts.append("(header digest mismatch: fields not trusted)")
        case .notCaptured:
            break
        case .ioSummary:
            parts.append("(plain I/O, summarised: fields not decoded)")
        }
        if case .mismatch = pdu.headerDigest { parts.append("[HDGST MISMATCH]") }
        if case .mismatch = pdu.dataDigest { parts.append("[DDGST MISMATCH]") }
        if pdu.headerIsPartial {
            parts.append("[header cut at \(pdu.header.count) of \(pdu.shape.hlen) bytes]")
        } else if pdu.incomplete {
            parts.append("[bytes missing]")
        }
        return parts.joined(separator: " ")
    }

    public static func commandFields(_ cmd: NVMeCommand, connectData: ConnectData? = nil) -> [String] {
        switch cmd.detail {
        case .connect(let c):
            // Fields the capture cut are left out.
            var f: [String] = []
            if let q = c.qid { f.append("qid=\(q)") }
            if let q = c.sqsize { f.append("sqsize=\(q)") }
            if let k = c.kato { f.append("kato=\(k)ms") }
            if let a = c.cattr, a != 0 { f.append("cattr=\(hexValue(a))") }
            if let d = connectData { f.append(connectDataText(d)) }
            return f
        case .propertyGet(let off, let size):
            return ["\(NVMeOpcodes.propertyName(off)) (\(size) bytes)"]
        case .propertySet(let off, _, let value):
            return ["\(NVMeOpcodes.propertyName(off))=\(hexValue(value))"]
        case .disconnect:
            return []
        case .authenticationSend(let secp, let spsp, let len), .authenticationReceive(let secp, let spsp, let len):
            return ["secp=\(hexValue(secp)) spsp=\(hexValue(spsp, digits: 4)) length=\(len)"]
        case .identify(let cns, let cntid):
            return ["cns=\(hexValue(cns)) (\(NVMeOpcodes.identifyCNSName(cns)))" + (cntid != 0 ? " cntid=\(cntid)" : "")
                    + (cmd.nsid != 0 ? " nsid=\(cmd.nsid)" : "")]
        case .getLogPage(let lid, let lsp, _, _):
            return ["lid=\(hexValue(lid)) (\(NVMeOpcodes.logPageName(lid)))" + (cmd.logPageLength.map { " length=\($0)" } ?? "")
                    + (cmd.logPageOffset.map { $0 != 0 ? " offset=\($0)" : "" } ?? "") + (lsp != 0 ? " lsp=\(lsp)" : "")]
        case .setFeatures(let fid, let value, _):
            return ["fid=\(hexValue(fid)) (\(NVMeOpcodes.featureName(fid))) value=\(hexValue(value))"]
        case .getFeatures(let fid, _):
            return ["fid=\(hexValue(fid)) (\(NVMeOpcodes.featureName(fid)))"]
        case .readWrite(let slba, let nlb):
            return ["nsid=\(cmd.nsid) slba=\(slba) nlb=\(nlb)"]
        case .keepAlive, .asyncEventRequest, .other:
            return cmd.nsid != 0 && cmd.known(upTo: 8) ? ["nsid=\(cmd.nsid)"] : []
        }
    }

    /// The Connect data's fields; `?` for what the capture cut.
    public static func connectDataText(_ d: ConnectData) -> String {
        "cntlid=\(d.cntlid.map { hexValue($0, digits: 4) } ?? "?") subnqn=\(d.subnqn ?? "?") hostnqn=\(d.hostnqn ?? "?")"
    }

    public static func completionText(_ cqe: NVMeCompletion, _ done: CompletedCommand?) -> String {
        var s = "cid=\(cqe.cid)"
        if let done {
            s += " \(done.command.name)"
        }
        s += " " + statusName(cqe, done)
        if let done {
            s += String(format: " latency=%.6fs", Double(done.latencyNs) / 1e9)
            switch done.detail {
            case .connect(let cntlid, let authreq):
                s += " cntlid=\(cntlid)" + (authreq != 0 ? " authreq=\(hexValue(authreq))" : "")
            case .propertyGet(let v):
                s += " value=\(hexValue(v))"
            case .asyncEvent(let e):
                s += " event=\(e.typeName)/\(e.infoName) log=\(hexValue(e.logPage))"
            case .identifyController(let id):
                s += " cntrltype=\(id.controllerTypeName) kas=\(id.kas.map(String.init) ?? "?")"
                    + " tbkas=\(id.tbkas.map { $0 ? "1" : "0" } ?? "?") cntlid=\(id.cntlid.map(String.init) ?? "?")"
            case .discoveryLog(let log):
                s += " genctr=\(log.genctr) numrec=\(log.numrec)"
                for e in log.entries {
                    s += " [\(e.subtypeName) \(e.traddr):\(e.trsvcid) \(e.subnqn)\(e.epcsd ? " epcsd" : "")]"
                }
            case .features(let fid, let v):
                s += " \(NVMeOpcodes.featureName(fid))=\(v)"
            case .none:
                break
            }
        } else if !cqe.implied {
            s += " (command not in capture)"
        }
        return s
    }

    public static func statusName(_ cqe: NVMeCompletion, _ done: CompletedCommand?) -> String {
        cqe.status?.name(fabricsCommand: done?.command.fctype, opcode: done?.command.opcode) ?? "status not captured"
    }
}
