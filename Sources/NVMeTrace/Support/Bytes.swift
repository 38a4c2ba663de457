/// Checked little/big-endian reads over raw bytes.
///
/// Every read is bounds-checked and returns nil when the bytes are not there: a capture is
/// hostile input, so no length field is trusted before the bytes it describes were seen.
extension UnsafeRawBufferPointer {
    @inline(__always)
    func u8(at offset: Int) -> UInt8? {
        guard offset >= 0, offset < count else { return nil }
        return self[offset]
    }

    @inline(__always)
    func le16(at offset: Int) -> UInt16? {
        guard offset >= 0, offset <= count - 2 else { return nil }
        return UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    @inline(__always)
    func be16(at offset: Int) -> UInt16? {
        guard offset >= 0, offset <= count - 2 else { return nil }
        return UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    @inline(__always)
    func le32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= count - 4 else { return nil }
        return UInt32(self[offset]) | UInt32(self[offset + 1]) << 8
            | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }

    @inline(__always)
    func be32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= count - 4 else { return nil }
        return UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16
            | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }

    @inline(__always)
    func le64(at offset: Int) -> UInt64? {
        guard let lo = le32(at: offset), let hi = le32(at: offset + 4) else { return nil }
        return UInt64(lo) | UInt64(hi) << 32
    }

    /// The sub-range `[offset, offset+length)`, or nil when it is not entirely inside.
    // Sub-buffers by pointer arithmetic after clamping (no Slice round trip on the hot path).

    @inline(__always)
    func slice(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
        guard let base = baseAddress else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    @inline(__always)
    func dropFirst(_ n: Int) -> UnsafeRawBufferPointer {
        let n = Swift.min(Swift.max(n, 0), count)
        guard let base = baseAddress else { return self }
        return UnsafeRawBufferPointer(start: base + n, count: count - n)
    }

    @inline(__always)
    func prefix(_ n: Int) -> UnsafeRawBufferPointer {
        let n = Swift.min(Swift.max(n, 0), count)
        return UnsafeRawBufferPointer(start: baseAddress, count: baseAddress == nil ? 0 : n)
    }
}

/// Read-only view of a byte array with the same checked reads; decoded data (SQEs, Connect data,
/// log pages) is kept as `[UInt8]` once copied out of the packet.
extension Array where Element == UInt8 {
    @inline(__always) func u8(at o: Int) -> UInt8? { withUnsafeBytes { $0.u8(at: o) } }
    @inline(__always) func le16(at o: Int) -> UInt16? { withUnsafeBytes { $0.le16(at: o) } }
    @inline(__always) func le32(at o: Int) -> UInt32? { withUnsafeBytes { $0.le32(at: o) } }
    @inline(__always) func le64(at o: Int) -> UInt64? { withUnsafeBytes { $0.le64(at: o) } }

    /// A NUL-terminated (or field-length) ASCII string at `[offset, offset+length)`, trimmed of
    /// trailing NULs and spaces; non-printable bytes are escaped so output stays one line.
    /// A NUL-terminated field of `length` bytes of which the capture may hold only a prefix: known
    /// when its NUL, or all of it, was captured; nil otherwise (never a guess from a cut field).
    func capturedString(at offset: Int, length: Int) -> String? {
        guard offset >= 0, length >= 0, offset < count else { return nil }
        let available = Swift.min(length, count - offset)
        if available == length { return fixedString(at: offset, length: length) }
        guard let nul = self[offset..<(offset + available)].firstIndex(of: 0) else { return nil }
        return fixedString(at: offset, length: nul - offset)
    }

    func fixedString(at offset: Int, length: Int) -> String? {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
        var end = offset
        let limit = offset + length
        while end < limit, self[end] != 0 { end += 1 }
        // Trailing spaces go before escaping (an escape never ends in one).
        while end > offset, self[end - 1] == 0x20 { end -= 1 }
        let field = self[offset..<end]
        // Printable ASCII, the usual case, is taken as it is: appending scalar by scalar cost
        // ~50,000 instructions per Connect (two 256-byte NQNs).
        if field.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return String(decoding: field, as: UTF8.self) }
        var s = ""
        s.reserveCapacity(end - offset)
        for b in field {
            if b >= 0x20 && b < 0x7F { s.unicodeScalars.append(Unicode.Scalar(b)) }
            else { s += "\\x" + hex2(b) }
        }
        return s
    }
}

@inline(__always)
func hex2(_ b: UInt8) -> String {
    let digits: [Character] = ["0","1","2","3","4","5","6","7","8","9","a","b","c","d","e","f"]
    return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
}

func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var s = ""
    s.reserveCapacity(bytes.count * 2)
    for b in bytes { s += hex2(b) }
    return s
}

/// `0x1f` style formatting with a minimum number of digits.
func hexValue<T: BinaryInteger>(_ v: T, digits: Int = 2) -> String {
    let h = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, digits - h.count)) + h
}
