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

/// A PDU with its NVMe meaning.
public struct DecodedPDU: Sendable {
    /// The PDU's fields. A plain value (no references): it is built, moved and dropped for every
    /// PDU, and an enum holding references is destroyed through a generic witness (~150
    /// instructions per PDU; callgrind). The references ride beside it.
    public enum Body: Sendable {
        case icReq(InitializeConnection?)
        case icResp(InitializeConnection?)
        case termReq(TerminationRequest?)
        case command(NVMeCommand)
        /// A CapsuleResp; its command, when matched, is `completed`.
        case completion(NVMeCompletion)
        case h2cData(DataTransferHeader?)
        /// C2HData; with SUCCESS it also completes its command (`completed`).
        case c2hData(DataTransferHeader?, completion: NVMeCompletion?)
        case r2t(DataTransferHeader?)
        /// The header digest did not match: the header's fields are not trusted.
        case untrusted
        /// The capture cut the header before the fields that give the PDU its meaning (a
        /// CapsuleCmd's CID, a CapsuleResp's CID): framed, counted, not decoded.
        case notCaptured
    }

    public var pdu: PDU
    public var body: Body
    /// The Connect data this PDU carried in full: in-capsule on the Connect's CapsuleCmd, or on
    /// the H2CData that brought its last byte.
    public var connectData: ConnectData?
    /// The command this PDU completed (CapsuleResp, C2HData with SUCCESS), when the capture
    /// showed it.
    public var completed: CompletedCommand?

    public init(pdu: PDU, body: Body, connectData: ConnectData? = nil, completed: CompletedCommand? = nil) {
        self.pdu = pdu
        self.body = body
        self.connectData = connectData
        self.completed = completed
    }
    /// True for PDUs the host sends (by PDU type).
    public var fromHost: Bool { pdu.type.fromHost }
}

/// A PDU of plain I/O traffic as the session model needs it (see
/// `NVMeConnectionDecoder.decodePlainIO`): where and when, which way, and for a command its kind.
public struct PlainIOPDU: Sendable {
    public enum Kind: Sendable {
        /// A command (it restarts the controller's timer when TBKAS is set).
        case command(CommandKind)
        /// A completion, a data PDU or an R2T.
        case other
    }
    public var connection: Int
    public var src: Endpoint
    public var dst: Endpoint
    public var kind: Kind
    public var fromHost: Bool
    public var firstRef: FrameRef
    public var ref: FrameRef
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
