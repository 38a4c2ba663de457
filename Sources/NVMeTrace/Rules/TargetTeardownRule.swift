/// The target tore an association down while the host kept its keep-alive timer running: not a
/// keep-alive timeout, so the reason is on the target.
struct TargetTeardownRule: Rule {
    let id = "target-teardown"
    let severity = Severity.warning
    let summary = "The target closed an association while the host's keep-alives were on time"
    let explanation = """
        A target ends an association on its own when its keep-alive timer expires (NVMe Base 2.1 \
        §3.9.5; keep-alive-expired) or when something on the target changes: a port disabled, a \
        subsystem or namespace removed, the target restarted or failed over, a fatal controller \
        error (which it announces with a Termination Request, NVMe/TCP 1.1 §3.6.2.7, or not at \
        all). When the host restarted the timer less than KATO before the close, the timer cannot \
        be the reason: the host then starts error recovery and reconnects (see outage).
        """
    let fix = "Look at the target at that moment: its log (nvmet: a port disabled, a subsystem or namespace removed, a controller fatal error), a restart or failover, a configuration change announced by an asynchronous event before the close."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        let withEvents = AssociationEnd.withEvents(model)
        for c in model.controllers.indices where AssociationEnd.firstClose(model.controllers[c], model)?.by == .target {
            let ctl = model.controllers[c]
            guard let a = AssociationEnd(ctl, model), a.cause == .target, let view = KeepAliveView(ctl, model, config: config) else { continue }
            var basis: [Basis] = [.observed("\(a.what) on connection \(a.first.id), the first close among the association's \(a.queues.count) queue\(a.queues.count == 1 ? "" : "s")")]
            var facts: [String] = []
            var evidence: [Evidence] = []
            // Not a keep-alive expiry: the last timer restart less than KATO before the close, or
            // keep-alive off (KATO 0 on an I/O controller).
            switch view.kato {
            case .disabled:
                facts.append("keep-alive is off for this controller (KATO 0 on an I/O controller), so no keep-alive timer expired")
                basis.append(.observed("Connect SQE: KATO 0" + (view.admin.connectRef.map { " (frame \($0.frame))" } ?? "")))
            case .unknown:
                out.unjudged.append(Unjudged(rule: id, connection: a.admin.id, reason: "the target closed the association (\(a.what)) but " + view.unknownReason + ", so a keep-alive expiry cannot be ruled out"))
                continue
            case .known, .inferred:
                guard let last = view.last else {
                    out.unjudged.append(Unjudged(rule: id, connection: a.admin.id, reason: "the target closed the association (\(a.what)), but no timer restart of it is in the capture"))
                    continue
                }
                let silence = seconds(last.ref, a.end.ref)
                switch view.compareSilence(silence, orEqual: true, what: "silence before the target's teardown") {
                case .exceeds, .notApplicable:
                    continue  // keep-alive-expired speaks for it
                case .undecided(let reason):
                    out.unjudged.append(Unjudged(rule: id, connection: a.admin.id, reason: reason))
                    continue
                case .within:
                    let what = last.command == nil ? "Connect (timer start)" : "host's last \(view.restartNoun == "Keep Alive" ? "Keep Alive" : "command (\(last.what))")"
                    evidence.append(Evidence(last.ref, what, connection: last.connection))
                    facts.append("the host's last timer restart (\(last.what), frame \(last.ref.frame)) was \(formatSeconds(silence)) before it, within the \(view.katoTitle): not a keep-alive timeout")
                    basis += view.basis
                }
            }
            evidence.append(Evidence(a.end.ref, "target teardown (\(a.end.how.rawValue))", connection: a.first.id))
            var related: [Int] = a.first.id == a.admin.id ? [] : [a.first.id]
            // What the target did just before.
            if a.end.how == .termReq, let t = a.first.termReqs.first {
                facts.append("the target sent a Termination Request\(t.fes.map { " (FES \(hexValue($0)))" } ?? "") at frame \(t.ref.frame)")
            } else if let (e, q) = a.eventBefore(model, withEvents: withEvents) {
                evidence.append(Evidence(e.ref, "Asynchronous Event completion (\(e.event.infoName))", connection: q.id))
                let who = a.queues.contains { $0.id == q.id } ? "the controller" : "the \(q.isDiscovery ? "discovery " : "")controller on connection \(q.id)"
                facts.append("\(formatSeconds(seconds(e.ref, a.end.ref))) before it, \(who) reported an asynchronous event (\(e.event.typeName): \(e.event.infoName), log page \(hexValue(e.event.logPage)), frame \(e.ref.frame)): a change on the target announced first")
                if !a.queues.contains(where: { $0.id == q.id }) { related.append(q.id) }
            } else {
                facts.append("nothing on the wire announced it (no asynchronous event, no Termination Request)")
            }
            for q in a.queues where q.id != a.first.id {
                guard let e = q.end, e.by == .target else { continue }
                related.append(q.id)
                evidence.append(Evidence(e.ref, "target closes \(q.isAdmin ? "admin queue" : "I/O queue \(q.qid.map(String.init) ?? "?")") (\(e.how.rawValue))", connection: q.id))
            }
            if !related.isEmpty { facts.append("the target closed \(related.count) more queue\(related.count == 1 ? "" : "s") of the association with it (connection \(related.map(String.init).joined(separator: ", ")))") }
            // What followed: refused reconnects point at a port taken down or a target gone.
            if let failed = model.failedConnects.first(where: { $0.target == a.admin.target }) {
                let after = failed.attempts(host: a.admin.host.address, from: a.end.ref.timeNs, to: .max)
                if after.count > 0, let f = after.first, let l = after.last {
                    evidence.append(Evidence(f.attempt.syn, "SYN of the next connection attempt (failed)", connection: nil))
                    let attempts = after.count == 1 ? "the host's next connection attempt failed" : "the host's next \(after.count)\(after.complete ? "" : "+") connection attempts failed"
                    facts.append("\(attempts), \(after.outcomes) (frames \(f.attempt.syn.frame)–\(l.attempt.last.frame)): the port was not \(after.refused > 0 ? "listening (disabled or removed, or the target restarting)" : "reachable (the target down, or the path)")")
                }
            }
            let title = "Target teardown: the target closed \(describe(a.admin))\(ctl.subnqn.map { " (\($0))" } ?? "") by \(a.end.how.rawValue) while the host's keep-alives were on time"
            out.findings.append(finding(title: title, connection: a.admin.id, ref: a.end.ref,
                                        detail: facts.joined(separator: "; ") + ".", evidence: evidence, related: related, basis: basis))
        }
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.by == .target }
        return out
    }
}
