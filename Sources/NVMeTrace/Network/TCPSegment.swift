/// TCP header flags (RFC 9293 §3.1).
public struct TCPFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
}

/// A decoded TCP segment. `payload` points into the packet and is only valid during the packet's
/// callback. `payloadLength` is what the IP header announces; when the capture was cut by the
/// snap length, fewer bytes (`payload.count`) were captured and the rest is missing.
public struct TCPSegment {
    public var src: Endpoint
    public var dst: Endpoint
    public var seq: UInt32
    public var ack: UInt32
    public var flags: TCPFlags
    public var payload: UnsafeRawBufferPointer
    public var payloadLength: Int
    /// The receive window the sender advertises, as on the wire (unscaled: zero is zero at any
    /// window scale, which is all the analysis asks of it; RFC 9293 §3.1).
    public var window: UInt16 = 0xFFFF
}
