/// A TCP connection's 4-tuple, independent of direction.
public struct FlowKey: Hashable, Sendable {
    public var a: Endpoint  // the lower endpoint
    public var b: Endpoint

    @inline(__always)
    public init(_ x: Endpoint, _ y: Endpoint) {
        if x < y { a = x; b = y } else { a = y; b = x }
    }

    /// Hasher's cost grows with every value combined, and the synthesized hash combined eight
    /// (≈500 instructions per lookup; one for every packet that is not from the previous one's
    /// connection). An IPv4 address and port fit one word exactly, so two words say the same.
    public func hash(into h: inout Hasher) {
        if a.address.isV6 || b.address.isV6 {
            h.combine(a.address.hi)
            h.combine(a.address.lo)
            h.combine(b.address.hi)
            h.combine(b.address.lo)
            h.combine(UInt32(a.port) << 16 | UInt32(b.port))
        } else {
            h.combine(a.address.lo << 16 | UInt64(a.port))
            h.combine(b.address.lo << 16 | UInt64(b.port))
        }
    }
}

/// The two directions of a connection, from the initiator's (client's) point of view.
public enum Direction: Int, Sendable {
    case clientToServer = 0
    case serverToClient = 1

    public var reversed: Direction { self == .clientToServer ? .serverToClient : .clientToServer }
}

/// How one side ended its half of the connection.
public struct CloseEvent: Sendable, Equatable {
    public enum Kind: String, Sendable { case fin = "FIN", rst = "RST" }
    public var kind: Kind
    public var ref: FrameRef
}
