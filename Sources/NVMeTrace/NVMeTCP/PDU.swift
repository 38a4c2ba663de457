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

/// Where a framed PDU's header and data bytes are held: lent (`UnsafeRawBufferPointer`, pointing
/// into the framer's buffers or the packet, valid only for the length of one call) or owned
/// (`[UInt8]`, a copy that can be kept).
public protocol PDUBytes {
    var count: Int { get }
    /// How a record over these bytes refers to the objects it carries (`PDURecord.connectData`,
    /// `.completed`): owned records retain them; lent ones do not (whoever lends the record keeps
    /// them alive for the call), so that a lent record is a plain value, built and dropped for
    /// every PDU without reference counting or a destroy through its type's metadata (~120
    /// instructions per PDU; callgrind).
    associatedtype Reference: PDUReference
}

/// An object a PDU record refers to, held as its bytes are (`PDUBytes.Reference`).
public protocol PDUReference {
    init(_ object: (AnyObject & Sendable)?)
    var object: AnyObject? { get }
}

/// A reference held by a lent record: not retained.
public struct LentReference: PDUReference {
    private let ref: Unretained<AnyObject>?
    public init(_ object: (AnyObject & Sendable)?) { ref = object.map { Unretained($0) } }
    public var object: AnyObject? { ref?.object }
}

/// A reference held by an owned record.
public struct OwnedReference: PDUReference, Sendable {
    private let held: (AnyObject & Sendable)?
    public init(_ object: (AnyObject & Sendable)?) { held = object }
    public var object: AnyObject? { held }
}

extension UnsafeRawBufferPointer: PDUBytes {
    public typealias Reference = LentReference
}
extension Array: PDUBytes where Element == UInt8 {
    public typealias Reference = OwnedReference
}

/// One framed NVMe/TCP PDU: its header bytes, the data bytes the decoder asked to keep, digest
/// results, and where in the capture it started and was completed. The one type for a framed
/// PDU, over lent bytes (`LentPDU`, as the framer hands it on: nothing is allocated, retained or
/// destroyed per PDU; per-PDU arrays, moves and destroys were a quarter of the analysis on 4 KiB
/// I/O, callgrind) or owned ones (`PDU`, `owned()`).
public struct PDUFrame<Bytes: PDUBytes> {
    public var shape: PDUShape
    public var type: PDUType { shape.type }
    public var flags: PDUFlags { shape.flags }
    /// The HLEN header bytes (common header included); only a prefix of them (at least the
    /// 8-byte common header) when the capture cut the header (`headerIsPartial`): fields past it
    /// are unknown.
    public var header: Bytes
    /// The first data bytes (as many as were asked for); empty when data was skipped.
    public var data: Bytes
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

/// A framed PDU as the framer lends it: valid only for the length of the call.
public typealias LentPDU = PDUFrame<UnsafeRawBufferPointer>
/// A framed PDU with its own copy of its bytes.
public typealias PDU = PDUFrame<[UInt8]>

extension PDUFrame: Sendable where Bytes == [UInt8] {}

extension PDUFrame where Bytes == UnsafeRawBufferPointer {
    /// An owned copy.
    public func owned() -> PDU {
        PDU(shape: shape, header: Array(header), data: Array(data), headerDigest: headerDigest, dataDigest: dataDigest,
            incomplete: incomplete, firstRef: firstRef, ref: ref, streamOffset: streamOffset)
    }
}

extension PDUFrame where Bytes == [UInt8] {
    /// Lends this PDU as the framer does.
    public func lent<R>(_ body: (LentPDU) throws -> R) rethrows -> R {
        try header.withUnsafeBytes { h in
            try data.withUnsafeBytes { d in
                try body(LentPDU(shape: shape, header: h, data: d, headerDigest: headerDigest, dataDigest: dataDigest,
                                 incomplete: incomplete, firstRef: firstRef, ref: ref, streamOffset: streamOffset))
            }
        }
    }
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
