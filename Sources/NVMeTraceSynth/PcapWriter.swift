import Foundation

/// Writes a classic pcap file (nanosecond timestamps, Ethernet unless told otherwise), buffered so
/// multi-gigabyte captures are written at disk speed.
public final class PcapWriter {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    public private(set) var packets = 0
    public private(set) var bytesWritten: Int64 = 0
    /// Bytes buffered but not yet written.
    public var pendingBytes: Int { buffer.count }

    public init(path: String, linkType: UInt32 = 1, snaplen: UInt32 = 262_144) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let h = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle = h
        buffer.reserveCapacity(1 << 20)
        put32(0xA1B2_3C4D)          // nanosecond-resolution magic
        put16(2); put16(4)
        put32(0); put32(0)
        put32(snaplen)
        put32(linkType)
    }

    public func write(timeNs: Int64, bytes: [UInt8], wireLength: Int? = nil) {
        put32(UInt32(truncatingIfNeeded: timeNs / 1_000_000_000))
        put32(UInt32(truncatingIfNeeded: timeNs % 1_000_000_000))
        put32(UInt32(bytes.count))
        put32(UInt32(wireLength ?? bytes.count))
        buffer.append(contentsOf: bytes)
        packets += 1
        if buffer.count >= 1 << 20 { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        handle.write(Data(buffer))
        bytesWritten += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() {
        flush()
        try? handle.close()
    }

    private func put16(_ v: UInt16) { buffer.append(UInt8(v & 0xFF)); buffer.append(UInt8(v >> 8)) }
    private func put32(_ v: UInt32) { for i in 0..<4 { buffer.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
}
