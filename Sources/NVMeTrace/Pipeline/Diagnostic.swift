/// A warning or error about the input, with where it was found: a typed event with a stable id,
/// rendered to prose only for a reader (Report/DiagnosticText.swift).
public struct Diagnostic: Sendable {
    public enum Severity: String, Sendable { case warning, error }

    /// What kind of problem: a stable id that the JSON report counts and a script, a test or a
    /// filter can key on (the message is prose and may change). docs/reports.md lists them.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        // The capture as a whole, and packets before TCP.
        case timeBackwards = "capture.time-backwards"
        case malformedPacket = "packet.malformed"
        case unsupportedLinkType = "packet.unsupported-link-type"
        // TCP.
        case bytesMissing = "tcp.bytes-missing"
        case conflictingRetransmission = "tcp.conflicting-retransmission"
        case decodedLate = "tcp.decoded-late"
        // NVMe/TCP PDUs.
        case decodingStartsLate = "pdu.decoding-starts-late"
        case invalidHeader = "pdu.invalid-header"
        case resynchronized = "pdu.resync"
        case unframedAtEnd = "pdu.unframed-at-end"
        case truncatedAtEnd = "pdu.truncated-at-end"
        case headerDigestMismatch = "pdu.header-digest-mismatch"
        case dataDigestMismatch = "pdu.data-digest-mismatch"
        case wrongDirection = "pdu.wrong-direction"
        case tls = "pdu.tls"
        // NVMe.
        case unmatchedCompletion = "nvme.unmatched-completion"
        case cidReused = "nvme.cid-reused"
        case shortConnectData = "nvme.short-connect-data"
        /// The per-connection (or packet-level) limit was reached; later ones are not reported.
        case suppressed = "diagnostics.suppressed"
    }

    /// One direction of an NVMe/TCP connection.
    public enum Side: Sendable, Equatable {
        case hostToController, controllerToHost
    }

    /// How a connection on a port not known to carry NVMe/TCP came to be decoded as such.
    public enum Recognition: Sendable, Equatable {
        /// A run of PDU headers in its own bytes (`MidStreamDetector`).
        case runOfPDUHeaders
        /// Its target was shown to speak NVMe/TCP by the ICReq of another connection.
        case targetProven(Endpoint, byConnection: Int)
    }

    /// What was found, with its particulars: a typed value, which the stages produce and the
    /// report renders (`message`, Report/DiagnosticText.swift). Each has one stable id (`kind`).
    public enum Event: Sendable, Equatable {
        /// A timestamp `stepNs` earlier than frame `previousFrame`'s (the first such step).
        case timeBackwards(stepNs: Int64, previousFrame: Int)
        /// At the end: how often time stepped back, and the largest step (at this frame).
        case timeBackwardsRepeatedly(times: Int, largestStepNs: Int64)
        case malformedPacket(String)
        case unsupportedLinkType(Int32)
        /// Bytes lost before the capture point (`GapCause.lost`).
        case bytesMissing(Side, streamOffset: UInt64, bytes: UInt64, insidePDU: Bool)
        case conflictingRetransmission(Side, segments: Int)
        /// A connection set aside is decoded from here on; its earlier bytes were not kept.
        case decodedLate(Recognition)
        /// Decoding of one direction starts `skipped` bytes in.
        case decodingStartsLate(Side, skipped: UInt64, why: Recognition)
        case invalidHeader(Side, streamOffset: UInt64, HeaderProblem)
        case resynchronized(Side, streamOffset: UInt64, skipped: UInt64)
        case unframedAtEnd(Side, streamOffset: UInt64, skipped: UInt64)
        case truncatedAtEnd(Side, streamOffset: UInt64, missing: Int)
        case headerDigestMismatch(PDUType, received: UInt32, computed: UInt32)
        case dataDigestMismatch(PDUType, received: UInt32, computed: UInt32)
        /// A PDU type sent by the side that does not send it.
        case wrongDirection(PDUType, byInitiator: Bool)
        case tls
        case unmatchedCompletion(cid: UInt16)
        case cidReused(cid: UInt16)
        case shortConnectData(bytes: Int)
        /// The limit of warnings was reached: for a connection, or (`connection` false) for
        /// packets outside any.
        case suppressed(connection: Bool)

        public var kind: Kind {
            switch self {
            case .timeBackwards, .timeBackwardsRepeatedly: .timeBackwards
            case .malformedPacket: .malformedPacket
            case .unsupportedLinkType: .unsupportedLinkType
            case .bytesMissing: .bytesMissing
            case .conflictingRetransmission: .conflictingRetransmission
            case .decodedLate: .decodedLate
            case .decodingStartsLate: .decodingStartsLate
            case .invalidHeader: .invalidHeader
            case .resynchronized: .resynchronized
            case .unframedAtEnd: .unframedAtEnd
            case .truncatedAtEnd: .truncatedAtEnd
            case .headerDigestMismatch: .headerDigestMismatch
            case .dataDigestMismatch: .dataDigestMismatch
            case .wrongDirection: .wrongDirection
            case .tls: .tls
            case .unmatchedCompletion: .unmatchedCompletion
            case .cidReused: .cidReused
            case .shortConnectData: .shortConnectData
            case .suppressed: .suppressed
            }
        }
    }

    public var severity: Severity
    public var event: Event
    public var kind: Kind { event.kind }
    public var file: String
    public var frame: Int
    public var connection: Int?
}

/// Options for the decode pipeline.
public struct AnalyzerOptions: Sendable {
    /// TCP ports decoded as NVMe/TCP (either side).
    public var ports: Set<UInt16> = [4420, 8009]
    public var verifyDataDigests = false
    /// Out-of-order bytes buffered per direction before a hole is given up as a gap.
    public var maxBufferedBytesPerDirection = 4 << 20
    public var maxFlows = 200_000
    public var maxPDULength = PDUHeaderCheck.defaultMaxPDULength
    /// Identical warnings beyond this many per connection are counted, not repeated.
    public var maxWarningsPerConnection = 20

    public init() {}
}
