/// What TCP showed of one NVMe/TCP connection, in host and target terms: the handshake, each
/// side's retransmissions, reordering, zero windows and resets, and what the capture missed.
/// Taken from the pipeline's summary when the connection closes or ends.
///
/// A class (immutable, shared): a connection's model is copied whole wherever a rule reads one,
/// and these figures, frames included, are 400 bytes a copy would move for nothing.
public final class ConnectionTCP: Sendable {
    /// Segments of the connection in the capture, both directions.
    public let packets: Int
    /// What each side advertised and sent (`TCPHealth.Side`).
    public let host: TCPHealth.Side
    public let target: TCPHealth.Side
    /// The reassembly's counts of the bytes each side sent.
    public let hostStream: StreamStats
    public let targetStream: StreamStats
    /// The SYN and SYN to the ACK of the SYN-ACK (nil when the handshake is not in the capture).
    public let syn: FrameRef?
    public let handshakeRTTNs: Int64?

    /// Nothing seen yet (a connection whose TCP connection has not ended).
    public static let none = ConnectionTCP()

    init() {
        packets = 0
        host = TCPHealth.Side()
        target = TCPHealth.Side()
        hostStream = StreamStats()
        targetStream = StreamStats()
        syn = nil
        handshakeRTTNs = nil
    }

    init(_ flow: ConnectionSummary, hostIsClient: Bool) {
        packets = flow.packets
        host = flow.health.side(byClient: hostIsClient)
        target = flow.health.side(byClient: !hostIsClient)
        hostStream = hostIsClient ? flow.clientStream : flow.serverStream
        targetStream = hostIsClient ? flow.serverStream : flow.clientStream
        syn = flow.health.synRef
        handshakeRTTNs = flow.health.handshakeRTTNs
    }

    /// Segments that repeated bytes already seen: the sender's retransmissions (wire loss, or an
    /// acknowledgement lost on the way back), both sides.
    public var retransmittedSegments: Int { hostStream.retransmittedSegments + targetStream.retransmittedSegments }
    public var outOfOrderSegments: Int { hostStream.outOfOrderSegments + targetStream.outOfOrderSegments }
    /// Bytes neither the capture nor a retransmission showed (lost before the capture point, or
    /// dropped by the capture), both sides.
    public var missingBytes: UInt64 { hostStream.gapBytes + targetStream.gapBytes }
    /// Bytes the snap length cut: on the wire, merely not stored.
    public var notCapturedBytes: UInt64 { hostStream.notCapturedBytes + targetStream.notCapturedBytes }
    public var rsts: Int { host.rsts + target.rsts }
    public var zeroWindows: Int { host.zeroWindows + target.zeroWindows }
    /// The longest zero window of either side, with the side that advertised it.
    public var longestZeroWindow: (side: Side, ns: Int64, start: FrameRef)? {
        var best: (side: Side, ns: Int64, start: FrameRef)?
        for (side, figures) in [(Side.host, host), (.target, target)] {
            guard let start = figures.longestZeroWindowStart else { continue }
            if best.map({ figures.longestZeroWindowNs > $0.ns }) ?? true { best = (side, figures.longestZeroWindowNs, start) }
        }
        return best
    }
}

/// The host's last Property Set of the Controller Configuration property (CC, offset 14h): how it
/// meant to end the association. NVMe Base 2.1 §3.6.3: CC.SHN set asks for a shutdown (what a
/// Linux host sends when it disconnects), CC.EN cleared resets the controller (a host reset); a
/// host in error recovery closes its queues without either.
public struct HostShutdown: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// CC.SHN non-zero: a normal or abrupt shutdown notification.
        case shutdown
        /// CC.EN cleared, CC.SHN zero: the controller reset.
        case reset
        /// A Property Set whose offset or value the snap length cut.
        case valueNotCaptured = "value-not-captured"
    }
    public var ref: FrameRef
    public var kind: Kind
    /// CC as written (nil when not captured).
    public var cc: UInt32?
}
