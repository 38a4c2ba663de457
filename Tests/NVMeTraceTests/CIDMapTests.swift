import Testing
@testable import NVMeTrace

/// The decoder's map of outstanding commands, checked against a Dictionary doing the same
/// operations: open addressing with backward-shift deletion is easy to get subtly wrong (a lookup
/// that stops at a hole left by a deletion).
@Suite struct CIDMapTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Key sets that stress different things: a few keys churned constantly, Linux-style CIDs
    /// (generation counter in the top 4 bits over a small tag), and keys spread over all 16 bits.
    @Test(arguments: [UInt16(8), 0xF03F, 0xFFFF])
    func agreesWithDictionary(keyMask: UInt16) {
        var map = CIDMap<Int>()
        var model: [UInt16: Int] = [:]
        var rng = Rng(state: UInt64(keyMask))
        for step in 0..<60_000 {
            let key = UInt16(truncatingIfNeeded: rng.next()) & keyMask
            switch rng.next() % 6 {
            case 0, 1:
                map.set(step, for: key)
                model[key] = step
            case 2:
                // The decoder's way: insert without a second lookup when absent.
                if map.position(of: key) == nil {
                    #expect(model[key] == nil)
                    map.insertNew(step, for: key)
                    model[key] = step
                }
            case 3:
                #expect(map.removeValue(for: key) == model.removeValue(forKey: key))
            case 4:
                // Removal at a looked-up position.
                if let p = map.position(of: key) {
                    #expect(map[position: p] == model[key])
                    map.remove(at: p)
                    model[key] = nil
                } else {
                    #expect(model[key] == nil)
                }
            default:
                #expect(map[key] == model[key])
            }
            if step % 997 == 0 {
                #expect(map.count == model.count)
                for (k, v) in model { #expect(map[k] == v) }
            }
        }
        // Empty it completely: every key must still be found on the way down.
        for k in model.keys.sorted() { #expect(map.removeValue(for: k) == model[k]) }
        #expect(map.isEmpty)
        #expect(map[0] == nil)
    }

    @Test func valuesAreMutatedInPlace() {
        var map = CIDMap<[Int]>()
        for cid in UInt16(0)..<200 { map.set([Int(cid)], for: cid &* 4096 | cid) }
        for cid in UInt16(0)..<200 {
            guard let p = map.position(of: cid &* 4096 | cid) else { Issue.record("\(cid) missing"); continue }
            map[position: p].append(1)
        }
        for cid in UInt16(0)..<200 { #expect(map[cid &* 4096 | cid] == [Int(cid), 1]) }
        #expect(map[1] == nil)
    }

    @Test func holdsEveryCID() {
        var map = CIDMap<UInt16>()
        for cid in UInt16.min...UInt16.max { map.set(cid &+ 1, for: cid) }
        #expect(map.count == 65536)
        for cid in stride(from: 0, through: 65535, by: 2) { map.removeValue(for: UInt16(cid)) }
        #expect(map.count == 32768)
        for cid in UInt16.min...UInt16.max { #expect(map[cid] == (cid % 2 == 1 ? cid &+ 1 : nil)) }
    }
}
