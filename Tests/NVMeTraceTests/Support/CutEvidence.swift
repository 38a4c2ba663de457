import Foundation
@testable import NVMeTrace

// Support for CutCaptureFindingsTests (issue #13): captures cut the way people take them (a snap
// length, a late start), what such a cut capture still holds of the full one, and, per rule, whether
// the evidence a finding of the full capture needs survives the cut. Everything here is computed
// from the full capture by the test's own reference framer (CaptureTransforms.swift) and from which
// packets and bytes the cut capture kept; nothing is taken from NVMeTrace's decode.

// MARK: - variants

/// A capture as it is often taken: every packet cut to a snap length (`tcpdump -s`), the first
/// packets missing (a late start, or the oldest file of a `tcpdump -W` ring gone), or both.
struct CutVariant: Sendable, Hashable, CustomStringConvertible {
    /// Every packet cut to this many bytes; nil: whole packets.
    var snaplen: Int?
    /// The first `dropFirst` packets removed: the variant's frame 1 is the full capture's frame
    /// `dropFirst + 1`.
    var dropFirst: Int = 0
    /// Why this many (for messages).
    var why: String = ""

    var description: String {
        var parts: [String] = []
        if let snaplen { parts.append("snap \(snaplen)") }
        if dropFirst > 0 { parts.append("first \(dropFirst) packets removed" + (why.isEmpty ? "" : " (\(why))")) }
        return parts.isEmpty ? "uncut" : parts.joined(separator: ", ")
    }

    /// The variant's packets (each keeps its `origin`, the full capture's frame number).
    func apply(_ c: StoredCapture) -> StoredCapture {
        var out = StoredCapture(linkType: c.linkType, packets: Array(c.packets.dropFirst(dropFirst)))
        if let snaplen { out = truncated(out, to: snaplen) }
        return out
    }

    /// Writes the variant (`apply`'s result) with the project's pcap writer. `truncated` only cuts the packets; the
    /// writer, given the snap length, also puts it in the file header (caplen < len for cut packets),
    /// as `tcpdump -s` and `editcap -s` write it.
    func write(variant: StoredCapture) -> String {
        writeTemporaryCapture(variant, format: .pcap(nanoseconds: false), snaplen: snaplen, name: "cut")
    }
}

// MARK: - what a variant holds

/// Which packets of the full capture a variant holds, and how many bytes of each: by the full
/// capture's frame number (the variant's packets' `origin`).
struct Holdings: Sendable {
    private var length: [Int: Int] = [:]

    init(_ variant: StoredCapture) {
        for p in variant.packets { if let o = p.origin { length[o] = p.bytes.count } }
    }

    /// A made-up holding: every frame of `full` except `missing`, each cut to `snaplen` (tests of
    /// the judge itself).
    init(full: StoredCapture, snaplen: Int?, missing: Set<Int> = []) {
        for (i, p) in full.packets.enumerated() where !missing.contains(i + 1) {
            length[i + 1] = min(p.bytes.count, snaplen ?? .max)
        }
    }

    func has(frame: Int) -> Bool { length[frame] != nil }
    func capturedLength(frame: Int) -> Int { length[frame] ?? 0 }
}

// MARK: - the full capture, by the reference framer

/// One PDU of the full capture with the fields the evidence rules read (nil where the type has
/// no such field).
struct PDUFact: Sendable {
    var pdu: ReferencePDU
    /// 0 host → target, 1 target → host.
    var dir: Int
    /// Frame holding the PDU's first byte, and the one holding its last header byte (where a
    /// decoder can first know the header: the frame a finding cites).
    var firstFrame: Int
    var headerFrame: Int
    var timeNs: Int64
    var opcode: UInt8?
    var cid: UInt16?
    var fctype: UInt8?
    var qid: Int?
    var kato: Int?
    /// Get Log Page: the log page id (CDW10 bits 0..7).
    var lid: UInt8?
    /// CapsuleResp: the CQE status field.
    var status: UInt16?
    /// C2HData: the command id, and whether SUCCESS completes the command.
    var cccid: UInt16?
    var c2hSuccess = false

    var isCommand: Bool { pdu.type == 4 }
    var isConnect: Bool { pdu.type == 4 && opcode == 0x7F && fctype == 0x01 }
    var isGetDiscoveryLog: Bool { pdu.type == 4 && opcode == 0x02 && lid == 0x70 }
}

/// One TCP connection of the full capture.
struct FullConnection: Sendable {
    var ref: ReferenceConnection
    /// "10.0.0.2:34214 → 10.0.0.1:8009", as NVMeTrace's endpoints print.
    var key: String { "\(ref.host) → \(ref.target)" }
    var hostAddress: String { String(ref.host.split(separator: ":")[0]) }
    var targetPort: Int { Int(ref.target.split(separator: ":").last!)! }
    /// PDUs per direction.
    var pdus: [[PDUFact]]
    /// Each direction's stream bytes (the full capture has no holes).
    var bytes: [[UInt8]]
    /// Every frame of the connection (both directions, handshake and ACKs included) with its time.
    var frames: [(frame: Int, timeNs: Int64)]
    /// First FIN or RST each side sent (frame).
    var hostClose: Int?
    var targetClose: Int?

    var connect: PDUFact? { pdus[0].first { $0.isConnect } }
    /// The CapsuleResp answering the Connect (same CID, after it).
    var connectResponse: PDUFact? {
        guard let c = connect, let cid = c.cid else { return nil }
        return pdus[1].first { $0.pdu.type == 5 && $0.cid == cid && $0.timeNs >= c.timeNs }
    }
    /// The target closed first.
    var tornDownByTarget: Bool {
        guard let t = targetClose else { return false }
        return hostClose.map { t < $0 } ?? true
    }
}

struct FullCapture: Sendable {
    var capture: StoredCapture
    var connections: [FullConnection]

    func connection(key: String) -> FullConnection? { connections.first { $0.key == key } }
    func time(frame: Int) -> Int64 { capture.packets[frame - 1].timeNs }
    var endTimeNs: Int64 { capture.packets.last?.timeNs ?? 0 }
}

@inline(__always) private func le16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
@inline(__always) private func le32(_ b: [UInt8], _ o: Int) -> Int {
    Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24
}

/// Walks a full (uncut, complete) Ethernet/IPv4 capture with the reference framer and reads the
/// PDU fields the evidence rules need.
func fullCaptureFacts(_ capture: StoredCapture) -> FullCapture {
    let refs = referenceConnections(capture)
    var index: [TCPDirectionKey: (Int, Int)] = [:]
    for (i, r) in refs.enumerated() { index[r.key] = (i, 0); index[r.key.reversed] = (i, 1) }
    var frames = Array(repeating: [(frame: Int, timeNs: Int64)](), count: refs.count)
    var closes = Array(repeating: [Int?](repeating: nil, count: 2), count: refs.count)
    for (i, p) in capture.packets.enumerated() {
        guard let v = TCPFrameView(p.bytes), let (c, d) = index[v.key] else { continue }
        frames[c].append((i + 1, p.timeNs))
        if v.flags & (TCPFlag.fin | TCPFlag.rst) != 0 && closes[c][d] == nil { closes[c][d] = i + 1 }
    }
    var out: [FullConnection] = []
    for (ci, r) in refs.enumerated() {
        var bytes: [[UInt8]] = [[], []]
        var pdus: [[PDUFact]] = [[], []]
        for d in 0..<2 {
            let s = r.streams[d]
            // The stream's bytes, from the segments of the (complete) full capture.
            var b: [UInt8] = []
            for seg in s.segments.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
                let p = capture.packets[seg.frame - 1]
                guard seg.range.lowerBound <= b.count && seg.range.upperBound > b.count,
                      let v = TCPFrameView(p.bytes) else { continue }
                b.append(contentsOf: v.capturedPayload(p.bytes).dropFirst(b.count - seg.range.lowerBound))
            }
            bytes[d] = b
            // Frame of a stream offset: the first segment (in capture order) that carried it.
            let bySeq = s.segments.enumerated().sorted {
                ($0.element.range.lowerBound, $0.offset) < ($1.element.range.lowerBound, $1.offset)
            }.map(\.element)
            func frame(of offset: Int) -> Int {
                var lo = 0, hi = bySeq.count
                while lo < hi {  // first segment starting after `offset`
                    let mid = (lo + hi) / 2
                    if bySeq[mid].range.lowerBound <= offset { lo = mid + 1 } else { hi = mid }
                }
                var best: Int?
                var k = lo - 1
                while k >= 0 && k >= lo - 8 {
                    if bySeq[k].range.contains(offset) { best = min(best ?? .max, bySeq[k].frame) }
                    k -= 1
                }
                return best ?? bySeq[max(0, lo - 1)].frame
            }
            for p in s.pdus {
                let o = p.offset
                let hf = frame(of: o + max(p.headerBytes, 8) - 1)
                var f = PDUFact(pdu: p, dir: d, firstFrame: frame(of: o), headerFrame: hf,
                                timeNs: capture.packets[hf - 1].timeNs)
                switch p.type {
                case 4 where o + 72 <= b.count:
                    f.opcode = b[o + 8]
                    f.cid = le16(b, o + 10)
                    if b[o + 8] == 0x7F {
                        f.fctype = b[o + 12]
                        if b[o + 12] == 0x01 { f.qid = Int(le16(b, o + 50)); f.kato = le32(b, o + 56) }
                    }
                    if b[o + 8] == 0x02 { f.lid = b[o + 48] }
                case 5 where o + 24 <= b.count:
                    f.cid = le16(b, o + 20)
                    f.status = le16(b, o + 22)
                case 7 where o + 24 <= b.count:
                    f.cccid = le16(b, o + 8)
                    f.c2hSuccess = p.flags & 0x08 != 0
                default:
                    break
                }
                pdus[d].append(f)
            }
        }
        out.append(FullConnection(ref: r, pdus: pdus, bytes: bytes, frames: frames[ci],
                                  hostClose: closes[ci][0], targetClose: closes[ci][1]))
    }
    return FullCapture(capture: capture, connections: out)
}

// MARK: - evidence

/// One thing a verdict needs, and whether the variant still holds it.
struct EvidenceNeed: Sendable, CustomStringConvertible {
    var what: String
    var held: Bool
    var description: String { (held ? "+ " : "- ") + what }
}

/// Whether a finding's evidence survives in a variant, with the reasons.
struct EvidenceVerdict: Sendable, CustomStringConvertible {
    var needs: [EvidenceNeed] = []
    /// The rule has no evidence definition here: a test problem in itself.
    var undefined = false
    /// The finding counts what the capture's time window shows (retransmissions): a variant that
    /// lost that evidence shows no such thing, which is a verdict of its own, not a guess.
    var windowed = false

    var survives: Bool { !undefined && !needs.isEmpty && needs.allSatisfy(\.held) }
    var missing: [EvidenceNeed] { needs.filter { !$0.held } }
    var description: String { undefined ? "no evidence definition" : needs.map(\.description).joined(separator: "; ") }

    mutating func need(_ what: String, _ held: Bool) { needs.append(EvidenceNeed(what: what, held: held)) }
}

/// Seconds a discovery connection must stay open past its discovery transaction to be persistent
/// (a one-shot `nvme discover` closes within about 0.3 s; NVMeTrace and the labels use 10 s).
let persistentAfterNs: Int64 = 10_000_000_000

/// The discovery subsystem NQN the Connect data names for a discovery controller.
private let discoveryNQN = Array("nqn.2014-08.org.nvmexpress.discovery".utf8) + [0]

/// Judges, per rule, whether the evidence a finding of the full capture rests on is still in a
/// variant. The variant's stream bytes are those of the full capture's segments it kept, each up to
/// its captured length (a snap length of S keeps S - 66 payload bytes of an Ethernet/IPv4/TCP
/// segment with timestamps); a PDU header that straddles segments counts only when all its bytes
/// are held. Nothing here looks at the variant's own bytes or at NVMeTrace's decode of it.
struct EvidenceJudge: Sendable {
    let full: FullCapture
    let holdings: Holdings
    /// Stream offsets held, per connection and direction.
    let held: [[[Range<Int>]]]

    init(full: FullCapture, holdings: Holdings) {
        self.full = full
        self.holdings = holdings
        held = full.connections.map { c in
            (0..<2).map { d in
                var pieces: [Range<Int>] = []
                for seg in c.ref.streams[d].segments {
                    let n = holdings.capturedLength(frame: seg.frame)
                    guard n > 0, let v = TCPFrameView(full.capture.packets[seg.frame - 1].bytes) else { continue }
                    let count = max(0, min(seg.range.count, n - v.payload))
                    if count > 0 { pieces.append(seg.range.lowerBound..<(seg.range.lowerBound + count)) }
                }
                pieces.sort { $0.lowerBound < $1.lowerBound }
                var merged: [Range<Int>] = []
                for r in pieces {
                    if let l = merged.last, r.lowerBound <= l.upperBound {
                        merged[merged.count - 1] = l.lowerBound..<max(l.upperBound, r.upperBound)
                    } else {
                        merged.append(r)
                    }
                }
                return merged
            }
        }
    }

    private func position(_ c: FullConnection) -> Int { full.connections.firstIndex { $0.key == c.key }! }

    /// Bytes [from, to) of the PDU are held.
    func holds(_ c: FullConnection, _ f: PDUFact, _ from: Int = 0, _ to: Int) -> Bool {
        let r = (f.pdu.offset + from)..<(f.pdu.offset + to)
        return held[position(c)][f.dir].contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }
    }

    /// Any packet of the connection is in the variant.
    func present(_ c: FullConnection) -> Bool { c.frames.contains { holdings.has(frame: $0.frame) } }

    // MARK: shared needs

    /// The Connect's SQE through `field` (PDU header bytes [0, upTo)), and its response's CQE.
    private func connectNeeds(_ c: FullConnection, upTo: Int, field: String, response: Bool, into v: inout EvidenceVerdict) {
        guard let connect = c.connect else { v.need("a Connect on \(c.key) in the full capture", false); return }
        v.need("Connect (frame \(connect.firstFrame)) SQE through \(field): PDU header bytes [0, \(upTo))",
               holds(c, connect, 0, upTo))
        if response {
            if let r = c.connectResponse {
                v.need("Connect response (frame \(r.headerFrame)) CQE: CapsuleResp header bytes [0, 24)", holds(c, r, 0, 24))
            } else {
                v.need("a Connect response in the full capture", false)
            }
        }
    }

    /// What makes the controller a discovery controller: the target port 8009, or the discovery
    /// subsystem NQN in the Connect's in-capsule data.
    private func discoveryHeld(_ c: FullConnection) -> Bool {
        if c.targetPort == 8009 { return true }
        guard let connect = c.connect, connect.pdu.dataLength >= 1024 else { return false }
        let at = connect.pdu.dataStart + 256
        let b = c.bytes[0]
        let o = connect.pdu.offset + at
        return o + discoveryNQN.count <= b.count && Array(b[o..<(o + discoveryNQN.count)]) == discoveryNQN
            && holds(c, connect, at, at + discoveryNQN.count)
    }

    /// KATO 0 means "the target's default" only on a discovery controller.
    private func discoveryNeedIfKATO0(_ c: FullConnection, into v: inout EvidenceVerdict) {
        if c.connect?.kato == 0 {
            v.need("KATO 0: what makes it a discovery controller (target port 8009, or the discovery NQN in the Connect data)",
                   discoveryHeld(c))
        }
    }

    /// The host PDU a finding cites at `frame` on the connection (the command whose header that
    /// frame completed).
    private func citedCommand(_ c: FullConnection, frame: Int) -> PDUFact? {
        c.pdus[0].first { $0.isCommand && $0.headerFrame == frame }
    }

    /// No timer restart can hide in what the variant lost: every host PDU on the connections from
    /// the same host address to the same target, sent after `after` (exclusive) and before
    /// `beforeNs`, has its header held through the SQE opcode (a command) or the common header
    /// (any other PDU).
    private func noHiddenRestarts(_ admin: FullConnection, after: (FullConnection, PDUFact), beforeNs: Int64,
                                  into v: inout EvidenceVerdict) {
        var unseen: [String] = []
        for c in full.connections where c.hostAddress == admin.hostAddress && c.ref.target == admin.ref.target {
            for f in c.pdus[0] where f.timeNs < beforeNs {
                if c.key == after.0.key ? f.pdu.offset <= after.1.pdu.offset : f.timeNs <= after.1.timeNs { continue }
                if !holds(c, f, 0, f.isCommand ? 9 : 8) { unseen.append("\(f.pdu.typeName) at frame \(f.firstFrame)") }
            }
        }
        v.need("every later host PDU's header through the opcode (no Keep Alive could hide in lost bytes)"
               + (unseen.isEmpty ? "" : "; not held: " + unseen.prefix(5).joined(separator: ", ")
                  + (unseen.count > 5 ? ", ... (\(unseen.count))" : "")),
               unseen.isEmpty)
    }

    /// The timer restart a finding cites (a Keep Alive, another command under TBKAS, or the
    /// Connect that started the timer) held through the opcode. Returns it for the later checks.
    private func citedRestartNeed(_ finding: Finding, among frames: [Evidence], in report: Report,
                                  into v: inout EvidenceVerdict) -> (FullConnection, PDUFact)? {
        for e in frames {
            guard let id = e.connection, let m = report.model.connection(id),
                  let c = full.connection(key: connectionKey(m)), let f = citedCommand(c, frame: e.ref.frame) else { continue }
            if f.isConnect {
                v.need("the cited timer start is the Connect (frame \(f.firstFrame)) itself", true)
            } else {
                v.need("cited command (frame \(f.headerFrame), opcode \(f.opcode.map { hexValue($0, digits: 2) } ?? "?")) header through the opcode: bytes [0, 9)",
                       holds(c, f, 0, 9))
            }
            return (c, f)
        }
        v.need("a timer restart (host command) among the finding's evidence frames \(frames.map(\.ref.frame))", false)
        return nil
    }

    private func teardownNeed(_ c: FullConnection, into v: inout EvidenceVerdict) {
        if let t = c.targetClose {
            v.need("the target's FIN/RST packet (frame \(t)) on \(c.key)", holdings.has(frame: t))
        } else {
            v.need("a target FIN/RST on \(c.key) in the full capture", false)
        }
    }

    // MARK: per rule

    /// The evidence the rule's verdict on `finding` (a finding of the full capture, whose report
    /// is `report`) needs, and whether the variant holds it. The definitions, per rule:
    ///
    /// - discovery-kato-zero: the Connect's SQE through KATO (PDU bytes [0, 60): QID @50, KATO
    ///   @56..59) and its response CQE (the association exists); what makes it a discovery
    ///   controller (target port 8009 is enough; the discovery NQN in the Connect data would do);
    ///   and what shows it stayed open: a packet of the connection at least 10 s after its last
    ///   discovery log read completed (or after the Connect response when it read none) — the
    ///   cut capture can only make the analyzer's transaction end earlier, never later — or a
    ///   Keep Alive header through the opcode.
    /// - keep-alive-expired (on the admin connection): the admin Connect's SQE through KATO and
    ///   its response CQE; for KATO 0 the discovery evidence; the timer restart the finding cites
    ///   (its last Keep Alive, or command under TBKAS, or the Connect) through the opcode (PDU
    ///   bytes [0, 9)); no later restart hidden in lost bytes (every later host PDU to that target
    ///   from that host address, up to the teardown, held through the opcode); and the target's
    ///   FIN/RST packet on the admin connection.
    /// - keep-alive-overdue: as keep-alive-expired, with the end of the capture (always held:
    ///   variants cut the head, not the tail) instead of the teardown.
    /// - keep-alive-margin: the Connect through KATO and response, discovery evidence for KATO 0,
    ///   both timer restarts of the gap through the opcode, and none hidden between them.
    /// - reconnect-loop: for every association of the chain (the finding's connections): the
    ///   Connect header through FCTYPE and QID (bytes [0, 52): it makes an admin queue, i.e. an
    ///   association) and its response CQE (it succeeded), the target's FIN/RST packet for each
    ///   the target tore down; and that they are one chain: the same host address and target
    ///   address:port (a session model that needs no NQNs), else both NQNs in each Connect's data.
    /// - connect-rejected: the Connect header through FCTYPE (bytes [0, 13), CID included) and the
    ///   response CQE with its status (CapsuleResp bytes [0, 24)).
    /// - termination-request: the TermReq's header through FES (bytes [0, 10)).
    /// - digest-error: every cited PDU whole (header, digests and data: a digest can only be
    ///   checked over all the bytes it covers).
    /// - keep-alive-failed: the admin Connect through QID, the Keep Alive through its CID
    ///   (bytes [0, 12)) and its completion's CQE.
    /// - command-timeout, commands-lost: each cited command through its CID (bytes [0, 12)), and
    ///   every controller→host PDU after it on the connection through the CID it answers (a
    ///   CapsuleResp's CQE, bytes [0, 24); a C2HData's CCCID, bytes [0, 10)): a completion for it
    ///   could hide in any that was cut.
    func verdict(for finding: Finding, in report: Report) -> EvidenceVerdict {
        var v = EvidenceVerdict()
        guard let id = finding.connection, let m = report.model.connection(id), let c = full.connection(key: connectionKey(m)) else {
            v.need("the finding's connection in the full capture's reference walk", false)
            return v
        }
        switch finding.rule {
        case "discovery-kato-zero":
            connectNeeds(c, upTo: 60, field: "KATO", response: true, into: &v)
            v.need("what makes it a discovery controller (target port 8009, or the discovery NQN in the Connect data)",
                   discoveryHeld(c))
            // The end of the discovery transaction: the last discovery log read's completion.
            var transactionEnd = c.connectResponse?.timeNs ?? c.connect?.timeNs ?? 0
            for cmd in c.pdus[0] where cmd.isGetDiscoveryLog {
                if let done = c.pdus[1].first(where: {
                    $0.timeNs >= cmd.timeNs && (($0.pdu.type == 5 && $0.cid == cmd.cid) || ($0.c2hSuccess && $0.cccid == cmd.cid))
                }) {
                    transactionEnd = max(transactionEnd, done.timeNs)
                }
            }
            let late = c.frames.first { $0.timeNs >= transactionEnd + persistentAfterNs && holdings.has(frame: $0.frame) }
            let keepAlive = c.pdus[0].first { $0.isCommand && $0.opcode == 0x18 && holds(c, $0, 0, 9) }
            v.need("what shows it stayed open: a packet of it 10 s after its discovery transaction, or a Keep Alive"
                   + (late.map { " (frame \($0.frame))" } ?? keepAlive.map { " (Keep Alive at frame \($0.headerFrame))" } ?? ""),
                   late != nil || keepAlive != nil)

        case "keep-alive-expired", "keep-alive-overdue":
            connectNeeds(c, upTo: 60, field: "KATO", response: true, into: &v)
            discoveryNeedIfKATO0(c, into: &v)
            let end: Int64
            if finding.rule == "keep-alive-expired" {
                teardownNeed(c, into: &v)
                end = c.targetClose.map(full.time(frame:)) ?? full.endTimeNs
            } else {
                end = full.endTimeNs + 1
            }
            if let cited = citedRestartNeed(finding, among: finding.evidence, in: report, into: &v) {
                noHiddenRestarts(c, after: cited, beforeNs: end, into: &v)
            }

        case "keep-alive-margin":
            connectNeeds(c, upTo: 60, field: "KATO", response: true, into: &v)
            discoveryNeedIfKATO0(c, into: &v)
            let cited = finding.evidence.sorted { $0.ref.frame < $1.ref.frame }
            if let from = citedRestartNeed(finding, among: Array(cited.prefix(1)), in: report, into: &v),
               let to = citedRestartNeed(finding, among: Array(cited.dropFirst()), in: report, into: &v) {
                noHiddenRestarts(c, after: from, beforeNs: to.1.timeNs, into: &v)
            }

        case "reconnect-loop":
            let members = finding.connections.compactMap { report.model.connection($0) }.compactMap { full.connection(key: connectionKey($0)) }
            v.need("every association of the chain in the full capture's reference walk", members.count == finding.connections.count)
            for a in members {
                connectNeeds(a, upTo: 52, field: "FCTYPE and QID", response: true, into: &v)
                if a.tornDownByTarget { teardownNeed(a, into: &v) }
            }
            let oneTarget = Set(members.map { "\($0.hostAddress) \($0.ref.target)" }).count == 1
            if !oneTarget {
                v.need("both NQNs in every Connect's data (the chain spans endpoints)", members.allSatisfy { a in
                    a.connect.map { holds(a, $0, $0.pdu.dataStart, $0.pdu.dataStart + 1024) } ?? false
                })
            }

        case "connect-rejected":
            connectNeeds(c, upTo: 13, field: "FCTYPE", response: true, into: &v)

        case "termination-request":
            for e in finding.evidence {
                let t = c.pdus.joined().first { ($0.pdu.type == 2 || $0.pdu.type == 3) && $0.headerFrame == e.ref.frame }
                if let t { v.need("\(t.pdu.typeName) at frame \(t.headerFrame) through FES: bytes [0, 10)", holds(c, t, 0, 10)) }
                else { v.need("a TermReq at frame \(e.ref.frame) in the reference walk", false) }
            }

        case "digest-error":
            for e in finding.evidence {
                let cut = c.pdus.joined().filter { $0.headerFrame == e.ref.frame }
                v.need("the PDUs at frame \(e.ref.frame) whole (a digest covers all its bytes)",
                       !cut.isEmpty && cut.allSatisfy { holds(c, $0, 0, $0.pdu.plen) })
            }

        case "keep-alive-failed":
            connectNeeds(c, upTo: 52, field: "QID", response: false, into: &v)
            for e in finding.evidence {
                guard let resp = c.pdus[1].first(where: { $0.pdu.type == 5 && $0.headerFrame == e.ref.frame }),
                      let ka = c.pdus[0].last(where: { $0.isCommand && $0.opcode == 0x18 && $0.cid == resp.cid && $0.timeNs <= resp.timeNs })
                else { v.need("the failed Keep Alive at frame \(e.ref.frame) and its command in the reference walk", false); continue }
                v.need("Keep Alive (frame \(ka.headerFrame)) through its CID: bytes [0, 12)", holds(c, ka, 0, 12))
                v.need("its completion (frame \(resp.headerFrame)) CQE: bytes [0, 24)", holds(c, resp, 0, 24))
            }

        case "command-timeout", "commands-lost":
            for e in finding.evidence where e.what.hasSuffix(" sent") {
                guard let cmd = c.pdus[0].first(where: { $0.isCommand && $0.headerFrame == e.ref.frame }) else {
                    v.need("the command at frame \(e.ref.frame) in the reference walk", false)
                    continue
                }
                v.need("\(e.what) (frame \(cmd.headerFrame)) through its CID: bytes [0, 12)", holds(c, cmd, 0, 12))
                let after = c.pdus[1].filter { ($0.pdu.type == 5 || $0.pdu.type == 7) && $0.timeNs >= cmd.timeNs }
                v.need("every controller→host CapsuleResp and C2HData after it (\(after.count)) through the CID it answers",
                       after.allSatisfy { holds(c, $0, 0, $0.pdu.type == 5 ? 24 : 10) })
            }

        case "outage":
            // The association: its admin queue known as one (its Connect through QID, or a Keep
            // Alive, which only an admin queue carries).
            let keepAlive = c.pdus[0].first { $0.isCommand && $0.opcode == 0x18 && holds(c, $0, 0, 9) }
            v.need("what shows \(c.key) was an admin queue: its Connect through QID, or a Keep Alive",
                   (c.connect.map { holds(c, $0, 0, 52) } ?? false) || keepAlive != nil)
            // The teardown, and that it was not an orderly disconnect: for a host close, the admin
            // queue's last commands before it through FCTYPE (a shutdown is a Property Set).
            if c.tornDownByTarget {
                teardownNeed(c, into: &v)
            } else if let h = c.hostClose {
                let closeNs = full.time(frame: h)
                v.need("the host's FIN/RST packet (frame \(h)) on \(c.key)", holdings.has(frame: h))
                for cmd in c.pdus[0] where cmd.isCommand && cmd.timeNs <= closeNs && cmd.timeNs >= closeNs - 2_000_000_000 {
                    v.need("host command at frame \(cmd.headerFrame) through FCTYPE: bytes [0, 13)", holds(c, cmd, 0, 13))
                }
            }
            // The next association's Connect, when the finding names one.
            for e in finding.evidence where e.what.hasPrefix("Connect response of the next") {
                guard let id = e.connection, let m = report.model.connection(id), let n = full.connection(key: connectionKey(m)) else {
                    v.need("the next association in the reference walk", false)
                    continue
                }
                connectNeeds(n, upTo: 52, field: "FCTYPE and QID", response: true, into: &v)
            }

        case "tcp-loss", "target-teardown", "connect-refused":
            // The packets cited: retransmitted segments, zero windows, the teardown and its
            // timer restart, SYNs and RSTs (TCP headers, which every snap length keeps).
            for e in finding.evidence { v.need("\(e.what) (frame \(e.ref.frame))", holdings.has(frame: e.ref.frame)) }
            if finding.rule == "target-teardown" { teardownNeed(c, into: &v) }
            v.windowed = finding.rule == "tcp-loss"

        default:
            v.undefined = true
        }
        return v
    }
}

/// "host → target" of a connection of a report's model: how findings are matched across a full
/// capture and its variants (connection ids and frame numbers differ between them).
func connectionKey(_ c: ConnectionModel) -> String { "\(c.host) → \(c.target)" }
