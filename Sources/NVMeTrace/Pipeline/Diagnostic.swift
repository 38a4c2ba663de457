/// A warning or error about the input, with where it was found.
public struct Diagnostic: Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable { case warning, error }
    public var severity: Severity
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
