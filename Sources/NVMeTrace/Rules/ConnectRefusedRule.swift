/// Connection attempts to an NVMe/TCP target port that the target refused or never answered.
struct ConnectRefusedRule: Rule {
    let id = "connect-refused"
    let severity = Severity.warning
    let summary = "Connection attempts to an NVMe/TCP port were refused (RST) or never answered"
    let explanation = """
        A host connects (or reconnects) to a target port with a TCP SYN. A RST in answer means \
        nothing listens on that address and port (RFC 9293 §3.10.7.1): the port is disabled or \
        removed, the target is not running, or the host has the wrong address. SYNs that get no \
        answer at all mean the target is unreachable (down, a firewall, a broken path). A Linux \
        host retries every reconnect_delay (10 s by default) until ctrl_loss_tmo (600 s) and then \
        removes the controller; until then its I/O waits.
        """
    let fix = "Check that the target port is enabled and listening on that address (nvmetcli ls, ss -ltn on the target) and that the path is open (ping, firewall rules); refusals right after a teardown mean the target took the port down."

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for f in model.failedConnects {
            var parts: [String] = []
            if f.refused > 0 { parts.append("\(f.refused) refused (RST)") }
            if f.unanswered > 0 { parts.append("\(f.unanswered) unanswered") }
            let hosts = f.hosts.map(\.description).sorted()
            var evidence = [Evidence(f.first.attempt.syn, "SYN to \(f.target)")]
            if case .refused(_, let rst) = f.first.attempt { evidence.append(Evidence(rst, "RST from \(f.target)")) }
            if f.last != f.first {
                evidence.append(Evidence(f.last.attempt.syn, "last SYN to \(f.target)"))
                if case .refused(_, let rst) = f.last.attempt { evidence.append(Evidence(rst, "RST from \(f.target)")) }
            }
            var detail = "from \(hosts.count == 1 ? "host \(hosts[0])" : "\(hosts.count)\(f.moreHosts ? "+" : "") hosts (\(hosts.prefix(5).joined(separator: ", "))\(hosts.count > 5 ? ", …" : ""))"): \(f.count == 1 ? "at frame \(f.first.attempt.syn.frame)" : "the first at frame \(f.first.attempt.syn.frame), the last at frame \(f.last.attempt.syn.frame), \(formatSeconds(seconds(f.first.attempt.syn, f.last.attempt.syn))) apart")"
            if case .unanswered(_, let syns, _) = f.last.attempt, seconds(f.last.attempt.syn, model.captureEnd) < Self.pendingSeconds {
                detail += "; the last SYN (\(syns) sent) was still unanswered when the capture ended \(formatSeconds(seconds(f.last.attempt.syn, model.captureEnd))) later"
            }
            // Whether the target accepted connections before or after: a port taken down for a while.
            // Read in place: a copy of every connection's model per target would cost thousands.
            func accepted(_ i: Int) -> Bool { model.connections[i].target == f.target && model.connections[i].tcp.syn != nil }
            if let b = model.connections.indices.last(where: { accepted($0) && model.connections[$0].firstRef.timeNs < f.first.attempt.syn.timeNs }) {
                let before = model.connections[b]
                detail += "; the target had accepted connection \(before.id) (frame \(before.firstRef.frame)) before"
            }
            if let n = model.connections.indices.first(where: { accepted($0) && model.connections[$0].firstRef.timeNs > f.last.attempt.syn.timeNs }) {
                let after = model.connections[n]
                detail += "; it accepted connection \(after.id) (frame \(after.firstRef.frame)) \(formatSeconds(seconds(f.last.attempt.last, after.firstRef))) after the last failed attempt"
                evidence.append(Evidence(after.firstRef, "SYN of the next accepted connection", connection: after.id))
            }
            out.findings.append(finding(
                title: "\(f.count) connection attempt\(f.count == 1 ? "" : "s") to \(f.target) failed: \(parts.joined(separator: ", "))",
                connection: nil, ref: f.first.attempt.syn, detail: detail + ".", evidence: evidence,
                basis: [.observed("TCP handshakes to an NVMe/TCP port with no SYN-ACK from the target\(f.refused > 0 ? " (a RST instead)" : "")")]))
        }
        if model.failedConnectsUntracked > 0 {
            // Never silence: attempts to targets past the bound are counted.
            out.findings.append(finding(
                title: "\(model.failedConnectsUntracked) more failed connection attempts to further targets, not itemised",
                connection: nil, ref: model.captureEnd, detail: "more target ports than the \(SessionTracker.maxFailedConnectTargets) tracked had failed attempts.", evidence: []))
        }
        return out
    }

    /// A SYN this close to the end of the capture may have been answered after it.
    static let pendingSeconds = 3.0
}
