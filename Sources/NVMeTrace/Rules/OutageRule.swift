/// The I/O path's downtime: from an association's teardown to the next successful Connect of
/// its reconnect chain.
struct OutageRule: Rule {
    let id = "outage"
    let severity = Severity.info
    /// A warning for an I/O controller down `outageWarningSeconds` or longer.
    var severities: String { "warning/info" }
    let summary = "An association went down and the host was without it until it reconnected"
    let explanation = """
        When an association goes down without the host asking (a target teardown, or the host's \
        own error recovery after a command or Keep Alive timeout), a Linux host waits \
        reconnect_delay (10 s by default) and connects again, retrying until ctrl_loss_tmo (600 s). \
        Until a new association's Connect succeeds, the namespaces behind it have no path: I/O \
        waits (or fails over to another path). The outage runs from the first close to that \
        Connect; refused or unanswered attempts in between lengthen it. An orderly disconnect (the \
        host writes CC.SHN first, NVMe Base 2.1 §3.6.3) is no outage. A warning for an I/O \
        controller down as long as a reconnect delay or longer, information otherwise.
        """
    let fix = "Fix the teardown's cause (see target-teardown, keep-alive-expired, command-timeout); to shorten outages, lower the host's reconnect_delay (nvme connect --reconnect-delay) or add a second path (multipath)."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for chain in model.chains {
            var ctls: [ControllerModel]?  // made once per chain, and only when an outage needs it
            for (i, c) in chain.controllers.enumerated() {
                // Cheap test first: a teardown followed by another association, or by enough capture.
                guard let close = AssociationEnd.firstClose(model.controllers[c], model) else { continue }
                if i + 1 == chain.controllers.count {
                    // The chain's last association: an outage to the end of the capture only after a
                    // target teardown or failed attempts (see below), tested before anything is built.
                    guard seconds(close.ref, model.captureEnd) >= Self.minimumOpenSeconds,
                          close.by == .target || Self.failedAttempts(after: close.ref, chain: chain, until: model.captureEnd, model: model).count > 0
                    else { continue }
                }
                if ctls == nil { ctls = chain.controllers.map { model.controllers[$0] } }
                let ctls = ctls!
                let ctl = ctls[i]
                guard let a = AssociationEnd(ctl, model), a.isOutage else { continue }
                let next = ctls.dropFirst(i + 1).lazy.compactMap { c -> (ControllerModel, ConnectionModel, FrameRef)? in
                    guard let admin = model.connection(c.adminConnection), let r = admin.connectResponseRef,
                          admin.connectStatus?.isSuccess == true, r.timeNs >= a.end.ref.timeNs else { return nil }
                    return (c, admin, r)
                }.first
                let until = next?.2 ?? model.captureEnd
                let downtime = seconds(a.end.ref, until)
                if next == nil {
                    // Still down at the end: an outage when the target tore it down, or when the
                    // host, having closed it itself, tried to come back and failed. A host that
                    // closed without a shutdown and made no attempt may have given up (or the
                    // capture ended before its reconnect_delay): not said.
                    guard downtime >= Self.minimumOpenSeconds else { continue }
                    if a.cause != .target, Self.failedAttempts(after: a.end.ref, chain: chain, until: until, model: model).count == 0 { continue }
                }
                out.findings.append(outage(a, chain: chain, next: next, until: until, downtime: downtime, model: model, config: config))
            }
        }
        // Closed connections no association could be found for: whether they took one down is unknown.
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.by != nil }
        return out
    }

    /// An association still down at the end of a capture this soon after its teardown is not
    /// reported (the capture simply stopped).
    static let minimumOpenSeconds = 1.0

    /// Connection attempts of the chain's host to its target between the teardown and `until`
    /// that failed: refused or unanswered SYNs, and connections made that brought no association.
    static func failedAttempts(after end: FrameRef, chain: ReconnectChain, until: FrameRef, model: SessionModel)
        -> (count: Int, syns: FailedConnects.Window?, madeNothing: [Int]) {
        let syns = model.failedConnects.first { $0.target == chain.target }?
            .attempts(host: chain.host, from: end.timeNs, to: until.timeNs)
        // Only connections without a controller can have brought none: that list, not every connection.
        let madeNothing = model.idsWithoutController.filter { id in
            guard let i = model.position(of: id) else { return false }
            let c = model.connections[i]
            return c.host.address == chain.host && c.target == chain.target && c.firstRef.timeNs > end.timeNs
                && c.firstRef.timeNs < until.timeNs && c.queueKind != .io
        }
        return ((syns?.count ?? 0) + madeNothing.count, syns, madeNothing)
    }

    private func outage(_ a: AssociationEnd, chain: ReconnectChain, next: (ControllerModel, ConnectionModel, FrameRef)?,
                        until: FrameRef, downtime: Double, model: SessionModel, config: RuleConfig) -> Finding {
        var facts: [String] = []
        var evidence = [Evidence(a.end.ref, "\(a.end.by == .host ? "host" : "target") teardown (\(a.end.how.rawValue))", connection: a.first.id)]
        var basis: [Basis] = []
        let cause: String
        switch a.cause {
        case .target:
            cause = "the target tore it down (\(a.what))"
        case .hostReset(let s):
            cause = "the host reset the controller (Property Set CC = \(hexValue(s.cc ?? 0, digits: 8)), EN cleared, frame \(s.ref.frame)) and closed its queues (\(a.what))"
            evidence.append(Evidence(s.ref, "Property Set CC (reset)", connection: a.admin.id))
        case .hostErrorRecovery:
            let trigger = a.recoveryTrigger(model, config: config)
            cause = "the host closed its queues without a shutdown (\(a.what)): error recovery; its trigger: \(trigger.text)"
            evidence += trigger.evidence
            basis.append(.observed("no Property Set of CC.SHN or CC.EN before the host's close (a Linux host writes one when it disconnects or resets, none in error recovery)"))
        case .hostShutdown:
            cause = ""
        }
        facts.append(cause)
        // Attempts that failed in between: refused or unanswered SYNs, and connections made that
        // brought no association.
        let attempts = Self.failedAttempts(after: a.end.ref, chain: chain, until: until, model: model)
        let failed = attempts.count
        var complete = true
        if let tried = attempts.syns {
            complete = tried.complete
            if let first = tried.first, let last = tried.last {
                facts.append("\(tried.count)\(complete ? "" : "+") connection attempt\(tried.count == 1 ? "" : "s") failed in between (\(tried.outcomes); frames \(first.attempt.syn.frame)–\(last.attempt.last.frame))")
                evidence.append(Evidence(first.attempt.syn, "failed reconnect attempt (SYN)"))
            }
        }
        let madeNothing = attempts.madeNothing
        if !madeNothing.isEmpty {
            facts.append("\(madeNothing.count) connection\(madeNothing.count == 1 ? "" : "s") in between made no association (connection \(madeNothing.map(String.init).joined(separator: ", ")))")
        }
        var related: [Int] = []
        if let (nextCtl, admin, r) = next {
            related.append(admin.id)
            evidence.append(Evidence(r, "Connect response of the next association (success)", connection: admin.id))
            var line = "the host's next association (connection \(admin.id)) connected at frame \(r.frame)"
            let ioReady = nextCtl.ioConnections.compactMap { model.connection($0)?.connectResponseRef }.max { $0.timeNs < $1.timeNs }
            if let io = ioReady { line += ", its I/O queues by frame \(io.frame) (\(formatSeconds(seconds(a.end.ref, io))) after the teardown)" }
            facts.append(line)
            if let b = nextCtl.chainBasis, b.inferred { basis.append(.inferred("the next association belongs to the same chain: \(b.evidence)")) }
        } else {
            facts.append("no new association by the end of the capture, \(formatSeconds(downtime)) later")
        }
        basis.insert(.observed("\(a.what) and \(next.map { "the next Connect's success response (frame \($0.2.frame))" } ?? "the end of the capture")"), at: 0)
        let who = chain.subnqn ?? "a subsystem (NQN not captured)"
        let title = next == nil
            ? "Outage: \(describe(a.admin)) (\(who)) down for \(formatSeconds(downtime))+, not restored by the end of the capture"
            : "Outage of \(formatSeconds(downtime)): \(describe(a.admin)) (\(who)) from the \(a.cause == .target ? "target's teardown" : "host's \(a.cause == .hostErrorRecovery ? "error recovery" : "reset")") to the next Connect\(failed > 0 ? ", \(failed)\(complete ? "" : "+") failed attempt\(failed == 1 ? "" : "s")" : "")"
        var f = finding(title: title, connection: a.admin.id, ref: a.end.ref, detail: facts.joined(separator: "; ") + ".",
                        evidence: evidence, related: related, basis: basis)
        if a.ctl.discovery != true && downtime >= config.outageWarningSeconds { f.severity = .warning }
        return f
    }
}
