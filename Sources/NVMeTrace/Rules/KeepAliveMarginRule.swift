/// The association survived, but a gap between timer restarts came close to KATO.
struct KeepAliveMarginRule: Rule {
    let id = "keep-alive-margin"
    let severity = Severity.warning
    let summary = "Largest gap between Keep Alives exceeded 3/4 of KATO"
    let explanation = """
        NVMe Base 2.1 §3.9: the host must send Keep Alive (or, under TBKAS, any command) often \
        enough that the controller's timer never expires; Linux sends every KATO/2 (KATO/4 with \
        TBKAS). A gap above 3/4 of KATO leaves little margin: a slightly longer stall or one lost \
        segment and the target tears the association down.
        """
    let fix = "Look for host stalls at the gap's frames; consider a larger KATO."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for ctl in model.controllers {
            guard let admin = model.connection(ctl.adminConnection), admin.end?.by != .target else { continue }
            guard case .known(let kato, let source) = EffectiveKATO.of(ctl, config: config), let gap = ctl.timerSeries.maxGap else { continue }
            let limit = Double(kato) / 1000 * config.marginFraction
            guard gap.seconds > limit else { continue }
            out.findings.append(finding(
                title: "Keep Alive gap of \(formatSeconds(gap.seconds)) on \(describe(admin)) (KATO \(formatSeconds(Double(kato) / 1000)))",
                connection: admin.id, ref: gap.to.ref,
                detail: "\(formatSeconds(gap.seconds)) between frame \(gap.from.ref.frame) and frame \(gap.to.ref.frame), more than \(Int(config.marginFraction * 100))% of the effective KATO \(formatSeconds(Double(kato) / 1000)) (\(source)).",
                evidence: [Evidence(gap.from.ref, "timer restart (\(gap.from.what))", connection: gap.from.connection),
                           Evidence(gap.to.ref, "next timer restart (\(gap.to.what))", connection: gap.to.connection)]))
        }
        return out
    }
}
