/// A command matched with its completion.
///
/// A class: it rides in every completing PDU's decoded form, and as a value its command and
/// detail were copied and destroyed several times per I/O on the way to the session model
/// (callgrind). Immutable.
public final class CompletedCommand: Sendable, Equatable {
    public let command: NVMeCommand
    /// Frame of the CapsuleCmd.
    public let issued: FrameRef
    public let latencyNs: Int64
    public let detail: CompletionDetail
    /// Connect data, when the command was a Connect whose data was seen.
    public let connectData: ConnectData?

    init(command: NVMeCommand, issued: FrameRef, latencyNs: Int64, detail: CompletionDetail, connectData: ConnectData?) {
        self.command = command
        self.issued = issued
        self.latencyNs = latencyNs
        self.detail = detail
        self.connectData = connectData
    }

    public static func == (a: CompletedCommand, b: CompletedCommand) -> Bool {
        a === b || (a.command == b.command && a.issued == b.issued && a.latencyNs == b.latencyNs && a.detail == b.detail
            && a.connectData == b.connectData)
    }
}

/// A command still waiting for its completion: its CID, what kind of command, and the frame that
/// carried it: what the rules name, not the whole decoded command, which the session model would
/// keep per connection.
public struct OutstandingCommand: Sendable, Equatable {
    public var cid: UInt16
    public var kind: CommandKind
    public var issued: FrameRef
    public var name: String { kind.name }
}

/// Something notable the NVMe decoder saw (reported as a warning).
public enum NVMeDecodeEvent: Sendable, Equatable {
    /// A completion for a command the capture did not show (started mid-connection, or lost).
    case unmatchedCompletion(cid: UInt16)
    /// A command reused a CID that was still outstanding.
    case cidReused(cid: UInt16)
    /// Connect data shorter than its 1024 bytes.
    case shortConnectData(bytes: Int)
}
