import Foundation

/// `--format json`: one document, schema `nvmetrace.report/1`. Field names are stable; README
/// documents them.
public enum JSONReport {
    public static let schema = "nvmetrace.report/1"

    struct Doc: Encodable {
        var schema: String
        var version: String
        var capture: Capture
        var connections: [Connection]
        var controllers: [Controller]
        var chains: [Chain]
        var latency: [LatencyJSON]
        var findings: [FindingJSON]
        var unjudged: [UnjudgedJSON]
        var warnings: Warnings
        var evidence: EvidenceJSONInfo?
    }
    /// A command latency distribution (seconds), its phases, slowest commands and latency over time.
    struct LatencyJSON: Encodable {
        struct Figures: Encodable {
            var count: UInt64
            var p50: Double
            var p90: Double
            var p99: Double
            var p999: Double
            var max: Double
            var approximate: Bool
            init(_ d: LatencyFigures) {
                count = d.count
                p50 = Double(d.p50Ns) / 1e9
                p90 = Double(d.p90Ns) / 1e9
                p99 = Double(d.p99Ns) / 1e9
                p999 = Double(d.p999Ns) / 1e9
                max = Double(d.maxNs) / 1e9
                approximate = d.approximate
            }
        }
        struct Phase: Encodable {
            var phase: String
            var figures: Figures
            enum CodingKeys: String, CodingKey { case phase }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(phase, forKey: .phase)
                try figures.encode(to: encoder)
            }
        }
        /// One of the slowest commands.
        struct Command: Encodable {
            var connection: Int
            var cid: Int
            var file: String
            var issuedFrame: Int
            var completedFrame: Int
            var time: Double
            var seconds: Double
            var phases: [String: Double]
            init(_ s: SlowCommand, _ r: Report) {
                connection = s.connection
                cid = Int(s.cid)
                file = r.fileName(s.issued)
                issuedFrame = s.issued.frame
                completedFrame = s.completed.frame
                time = r.relative(s.issued)
                seconds = Double(s.latencyNs) / 1e9
                var p: [String: Double] = [:]
                for phase in LatencyPhase.allCases where s.timing.phase(phase) >= 0 {
                    p[phase.rawValue] = Double(s.timing.phase(phase)) / 1e9
                }
                self.phases = p
            }
        }
        struct Timeline: Encodable {
            struct Point: Encodable {
                /// When the slice's slowest command was sent, seconds since the capture's first packet.
                var time: Double
                var seconds: Double
            }
            var sliceSeconds: Double
            var points: [Point]
        }
        var controller: Int?
        var connections: [Int]
        var queue: String?
        var command: String
        var figures: Figures
        var phases: [Phase]
        var slowest: [Command]
        var timeline: Timeline

        enum CodingKeys: String, CodingKey { case controller, connections, queue, command, phases, slowest, timeline }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(controller, forKey: .controller)  // null when no controller is known
            try c.encode(connections, forKey: .connections)
            try c.encode(queue, forKey: .queue)  // null when the capture does not tell
            try c.encode(command, forKey: .command)
            try figures.encode(to: encoder)
            try c.encode(phases, forKey: .phases)
            try c.encode(slowest, forKey: .slowest)
            try c.encode(timeline, forKey: .timeline)
        }

        init(_ g: LatencyGroup, _ r: Report) {
            controller = g.controller
            connections = g.connections
            queue = g.queue?.rawValue
            command = g.command
            figures = Figures(g.total)
            phases = g.phases.map { Phase(phase: $0.phase.rawValue, figures: Figures($0.figures)) }
            slowest = g.slowest.map { Command($0, r) }
            let start = r.model.captureStart?.timeNs ?? 0
            timeline = Timeline(sliceSeconds: Double(g.sliceNs) / 1e9,
                                points: g.timeline.map { .init(time: Double($0.issuedNs &- start) / 1e9, seconds: Double($0.latencyNs) / 1e9) })
        }
    }
    struct EvidenceJSONInfo: Encodable {
        var file: String
        var packets: Int
        var connections: [Int]
        var snaplen: Int?
    }
    struct Capture: Encodable {
        var files: [File]
        var frames: Int
        var span: Span?
        var quality: Quality
    }
    /// What kind of capture it was (`CaptureQuality`).
    struct Quality: Encodable {
        var snapLengths: [Int]
        var packetsCut: Int
        var cutTo: Int
        var capturedBytes: UInt64
        var notCapturedBytes: UInt64
        var lostBytes: UInt64
        var unframedBytes: UInt64
        var pduHeadersCut: Int
        var midStreamConnections: [Int]
        var whole: Bool
        var summary: String
    }
    /// What a fact or a verdict rests on (`Basis`).
    struct BasisJSON: Encodable {
        var inferred: Bool
        var evidence: String
        init(_ b: Basis) { inferred = b.inferred; evidence = b.evidence }
    }
    struct ConnectionCaptureJSON: Encodable {
        var capturedBytes: UInt64
        var notCapturedBytes: UInt64
        var lostBytes: UInt64
        var unframedBytes: UInt64
        var pduHeadersCut: Int
    }
    /// A connection's TCP health (`ConnectionTCP`), per side where a side did it.
    struct ConnectionTCPJSON: Encodable {
        struct Sides<T: Encodable>: Encodable { var host: T; var target: T }
        struct ZeroWindow: Encodable {
            var count: Int
            var seconds: Double
            var longest: Double
            var longestFrame: Int?

            enum CodingKeys: String, CodingKey { case count, seconds, longest, longestFrame }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(count, forKey: .count)
                try c.encode(seconds, forKey: .seconds)
                try c.encode(longest, forKey: .longest)
                try c.encode(longestFrame, forKey: .longestFrame)  // null when none
            }
        }
        var packets: Int
        var handshakeRTT: Double?
        var retransmittedSegments: Sides<Int>
        var outOfOrderSegments: Sides<Int>
        var missingBytes: UInt64
        var notCapturedBytes: UInt64
        var zeroWindows: Sides<ZeroWindow>
        var rsts: Sides<Int>

        enum CodingKeys: String, CodingKey {
            case packets, handshakeRTT, retransmittedSegments, outOfOrderSegments, missingBytes, notCapturedBytes, zeroWindows, rsts
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(packets, forKey: .packets)
            try c.encode(handshakeRTT, forKey: .handshakeRTT)  // null without the handshake
            try c.encode(retransmittedSegments, forKey: .retransmittedSegments)
            try c.encode(outOfOrderSegments, forKey: .outOfOrderSegments)
            try c.encode(missingBytes, forKey: .missingBytes)
            try c.encode(notCapturedBytes, forKey: .notCapturedBytes)
            try c.encode(zeroWindows, forKey: .zeroWindows)
            try c.encode(rsts, forKey: .rsts)
        }

        init(_ t: ConnectionTCP) {
            packets = t.packets
            handshakeRTT = t.handshakeRTTNs.map { Double($0) / 1e9 }
            retransmittedSegments = Sides(host: t.hostStream.retransmittedSegments, target: t.targetStream.retransmittedSegments)
            outOfOrderSegments = Sides(host: t.hostStream.outOfOrderSegments, target: t.targetStream.outOfOrderSegments)
            missingBytes = t.missingBytes
            notCapturedBytes = t.notCapturedBytes
            func zw(_ s: TCPHealth.Side) -> ZeroWindow {
                ZeroWindow(count: s.zeroWindows, seconds: Double(s.zeroWindowNs) / 1e9, longest: Double(s.longestZeroWindowNs) / 1e9,
                           longestFrame: s.longestZeroWindowStart?.frame)
            }
            zeroWindows = Sides(host: zw(t.host), target: zw(t.target))
            rsts = Sides(host: t.host.rsts, target: t.target.rsts)
        }
    }
    struct File: Encodable {
        var name: String
        var bytes: Int64?
        var sha256: String?
        var frames: Int
    }
    struct Span: Encodable {
        var start: String
        var end: String
        var seconds: Double
    }
    /// Keys whose value may be unknown are always present, as `null` when unknown.
    struct Connection: Encodable {
        var id: Int
        var src: String
        var dst: String
        var communityId: String
        var qid: Int?
        var kind: String
        var queue: String?
        var queueBasis: BasisJSON?
        var midStream: Bool
        var discovery: Bool?
        var discoveryBasis: BasisJSON?
        var controllerBasis: BasisJSON?
        var captured: ConnectionCaptureJSON
        var tcp: ConnectionTCPJSON
        var persistent: Bool
        var persistenceReasons: [String]
        var kato: UInt32?
        var controller: Int?
        var cntlid: Int?
        var subnqn: String?
        var hostnqn: String?
        var keepAlives: Int
        var maxKeepAliveGap: Double?
        var untimedCommands: Int
        var closedBy: String?
        var closedHow: String
        var closeFrame: Int?
        var firstFrame: Int
        var lastFrame: Int
        var file: String
        var start: Double
        var end: Double
        var headerDigest: Bool?
        var dataDigest: Bool?

        enum CodingKeys: String, CodingKey {
            case id, src, dst, communityId, qid, kind, queue, queueBasis, midStream, discovery, discoveryBasis, controllerBasis, captured, tcp,
                 persistent, persistenceReasons, kato, controller, cntlid, subnqn,
                 hostnqn, keepAlives, maxKeepAliveGap, untimedCommands, closedBy, closedHow, closeFrame, firstFrame, lastFrame, file,
                 start, end, headerDigest, dataDigest
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(src, forKey: .src)
            try c.encode(dst, forKey: .dst)
            try c.encode(communityId, forKey: .communityId)
            try c.encode(qid, forKey: .qid)
            try c.encode(kind, forKey: .kind)
            try c.encode(queue, forKey: .queue)
            try c.encode(queueBasis, forKey: .queueBasis)
            try c.encode(midStream, forKey: .midStream)
            try c.encode(discovery, forKey: .discovery)
            try c.encode(discoveryBasis, forKey: .discoveryBasis)
            try c.encode(controllerBasis, forKey: .controllerBasis)
            try c.encode(captured, forKey: .captured)
            try c.encode(tcp, forKey: .tcp)
            try c.encode(persistent, forKey: .persistent)
            try c.encode(persistenceReasons, forKey: .persistenceReasons)
            try c.encode(kato, forKey: .kato)
            try c.encode(controller, forKey: .controller)
            try c.encode(cntlid, forKey: .cntlid)
            try c.encode(subnqn, forKey: .subnqn)
            try c.encode(hostnqn, forKey: .hostnqn)
            try c.encode(keepAlives, forKey: .keepAlives)
            try c.encode(maxKeepAliveGap, forKey: .maxKeepAliveGap)
            try c.encode(untimedCommands, forKey: .untimedCommands)
            try c.encode(closedBy, forKey: .closedBy)
            try c.encode(closedHow, forKey: .closedHow)
            try c.encode(closeFrame, forKey: .closeFrame)
            try c.encode(firstFrame, forKey: .firstFrame)
            try c.encode(lastFrame, forKey: .lastFrame)
            try c.encode(file, forKey: .file)
            try c.encode(start, forKey: .start)
            try c.encode(end, forKey: .end)
            try c.encode(headerDigest, forKey: .headerDigest)
            try c.encode(dataDigest, forKey: .dataDigest)
        }
    }
    /// Keys whose value may be unknown are always present, as `null` when unknown.
    struct Controller: Encodable {
        var id: Int
        var adminConnection: Int
        var ioConnections: [Int]
        var cntlid: Int?
        var discovery: Bool?
        var discoveryBasis: BasisJSON?
        var connectSeen: Bool
        var kato: UInt32?
        var tbkas: Bool?
        var chain: Int?
        var chainBasis: BasisJSON?
        var maxTimerGap: Double?

        enum CodingKeys: String, CodingKey {
            case id, adminConnection, ioConnections, cntlid, discovery, discoveryBasis, connectSeen, kato, tbkas, chain,
                 chainBasis, maxTimerGap
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(adminConnection, forKey: .adminConnection)
            try c.encode(ioConnections, forKey: .ioConnections)
            try c.encode(cntlid, forKey: .cntlid)
            try c.encode(discovery, forKey: .discovery)
            try c.encode(discoveryBasis, forKey: .discoveryBasis)
            try c.encode(connectSeen, forKey: .connectSeen)
            try c.encode(kato, forKey: .kato)
            try c.encode(tbkas, forKey: .tbkas)
            try c.encode(chain, forKey: .chain)
            try c.encode(chainBasis, forKey: .chainBasis)
            try c.encode(maxTimerGap, forKey: .maxTimerGap)
        }
    }
    struct Chain: Encodable {
        var id: Int
        var hostnqn: String?
        var subnqn: String?
        var host: String
        var target: String
        var controllers: [Int]

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(hostnqn, forKey: .hostnqn)
            try c.encode(subnqn, forKey: .subnqn)
            try c.encode(host, forKey: .host)
            try c.encode(target, forKey: .target)
            try c.encode(controllers, forKey: .controllers)
        }
        enum CodingKeys: String, CodingKey { case id, hostnqn, subnqn, host, target, controllers }
    }
    struct FindingJSON: Encodable {
        var rule: String
        var severity: String
        var title: String
        var connection: Int?
        var connections: [Int]
        var file: String
        var frames: [Int]
        var time: Double
        var detail: String
        var evidence: [EvidenceJSON]
        var basis: [BasisJSON]
        var inferred: Bool
        var explanation: String
        var fix: String
    }
    struct EvidenceJSON: Encodable {
        var frame: Int
        var file: String
        var time: Double
        var connection: Int?
        var what: String
    }
    struct UnjudgedJSON: Encodable {
        var rule: String
        var connection: Int
        var reason: String
    }
    struct Warnings: Encodable {
        var count: Int
        /// By stable id (docs/reports.md); only ids that occurred.
        var counts: [String: Int]
        var first: [String]
        var readErrors: [String]
    }

    static func findingJSON(_ f: Finding, _ r: Report) -> FindingJSON {
        FindingJSON(rule: f.rule, severity: f.severity.rawValue, title: f.title, connection: f.connection,
                    connections: f.connections, file: r.fileName(f.ref), frames: f.frames.map(\.frame),
                    time: r.relative(f.ref), detail: f.detail,
                    evidence: f.evidence.map {
                        EvidenceJSON(frame: $0.ref.frame, file: r.fileName($0.ref), time: r.relative($0.ref),
                                     connection: $0.connection, what: $0.what)
                    },
                    basis: f.basis.map(BasisJSON.init), inferred: f.isInferred,
                    explanation: f.explanation, fix: f.fix)
    }

    /// One finding as a single JSON line: the daemon's `finding` event (`MonitorEvent.line`,
    /// schema `nvmetrace.event/1`), for live output.
    public static func findingLine(_ f: Finding, _ r: Report) -> String {
        MonitorEvent.finding(f, r).line()
    }

    public static func render(_ r: Report) -> String {
        let m = r.model
        let doc = Doc(
            schema: schema, version: r.version,
            capture: Capture(
                files: r.files.map { File(name: $0.name, bytes: $0.bytes, sha256: $0.sha256, frames: $0.frames) },
                frames: m.packets,
                span: m.captureStart.map { Span(start: Report.utc($0), end: Report.utc(m.captureEnd), seconds: r.spanSeconds) },
                quality: Quality(snapLengths: r.capture.snapLengths, packetsCut: r.capture.packetsCut, cutTo: r.capture.cutTo,
                                 capturedBytes: r.capture.capturedBytes, notCapturedBytes: r.capture.notCapturedBytes,
                                 lostBytes: r.capture.lostBytes, unframedBytes: r.capture.unframedBytes,
                                 pduHeadersCut: r.capture.partialHeaders, midStreamConnections: r.capture.midStream,
                                 whole: r.capture.isWhole, summary: r.capture.summary(connections: m.connections.count))),
            connections: m.connections.map { c in
                Connection(
                    id: c.id, src: c.host.description, dst: c.target.description, communityId: CommunityID.tcp(c.host, c.target),
                    qid: c.qid.map(Int.init), kind: r.kind(c),
                    queue: c.queueKind?.rawValue, queueBasis: c.queueBasis.map(BasisJSON.init), midStream: c.midStream,
                    discovery: c.discovery, discoveryBasis: c.discoveryBasis.map(BasisJSON.init),
                    controllerBasis: c.controllerBasis.map(BasisJSON.init),
                    captured: ConnectionCaptureJSON(capturedBytes: c.capture.capturedBytes, notCapturedBytes: c.capture.notCapturedBytes,
                                                    lostBytes: c.capture.lostBytes, unframedBytes: c.capture.unframedBytes,
                                                    pduHeadersCut: c.capture.partialHeaders),
                    tcp: ConnectionTCPJSON(c.tcp),
                    persistent: c.isPersistent,
                    persistenceReasons: PersistenceReason.allCases.filter { c.persistence.contains($0) }.map(\.rawValue),
                    kato: r.kato(c), controller: c.controller, cntlid: c.cntlid.map(Int.init), subnqn: c.subnqn, hostnqn: c.hostnqn,
                    keepAlives: c.keepAlives.count, maxKeepAliveGap: c.keepAliveSeries.maxGap?.seconds,
                    untimedCommands: c.untimedCommands,
                    closedBy: c.end?.by?.rawValue, closedHow: c.end?.how.rawValue ?? "capture-end",
                    closeFrame: c.end?.by != nil ? c.end?.ref.frame : nil,
                    firstFrame: c.firstRef.frame, lastFrame: c.lastRef.frame, file: r.fileName(c.firstRef),
                    start: r.relative(c.firstRef), end: r.relative(c.lastRef),
                    headerDigest: c.icResp?.headerDigest, dataDigest: c.icResp?.dataDigest)
            },
            controllers: m.controllers.map {
                Controller(id: $0.id, adminConnection: $0.adminConnection, ioConnections: $0.ioConnections,
                           cntlid: $0.cntlid.map(Int.init), discovery: $0.discovery, discoveryBasis: $0.discoveryBasis.map(BasisJSON.init),
                           connectSeen: $0.connectSeen, kato: $0.kato, tbkas: $0.tbkas,
                           chain: $0.chain, chainBasis: $0.chainBasis.map(BasisJSON.init), maxTimerGap: $0.timerSeries.maxGap?.seconds)
            },
            chains: m.chains.map {
                Chain(id: $0.id, hostnqn: $0.hostnqn, subnqn: $0.subnqn, host: $0.host.description, target: $0.target.description,
                      controllers: $0.controllers)
            },
            latency: m.latency.map { LatencyJSON($0, r) },
            findings: r.findings.map { findingJSON($0, r) },
            unjudged: r.unjudged.map { UnjudgedJSON(rule: $0.rule, connection: $0.connection, reason: $0.reason) },
            warnings: Warnings(count: r.decodeWarnings,
                               counts: Dictionary(uniqueKeysWithValues: r.decodeWarningCounts.map { ($0.key.rawValue, $0.value) }),
                               first: r.decodeWarningSamples, readErrors: r.readErrors),
            evidence: r.evidence.map { EvidenceJSONInfo(file: $0.file, packets: $0.packets, connections: $0.connections, snaplen: $0.snaplen) })
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes, .sortedKeys]
        guard let data = try? enc.encode(doc) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
