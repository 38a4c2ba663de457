/// How an association (a controller and its queues) ended, as `target-teardown` and `outage`
/// read it: the first close among its queues, who made it, and whether the host had asked for it.
///
/// A Linux host that disconnects (`nvme disconnect`, the end of `nvme discover`) writes CC.SHN by
/// Property Set first (nvme_shutdown_ctrl); one that resets writes CC.EN = 0; one in error
/// recovery (a command or Keep Alive timeout, a digest error, a transport error) closes its
/// queues with neither (nvme_tcp_error_recovery_work). NVMe Base 2.1 §3.6.3.
struct AssociationEnd {
    enum Cause: Equatable {
        /// The host wrote CC.SHN (or, inferred, sent Property Set/Get just before closing, their
        /// values cut by the snap length): an orderly disconnect, not an outage.
        case hostShutdown(HostShutdown, inferred: Bool)
        /// The host reset the controller (CC.EN = 0) and closed its queues.
        case hostReset(HostShutdown)
        /// The host closed its queues without a shutdown or reset: error recovery.
        case hostErrorRecovery
        /// The target closed (FIN, RST) or sent a Termination Request first.
        case target
    }

    let ctl: ControllerModel
    let admin: ConnectionModel
    /// The first close among the association's queues.
    let first: ConnectionModel
    let end: ConnectionEnd
    let cause: Cause
    /// Every queue of the association (admin first).
    let queues: [ConnectionModel]

    /// The first close (FIN, RST, TermReq by either side) among the association's queues, read
    /// in place: the rules ask it of every controller before building an `AssociationEnd`, which
    /// copies the queues' models, for the few that need one.
    static func firstClose(_ ctl: ControllerModel, _ model: SessionModel) -> ConnectionEnd? {
        firstClosed(ctl, model)?.end
    }

    /// The first close and the position of the connection it closed.
    private static func firstClosed(_ ctl: ControllerModel, _ model: SessionModel) -> (position: Int, end: ConnectionEnd)? {
        var first: (position: Int, end: ConnectionEnd)?
        func consider(_ id: Int) {
            guard let i = model.position(of: id), let e = model.connections[i].end, e.by != nil else { return }
            if first.map({ (e.ref.timeNs, e.ref.frame) < ($0.end.ref.timeNs, $0.end.ref.frame) }) ?? true { first = (i, e) }
        }
        consider(ctl.adminConnection)
        for id in ctl.ioConnections { consider(id) }
        for id in ctl.lateIOConnections { consider(id) }
        return first
    }

    /// Nil when the association was still open when the capture (or its connections) ended.
    init?(_ ctl: ControllerModel, _ model: SessionModel) {
        guard let admin = model.connection(ctl.adminConnection) else { return nil }
        var queues = [admin]
        for id in ctl.ioConnections + ctl.lateIOConnections where !queues.contains(where: { $0.id == id }) {
            if let q = model.connection(id) { queues.append(q) }
        }
        guard let (p, e) = Self.firstClosed(ctl, model) else { return nil }
        self.ctl = ctl
        self.admin = admin
        self.first = model.connections[p]
        self.end = e
        self.queues = queues
        if e.by == .target {
            cause = .target
        } else if let s = admin.hostShutdown, s.ref.timeNs <= (admin.end?.ref ?? e.ref).timeNs {
            // A Linux host closes its I/O queues first and then shuts the controller down on the
            // admin queue (nvme_tcp_teardown_ctrl): the Property Set may follow the first close,
            // but comes before the admin queue's.
            switch s.kind {
            case .shutdown: cause = .hostShutdown(s, inferred: false)
            case .reset: cause = .hostReset(s)
            case .valueNotCaptured:
                // The value was cut: a shutdown when the host's last admin commands were Fabrics
                // Property Set/Get (the shutdown and its CSTS polling) shortly before the close;
                // error recovery sends no command before closing.
                let lastFabrics = admin.lastHostCommandKind.map { $0.fctype == 0x00 || $0.fctype == 0x04 } ?? false
                cause = lastFabrics && seconds(s.ref, admin.end?.ref ?? e.ref) <= Self.shutdownWindowSeconds ? .hostShutdown(s, inferred: true) : .hostErrorRecovery
            }
        } else {
            cause = .hostErrorRecovery
        }
    }

    /// Positions of the connections that reported asynchronous events.
    static func withEvents(_ model: SessionModel) -> [Int] {
        model.connections.indices.filter { !model.connections[$0].asyncEvents.isEmpty }
    }

    /// A shutdown Property Set this close to the close counts when its value was not captured.
    static let shutdownWindowSeconds = 2.0

    /// The host did not ask for it: the association went down (target teardown, error recovery).
    var isOutage: Bool {
        switch cause {
        case .hostShutdown: false
        default: true
        }
    }

    /// "the target's FIN (frame 263)".
    var what: String {
        let who = end.by == .host ? "host" : "target"
        return "the \(who)'s \(end.how.rawValue) (frame \(end.ref.frame))"
    }

    /// What may have set off the host's error recovery, from the wire: a command or Keep Alive
    /// unanswered past its timeout, digest errors, nothing visible. In words, with evidence.
    func recoveryTrigger(_ model: SessionModel, config: RuleConfig) -> (text: String, evidence: [Evidence]) {
        var best: (String, [Evidence], Double)?
        for q in queues {
            let w = WaitingCommands(q, model: model)
            // The oldest sent before the close (a Linux host times a Keep Alive out at KATO,
            // nvme_keep_alive_work; other commands at its I/O or admin timeout).
            guard let oldest = (w.certain + w.uncertain).first(where: { $0.issued.timeNs <= end.ref.timeNs }) else { continue }
            let age = seconds(oldest.issued, end.ref)
            let limit = oldest.kind.opcode == 0x18 && oldest.kind.queue == .admin ? ctl.kato.map { Double($0) / 1000 } ?? config.adminTimeoutSeconds
                : hostTimeout(q, config)?.seconds ?? config.ioTimeoutSeconds
            guard age >= limit * 0.9 else { continue }
            if best.map({ age > $0.2 }) ?? true {
                best = ("\(commandName(oldest)) on connection \(q.id) unanswered for \(formatSeconds(age)) (frame \(oldest.issued.frame)), past the host's \(formatSeconds(limit)) timeout",
                        [Evidence(oldest.issued, "\(commandName(oldest)) sent, never answered", connection: q.id)], age)
            }
        }
        if let best { return (best.0, best.1) }
        for q in queues {
            if let d = q.digestErrors.first, d.ref.timeNs <= end.ref.timeNs {
                return ("a \(d.header ? "header" : "data") digest error at frame \(d.ref.frame) (a Linux host starts error recovery on one)",
                        [Evidence(d.ref, "digest error", connection: q.id)])
            }
        }
        return ("nothing on the wire: no command past its timeout, no digest error, no Termination Request (the host's kernel log says why)", [])
    }

    /// The last asynchronous event before the end: reported by this controller within `window`
    /// seconds, or by another controller of the same host at the same target address (its
    /// discovery controller announcing a changed discovery log, say) within `nearby` seconds.
    /// `withEvents`: positions in `model.connections` of the connections that reported any
    /// (`AssociationEnd.withEvents`), found once per rule rather than per association.
    func eventBefore(_ model: SessionModel, withEvents: [Int], window: Double = 30, nearby: Double = 5) -> (AsyncEventNotice, ConnectionModel)? {
        var best: (AsyncEventNotice, ConnectionModel)?
        for i in withEvents {
            let q = model.connections[i]
            let own = queues.contains { $0.id == q.id }
            guard own || (q.host.address == admin.host.address && q.target.address == admin.target.address) else { continue }
            for e in q.asyncEvents.kept where e.ref.timeNs <= end.ref.timeNs && seconds(e.ref, end.ref) <= (own ? window : nearby) {
                if best.map({ e.ref.timeNs > $0.0.ref.timeNs }) ?? true { best = (e, q) }
            }
        }
        return best
    }
}
