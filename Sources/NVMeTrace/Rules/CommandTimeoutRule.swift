/// A command outstanding for longer than the host's timeout.
struct CommandTimeoutRule: Rule {
    let id = "command-timeout"
    let severity = Severity.error
    let summary = "A command stayed unanswered for longer than the host's command timeout"
    let explanation = """
        The host gives each command a timeout (Linux: nvme_core.io_timeout, 30 s, for I/O queues; \
        admin_timeout, 60 s, for the admin queue). When it passes, a Linux host logs "timeout \
        request" with the command's tag (the CID on the wire) and starts error recovery: it closes \
        every queue of the controller and connects a new association, so I/O stalls for the \
        timeout and the reconnect. The capture shows the command sent and no completion for it \
        (CapsuleResp or C2HData with SUCCESS) for at least the timeout. An Asynchronous Event \
        Request waits by design and is not judged.
        """
    let fix = "Look at the target side at the time the command was sent: a completion that never left the target (a hung backend device, a dropped path, a target bug), or one lost on the way (a lossy or stalled TCP connection: tshark's tcp.analysis flags on this stream)."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        // By index, the cheap test first: a copy of every connection's model per rule costs a
        // retain and release of each of its references (three rules walking 2,000 connections so
        // cost 4% more instructions in all; callgrind).
        for i in model.connections.indices where model.connections[i].waitingCommands > 0 || model.connections[i].midStream {
            let c = model.connections[i]
            let w = WaitingCommands(c, model: model)
            guard let (timeout, kind) = hostTimeout(c, config) else {
                var reasons: [String] = []
                if c.waitingCommands > 0 {
                    reasons.append("\(c.waitingCommands) command(s) waiting at the end, but whether this is an admin or an I/O queue (so which timeout applies) is not known")
                }
                if c.midStream { reasons.append(commandsBeforeCaptureReason) }
                out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: reasons.joined(separator: "; ")))
                continue
            }
            let late = w.certain.filter { w.age($0) >= timeout }
            if let first = late.first {
                var evidence = late.prefix(3).map { Evidence($0.issued, "\(commandName($0)) sent", connection: c.id) }
                var detail = "\(commandName(first)) sent at frame \(first.issued.frame); no completion for it in the capture"
                if late.count > 1 {
                    detail += "; also " + late.dropFirst().prefix(4).map { "\(commandName($0)) (frame \($0.issued.frame))" }.joined(separator: ", ")
                    if late.count > 5 { detail += " and \(late.count - 5) more" }
                }
                if w.closed, let end = c.end {
                    let who = end.by == .host ? "host" : "target"
                    evidence.append(Evidence(end.ref, "\(who) teardown (\(end.how.rawValue))", connection: c.id))
                    detail += "; the \(who) closed the connection (\(end.how.rawValue), frame \(end.ref.frame)) \(formatSeconds(w.age(first))) after it was sent"
                    if end.by == .host { detail += ": the host gave up on it (a Linux host starts error recovery when its timeout passes)" }
                } else {
                    detail += "; still waiting \(formatSeconds(w.age(first))) after it was sent, at the end of the capture"
                }
                out.findings.append(finding(
                    title: "\(kind == "I/O" ? "I/O" : "Admin") command timeout: \(commandName(first)) on \(describe(c)) unanswered for \(formatSeconds(w.age(first))) (host \(kind) timeout \(formatSeconds(timeout)))",
                    connection: c.id, ref: first.issued, detail: detail + ".", evidence: evidence,
                    basis: [.observed("the command's capsule (frame \(first.issued.frame)) and no completion with CID \(first.cid) after it on this connection, nothing of the controller's side missing since")]))
                continue
            }
            var reasons: [String] = []
            if w.uncertain.contains(where: { w.age($0) >= timeout }) {
                reasons.append("a command waited \(formatSeconds(w.uncertain.map(w.age).max() ?? 0)), but controller→host bytes went missing after it was sent (frame \(c.completionsMissedAt?.frame ?? 0)): its completion may have been among them")
            }
            if c.midStream { reasons.append(commandsBeforeCaptureReason) }
            if !reasons.isEmpty { out.unjudged.append(Unjudged(rule: id, connection: c.id, reason: reasons.joined(separator: "; "))) }
        }
        return out
    }
}
