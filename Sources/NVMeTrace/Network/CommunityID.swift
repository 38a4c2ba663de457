import Crypto
import Foundation

/// The Community ID of a TCP flow (version 1, as Zeek, Suricata and Wireshark's `communityid`
/// compute it): "1:" and the base64 of the SHA-1 of the seed (2 bytes), the two addresses and
/// ports in a canonical order (the smaller address first; for equal addresses the smaller port),
/// the protocol (6) and a zero byte. The same flow gets the same identifier in every tool's logs,
/// so an nvmetrace event joins the connection records a Zeek or Suricata sensor keeps of it.
public enum CommunityID {
    public static func tcp(_ a: Endpoint, _ b: Endpoint, seed: UInt16 = 0) -> String {
        // Canonical order: addresses compared as their bytes, then ports.
        let (x, y) = ordered(a, b)
        var bytes: [UInt8] = [UInt8(seed >> 8), UInt8(seed & 0xFF)]
        bytes += addressBytes(x.address)
        bytes += addressBytes(y.address)
        bytes += [6, 0]
        bytes += [UInt8(x.port >> 8), UInt8(x.port & 0xFF), UInt8(y.port >> 8), UInt8(y.port & 0xFF)]
        let digest = Insecure.SHA1.hash(data: bytes)
        return "1:" + Data(digest).base64EncodedString()
    }

    static func addressBytes(_ a: IPAddress) -> [UInt8] {
        if !a.isV6 {
            let v = UInt32(truncatingIfNeeded: a.lo)
            return [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        }
        return (0..<8).map { UInt8(truncatingIfNeeded: a.hi >> UInt64(56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: a.lo >> UInt64(56 - 8 * $0)) }
    }

    static func ordered(_ a: Endpoint, _ b: Endpoint) -> (Endpoint, Endpoint) {
        let ab = addressBytes(a.address), bb = addressBytes(b.address)
        if ab.lexicographicallyPrecedes(bb) { return (a, b) }
        if bb.lexicographicallyPrecedes(ab) { return (b, a) }
        return a.port <= b.port ? (a, b) : (b, a)
    }
}
