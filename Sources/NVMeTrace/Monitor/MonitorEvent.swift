import Foundation

/// One thing a daemon tells a log pipeline, as it happens (issue #17). Written one JSON object
/// per line (`line(_:)`), schema `nvmetrace.event/1` (schemas/nvmetrace.event-1.schema.json),
/// after Suricata's EVE: every line says what it is (`event`), when on the wire (`timestamp`,
/// UTC), and the flow it concerns by Community ID, so that it joins the records Zeek and
/// Suricata keep of the same connection.
public enum MonitorEvent {
    /// A rule's finding, the first time it is true; with the evidence pcap the daemon's ring cut
    /// for it (`--ring`).
    case finding(Finding, Report, evidence: EvidenceCut? = nil)
    /// A controller was created (its admin queue's Connect succeeded), or first seen mid-stream.
    case associationUp(AssociationEvent)
    /// An association's first queue closed (FIN, RST, Termination Request).
    case associationDown(AssociationEvent)
    /// A chain's association came back: the downtime since the previous one's teardown.
    case outage(OutageEvent)

    public var name: String {
        switch self {
        case .finding: "finding"
        case .associationUp: "association-up"
        case .associationDown: "association-down"
        case .outage: "outage"
        }
    }

    public static let schema = "nvmetrace.event/1"
}

/// An evidence pcap cut from the daemon's ring for a finding.
public struct EvidenceCut: Sendable {
    public var file: String
    public var packets: Int
    public init(file: String, packets: Int) {
        self.file = file
        self.packets = packets
    }
}

/// An association as an event tells it.
public struct AssociationEvent: Sendable {
    /// The admin queue (its flow is the event's).
    public var admin: Int
    public var host: Endpoint
    public var target: Endpoint
    public var cntlid: UInt16?
    /// "discovery", "io" or "unknown" (not yet told by the capture).
    public var kind: String
    public var hostnqn: String?
    public var subnqn: String?
    public var katoMs: UInt32?
    /// The admin Connect is in the capture (false: first seen mid-stream).
    public var connectSeen: Bool
    /// When it came up: the Connect's response, else the first frame seen.
    public var up: FrameRef
    public var ioQueues: Int
    /// Down: the first close of its queues.
    public var end: ConnectionEnd?
    /// Down: "target", "host-shutdown", "host-reset", "host-error-recovery" (AssociationEnd).
    public var cause: String?

    init(_ ctl: ControllerModel, _ admin: ConnectionModel, model: SessionModel) {
        self.admin = admin.id
        host = admin.host
        target = admin.target
        cntlid = ctl.cntlid
        kind = Monitor.kind(ctl)
        hostnqn = ctl.hostnqn
        subnqn = ctl.subnqn
        katoMs = ctl.kato
        connectSeen = ctl.connectSeen
        up = admin.connectResponseRef ?? admin.firstRef
        ioQueues = ctl.ioConnections.count
    }
}

/// The downtime between two associations of a chain: from the previous one's first close to the
/// new one's Connect response, with how it went down and the attempts that failed meanwhile.
public struct OutageEvent: Sendable {
    public var admin: Int
    public var host: Endpoint
    public var target: Endpoint
    public var hostnqn: String?
    public var subnqn: String?
    public var from: FrameRef
    public var to: FrameRef
    public var seconds: Double
    /// Who closed the previous association, how, and why (AssociationEnd's cause).
    public var by: Side?
    public var how: ConnectionEnd.How
    public var cause: String
    public var failedAttempts: Int

    /// The outage that `ctl`'s coming up ended, when it follows an association of its chain that
    /// went down without the host asking (an orderly disconnect is no outage).
    init?(after ctl: ControllerModel, model: SessionModel) {
        guard let chainID = ctl.chain, chainID < model.chains.count else { return nil }
        let chain = model.chains[chainID]
        guard let pos = chain.controllers.firstIndex(of: ctl.id), pos > 0,
              let admin = model.connection(ctl.adminConnection), let upRef = admin.connectResponseRef,
              let prev = AssociationEnd(model.controllers[chain.controllers[pos - 1]], model), prev.isOutage,
              upRef.timeNs >= prev.end.ref.timeNs else { return nil }
        self.admin = admin.id
        host = admin.host
        target = admin.target
        hostnqn = ctl.hostnqn
        subnqn = ctl.subnqn
        from = prev.end.ref
        to = upRef
        seconds = Double(upRef.timeNs &- prev.end.ref.timeNs) / 1e9
        by = prev.end.by
        how = prev.end.how
        cause = Monitor.cause(prev.cause)
        failedAttempts = OutageRule.failedAttempts(after: prev.end.ref, chain: chain, until: upRef, model: model).count
    }
}

extension MonitorEvent {
    /// The event as one line of JSON (keys sorted, no newline).
    public func line() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let data: Data?
        switch self {
        case .finding(let f, let r, let evidence):
            let c = f.connection.flatMap { r.model.connection($0) }
            data = try? enc.encode(Line(event: name, timestamp: Report.utc(f.ref), frame: f.ref.frame, flow: c.map { Flow($0.host, $0.target) },
                                        finding: JSONReport.findingJSON(f, r), evidence: evidence.map { EvidenceJSON(file: $0.file, packets: $0.packets) }))
        case .associationUp(let a), .associationDown(let a):
            let at = a.end?.ref ?? a.up
            data = try? enc.encode(Line(event: name, timestamp: Report.utc(at), frame: at.frame, flow: Flow(a.host, a.target),
                                        association: AssociationJSON(a)))
        case .outage(let o):
            data = try? enc.encode(Line(event: name, timestamp: Report.utc(o.to), frame: o.to.frame, flow: Flow(o.host, o.target),
                                        outage: OutageJSON(o)))
        }
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// EVE's flow fields, in this project's names: the host's and the target's endpoints.
    struct Flow {
        var communityId: String
        var src: String
        var dst: String
        init(_ host: Endpoint, _ target: Endpoint) {
            communityId = CommunityID.tcp(host, target)
            src = host.description
            dst = target.description
        }
    }

    struct Line: Encodable {
        var schema = MonitorEvent.schema
        var event: String
        var timestamp: String
        /// The frame in the live capture's numbering (as `-w` and the evidence ring write it).
        var frame: Int
        var flow: Flow?
        var finding: JSONReport.FindingJSON?
        var association: AssociationJSON?
        var outage: OutageJSON?
        var evidence: EvidenceJSON?

        enum CodingKeys: String, CodingKey { case schema, event, timestamp, frame, communityId, src, dst, finding, association, outage, evidence }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(schema, forKey: .schema)
            try c.encode(event, forKey: .event)
            try c.encode(timestamp, forKey: .timestamp)
            try c.encode(frame, forKey: .frame)
            // Always present (null when the event names no flow), as the report's.
            try c.encode(flow?.communityId, forKey: .communityId)
            try c.encodeIfPresent(flow?.src, forKey: .src)
            try c.encodeIfPresent(flow?.dst, forKey: .dst)
            try c.encodeIfPresent(finding, forKey: .finding)
            try c.encodeIfPresent(association, forKey: .association)
            try c.encodeIfPresent(outage, forKey: .outage)
            try c.encodeIfPresent(evidence, forKey: .evidence)
        }
    }

    struct EvidenceJSON: Encodable {
        var file: String
        var packets: Int
    }

    struct AssociationJSON: Encodable {
        var connection: Int
        var kind: String
        var cntlid: Int?
        var hostnqn: String?
        var subnqn: String?
        /// Milliseconds, as the Connect carries it (and the report writes it).
        var kato: Int?
        var connectSeen: Bool
        var ioQueues: Int
        var by: String?
        var how: String?
        var cause: String?
        init(_ a: AssociationEvent) {
            connection = a.admin
            kind = a.kind
            cntlid = a.cntlid.map(Int.init)
            hostnqn = a.hostnqn
            subnqn = a.subnqn
            kato = a.katoMs.map(Int.init)
            connectSeen = a.connectSeen
            ioQueues = a.ioQueues
            by = a.end?.by?.rawValue
            how = a.end?.how.rawValue
            cause = a.cause
        }
    }

    struct OutageJSON: Encodable {
        var connection: Int
        var hostnqn: String?
        var subnqn: String?
        var start: String
        var seconds: Double
        var by: String?
        var how: String
        var cause: String
        var failedAttempts: Int
        init(_ o: OutageEvent) {
            connection = o.admin
            hostnqn = o.hostnqn
            subnqn = o.subnqn
            start = Report.utc(o.from)
            seconds = (o.seconds * 1000).rounded() / 1000
            by = o.by?.rawValue
            how = o.how.rawValue
            cause = o.cause
            failedAttempts = o.failedAttempts
        }
    }
}
