/// A persistent discovery connection whose Connect carried KATO 0.
struct DiscoveryKATOZeroRule: Rule {
    let id = "discovery-kato-zero"
    let severity = Severity.error
    let summary = "Persistent discovery connection whose Connect carried KATO 0"
    let explanation = """
        NVMe Base 2.1 §3.9.3.3: a host requests an explicit persistent discovery connection with a \
        non-zero Keep Alive Timeout. With KATO 0 the target falls back to its own discovery timer \
        (Linux nvmet and SPDK: 120 s, re-armed by traffic) and tears the idle connection down; the \
        host reconnects, again with KATO 0, and the cycle repeats. Linux hosts before commit \
        2e482655019a ("nvme: Use non zero KATO for persistent discovery connections") behave so.
        """
    let fix = """
        Give persistent discovery controllers a KATO (nvme-cli: `nvme discover --persistent` with \
        `--keep-alive-tmo=30`; nvme-stas sets 30 s), or run a host kernel with commit 2e482655019a.
        """

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for c in model.connections where c.queueKind != .io && c.discovery != false {
            // The rule is about discovery controllers' admin queues; what the capture cannot tell
            // is said, not skipped.
            guard let kato = c.connect?.kato, let connectRef = c.connectRef else {
                if c.queueKind == .admin || c.discovery == true {
                    let why = c.connect == nil ? "the capture starts after this connection's Connect, so the KATO it carried is unknown"
                        : "the snap length cut the Connect before its KATO field"
                    out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: why))
                }
                continue
            }
            guard kato == 0, c.queueKind == .admin else { continue }
            guard c.discovery == true else {
                out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: "the Connect carried KATO 0, but the capture does not show whether this is a discovery controller (its subsystem NQN, Identify data and discovery log reads were not captured)"))
                continue
            }
            guard c.isPersistent else { continue }
            var evidence = [Evidence(connectRef, "Connect with KATO 0", connection: c.id)]
            var facts = ["Connect at frame \(connectRef.frame) carried KATO 0 on a discovery connection that stayed open"]
            let reasons = PersistenceReason.allCases.filter { c.persistence.contains($0) }
            facts.append("persistent because: " + reasons.map(reasonText).joined(separator: "; "))
            if let log = c.lastDiscoveryLogRef {
                evidence.append(Evidence(log, "last discovery log read", connection: c.id))
            }
            if let first = c.keepAlives.first {
                evidence.append(Evidence(first.command, "first Keep Alive", connection: c.id))
            }
            if let end = c.end, end.by == .target {
                let last = c.lastHostCommand ?? connectRef
                facts.append("the target tore it down (\(end.how.rawValue), frame \(end.ref.frame)) \(formatSeconds(seconds(last, end.ref))) after the host's last command (frame \(last.frame))")
                evidence.append(Evidence(last, "host's last command", connection: c.id))
                evidence.append(Evidence(end.ref, "target teardown (\(end.how.rawValue))", connection: c.id))
            }
            var related: [Int] = []
            // What later associations of the same chain did: the upstream fix's signature.
            if let ctl = c.controller, let chain = model.controllers[ctl].chain {
                let later = model.chains[chain].controllers.drop { $0 != ctl }.dropFirst()
                for next in later {
                    guard let n = model.connection(model.controllers[next].adminConnection), let nref = n.connectRef else { continue }
                    related.append(n.id)
                    if let kato = n.connect?.kato, kato > 0 {
                        facts.append("the reconnect on connection \(n.id) (frame \(nref.frame)) carries KATO \(kato) ms")
                    } else if let ka = n.keepAlives.first {
                        let gap = n.keepAliveSeries.maxGap.map { ", largest gap \(formatSeconds($0.seconds))" } ?? ""
                        facts.append("the reconnect on connection \(n.id) (Connect frame \(nref.frame), still KATO 0) sends Keep Alive from frame \(ka.command.frame) on (\(n.keepAlives.count) in all\(gap)): the host switched to a non-zero KATO after connecting, as upstream fix 2e482655019a does")
                    } else {
                        facts.append("the reconnect on connection \(n.id) (frame \(nref.frame)) again carries KATO 0 and sends no Keep Alive")
                    }
                    break
                }
            }
            var basis: [Basis] = [.observed("Connect SQE: KATO 0 ms (frame \(connectRef.frame))")]
            if let d = c.discoveryBasis { basis.append(Basis(inferred: d.inferred, evidence: "discovery controller: " + d.evidence)) }
            if let q = c.queueBasis, q.inferred { basis.append(.inferred("admin queue: " + q.evidence)) }
            if let ctl = c.controller, let chainBasis = model.controllers[ctl].chainBasis, c.persistence.contains(.reconnect) {
                basis.append(.inferred("a reconnect of the previous association: \(chainBasis.evidence)"))
            }
            out.findings.append(finding(
                title: "Persistent discovery connection with KATO 0: \(describe(c))",
                connection: c.id, ref: connectRef, detail: facts.joined(separator: "; ") + ".",
                evidence: evidence, related: related, basis: basis))
        }
        return out
    }

    func reasonText(_ r: PersistenceReason) -> String {
        switch r {
        case .outlivedDiscovery: "open for more than 10 s after its discovery log read"
        case .outstandingAER: "an Asynchronous Event Request stayed outstanding"
        case .reconnect: "it re-made an association the target had torn down"
        case .sendsKeepAlives: "the host sends Keep Alive on it"
        }
    }
}
