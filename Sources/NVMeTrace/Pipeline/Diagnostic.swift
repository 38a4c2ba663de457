/// A warning or error about the input, with where it was found.
public struct Diagnostic: Sendable, CustomStringConvertible {
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

    public var severity: Severity
    public var kind: Kind
    public var file: String
    public var frame: Int
    public var connection: Int?
    public var message: String

    public var description: String {
        var s = "\(file): frame \(frame): "
        if let connection { s += "connection \(connection): " }
        return s + message
    }
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
