/// Asynchronous events the controller reported, and what the host did about them.
struct AsyncEventRule: Rule {
    let id = "async-event"
    let severity = Severity.info
    let summary = "The controller reported an asynchronous event (AER completion)"
    let explanation = """
        A controller reports events by completing an Asynchronous Event Request the host left \
        outstanding (NVMe Base 2.1 §5.1.2): Dword 0 gives the event type, information and the log \
        page to read. A discovery controller announces a changed discovery log (Notice F0h, log page \
        70h), an I/O controller an ANA change (03h, log page 0Ch) or changed namespaces (00h, log \
        page 04h). The host is expected to read that log page; a teardown or a reconnect that \
        follows soon after often has the event as its cause (a port or subsystem reconfigured on \
        the target). An AER aborted when its queue is deleted is no event and is not listed.
        """
    let fix = "Read the event with the target's configuration change log: a port, subsystem, namespace or ANA group changed on the target at that moment."

    /// Events described one by one in a finding; the rest are counted.
    static let described = 5

    func evaluate(_ model: SessionModel, config: RuleConfig) -> RuleResult {
        var out = RuleResult()
        for i in model.connections.indices where !model.connections[i].asyncEvents.isEmpty {
            let c = model.connections[i]
            let events = c.asyncEvents.kept
            var evidence: [Evidence] = []
            var lines: [String] = []
            for e in events.prefix(Self.described) {
                let name = "\(e.event.typeName): \(e.event.infoName)"
                evidence.append(Evidence(e.ref, "Asynchronous Event completion (\(e.event.infoName))", connection: c.id))
                var line = "frame \(e.ref.frame): \(name), log page \(hexValue(e.event.logPage)) (\(NVMeOpcodes.logPageName(e.event.logPage)))"
                if let read = e.logRead {
                    evidence.append(Evidence(read.ref, "Get Log Page \(hexValue(read.lid)) after the event", connection: c.id))
                    line += "; the host read log page \(hexValue(read.lid)) at frame \(read.ref.frame), \(formatSeconds(seconds(e.ref, read.ref))) later"
                } else {
                    line += "; the host read no log page on this connection after it"
                }
                lines.append(line)
            }
            if c.asyncEvents.total > lines.count {
                lines.append("\(c.asyncEvents.total - lines.count) more")
            }
            var related: [Int] = []
            // What followed: the association torn down, and the host's next association to the
            // same target.
            if let last = events.last, let end = c.end, end.how != .captureEnd, end.ref.timeNs >= last.ref.timeNs {
                let who = end.by.map { $0 == .host ? "the host" : "the target" } ?? "one side"
                evidence.append(Evidence(end.ref, "\(end.by == .host ? "host" : "target") teardown (\(end.how.rawValue))", connection: c.id))
                var line = "\(who) closed the connection (\(end.how.rawValue), frame \(end.ref.frame)) \(formatSeconds(seconds(last.ref, end.ref))) after the last event"
                if let next = nextAssociation(after: c, from: end.ref, in: model), let connect = next.connectRef {
                    evidence.append(Evidence(connect, "Connect of the next association", connection: next.id))
                    related.append(next.id)
                    line += "; the host connected again on connection \(next.id) (Connect frame \(connect.frame), \(formatSeconds(seconds(end.ref, connect))) later)"
                } else {
                    line += "; no new association to \(c.target) followed in the capture"
                }
                lines.append(line)
            }
            let names = Array(Set(events.map(\.event.infoName))).sorted()
            let count = c.asyncEvents.total
            out.findings.append(finding(
                title: "\(count == 1 ? "Asynchronous event" : "\(count) asynchronous events") (\(names.joined(separator: ", "))) on \(describe(c))",
                connection: c.id, ref: events[0].ref, detail: lines.joined(separator: "; ") + ".",
                evidence: evidence, related: related,
                basis: [.observed("Asynchronous Event Request completion\(count == 1 ? "" : "s") with a success status: event type, information and log page from Dword 0")]))
        }
        return out
    }

    /// The host's first association to the same target endpoint made after `ref`: an admin queue
    /// whose Connect came later, from the same host address.
    private func nextAssociation(after c: ConnectionModel, from ref: FrameRef, in model: SessionModel) -> ConnectionModel? {
        model.connections
            .filter { $0.id != c.id && $0.host.address == c.host.address && $0.target == c.target && $0.queueKind == .admin }
            .filter { ($0.connectRef?.timeNs ?? .min) >= ref.timeNs }
            .min { ($0.connectRef?.timeNs ?? 0) < ($1.connectRef?.timeNs ?? 0) }
    }
}
