/// A TCP connection's 4-tuple, independent of direction.
public struct FlowKey: Hashable, Sendable {
    public var a: Endpoint  // the lower endpoint
    public var b: Endpoint

    @inline(__always)
    public init(_ x: Endpoint, _ y: Endpoint) {
        if x < y { a = x; b = y } else { a = y; b = x }
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
