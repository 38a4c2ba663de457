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
            guard let view = KeepAliveView(ctl, model, config: config), view.admin.end?.by != .target else { continue }
            let admin = view.admin
            if case .unknown = view.kato {
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: view.unknownReason))
                continue
            }
            // A gap across host bytes the capture lost may hold a restart: it is no evidence of a
            // long gap, but where it would be too long the rule says it could not judge.
            let acrossLoss = view.series.maxGapAcrossLoss.flatMap { g -> Unjudged? in
                switch view.compare(g.seconds, fraction: config.marginFraction, what: "gap") {
                case .notApplicable, .within: return nil
                case .undecided, .exceeds:
                    return Unjudged(rule: id, connection: admin.id, reason: "the \(formatSeconds(g.seconds)) gap between frame \(g.from.ref.frame) and frame \(g.to.ref.frame) spans bytes the host sent that the capture lost: timer restarts may have been among them")
                }
            }
            guard let gap = view.series.maxGap else {
                if let acrossLoss { out.unjudged.append(acrossLoss) }
                continue
            }
            let kato: Double
            let katoText: String
            switch view.compare(gap.seconds, fraction: config.marginFraction, what: "gap") {
            case .notApplicable, .within:
                if let acrossLoss { out.unjudged.append(acrossLoss) }
                continue
            case .undecided(let reason):
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: reason))
                continue
            case .exceeds(let k, let text):
                kato = k
                katoText = text
            }
            if view.seriesIncomplete {
                out.unjudged.append(Unjudged(rule: id, connection: admin.id, reason: "the \(formatSeconds(gap.seconds)) gap is between commands of the admin queue only: with TBKAS \(ctl.tbkas == nil ? "unknown" : "set"), commands of connection \(view.unseenQueues.map(String.init).joined(separator: ", ")) (whose controller the capture tells only by inference, or not at all) may have restarted the timer within it"))
                continue
            }
            out.findings.append(finding(
                title: "Keep Alive gap of \(formatSeconds(gap.seconds)) on \(describe(admin)) (\(view.katoTitle))",
                connection: admin.id, ref: gap.to.ref,
                detail: "\(formatSeconds(gap.seconds)) between frame \(gap.from.ref.frame) and frame \(gap.to.ref.frame), more than \(Int(config.marginFraction * 100))% of \(formatSeconds(kato)): \(katoText).",
                evidence: [Evidence(gap.from.ref, "timer restart (\(gap.from.what))", connection: gap.from.connection),
                           Evidence(gap.to.ref, "next timer restart (\(gap.to.what))", connection: gap.to.connection)],
                basis: view.basis))
        }
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.by != .target && $0.queueKind != .io }
        return out
    }
}
