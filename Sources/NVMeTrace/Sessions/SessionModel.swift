/// Which side of an NVMe/TCP connection did something.
public enum Side: String, Sendable, Codable {
    case host, target
}

/// How a connection ended.
public struct ConnectionEnd: Sendable, Equatable {
    public enum How: String, Sendable { case fin = "FIN", rst = "RST", termReq = "TermReq", captureEnd = "capture-end" }
    /// Nil when the capture ended with the connection open.
    public var by: Side?
    public var how: How
    public var ref: FrameRef
}

/// Why a discovery connection counts as persistent (it outlived the discovery transaction).
public enum PersistenceReason: String, Sendable, CaseIterable {
    /// Still open well after its last Get Log Page completed (or after connecting, if none).
    case outlivedDiscovery = "outlived-discovery"
    /// An Asynchronous Event Request stayed outstanding: the host waits for log changes.
    case outstandingAER = "outstanding-aer"
    /// A reconnect after the target tore the previous association of its chain down.
    case reconnect
    /// The host sends Keep Alive on it.
    case sendsKeepAlives = "sends-keep-alives"
}

/// A command that restarts (or would restart) the target's keep-alive timer.
public struct TimerEvent: Sendable, Equatable {
    public var ref: FrameRef
    public var connection: Int
    /// The command that restarted the timer; nil for the Connect that started it.
    public var command: CommandKind?

    /// "Connect", "Keep Alive" or the command's name.
    public var what: String { command?.name ?? "Connect" }
}

/// The largest silence between two timer-restarting commands.
public struct Gap: Sendable, Equatable {
    public var from: TimerEvent
    public var to: TimerEvent
    public var seconds: Double { Double(to.ref.timeNs &- from.ref.timeNs) / 1e9 }
}

/// A series of timer-restarting commands, kept as running figures (last one, largest gap) so
/// memory does not grow with the capture.
///
/// Host bytes lost from the capture between two restarts (`hostBytesLost`) may have held a
/// restart: such a gap is kept apart (`maxGapAcrossLoss`), so that `maxGap` is only ever a
/// silence the capture shows.
public struct TimerSeries: Sendable, Equatable {
    public private(set) var count = 0
    public private(set) var first: TimerEvent?
    public private(set) var last: TimerEvent?
    /// The largest gap with no host bytes lost from the capture in it.
    public private(set) var maxGap: Gap?
    /// The largest gap across host bytes lost from the capture: a restart may have been among them.
    public private(set) var maxGapAcrossLoss: Gap?
    /// Host bytes were lost from the capture after `last`.
    public private(set) var lossSinceLast = false
    /// `maxGap`'s length: compared as an integer, so no `Gap` is built for a gap that is not the
    /// largest (this runs for every command of a controller).
    private var maxGapNs: Int64 = .min
    private var maxGapAcrossLossNs: Int64 = .min

    /// A restart inside gap `g` splits it; the larger half stands in for it.
    private static func split(_ g: inout Gap?, _ ns: inout Int64, at e: TimerEvent) {
        guard let gap = g, e.ref.timeNs > gap.from.ref.timeNs, e.ref.timeNs < gap.to.ref.timeNs else { return }
        let before = e.ref.timeNs &- gap.from.ref.timeNs, after = gap.to.ref.timeNs &- e.ref.timeNs
        g = before >= after ? Gap(from: gap.from, to: e) : Gap(from: e, to: gap.to)
        ns = max(before, after)
    }

    /// Bytes the host sent were lost from the capture (not inside a PDU whose header was seen).
    mutating func hostBytesLost() { lossSinceLast = true }

    mutating func add(_ e: TimerEvent) {
        if let last, e.ref.timeNs < last.ref.timeNs {
            // Older than the last one: bytes buffered behind a hole the capture lost, delivered
            // when the hole was given up with the frames that brought them. It splits one gap;
            // only the largest is kept, so when it falls inside that one the larger half stands
            // in for it (a gap never comes out larger than the capture shows).
            count += 1
            if first.map({ e.ref.timeNs < $0.ref.timeNs }) ?? false { first = e }
            Self.split(&maxGap, &maxGapNs, at: e)
            Self.split(&maxGapAcrossLoss, &maxGapAcrossLossNs, at: e)
            return
        }
        if let lastNs = last?.ref.timeNs {
            let ns = e.ref.timeNs &- lastNs
            if lossSinceLast {
                if ns > maxGapAcrossLossNs, let last {
                    maxGapAcrossLoss = Gap(from: last, to: e)
                    maxGapAcrossLossNs = ns
                }
            } else if ns > maxGapNs, let last {
                maxGap = Gap(from: last, to: e)
                maxGapNs = ns
            }
        }
        lossSinceLast = false
        if first == nil { first = e }
        last = e
        count += 1
    }
}

/// What a fact the reports state rests on: read from the capture, or inferred from other
/// evidence. Field captures are headers-only and start mid-stream: the queue, the controller type
/// and the controller an I/O queue belongs to often have to be inferred, and the reports say so
/// each time, with the evidence.
public struct Basis: Sendable, Equatable {
    /// False when the capture shows the fact itself (the Connect's QID, the subsystem NQN).
    public var inferred: Bool
    /// The evidence, in words: "Connect QID 0 (frame 11)", "target port 8009, the well-known
    /// discovery port".
    public var evidence: String

    public static func observed(_ evidence: String) -> Basis { Basis(inferred: false, evidence: evidence) }
    public static func inferred(_ evidence: String) -> Basis { Basis(inferred: true, evidence: evidence) }
}

/// What the capture missed of one connection: how good the evidence about it is.
public struct ConnectionCapture: Sendable, Equatable {
    /// Stream bytes captured, both directions.
    public var capturedBytes: UInt64 = 0
    /// Bytes the snap length cut (announced by IP, not stored), both directions.
    public var notCapturedBytes: UInt64 = 0
    /// Bytes never seen: lost before the capture point, or given up.
    public var lostBytes: UInt64 = 0
    /// Bytes that could not be framed as PDUs (skipped while looking for a PDU boundary).
    public var unframedBytes: UInt64 = 0
    /// PDUs whose header the capture cut (their fields past the cut are unknown).
    public var partialHeaders = 0
    /// Header digests that could not be checked because the header or its digest was cut.
    public var unverifiableHeaderDigests = 0

    public init() {}
}

/// The Keep Alive cadence of a connection: the shortest interval between two Keep Alives. A
/// Linux host sends one every KATO/2, or KATO/4 when the controller supports Traffic Based Keep
/// Alive (PROTOCOL.md, "Keep-alive behaviour"), so a KATO the capture did not show can be bounded
/// from it.
public struct KeepAliveCadence: Sendable, Equatable {
    public private(set) var shortestGapNs: Int64?
    private var lastNs: Int64?

    mutating func add(_ ref: FrameRef) {
        if let lastNs {
            let gap = ref.timeNs &- lastNs
            if gap > 0, shortestGapNs.map({ gap < $0 }) ?? true { shortestGapNs = gap }
        }
        lastNs = ref.timeNs
    }
}

/// A Keep Alive command and, once seen, its completion.
public struct KeepAliveExchange: Sendable, Equatable {
    public var cid: UInt16
    public var command: FrameRef
    public var completion: FrameRef?
    public var status: NVMeStatus?
}

/// One TCP connection carrying NVMe/TCP: one queue of one controller.
/// An asynchronous event a controller reported: an Asynchronous Event Request completed with a
/// success status, its Dword 0 giving the event type, information and the log page that tells
/// more (NVMe Base 2.1 §5.1.2); and what the host read next.
public struct AsyncEventNotice: Sendable {
    public var event: AsyncEvent
    /// The completion that reported it.
    public var ref: FrameRef
    /// The request it completed (outstanding until then, by design).
    public var request: FrameRef
    /// The first Get Log Page the host sent on this queue after the event: the log page and its
    /// frame (nil when none followed before the connection ended).
    public var logRead: (lid: UInt8, ref: FrameRef)?
}

public struct ConnectionModel: Sendable {
    public var id: Int
    public var host: Endpoint
    public var target: Endpoint
    public var firstRef: FrameRef
    public var lastRef: FrameRef
    public var synSeen: Bool
    public var icReq: InitializeConnection?
    public var icResp: InitializeConnection?
    /// An ICReq was framed (even one the snap length cut): the connection's start is in the
    /// capture. False for a connection picked up mid-stream.
    public var sawICReq = false
    public var connect: ConnectCommand? {
        didSet { qid = connect?.qid }
    }
    /// The Connect's data (host and subsystem NQNs, host id), once seen; its fields are nil where
    /// the capture cut it.
    public var connectData: ConnectData? {
        didSet {
            subnqn = connectData?.subnqn
            hostnqn = connectData?.hostnqn
        }
    }
    public var connectRef: FrameRef?
    /// Nil until the Connect's response is seen, and when its status was not captured.
    public var connectStatus: NVMeStatus?
    public var connectResponseRef: FrameRef?
    /// CNTLID in the Connect response (Linux nvmet fills it for I/O queues too).
    public var connectResponseCntlid: UInt16?
    /// Controller id granted by the Connect response (admin queue) or named in the Connect data.
    public var cntlid: UInt16?
    /// Admin or I/O queue: from the Connect's QID, or inferred from the commands it carries when
    /// the Connect (or its QID) is not in the capture; nil when nothing tells.
    public var queueKind: QueueKind?
    /// What `queueKind` rests on when it was inferred (nil when the Connect's QID tells it).
    public var inferredQueueBasis: Basis?
    /// What `queueKind` rests on: the Connect's QID, or the inference. Made when asked, not
    /// stored: a string per connection costs memory and a retain whenever a model is copied.
    public var queueBasis: Basis? {
        if let inferredQueueBasis { return inferredQueueBasis }
        guard let qid, let r = connectRef else { return nil }
        return .observed("Connect QID \(qid) (frame \(r.frame))")
    }
    /// For an I/O queue: how it was joined to its controller.
    public var controllerBasis: Basis?
    /// Whether the controller behind this admin queue is a discovery controller, and why; set
    /// when the model is built (`SessionTracker.model`). Nil when nothing tells.
    public var discovery: Bool?
    public var discoveryBasis: Basis?
    /// An admin command only I/O controllers take (Set Features Number of Queues, Identify of
    /// namespaces): evidence that this admin queue is not a discovery controller's.
    public var ioControllerCommand: (name: String, ref: FrameRef)?
    public var capture = ConnectionCapture()
    /// What TCP showed of it: handshake, retransmissions, zero windows, resets.
    public var tcp = ConnectionTCP.none
    /// The host's last Property Set of CC: a shutdown or reset it asked for before closing.
    public var hostShutdown: HostShutdown?
    public var keepAliveCadence = KeepAliveCadence()
    // Copies of the Connect's fields (stored, not computed: swiftc 6.3.1 crashes in release
    // builds on optional chains through computed properties of this struct).
    public private(set) var qid: UInt16?
    public private(set) var subnqn: String?
    public private(set) var hostnqn: String?
    /// Index into `SessionModel.controllers`.
    public var controller: Int?
    public var identify: IdentifyController?
    public var readDiscoveryLog = false
    public var lastDiscoveryLogRef: FrameRef?
    public var commands = 0
    /// Keep Alive commands with their completions: the connection's keep-alive timeline (a count
    /// and a bounded sample).
    public var keepAlives = KeepAliveLog()
    public var failedKeepAlives = FirstEvents<(ref: FrameRef, status: NVMeStatus)>()
    public var keepAliveSeries = TimerSeries()
    public var lastHostPDU: FrameRef?
    public var lastHostCommand: FrameRef?
    public var lastHostCommandKind: CommandKind?
    /// AERs submitted and not completed, by CID.
    var outstandingAERs: [UInt16: FrameRef] = [:]
    /// Commands (not Asynchronous Event Requests) still waiting for their completion when the
    /// connection ended (or the capture did): how many, and the oldest few, oldest first.
    public var waitingCommands = 0
    public var oldestWaitingCommands: [OutstandingCommand] = []
    /// The last time controller→host bytes went missing from the capture: a command sent before
    /// it may have been answered unseen.
    public var completionsMissedAt: FrameRef?
    /// Commands never timed for want of their completion: waiting at the end, or replaced by a
    /// later command with their CID (not Asynchronous Event Requests).
    public var untimedCommands = 0
    /// Asynchronous events the controller reported on this queue, in capture order.
    public var asyncEvents = FirstEvents<AsyncEventNotice>()
    /// Position in `asyncEvents.kept` of the first event the host has not read a log page after.
    var eventsAwaitingLogRead: Int?
    /// The longest an AER stayed outstanding (to the connection's end if never completed).
    public var longestAERSeconds: Double = 0
    /// FES nil when the snap length cut the TermReq's header before it.
    public var termReqs = FirstEvents<(ref: FrameRef, from: Side, fes: UInt16?)>()
    public var digestErrors = FirstEvents<(ref: FrameRef, type: PDUType, header: Bool)>()
    /// Header digest mismatches among `digestErrors` (all of them, kept or not).
    public var headerDigestErrors = 0
    public var end: ConnectionEnd?
    /// The pipeline is done with it (its TCP connection ended and was flushed): nothing more will
    /// come for it, so it may be retired (`SessionTracker.retire`).
    var leftPipeline = false
    public var persistence: Set<PersistenceReason> = []

    /// An admin queue (from the Connect, or inferred: see `queueBasis`).
    public var isAdmin: Bool { queueKind == .admin }
    /// Picked up mid-stream: the capture holds neither its handshake's ICReq nor its Connect.
    public var midStream: Bool { !sawICReq }

    /// The admin queue of a discovery controller (see `discoveryBasis`).
    public var isDiscovery: Bool { discovery == true }

    public var isPersistent: Bool { !persistence.isEmpty }

    /// Seconds from `ref` to the connection's end (or the given capture end).
    func seconds(from ref: FrameRef, to end: FrameRef) -> Double { Double(end.timeNs &- ref.timeNs) / 1e9 }
}

/// One association: an admin queue and the I/O queues connected to the same controller.
public struct ControllerModel: Sendable {
    public var id: Int
    public var adminConnection: Int
    public var ioConnections: [Int] = []
    public var cntlid: UInt16?
    /// Nil when the Connect data (or that part of it) was not captured.
    public var hostnqn: String?
    public var subnqn: String?
    public var host: IPAddress
    public var target: Endpoint
    /// KATO from the admin Connect (ms); nil when the Connect (or its KATO field) is not in the
    /// capture.
    public var kato: UInt32?
    /// The admin Connect is in the capture (false: the association began before it).
    public var connectSeen: Bool
    /// A discovery controller? Nil when nothing tells (see `discoveryBasis`).
    public var discovery: Bool?
    public var discoveryBasis: Basis?
    /// Traffic Based Keep Alive (Identify CTRATT bit 6); nil when Identify was not captured.
    public var tbkas: Bool?
    /// Keep Alive commands only.
    public var keepAlives = TimerSeries()
    /// Every command on every queue of the controller (what restarts a TBKAS timer).
    public var anyCommand = TimerSeries()
    public var chain: Int?
    /// How the controller was placed in its chain, when not by its NQNs.
    public var chainBasis: Basis?
    /// I/O queues joined when the model was built (their controller's admin queue was inferred
    /// only after they connected): their commands are not in `anyCommand`.
    public var lateIOConnections: [Int] = []

    /// The series the target's timer follows: any command under TBKAS, else Keep Alives. When
    /// TBKAS is unknown, any command: the later restart, so silences come out shorter and a
    /// finding never rests on the guess.
    public var timerSeries: TimerSeries { tbkas == false ? keepAlives : anyCommand }
}

/// Successive associations of one host to one subsystem at one target address: by NQNs when the
/// Connect data shows them, otherwise inferred (same host address and target address and port,
/// each association begun after the previous one ended).
public struct ReconnectChain: Sendable {
    public var id: Int
    public var hostnqn: String?
    public var subnqn: String?
    public var host: IPAddress
    public var target: Endpoint
    public var controllers: [Int] = []
}

/// Everything the rules read.
public struct SessionModel: Sendable {
    public static let discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

    public var files: [String]
    public var packets: Int
    public var captureStart: FrameRef?
    public var captureEnd: FrameRef
    public var connections: [ConnectionModel] {
        didSet {
            indexByID = Self.index(connections)
            withoutController = Self.withoutController(connections)
            idsWithoutController = connections.indices.filter { connections[$0].controller == nil }.map { connections[$0].id }
        }
    }
    public var controllers: [ControllerModel]
    public var chains: [ReconnectChain]
    /// Connection attempts to NVMe/TCP target ports that were refused or never answered, per
    /// target port (in target order), and attempts not counted for want of room (`maxTargets`).
    public var failedConnects: [FailedConnects] = []
    public var failedConnectsUntracked = 0
    /// Command latency distributions per controller, queue kind and command (see `LatencyGroup`).
    public var latency: [LatencyGroup] = []
    /// Position in `connections` of each connection id (rules look connections up by id often).
    private var indexByID: [Int: Int]
    /// Connections that are not admin queues and have no controller, by host address and target:
    /// a controller's keep-alive judgement asks for those of its own, once per rule.
    private var withoutController: [Path: [Int]]
    /// Every connection without a controller (ids, in order): what the rules list as not judged
    /// for want of one. Kept so that they need not walk (and copy) every connection.
    public private(set) var idsWithoutController: [Int] = []

    struct Path: Hashable {
        var host: IPAddress
        var target: Endpoint
    }

    public init(files: [String], packets: Int, captureStart: FrameRef?, captureEnd: FrameRef,
                connections: [ConnectionModel], controllers: [ControllerModel], chains: [ReconnectChain]) {
        self.files = files
        self.packets = packets
        self.captureStart = captureStart
        self.captureEnd = captureEnd
        self.connections = connections
        self.controllers = controllers
        self.chains = chains
        indexByID = Self.index(connections)
        withoutController = Self.withoutController(connections)
        idsWithoutController = connections.indices.filter { connections[$0].controller == nil }.map { connections[$0].id }
    }

    static func withoutController(_ connections: [ConnectionModel]) -> [Path: [Int]] {
        var out: [Path: [Int]] = [:]
        for c in connections where c.controller == nil && c.queueKind != .admin {
            out[Path(host: c.host.address, target: c.target), default: []].append(c.id)
        }
        return out
    }

    /// Connections of host address `host` to `target` that are not admin queues and have no
    /// controller (ids, in order).
    public func withoutController(host: IPAddress, target: Endpoint) -> [Int] {
        // No lookup (a hash of both endpoints) when there are none at all: the usual case.
        withoutController.isEmpty ? [] : withoutController[Path(host: host, target: target)] ?? []
    }

    static func index(_ connections: [ConnectionModel]) -> [Int: Int] {
        var out: [Int: Int] = [:]
        out.reserveCapacity(connections.count)
        for (i, c) in connections.enumerated() { out[c.id] = i }
        return out
    }

    public func connection(_ id: Int) -> ConnectionModel? {
        indexByID[id].map { connections[$0] }
    }

    /// Position of connection `id` in `connections`: for reading a field or two without copying
    /// the whole model (a copy retains every reference it holds).
    public func position(of id: Int) -> Int? { indexByID[id] }
}
