/// Result of checking a digest.
public enum DigestStatus: Sendable, Equatable {
    /// The PDU carries no such digest.
    case absent
    /// Present but not checked (data digests unless `--verify-data-digests`).
    case notVerified
    case ok
    case mismatch(received: UInt32, computed: UInt32)
    /// Present but part of what it covers was not captured.
    case unverifiable

    public var name: String {
        switch self {
        case .absent: "absent"
        case .notVerified: "not-verified"
        case .ok: "ok"
        case .mismatch: "mismatch"
        case .unverifiable: "unverifiable"
        }
    }
}

/// One framed NVMe/TCP PDU: its header bytes, the data bytes the decoder asked to keep, digest
/// results, and where in the capture it started and was completed.
public struct PDU: Sendable {
    public var shape: PDUShape
    public var type: PDUType { shape.type }
    public var flags: PDUFlags { shape.flags }
    /// The HLEN header bytes (common header included).
    public var header: [UInt8]
    /// The first data bytes (as many as were asked for); empty when data was skipped.
    public var data: [UInt8]
    public var headerDigest: DigestStatus
    public var dataDigest: DigestStatus
    /// True when some of the PDU's bytes were lost (a gap inside it).
    public var incomplete: Bool
    /// Frame holding the PDU's first byte.
    public var firstRef: FrameRef
    /// Frame that completed the PDU (where Wireshark shows it).
    public var ref: FrameRef
    /// Offset of the PDU's first byte in its TCP stream.
    public var streamOffset: UInt64
}

/// Something the framer noticed about the byte stream, reported as a warning.
public enum FramingEvent: Sendable, Equatable {
    /// A header that cannot be a PDU where one was expected; the framer hunts for the next one.
    case invalidHeader(HeaderProblem, streamOffset: UInt64)
    /// Bytes lost in the stream; `insidePDU` when they fell inside a PDU whose length was known
    /// (framing continues after it), otherwise the framer resynchronises.
    case gap(bytes: UInt64, insidePDU: Bool, streamOffset: UInt64)
    /// A PDU boundary was found again after `skippedBytes` bytes that could not be framed.
    case resynchronized(skippedBytes: UInt64, streamOffset: UInt64)
    /// The stream ended in the middle of a PDU.
    case truncatedAtEnd(bytesMissing: Int, streamOffset: UInt64)
    /// The stream ended (at `streamOffset`) while the framer was still looking for a PDU
    /// boundary: `skippedBytes` bytes since it lost its place could not be framed.
    case unframedAtEnd(skippedBytes: UInt64, streamOffset: UInt64)
}
