import Foundation

/// The JSON object `nvmetrace pdus --format json` prints per PDU (one per line). Field names are
/// stable; absent fields are omitted.
public struct PDUJSON: Encodable {
    public var file: String
    public var frame: Int
    public var firstFrame: Int
    public var time: Double
    public var epoch: Double
    public var connection: Int
    public var src: String
    public var dst: String
    public var type: String
    public var plen: Int
    public var hlen: Int
    public var pdo: Int
    public var flags: [String]?
    public var hdgst: String?
    public var ddgst: String?
    public var incomplete: Bool?
    /// Header bytes the capture held, when it cut the header (fields past them are absent).
    public var headerCaptured: Int?
    public var qid: Int?
    public var cid: Int?
    public var opcode: Int?
    public var name: String?
    public var fctype: Int?
    public var nsid: UInt32?
    // Connect
    public var kato: UInt32?
    public var sqsize: Int?
    public var connectQid: Int?
    public var hostid: String?
    public var cntlid: Int?
    public var subnqn: String?
    public var hostnqn: String?
    // Other command fields
    public var property: String?
    public var value: UInt64?
    public var cns: Int?
    public var lid: Int?
    public var fid: Int?
    public var slba: UInt64?
    public var nlb: UInt32?
    // Completion
    public var status: Int?
    public var statusName: String?
    public var latency: Double?
    public var commandFrame: Int?
    public var authreq: Int?
    public var event: EventJSON?
    public var identify: IdentifyJSON?
    public var discoveryLog: DiscoveryLogJSON?
    // Transfers and connection setup
    public var cccid: Int?
    public var ttag: Int?
    public var datao: UInt32?
    public var datal: UInt32?
    public var fes: Int?
    public var fesName: String?
    public var fei: UInt32?
    public var pfv: Int?
    public var pda: Int?
    public var hdgstEnabled: Bool?
    public var ddgstEnabled: Bool?
    public var maxr2t: UInt32?
    public var maxh2cdata: UInt32?

    public struct EventJSON: Encodable {
        public var type: String
        public var info: String
        public var logPage: Int
    }

    public struct IdentifyJSON: Encodable {
        public var cntrltype: String
        public var kas: Int?
        public var tbkas: Bool?
        public var cntlid: Int?
        public var modelNumber: String?
        public var subnqn: String?
    }

    public struct DiscoveryLogJSON: Encodable {
        public var genctr: UInt64
        public var numrec: UInt64
        public var entries: [EntryJSON]
    }

    public struct EntryJSON: Encodable {
        public var subtype: String
        public var traddr: String
        public var trsvcid: String
        public var subnqn: String
        public var epcsd: Bool
        public var portid: Int
    }

    public init<Bytes>(_ r: PDURecord<Bytes>, fileName: String, time: Double) {
        let p = r.pdu
        file = fileName
        frame = p.ref.frame
        firstFrame = p.firstRef.frame
        self.time = time
        epoch = Double(p.ref.timeNs) / 1e9
        connection = r.connection
        src = r.src.description
        dst = r.dst.description
        type = p.type.name
        plen = p.shape.plen
        hlen = p.shape.hlen
        pdo = p.shape.pdo
        var f: [String] = []
        if p.flags.contains(.hdgst) { f.append("HDGSTF") }
        if p.flags.contains(.ddgst) { f.append("DDGSTF") }
        if p.flags.contains(.last) { f.append("LAST") }
        if p.flags.contains(.success) { f.append("SUCCESS") }
        flags = f.isEmpty ? nil : f
        hdgst = p.headerDigest == .absent ? nil : p.headerDigest.name
        ddgst = p.dataDigest == .absent ? nil : p.dataDigest.name
        incomplete = p.incomplete ? true : nil
        headerCaptured = p.headerIsPartial ? p.header.count : nil
        qid = r.qid.map(Int.init)
        switch r.body {
        case .icReq(let ic), .icResp(let ic):
            if let ic {
                pfv = Int(ic.pfv); pda = Int(ic.pda); hdgstEnabled = ic.headerDigest; ddgstEnabled = ic.dataDigest
                if p.type == .icReq { maxr2t = ic.maxValue } else { maxh2cdata = ic.maxValue }
            }
        case .termReq(let t):
            if let t {
                fes = Int(t.fes); fesName = TermReqFES.name(t.fes, fromHost: p.type == .h2cTermReq); fei = t.fei
            }
        case .command(let cmd):
            setCommand(cmd)
            if let cd = r.connectData { setConnectData(cd) }
        case .completion(let cqe):
            setCompletion(cqe, r.completed)
        case .h2cData(let dh):
            setTransfer(dh)
            if let cd = r.connectData { setConnectData(cd) }
        case .c2hData(let dh, let cqe):
            setTransfer(dh)
            if let cqe { setCompletion(cqe, r.completed) }
        case .r2t(let dh):
            setTransfer(dh)
        case .untrusted, .notCaptured, .ioSummary:
            break
        }
    }

    mutating func setTransfer(_ dh: DataTransferHeader?) {
        guard let dh else { return }
        cccid = Int(dh.cccid); ttag = Int(dh.ttag); datao = dh.offset; datal = dh.length
    }

    mutating func setConnectData(_ d: ConnectData) {
        hostid = d.hostidString
        cntlid = d.cntlid.map(Int.init)
        subnqn = d.subnqn
        hostnqn = d.hostnqn
    }

    mutating func setCommand(_ cmd: NVMeCommand) {
        cid = Int(cmd.cid)
        opcode = Int(cmd.opcode)
        name = cmd.name
        fctype = cmd.fctype.map(Int.init)
        if cmd.nsid != 0 && cmd.known(upTo: 8) { nsid = cmd.nsid }
        if qid == nil { qid = cmd.qid.map(Int.init) }
        switch cmd.detail {
        case .connect(let c):
            kato = c.kato
            sqsize = c.sqsize.map(Int.init)
            connectQid = c.qid.map(Int.init)
            if let q = c.qid { qid = Int(q) }
        case .propertyGet(let off, _):
            property = NVMeOpcodes.propertyName(off)
        case .propertySet(let off, _, let v):
            property = NVMeOpcodes.propertyName(off); value = v
        case .identify(let c, _):
            cns = Int(c)
        case .getLogPage(let l, _, _, _):
            lid = Int(l)
        case .setFeatures(let f, let v, _):
            fid = Int(f); value = UInt64(v)
        case .getFeatures(let f, _):
            fid = Int(f)
        case .readWrite(let s, let n):
            slba = s; nlb = n
        default:
            break
        }
    }

    mutating func setCompletion(_ cqe: NVMeCompletion, _ done: CompletedCommand?) {
        cid = Int(cqe.cid)
        status = cqe.status.map { Int($0.code) }
        statusName = PDUDescription.statusName(cqe, done)
        guard let done else { return }
        opcode = Int(done.command.opcode)
        name = done.command.name
        fctype = done.command.fctype.map(Int.init)
        latency = Double(done.latencyNs) / 1e9
        commandFrame = done.issued.frame
        if let cd = done.connectData { setConnectData(cd) }
        switch done.detail {
        case .connect(let c, let a):
            cntlid = Int(c); authreq = Int(a)
        case .propertyGet(let v):
            if case .propertyGet(let off, _) = done.command.detail { property = NVMeOpcodes.propertyName(off) }
            value = v
        case .asyncEvent(let e):
            event = EventJSON(type: e.typeName, info: e.infoName, logPage: Int(e.logPage))
        case .identifyController(let id):
            identify = IdentifyJSON(cntrltype: id.controllerTypeName, kas: id.kas.map(Int.init), tbkas: id.tbkas,
                                    cntlid: id.cntlid.map(Int.init), modelNumber: id.modelNumber, subnqn: id.subnqn)
        case .discoveryLog(let log):
            discoveryLog = DiscoveryLogJSON(genctr: log.genctr, numrec: log.numrec, entries: log.entries.map {
                EntryJSON(subtype: $0.subtypeName, traddr: $0.traddr, trsvcid: $0.trsvcid, subnqn: $0.subnqn,
                          epcsd: $0.epcsd, portid: Int($0.portid))
            })
        case .features(let f, let v):
            fid = Int(f); value = UInt64(v)
        case .none:
            break
        }
    }
}

/// Encodes `PDUJSON` lines.
public struct PDUJSONEncoder {
    let encoder: JSONEncoder
    public init() {
        encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    }
    public func line(_ value: PDUJSON) -> String {
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
