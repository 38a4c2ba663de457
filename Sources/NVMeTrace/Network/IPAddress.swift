/// An IPv4 or IPv6 address, stored inline (no allocation) so flow keys hash cheaply.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var hi: UInt64
    public var lo: UInt64
    public var isV6: Bool

    public init(v4 bytes: UnsafeRawBufferPointer) {
        hi = 0
        lo = UInt64(bytes.be32(at: 0) ?? 0)
        isV6 = false
    }

    public init(v6 bytes: UnsafeRawBufferPointer) {
        hi = UInt64(bytes.be32(at: 0) ?? 0) << 32 | UInt64(bytes.be32(at: 4) ?? 0)
        lo = UInt64(bytes.be32(at: 8) ?? 0) << 32 | UInt64(bytes.be32(at: 12) ?? 0)
        isV6 = true
    }

    public init(v4 value: UInt32) {
        hi = 0; lo = UInt64(value); isV6 = false
    }

    public init(v6Hi: UInt64, lo: UInt64) {
        hi = v6Hi; self.lo = lo; isV6 = true
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.isV6 ? 1 : 0, a.hi, a.lo) < (b.isV6 ? 1 : 0, b.hi, b.lo)
    }

    public var description: String {
        if !isV6 {
            let v = UInt32(truncatingIfNeeded: lo)
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        }
        // RFC 5952: lower-case hex, longest run (>= 2) of zero groups compressed.
        var groups = [UInt16]()
        for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: hi >> UInt64(48 - 16 * i))) }
        for i in 0..<4 { groups.append(UInt16(truncatingIfNeeded: lo >> UInt64(48 - 16 * i))) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        if bestLen < 2 { bestStart = -1 }
        var parts = [String]()
        i = 0
        var out = ""
        while i < 8 {
            if i == bestStart {
                out += parts.joined(separator: ":") + "::"
                parts = []
                i += bestLen
                continue
            }
            parts.append(String(groups[i], radix: 16))
            i += 1
        }
        out += parts.joined(separator: ":")
        return out
    }
}

/// An address and TCP port; printed as `addr:port` (IPv6 as `[addr]:port`).
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool {
        (a.address, a.port) < (b.address, b.port)
    }

    public var description: String {
        address.isV6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}
