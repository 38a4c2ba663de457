import Foundation

/// The keep-alive timeout the target applies to a controller, as far as the capture tells. The
/// cases carry figures only; their words (`source`, `basis`, `reason`) are made when a finding or
/// a "not judged" entry needs them: three rules ask for every controller, and formatting text
/// for each was a third of the rules' time on captures of many connections.
enum EffectiveKATO {
    /// KATO in ms from the Connect (`discoveryDefault`: the Connect carried 0 on a discovery
    /// controller, and the target applies its default).
    case known(ms: UInt32, discoveryDefault: Bool)
    /// The Connect's KATO is not in the capture; the Keep Alive cadence bounds it (see
    /// `KeepAliveCadence`). A finding claims an expiry only past `maxMs` and an on-time teardown
    /// only before `minMs`. `periodNs` is the shortest interval between Keep Alives.
    case inferred(minMs: UInt32, maxMs: UInt32, periodNs: Int64)
    /// KATO 0 on an I/O controller: keep-alive is off, nothing can expire.
    case disabled
    /// Nothing in the capture tells (`reason` says what is missing).
    case unknown(Missing)

    enum Missing {
        /// The Connect carried 0, and whether this is a discovery controller is not known.
        case katoZeroOfUnknownController
        /// The Connect's KATO is not in the capture and too few Keep Alives bound it.
        case notCaptured
    }

    /// Keep Alives needed before their cadence is trusted to bound KATO: two intervals, the
    /// shorter of which is the host's period (a skipped Keep Alive only lengthens one).
    static let cadenceKeepAlives = 3

    static func of(_ ctl: ControllerModel, admin: ConnectionModel, config: RuleConfig) -> EffectiveKATO {
        if let kato = ctl.kato {
            if kato > 0 { return .known(ms: kato, discoveryDefault: false) }
            switch ctl.discovery {
            case .some(true): return .known(ms: config.discoveryKATOms, discoveryDefault: true)
            case .some(false): return .disabled
            case .none: return .unknown(.katoZeroOfUnknownController)
            }
        }
        guard admin.keepAlives.count >= cadenceKeepAlives, let p = admin.keepAliveCadence.shortestGapNs, p > 0 else {
            return .unknown(.notCaptured)
        }
        // Linux sends Keep Alive every KATO/2, or KATO/4 when the controller supports TBKAS
        // (nvme_keep_alive_work_period); with TBKAS unknown, KATO is 2 to 4 periods.
        let period = Double(p) / 1e6
        let (lo, hi): (Double, Double) = ctl.tbkas == true ? (4 * period, 4 * period)
            : ctl.tbkas == false ? (2 * period, 2 * period) : (2 * period, 4 * period)
        return .inferred(minMs: UInt32(min(lo, Double(UInt32.max)).rounded()),
                         maxMs: UInt32(min(hi, Double(UInt32.max)).rounded()), periodNs: p)
    }

    /// Where a known KATO comes from, in words.
    func source(_ ctl: ControllerModel, config: RuleConfig) -> String {
        guard case .known(let ms, let discoveryDefault) = self else { return "" }
        guard discoveryDefault else { return "KATO \(ms) ms from the Connect" }
        let how = ctl.discoveryBasis.map { $0.inferred ? " (a discovery controller by inference: \($0.evidence))" : "" } ?? ""
        return "Connect KATO 0 on a discovery controller: the target's default \(formatSeconds(Double(config.discoveryKATOms) / 1000))" + how
    }

    /// What the KATO rests on (nil when it is not known).
    func basis(_ ctl: ControllerModel, admin: ConnectionModel) -> Basis? {
        let connect = "KATO \(ctl.kato ?? 0) ms" + (admin.connectRef.map { " (frame \($0.frame))" } ?? "")
        switch self {
        case .known(_, false):
            return .observed("Connect SQE: " + connect)
        case .known(_, true):
            return Basis(inferred: ctl.discoveryBasis?.inferred ?? false,
                         evidence: "Connect SQE: \(connect); discovery controller: \(ctl.discoveryBasis?.evidence ?? "?")")
        case .inferred(let lo, let hi, let p):
            let rule = ctl.tbkas == true ? "every KATO/4 under TBKAS" : ctl.tbkas == false ? "every KATO/2 without TBKAS"
                : "every KATO/2, or KATO/4 under TBKAS, which the capture does not show"
            func s(_ ms: UInt32) -> String { formatSeconds((Double(ms) / 10).rounded() / 100) }
            let range = lo == hi ? "about \(s(hi))" : "between \(s(lo)) and \(s(hi))"
            return .inferred("KATO \(range), from the Keep Alive cadence (shortest interval \(formatSeconds(Double(p) / 1e9)) over \(admin.keepAlives.count) Keep Alives; a Linux host sends one \(rule)); \(Self.missingText(ctl))")
        case .disabled, .unknown:
            return nil
        }
    }

    /// Why KATO is unknown, for "not judged".
    func reason(_ ctl: ControllerModel, admin: ConnectionModel, config: RuleConfig) -> String {
        switch self {
        case .unknown(.katoZeroOfUnknownController):
            return "the Connect carried KATO 0, and the capture does not show whether this is a discovery controller (the target then applies its default, \(formatSeconds(Double(config.discoveryKATOms) / 1000))) or an I/O controller (keep-alive off)"
        case .unknown(.notCaptured):
            let count = admin.keepAlives.count
            let few = count == 0 ? "no Keep Alive" : "only \(count) Keep Alive\(count == 1 ? "" : "s")"
            return "\(Self.missingText(ctl)), and \(few) to bound it from their cadence"
        default:
            return ""
        }
    }

    static func missingText(_ ctl: ControllerModel) -> String {
        ctl.connectSeen ? "the snap length cut the Connect before its KATO field"
            : "the capture starts after this association's Connect, so its KATO is unknown"
    }
}

/// What the keep-alive rules judge a controller by: its effective KATO, the series of commands
/// that restart the target's timer, and what each rests on.
struct KeepAliveView {
    let ctl: ControllerModel
    let admin: ConnectionModel
    let kato: EffectiveKATO
    let config: RuleConfig

    /// Why KATO is unknown, in words (for "not judged").
    var unknownReason: String { kato.reason(ctl, admin: admin, config: config) }

    /// The last timer restart: the series' last, or a later command of an I/O queue joined when
    /// the model was built (whose commands the series does not hold), when any command counts.
    let last: TimerEvent?

    /// Queues whose commands may have restarted this controller's timer but are not in its
    /// series: I/O queues joined when the model was built, and queues of the same host and target
    /// that no controller could be found for and that were open while this admin queue was.
    let unseenQueues: [Int]

    init?(_ ctl: ControllerModel, _ model: SessionModel, config: RuleConfig) {
        guard let admin = model.connection(ctl.adminConnection) else { return nil }
        self.ctl = ctl
        self.admin = admin
        self.config = config
        kato = EffectiveKATO.of(ctl, admin: admin, config: config)
        var last = ctl.timerSeries.last
        var unseen: [Int] = []
        if ctl.tbkas != false {
            let adminEnd = admin.end?.ref.timeNs ?? Int64.max
            let orphans = model.withoutController(host: admin.host.address, target: admin.target).filter { id in
                guard let q = model.connection(id) else { return false }
                return q.firstRef.timeNs <= adminEnd && (q.end?.ref.timeNs ?? Int64.max) >= admin.firstRef.timeNs
            }
            unseen = ctl.lateIOConnections.isEmpty ? orphans : ctl.lateIOConnections + orphans
            // Any command counts: the latest of theirs may be the last restart.
            for io in unseen {
                guard let q = model.connection(io), let ref = q.lastHostCommand, ref.timeNs <= adminEnd else { continue }
                if last.map({ ref.timeNs > $0.ref.timeNs }) ?? true {
                    last = TimerEvent(ref: ref, connection: io, command: q.lastHostCommandKind)
                }
            }
        }
        self.last = last
        unseenQueues = unseen
    }

    var series: TimerSeries { ctl.timerSeries }

    /// How a silence (or gap) of `seconds` compares with the effective KATO times `fraction`:
    /// the one place the three keep-alive rules decide. `orEqual`: a silence of exactly KATO
    /// counts (an expiry fires at KATO).
    enum Comparison {
        /// Longer than KATO (every KATO the capture allows); `kato` is the one it exceeds (the
        /// largest, when bounded), `text` says where it comes from.
        case exceeds(kato: Double, text: String)
        /// Shorter: on time.
        case within
        /// Between the bounds of an inferred KATO, or KATO unknown: the reason, for "not judged".
        case undecided(String)
        /// Keep-alive is off (KATO 0 on an I/O controller).
        case notApplicable
    }

    func compare(_ seconds: Double, fraction: Double = 1, orEqual: Bool = false, what: String) -> Comparison {
        func over(_ ms: UInt32) -> Bool {
            let limit = Double(ms) / 1000 * fraction
            return orEqual ? seconds >= limit : seconds > limit
        }
        switch kato {
        case .disabled:
            return .notApplicable
        case .unknown:
            return .undecided(unknownReason)
        case .known(let ms, _):
            return over(ms) ? .exceeds(kato: Double(ms) / 1000, text: "effective KATO \(formatSeconds(Double(ms) / 1000)) (\(kato.source(ctl, config: config)))") : .within
        case .inferred(let lo, let hi, _):
            // Only past the largest KATO the cadence allows is it too long, only short of the
            // smallest on time: nothing rests on a guess between them.
            let evidence = kato.basis(ctl, admin: admin)?.evidence ?? ""
            if over(hi) {
                return .exceeds(kato: Double(hi) / 1000, text: "KATO not in the capture: inferred \(evidence); the \(what) exceeds even the largest KATO that cadence allows")
            }
            if !over(lo) { return .within }
            return .undecided("the \(formatSeconds(seconds)) \(what) lies within the bounds of a KATO the capture does not show (\(evidence))")
        }
    }

    /// `compare` for a silence since the last timer restart: when bytes the host sent after that
    /// restart were lost from the capture, a silence longer than KATO is no evidence (a later
    /// restart may have been among them), so the rule cannot judge.
    func compareSilence(_ seconds: Double, orEqual: Bool = false, what: String) -> Comparison {
        let result = compare(seconds, orEqual: orEqual, what: what)
        if case .exceeds = result, series.lossSinceLast, let last {
            return .undecided("the \(formatSeconds(seconds)) \(what) follows the host's last timer restart (frame \(last.ref.frame)), but bytes the host sent after it were lost from the capture: a later restart may have been among them")
        }
        return result
    }

    /// KATO as a finding's title gives it: "KATO 10 s", "KATO 5.12 s–10.24 s, inferred".
    var katoTitle: String {
        switch kato {
        case .known(let ms, _): "KATO \(formatSeconds(Double(ms) / 1000))"
        case .inferred(let lo, let hi, _) where lo == hi: "KATO \(formatSeconds(Double(hi) / 1000)), inferred"
        case .inferred(let lo, let hi, _): "KATO \(formatSeconds(Double(lo) / 1000))–\(formatSeconds(Double(hi) / 1000)), inferred"
        default: "KATO unknown"
        }
    }

    /// True when the series may miss timer restarts (`unseenQueues`), while any command counts.
    var seriesIncomplete: Bool { !unseenQueues.isEmpty }

    /// "Keep Alive", "command", said of the series' events.
    var restartNoun: String { ctl.tbkas == false ? "Keep Alive" : "command" }

    /// What the timer-restart series rests on.
    var timerBasis: Basis {
        // The series start with the Connect when it was seen: that is not a command header.
        func commands(_ s: TimerSeries) -> Int { s.count - (s.first.map { $0.command == nil ? 1 : 0 } ?? 0) }
        let any = commands(ctl.anyCommand), kas = commands(ctl.keepAlives)
        switch ctl.tbkas {
        case .some(true): return .observed("Identify Controller CTRATT: TBKAS set, so any command restarts the timer; \(any) command capsule header\(any == 1 ? "" : "s") of the association")
        case .some(false): return .observed("Identify Controller CTRATT: TBKAS clear, so only Keep Alive restarts the timer; \(kas) Keep Alive capsule header\(kas == 1 ? "" : "s")")
        case .none: return .inferred("TBKAS not captured (Identify Controller): any command counted as a timer restart, which can only shorten a silence; \(any) command capsule header\(any == 1 ? "" : "s") of the association")
        }
    }

    /// The basis every keep-alive finding of this controller shares.
    var basis: [Basis] {
        var out: [Basis] = []
        if let b = kato.basis(ctl, admin: admin) { out.append(b) }
        out.append(timerBasis)
        if let q = admin.queueBasis, q.inferred { out.append(Basis.inferred("admin queue: " + q.evidence)) }
        return out
    }
}

func seconds(_ from: FrameRef, _ to: FrameRef) -> Double { Double(to.timeNs &- from.timeNs) / 1e9 }

func describe(_ c: ConnectionModel) -> String { "\(c.host) → \(c.target)" }

/// Connections a keep-alive rule cannot place with a controller (`matching` picks those the rule
/// is about): a reason each, never silence.
func unjudgedWithoutController(_ model: SessionModel, rule: String, matching: (ConnectionModel) -> Bool) -> [Unjudged] {
    model.idsWithoutController.compactMap { id in
        guard let c = model.connection(id), matching(c) else { return nil }
        // A Connect the target refused made no association: connect-rejected speaks for it.
        if let st = c.connectStatus, !st.isSuccess { return nil }
        return Unjudged(rule: rule, connection: c.id, reason: withoutControllerReason(c))
    }
}

/// Why a connection has no controller in the model.
func withoutControllerReason(_ c: ConnectionModel) -> String {
    switch c.queueKind {
    case .some(.io):
        return "I/O queue whose controller is unknown: \(c.connectData?.cntlid == nil ? "its Connect data (CNTLID) was not captured and " : "")no single admin queue of host \(c.host.address) to \(c.target) was open when it connected"
    case .some(.admin):
        return "admin queue whose Connect did not succeed in the capture (its status was not captured)"
    case .none:
        if c.connect != nil { return "the snap length cut its Connect before the QID, and no command showed whether it is an admin or an I/O queue" }
        return "picked up mid-stream (the capture holds neither its ICReq nor its Connect) and no command showed whether it is an admin or an I/O queue, so its controller and KATO are unknown"
    }
}
