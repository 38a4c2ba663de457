/// Commands still waiting for their completion when their queue's connection closed.
struct CommandsLostRule: Rule {
    let id = "commands-lost"
    let severity = Severity.warning
    let summary = "Commands were still outstanding when their queue's connection closed"
    let explanation = """
        A command whose connection closes before its completion arrives is lost with the queue: \
        the host fails it or retries it on the next association (Linux requeues I/O when a path \
        comes back), and its time waiting is part of the outage an application saw. Asynchronous \
        Event Requests wait by design and are left out (one aborted when its queue is deleted is \
        no event either).
        """
    let fix = "Find why the connection closed while commands were in flight (command-timeout, keep-alive-expired, a target teardown); the oldest command's age says how long I/O stalled before it."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for i in model.connections.indices where model.connections[i].waitingCommands > 0 || model.connections[i].midStream {
            let c = model.connections[i]
            let w = WaitingCommands(c, model: model)
            guard w.closed, let end = c.end else { continue }
            let unknown = c.waitingCommands - w.certain.count - w.uncertain.count
            if let oldest = w.certain.first {
                let count = w.certain.count + (w.uncertain.isEmpty ? unknown : 0)
                let who = end.by == .host ? "host" : "target"
                var evidence = w.certain.prefix(3).map { Evidence($0.issued, "\(commandName($0)) sent", connection: c.id) }
                evidence.append(Evidence(end.ref, "\(who) teardown (\(end.how.rawValue))", connection: c.id))
                let names = w.certain.prefix(5).map { "\(commandName($0)) at frame \($0.issued.frame)" }.joined(separator: ", ")
                out.findings.append(finding(
                    title: "\(count) command\(count == 1 ? "" : "s") outstanding when \(describe(c)) closed; the oldest, \(commandName(oldest)), sent \(formatSeconds(w.age(oldest))) before",
                    connection: c.id, ref: end.ref,
                    detail: "the \(who) closed the connection (\(end.how.rawValue), frame \(end.ref.frame)) with \(names)\(count > 5 ? " and \(count - 5) more" : "") still waiting for a completion.",
                    evidence: evidence,
                    basis: [.observed("the commands' capsules and no completion for their CIDs before the close, nothing of the controller's side missing since they were sent")]))
                continue
            }
            var reasons: [String] = []
            if !w.uncertain.isEmpty {
                reasons.append("\(c.waitingCommands) command(s) had no completion in the capture when it closed, but controller→host bytes went missing after they were sent (frame \(c.completionsMissedAt?.frame ?? 0)): their completions may have been among them")
            }
            if c.midStream { reasons.append(commandsBeforeCaptureReason) }
            if !reasons.isEmpty { out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: reasons.joined(separator: "; "))) }
        }
        return out
    }
}
