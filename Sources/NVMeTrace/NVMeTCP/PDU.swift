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

    /// `.ok`, or `.mismatch` with both values.
    static func checked(received: UInt32, computed: UInt32) -> DigestStatus {
        received == computed ? .ok : .mismatch(received: received, computed: computed)
    }

    public var isMismatch: Bool {
        if case .mismatch = self { return true }
        return false
    }

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
    /// The HLEN header bytes (common header included); fewer when the capture cut the header
    /// (`headerIsPartial`): then only this prefix is known.
    public var header: [UInt8]
    /// The first data bytes (as many as were asked for); empty when data was skipped.
    public var data: [UInt8]
    public var headerDigest: DigestStatus
    public var dataDigest: DigestStatus
    /// True when some of the PDU's bytes were not in the capture (a gap inside it).
    public var incomplete: Bool
    /// Frame holding the PDU's first byte.
    public var firstRef: FrameRef
    /// Frame that completed the PDU (where Wireshark shows it).
    public var ref: FrameRef
    /// Offset of the PDU's first byte in its TCP stream.
    public var streamOffset: UInt64

    /// True when only a prefix of the header was captured.
    public var headerIsPartial: Bool { header.count < shape.hlen }
}

extension PDU {
    /// An owned copy of a lent PDU.
    public init(_ f: FramedPDU) {
        self.init(shape: f.shape, header: Array(f.header), data: Array(f.data), headerDigest: f.headerDigest,
                  dataDigest: f.dataDigest, incomplete: f.incomplete, firstRef: f.firstRef, ref: f.ref,
                  streamOffset: f.streamOffset)
    }

    /// Lends this PDU as the framer does.
    public func withFramed<R>(_ body: (FramedPDU) throws -> R) rethrows -> R {
        try header.withUnsafeBytes { h in
            try data.withUnsafeBytes { d in
                try body(FramedPDU(shape: shape, header: h, data: d, headerDigest: headerDigest, dataDigest: dataDigest,
                                   incomplete: incomplete, firstRef: firstRef, ref: ref, streamOffset: streamOffset))
            }
        }
    }
}

/// A framed PDU as the framer lends it to the stage after: the same fields as `PDU`, but its
/// header and data point into the framer's buffers, valid only for the length of the call.
/// Nothing is allocated, retained or destroyed per PDU (per-PDU arrays, moves and destroys were
/// a quarter of the analysis on 4 KiB I/O; callgrind).
public struct FramedPDU {
    public var shape: PDUShape
    public var type: PDUType { shape.type }
    public var flags: PDUFlags { shape.flags }
    /// The HLEN header bytes (common header included); only a prefix of them (at least the
    /// 8-byte common header) when the capture cut the header: fields past it are unknown.
    public var header: UnsafeRawBufferPointer
    /// The first data bytes (as many as were asked for); empty when data was skipped.
    public var data: UnsafeRawBufferPointer
    public var headerDigest: DigestStatus
    public var dataDigest: DigestStatus
    public var incomplete: Bool
    public var firstRef: FrameRef
    public var ref: FrameRef
    public var streamOffset: UInt64

    /// True when only a prefix of the header was captured.
    public var headerIsPartial: Bool { header.count < shape.hlen }
}

/// Why the framer was looking for a PDU boundary.
public enum LostPlace: Sendable, Equatable {
    /// The stream was picked up mid-way (no handshake seen): its first bytes need not start a PDU.
    case streamStart
    /// Bytes cut by the snap length covered a PDU's common header, so its length was unknown.
    case notCaptured
    /// Bytes lost before the capture point covered a PDU's common header.
    case lost
    /// A header that cannot be a PDU stood where one was expected.
    case invalidHeader
}

/// Something the framer noticed about the byte stream. Only some of these are worth a warning:
/// bytes cut by the snap length, and a stream picked up mid-way, are how field captures are taken
/// (`LostPlace`, `GapCause`), not faults.
public enum FramingEvent: Sendable, Equatable {
    /// A header that cannot be a PDU where one was expected; the framer hunts for the next one.
    case invalidHeader(HeaderProblem, streamOffset: UInt64)
    /// Bytes missing from the stream, for `cause`; `insidePDU` when they fell inside a PDU whose
    /// length was known (framing continues after it), otherwise the framer resynchronises.
    case gap(bytes: UInt64, insidePDU: Bool, cause: GapCause, streamOffset: UInt64)
    /// A PDU boundary was found again after `skippedBytes` bytes that could not be framed.
    case resynchronized(skippedBytes: UInt64, streamOffset: UInt64, lostPlace: LostPlace)
    /// The stream ended in the middle of a PDU.
    case truncatedAtEnd(bytesMissing: Int, streamOffset: UInt64)
    /// The stream ended (at `streamOffset`) while the framer was still looking for a PDU
    /// boundary: `skippedBytes` bytes since it lost its place could not be framed.
    case unframedAtEnd(skippedBytes: UInt64, streamOffset: UInt64, lostPlace: LostPlace)
}
