/// What the command rules (`command-timeout`, `commands-lost`) share: a connection's commands
/// still waiting for a completion when it ended, and how sure the capture is of each.
struct WaitingCommands {
    /// Seen waiting with nothing hidden after them: sent after the last controller→host bytes
    /// the capture missed.
    var certain: [OutstandingCommand]
    /// Sent before controller→host bytes went missing: their completion may have been there.
    var uncertain: [OutstandingCommand]
    /// Where waiting was judged: the connection's close, or the end of the capture.
    var until: FrameRef
    var closed: Bool

    init(_ c: ConnectionModel, model: SessionModel) {
        let end = c.end ?? ConnectionEnd(by: nil, how: .captureEnd, ref: model.captureEnd)
        closed = end.how != .captureEnd
        until = closed ? end.ref : model.captureEnd
        let missed = c.completionsMissedAt
        certain = c.oldestWaitingCommands.filter { w in missed.map { w.issued.timeNs > $0.timeNs } ?? true }
        uncertain = c.oldestWaitingCommands.filter { w in missed.map { w.issued.timeNs <= $0.timeNs } ?? false }
    }

    func age(_ w: OutstandingCommand) -> Double { seconds(w.issued, until) }
}

/// "Read (CID 92)".
func commandName(_ w: OutstandingCommand) -> String { "\(w.name) (CID \(w.cid))" }

/// Why a picked-up connection's commands cannot all be judged.
let commandsBeforeCaptureReason = "picked up mid-stream: commands sent before the capture began, and their completions, are not known"

/// The host's timeout for a queue (nil when the queue kind is unknown).
func hostTimeout(_ c: ConnectionModel, _ config: RuleConfig) -> (seconds: Double, kind: String)? {
    switch c.queueKind {
    case .some(.io): (config.ioTimeoutSeconds, "I/O")
    case .some(.admin): (config.adminTimeoutSeconds, "admin")
    case .none: nil
    }
}
