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
            guard let view = KeepAliveView(ctl, model, config: config), let end = view.admin.end, end.how == .captureEnd,
                  let last = view.last else { continue }
            let admin = view.admin
            let silence = seconds(last.ref, model.captureEnd)
            let katoText: String
            switch view.compareSilence(silence, what: "silence at the end of the capture") {
            case .notApplicable, .within:
                continue
            case .undecided(let reason):
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: reason))
                continue
            case .exceeds(_, let text):
                katoText = text
            }
            out.findings.append(finding(
                title: "Keep Alive overdue on \(describe(admin)): silent \(formatSeconds(silence)) at capture end (\(view.katoTitle))",
                connection: admin.id, ref: model.captureEnd,
                detail: "last timer restart (\(last.what)) at frame \(last.ref.frame); the capture ends \(formatSeconds(silence)) later at frame \(model.captureEnd.frame) with the connection still open; \(katoText).",
                evidence: [Evidence(last.ref, "host's last timer restart (\(last.what))", connection: last.connection),
                           Evidence(model.captureEnd, "end of capture")],
                basis: view.basis))
        }
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.how == .captureEnd && $0.queueKind != .io }
        return out
    }
}
