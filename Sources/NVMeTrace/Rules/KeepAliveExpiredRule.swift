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
            guard let admin = model.connection(ctl.adminConnection), let end = admin.end, end.by == .target else { continue }
            guard case .known(let kato, let source) = EffectiveKATO.of(ctl, config: config) else { continue }
            guard let last = ctl.timerSeries.last else { continue }
            let silence = seconds(last.ref, end.ref)
            guard silence >= Double(kato) / 1000 else { continue }  // on time: not a keep-alive expiry
            let what = last.what == "Connect" ? "timer start (the Connect; no Keep Alive followed)"
                : ctl.tbkas ? "command (\(last.what); under TBKAS any command restarts the timer)" : "Keep Alive"
            var evidence = [Evidence(last.ref, last.what == "Connect" ? "Connect (timer start)" : "host's last \(ctl.tbkas ? "command (\(last.what))" : "Keep Alive")", connection: last.connection),
                            Evidence(end.ref, "target teardown (\(end.how.rawValue))", connection: admin.id)]
            var facts = ["last \(what) at frame \(last.ref.frame), then \(formatSeconds(silence)) of silence until the target's \(end.how.rawValue) at frame \(end.ref.frame); effective KATO \(formatSeconds(Double(kato) / 1000)) (\(source))"]
            var related: [Int] = []
            for io in ctl.ioConnections {
                guard let q = model.connection(io), let qend = q.end, qend.by == .target else { continue }
                related.append(io)
                evidence.append(Evidence(qend.ref, "target closes I/O queue \(q.qid.map(String.init) ?? "?") (\(qend.how.rawValue))", connection: io))
            }
            if !related.isEmpty {
                facts.append("the target closed \(related.count) I/O queue connection\(related.count == 1 ? "" : "s") of the controller with it (connection \(related.map(String.init).joined(separator: ", ")))")
            }
            if ctl.discovery && ctl.kato == 0 {
                facts.append("a consequence of the KATO 0 discovery connection (see discovery-kato-zero)")
            }
            out.findings.append(finding(
                title: "Keep-alive timeout: target closed \(describe(admin)) after \(formatSeconds(silence)) without \(ctl.tbkas ? "a command" : "Keep Alive") (KATO \(formatSeconds(Double(kato) / 1000)))",
                connection: admin.id, ref: end.ref, detail: facts.joined(separator: "; ") + ".", evidence: evidence, related: related))
        }
        out.unjudged = unjudgedMidStream(model, rule: id).filter { u in
            model.connection(u.connection)?.end?.by == .target
        }
        return out
    }
}
