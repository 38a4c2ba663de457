/// At the end of the capture the host has been silent longer than KATO and no teardown is seen.
struct KeepAliveOverdueRule: Rule {
    let id = "keep-alive-overdue"
    let severity = Severity.warning
    let summary = "Capture ends with a connection silent for longer than its KATO"
    let explanation = """
        NVMe Base 2.1 §3.9: without a Keep Alive (or, under TBKAS, any command) within KATO the \
        controller's timer expires. The capture ends before the teardown that should follow: either \
        the target has not acted yet (Linux nvmet fires up to 2x KATO after the last command) or the \
        host's Keep Alives are not reaching the capture point.
        """
    let fix = """
        Capture longer to see the teardown, and check why the host stopped sending Keep Alive.
        """

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for ctl in model.controllers {
            guard let admin = model.connection(ctl.adminConnection), let end = admin.end, end.how == .captureEnd else { continue }
            guard case .known(let kato, let source) = EffectiveKATO.of(ctl, config: config), let last = ctl.timerSeries.last else { continue }
            let silence = seconds(last.ref, model.captureEnd)
            guard silence > Double(kato) / 1000 else { continue }
            out.findings.append(finding(
                title: "Keep Alive overdue on \(describe(admin)): silent \(formatSeconds(silence)) at capture end (KATO \(formatSeconds(Double(kato) / 1000)))",
                connection: admin.id, ref: model.captureEnd,
                detail: "last timer restart (\(last.what)) at frame \(last.ref.frame); the capture ends \(formatSeconds(silence)) later at frame \(model.captureEnd.frame) with the connection still open; effective KATO \(formatSeconds(Double(kato) / 1000)) (\(source)).",
                evidence: [Evidence(last.ref, "host's last timer restart (\(last.what))", connection: last.connection),
                           Evidence(model.captureEnd, "end of capture")]))
        }
        out.unjudged = unjudgedMidStream(model, rule: id).filter { u in
            model.connection(u.connection)?.end?.how == .captureEnd
        }
        return out
    }
}
