/// The target tore an association down after the host was silent for at least KATO.
struct KeepAliveExpiredRule: Rule {
    let id = "keep-alive-expired"
    let severity = Severity.error
    let summary = "Target tore the association down after no Keep Alive for at least KATO"
    let explanation = """
        NVMe Base 2.1 §3.9: the controller's Keep Alive timer restarts on each Keep Alive command \
        (with Traffic Based Keep Alive, on any command); when it expires the controller stops \
        processing commands and, on NVMe/TCP, tears the association down. Linux nvmet re-arms the \
        timer when traffic arrived, so it fires 1x to 2x KATO after the host's last command, then \
        logs "keep-alive timer (N seconds) expired!" and closes the connections (TCP FIN).
        """
    let fix = """
        Find out why the host stopped sending Keep Alive: host logs around the last Keep Alive \
        (nvme_tcp "starting error recovery", I/O timeouts), a stalled host, or a network path that \
        dropped the host's traffic. Raise KATO if the host is known to stall briefly.
        """

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for ctl in model.controllers {
            guard let view = KeepAliveView(ctl, model, config: config), let end = view.admin.end, end.by == .target else { continue }
            let admin = view.admin
            if case .unknown = view.kato {
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: view.unknownReason))
                continue
            }
            guard let last = view.last else {
                if case .disabled = view.kato { continue }
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: "no \(view.restartNoun == "Keep Alive" ? "Keep Alive (only Keep Alive restarts this controller's timer)" : "command") of this association is in the capture, nor its Connect, so when the host last restarted the timer is unknown"))
                continue
            }
            let silence = seconds(last.ref, end.ref)
            let katoText: String
            switch view.compareSilence(silence, orEqual: true, what: "silence before the target's teardown") {
            case .notApplicable, .within:
                continue  // on time: not a keep-alive expiry
            case .undecided(let reason):
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: reason))
                continue
            case .exceeds(_, let text):
                katoText = text
            }
            let restart = last.command == nil ? "timer start (the Connect; no Keep Alive followed)"
                : view.restartNoun == "Keep Alive" ? "Keep Alive"
                : ctl.tbkas == true ? "command (\(last.what); under TBKAS any command restarts the timer)"
                : "command (\(last.what); TBKAS unknown, so any command is counted as a restart)"
            var evidence = [Evidence(last.ref, last.command == nil ? "Connect (timer start)" : "host's last \(view.restartNoun == "Keep Alive" ? "Keep Alive" : "command (\(last.what))")", connection: last.connection),
                            Evidence(end.ref, "target teardown (\(end.how.rawValue))", connection: admin.id)]
            var facts = ["last \(restart) at frame \(last.ref.frame), then \(formatSeconds(silence)) of silence until the target's \(end.how.rawValue) at frame \(end.ref.frame); \(katoText)"]
            var related: [Int] = []
            var basis = view.basis
            basis.append(.observed("target \(end.how.rawValue) (frame \(end.ref.frame))"))
            for io in ctl.ioConnections {
                guard let q = model.connection(io), let qend = q.end, qend.by == .target else { continue }
                related.append(io)
                evidence.append(Evidence(qend.ref, "target closes I/O queue \(q.qid.map(String.init) ?? "?") (\(qend.how.rawValue))", connection: io))
                if let b = q.controllerBasis, b.inferred { basis.append(.inferred("I/O queue connection \(io) belongs to this controller: \(b.evidence)")) }
            }
            if !related.isEmpty {
                facts.append("the target closed \(related.count) I/O queue connection\(related.count == 1 ? "" : "s") of the controller with it (connection \(related.map(String.init).joined(separator: ", ")))")
            }
            if ctl.discovery == true && ctl.kato == 0 {
                facts.append("a consequence of the KATO 0 discovery connection (see discovery-kato-zero)")
            }
            let without = view.restartNoun == "Keep Alive" ? "Keep Alive" : "a command"
            let katoTitle = view.katoTitle
            out.findings.append(finding(
                title: "Keep-alive timeout: target closed \(describe(admin)) after \(formatSeconds(silence)) without \(without) (\(katoTitle))",
                connection: admin.id, ref: end.ref, detail: facts.joined(separator: "; ") + ".", evidence: evidence, related: related,
                basis: basis))
        }
        // Teardowns by the target of connections no controller could be found for.
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.by == .target }
        return out
    }
}
