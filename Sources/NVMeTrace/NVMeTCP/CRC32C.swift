import CCRC32C

/// CRC32C (Castagnoli), the NVMe/TCP header and data digest (NVMe/TCP Transport §3.6.2.7).
/// Uses the CPU's CRC32C instruction when there is one, slicing-by-8 tables otherwise. Streaming:
/// feed bytes in any number of pieces.
public struct CRC32C: Sendable {
    /// True when the CPU instruction is used.
    public static let hardware: Bool = nvmetrace_crc32c_hw_available() != 0

    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The digest as it appears on the wire (final XOR applied).
    public var value: UInt32 { ~state }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32C()
        c.update(bytes)
        return c.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if CRC32C.hardware {
            if let base = bytes.baseAddress { state = nvmetrace_crc32c_hw_update(state, base, bytes.count) }
            return
        }
        updateWithTables(bytes)
    }

    /// The portable implementation (also the reference the tests compare the instruction with).
    public mutating func updateWithTables(_ bytes: UnsafeRawBufferPointer) {
        var crc = state
        var i = 0
        let n = bytes.count
        CRC32C.tables.withUnsafeBufferPointer { t in
            while n - i >= 8 {
                let lo = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ crc
                let hi = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int(lo >> 8 & 0xFF)]
                    ^ t[5 * 256 + Int(lo >> 16 & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int(hi >> 8 & 0xFF)]
                    ^ t[1 * 256 + Int(hi >> 16 & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        state = crc
    }

    /// 8 tables of 256 entries; table 0 is the classic byte-at-a-time table (reflected
    /// polynomial 0x82F63B78).
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = t[Int(prev & 0xFF)] ^ (prev >> 8)
            }
        }
        return t
    }()
}
