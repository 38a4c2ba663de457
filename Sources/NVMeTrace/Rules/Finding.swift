/// How bad a finding is.
public enum Severity: String, Sendable, Comparable, CaseIterable, Codable {
    case info, warning, error

    var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// One frame cited as evidence, with what it shows.
public struct Evidence: Sendable, Equatable {
    public var ref: FrameRef
    public var what: String
    public var connection: Int?

    public init(_ ref: FrameRef, _ what: String, connection: Int? = nil) {
        self.ref = ref
        self.what = what
        self.connection = connection
    }
}

/// A problem a rule found, with the frames that prove it.
public struct Finding: Sendable {
    public var rule: String
    public var severity: Severity
    /// One line naming what broke and where.
    public var title: String
    /// The connection the finding is about (the admin queue for controller-level findings).
    public var connection: Int?
    /// Other connections involved (I/O queues torn down with the admin queue, reconnects).
    public var relatedConnections: [Int] = []
    /// The moment the finding refers to.
    public var ref: FrameRef
    /// Specific facts: frames, times, KATO, silence.
    public var detail: String
    public var evidence: [Evidence]
    /// What the verdict rests on: the facts read from the capture and, marked, anything inferred
    /// (a KATO bounded from the Keep Alive cadence, a controller type from the port), with the
    /// reasoning. Says how good the evidence is.
    public var basis: [Basis] = []
    /// True when any part of the verdict rests on an inference.
    public var isInferred: Bool { basis.contains(where: \.inferred) }
    /// Why it matters (spec or kernel behaviour) and what to do, from the rule.
    public var explanation: String
    public var fix: String

    /// Evidence frames in capture order, without repeats.
    public var frames: [FrameRef] {
        var seen = Set<FrameRef>()
        return evidence.map(\.ref).filter { seen.insert($0).inserted }
            .sorted { ($0.file, $0.frame) < ($1.file, $1.frame) }
    }

    public var connections: [Int] {
        var all = [Int]()
        if let connection { all.append(connection) }
        for c in relatedConnections where !all.contains(c) { all.append(c) }
        return all
    }
}

/// A rule that could not decide for a connection (KATO unknown, Connect not captured, controller
/// unknown), so the report says so, with the reason, instead of guessing or staying silent.
public struct Unjudged: Sendable {
    public var rule: String
    public var connection: Int
    public var reason: String
}

public struct RuleResult: Sendable {
    public var findings: [Finding] = []
    public var unjudged: [Unjudged] = []
}

/// Settings the rules share.
public struct RuleConfig: Sendable {
    /// KATO the target applies to a discovery controller whose Connect carried 0 (Linux nvmet and
    /// SPDK: 120 s).
    public var discoveryKATOms: UInt32 = 120_000
    /// `keep-alive-margin` warns when the largest gap exceeds this fraction of KATO.
    public var marginFraction = 0.75
    /// The host's command timeouts (Linux `nvme_core.io_timeout` and `admin_timeout` defaults).
    public var ioTimeoutSeconds = 30.0
    public var adminTimeoutSeconds = 60.0
    /// `outage` is a warning (not info) for an I/O controller down this long or longer: a Linux
    /// host's default reconnect_delay, so any outage the host had to wait out.
    public var outageWarningSeconds = 10.0
    /// `tcp-loss`: retransmitted segments past this fraction of a connection's segments (and at
    /// least `tcpLossMinRetransmissions`), or a zero window longer than this fraction of KATO.
    public var tcpLossFraction = 0.005
    public var tcpLossMinRetransmissions = 3
    public var zeroWindowKATOFraction = 0.25

    public init() {}
}

/// A detection rule: reads the session model, never bytes.
public protocol Rule: Sendable {
    var id: String { get }
    var severity: Severity { get }
    /// The severities its findings take (see the extension's default).
    var severities: String { get }
    /// What the rule detects, in one line (for `--rules`).
    var summary: String { get }
    var explanation: String { get }
    var fix: String { get }
    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult
}

extension Rule {
    /// The severities its findings take, as `--rules` and README list them ("warning/info" for a
    /// rule whose findings' severity depends on what it found).
    public var severities: String { severity.rawValue }

    func finding(title: String, connection: Int?, ref: FrameRef, detail: String, evidence: [Evidence],
                 related: [Int] = [], basis: [Basis] = []) -> Finding {
        Finding(rule: id, severity: severity, title: title, connection: connection, relatedConnections: related,
                ref: ref, detail: detail, evidence: evidence, basis: basis, explanation: explanation, fix: fix)
    }
}
