/// When the PDUs of one command went by, as the capture point saw them: what the decoder
/// remembers of a command while it is outstanding (three times, no list: a write of many R2Ts
/// costs the same as one of none).
///
/// The phases NVMe/TCP shows on the wire (NVMe/TCP Transport Specification 1.1, §3.3):
/// - a write whose data did not go in the capsule waits for the controller's R2T (§3.6.2.9),
///   then the host answers it with H2CData (§3.6.2.10): "command to R2T" is the controller
///   getting ready (buffers, the namespace), "R2T to data" the host's reaction;
/// - "data to completion" runs from the last data PDU to the CapsuleResp: the controller
///   committing a write, or sending the response after a read's data. A C2HData with SUCCESS
///   is the completion itself and has no such phase.
struct CommandPhaseTimes {
    /// Nanoseconds since the epoch of the first R2T, the first H2CData after it and the last
    /// data PDU of either kind; `CommandPhaseTimes.none` until seen. (A read's first C2HData,
    /// the controller's time to its data, was timed too and left out: a fourth distribution
    /// fed on every read cost 2% of the wall clock of 4 KiB I/O, past the budget of #16.)
    var r2t = Self.none
    var dataAfterR2T = Self.none
    var lastData = Self.none

    static let none = Int64.min

    @inline(__always)
    mutating func r2tSeen(_ t: Int64) {
        if r2t == Self.none { r2t = t }
    }

    @inline(__always)
    mutating func h2cSeen(_ t: Int64) {
        if dataAfterR2T == Self.none && r2t != Self.none { dataAfterR2T = t }
        lastData = t
    }

    @inline(__always)
    mutating func c2hSeen(_ t: Int64) {
        lastData = t
    }
}

/// The phases of a command's latency (`CommandPhaseTimes` says what each means).
public enum LatencyPhase: String, Sendable, CaseIterable {
    case toR2T = "command-to-r2t"
    case r2tToData = "r2t-to-data"
    case dataToCompletion = "data-to-completion"

    /// How a report names it.
    public var title: String {
        switch self {
        case .toR2T: "command → R2T"
        case .r2tToData: "R2T → H2CData"
        case .dataToCompletion: "last data → completion"
        }
    }
}

/// A command matched with its completion, timed: what the decoder hands on for latency
/// statistics (`AnalyzerConsumer.commandsTimed`), in batches, for every command but the
/// Asynchronous Event Request (outstanding by design, NVMe Base 2.1 §5.1.2: its wait is no
/// latency). Times are the capture point's: the sum of the network's and the far side's delays.
public struct CommandTiming: Sendable, Equatable {
    public var kind: CommandKind
    public var cid: UInt16
    /// The CapsuleCmd's frame, and the frame that completed it (CapsuleResp, or C2HData with SUCCESS).
    public var issued: FrameRef
    public var completed: FrameRef
    /// Nanoseconds of each phase the wire showed, -1 where it showed none (`LatencyPhase`).
    public var toR2T: Int64
    public var r2tToData: Int64
    public var dataToCompletion: Int64

    public var latencyNs: Int64 { completed.timeNs &- issued.timeNs }

    public func phase(_ p: LatencyPhase) -> Int64 {
        switch p {
        case .toR2T: toR2T
        case .r2tToData: r2tToData
        case .dataToCompletion: dataToCompletion
        }
    }

    init(kind: CommandKind, cid: UInt16, issued: FrameRef, completed: FrameRef, times t: CommandPhaseTimes, completedByData: Bool) {
        self.kind = kind
        self.cid = cid
        self.issued = issued
        self.completed = completed
        let none = CommandPhaseTimes.none
        // A phase whose end came before its start (bytes behind a hole delivered late, with their
        // earlier frame) is not a phase the wire showed: -1.
        @inline(__always) func span(_ from: Int64, _ to: Int64) -> Int64 {
            from == none || to == none || to < from ? -1 : to &- from
        }
        toR2T = span(issued.timeNs, t.r2t)
        r2tToData = span(t.r2t, t.dataAfterR2T)
        dataToCompletion = completedByData ? -1 : span(t.lastData, completed.timeNs)
    }

    /// A timing with the phases given (tests, tools).
    public init(kind: CommandKind, cid: UInt16, issued: FrameRef, completed: FrameRef,
                toR2T: Int64 = -1, r2tToData: Int64 = -1, dataToCompletion: Int64 = -1) {
        self.kind = kind
        self.cid = cid
        self.issued = issued
        self.completed = completed
        self.toR2T = toR2T
        self.r2tToData = r2tToData
        self.dataToCompletion = dataToCompletion
    }
}
