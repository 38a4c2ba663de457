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
public struct TimerSeries: Sendable, Equatable {
    public private(set) var count = 0
    public private(set) var first: TimerEvent?
    public private(set) var last: TimerEvent?
    public private(set) var maxGap: Gap?
    /// `maxGap`'s length: compared as an integer, so no `Gap` is built for a gap that is not the
    /// largest (this runs for every command of a controller).
    private var maxGapNs: Int64 = .min

    mutating func add(_ e: TimerEvent) {
        if let lastNs = last?.ref.timeNs {
            let ns = e.ref.timeNs &- lastNs
            if ns > maxGapNs, let last {
                maxGap = Gap(from: last, to: e)
                maxGapNs = ns
            }
        }
        if first == nil { first = e }
        last = e
        count += 1
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
public struct ConnectionModel: Sendable {
    public var id: Int
    public var host: Endpoint
    public var target: Endpoint
    public var firstRef: FrameRef
    public var lastRef: FrameRef
    public var synSeen: Bool
    public var icReq: InitializeConnection?
    public var icResp: InitializeConnection?
    public var connect: ConnectCommand? {
        didSet { qid = connect?.qid }
    }
    /// The Connect's data (host and subsystem NQNs, host id), once seen.
    public var connectData: ConnectData? {
        didSet {
            subnqn = connectData?.subnqn
            hostnqn = connectData?.hostnqn
        }
    }
    public var connectRef: FrameRef?
    public var connectStatus: NVMeStatus?
    public var connectResponseRef: FrameRef?
    /// Controller id granted by the Connect response (admin queue) or named in the Connect data.
    public var cntlid: UInt16?
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
    /// AERs submitted and not completed, by CID.
    var outstandingAERs: [UInt16: FrameRef] = [:]
    /// The longest an AER stayed outstanding (to the connection's end if never completed).
    public var longestAERSeconds: Double = 0
    public var termReqs = FirstEvents<(ref: FrameRef, from: Side, fes: UInt16)>()
    public var digestErrors = FirstEvents<(ref: FrameRef, type: PDUType, header: Bool)>()
    /// Header digest mismatches among `digestErrors` (all of them, kept or not).
    public var headerDigestErrors = 0
    public var end: ConnectionEnd?
    public var persistence: Set<PersistenceReason> = []

    public var isAdmin: Bool { qid == 0 }

    /// A connection to a discovery controller: the well-known NQN, Identify's CNTRLTYPE, or a
    /// discovery log read.
    public var isDiscovery: Bool {
        subnqn == SessionModel.discoveryNQN || identify?.cntrltype == 2 || readDiscoveryLog
    }

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
    public var hostnqn: String?
    public var subnqn: String?
    public var target: Endpoint
    /// KATO from the admin Connect (ms); nil when the Connect is not in the capture.
    public var kato: UInt32?
    public var discovery: Bool
    public var tbkas: Bool
    /// Keep Alive commands only.
    public var keepAlives = TimerSeries()
    /// Every command on every queue of the controller (what restarts a TBKAS timer).
    public var anyCommand = TimerSeries()
    public var chain: Int?

    /// The series the target's timer follows: any command under TBKAS, else Keep Alives.
    public var timerSeries: TimerSeries { tbkas ? anyCommand : keepAlives }
}

/// Successive associations of one host NQN to one subsystem at one target address.
public struct ReconnectChain: Sendable {
    public var id: Int
    public var hostnqn: String
    public var subnqn: String
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
        didSet { indexByID = Self.index(connections) }
    }
    public var controllers: [ControllerModel]
    public var chains: [ReconnectChain]
    /// Position in `connections` of each connection id (rules look connections up by id often).
    private var indexByID: [Int: Int]

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
}
