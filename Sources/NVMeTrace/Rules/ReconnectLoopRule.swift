/// A chain of associations repeatedly torn down by the target and re-made by the host.
struct ReconnectLoopRule: Rule {
    let id = "reconnect-loop"
    let severity = Severity.warning
    let summary = "Host re-made associations the target tore down, again and again"
    let explanation = """
        Three or more associations of one host to one subsystem, at least two of them torn down by \
        the target and re-made by the host: the signature of a persistent discovery connection with \
        KATO 0 on a host without commit 2e482655019a (a target expiry every few minutes, forever), \
        or of a keep-alive problem that recurs after every reconnect.
        """
    let fix = "See the teardown reason of the first association (discovery-kato-zero, keep-alive-expired)."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for chain in model.chains where chain.controllers.count >= 3 {
            let admins = chain.controllers.compactMap { model.connection(model.controllers[$0].adminConnection) }
            // Torn down by the target and followed by another association.
            let remade = admins.dropLast().filter { $0.end?.by == .target }
            // The first association may have begun before the capture (no Connect in it).
            guard remade.count >= 2, let first = admins.first else { continue }
            let firstRef = first.connectRef ?? first.firstRef
            var evidence: [Evidence] = []
            for a in admins {
                if let r = a.connectRef { evidence.append(Evidence(r, "Connect", connection: a.id)) }
                if let e = a.end, e.by == .target { evidence.append(Evidence(e.ref, "target teardown (\(e.how.rawValue))", connection: a.id)) }
            }
            let intervals = zip(admins, admins.dropFirst()).compactMap { a, b -> Double? in
                guard let r1 = a.connectRef, let r2 = b.connectRef else { return nil }
                return seconds(r1, r2)
            }
            let every = intervals.isEmpty ? "" : ", a new association every \(formatSeconds(intervals.reduce(0, +) / Double(intervals.count))) on average"
            var basis: [Basis] = [.observed("\(admins.filter { $0.connectRef != nil }.count) Connects and \(remade.count) target teardowns")]
            for ctl in chain.controllers {
                if let b = model.controllers[ctl].chainBasis, let a = model.connection(model.controllers[ctl].adminConnection) {
                    basis.append(Basis(inferred: b.inferred, evidence: "connection \(a.id) in the chain: \(b.evidence)"))
                }
            }
            let who = chain.hostnqn ?? "host \(chain.host) (host NQN not captured)"
            let what = chain.subnqn ?? "a subsystem (NQN not captured)"
            out.findings.append(finding(
                title: "Reconnect loop: \(admins.count) associations of \(who) to \(what) at \(chain.target), \(remade.count) torn down by the target",
                connection: first.id, ref: firstRef,
                detail: "connections \(admins.map { String($0.id) }.joined(separator: ", ")); the target tore down \(remade.map { String($0.id) }.joined(separator: ", ")) and the host reconnected each time\(every).",
                evidence: evidence, related: admins.dropFirst().map(\.id), basis: basis))
        }
        // Associations torn down by the target that no controller (so no chain) could be found for.
        out.unjudged += unjudgedWithoutController(model, rule: id) { $0.end?.by == .target && $0.queueKind != .io }
        return out
    }
}
