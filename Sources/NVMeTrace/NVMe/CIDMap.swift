/// Outstanding commands keyed by their 16-bit command identifier.
///
/// A `Dictionary` hashes every key with seeded SipHash; with three or four lookups per I/O that
/// was 5% of all instructions on 4 KiB I/O (callgrind). CIDs are small integers chosen by the
/// host, so a multiplicative hash into an open-addressed index (linear probing, backward-shift
/// deletion, load ≤ 1/2) is enough. Values are stored densely: an empty map allocates nothing
/// and a connection costs memory in proportion to what it has outstanding.
struct CIDMap<Value> {
    /// Index slots: -1 when empty, otherwise a position in `keys`/`values`.
    private var slots: [Int32] = []
    private var keys: [UInt16] = []
    private var values: [Value] = []
    private var shift = 32

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    @inline(__always)
    private func home(_ key: UInt16) -> Int {
        // Fibonacci hashing: the top bits of key × 2^32/φ spread consecutive CIDs (and Linux's
        // generation-counter CIDs, which differ in the top 4 bits) over the table.
        Int(truncatingIfNeeded: (UInt32(key) &* 0x9E37_79B9) >> UInt32(shift))
    }

    /// The index slot holding `key`, or nil.
    @inline(__always)
    private func slot(of key: UInt16) -> Int? {
        guard !slots.isEmpty else { return nil }
        let mask = slots.count - 1
        var s = home(key)
        while true {
            let p = Int(slots[s])
            if p < 0 { return nil }
            if keys[p] == key { return s }
            s = (s + 1) & mask
        }
    }

    /// The dense position of `key`, or nil.
    func position(of key: UInt16) -> Int? {
        guard let s = slot(of: key) else { return nil }
        return Int(slots[s])
    }

    subscript(key: UInt16) -> Value? {
        guard let p = position(of: key) else { return nil }
        return values[p]
    }

    /// The value at a position from `position(of:)`, mutable in place.
    /// (`_read`: reading one field of a large value borrows it instead of copying all of it.)
    subscript(position p: Int) -> Value {
        _read { yield values[p] }
        _modify { yield &values[p] }
    }

    /// Inserts or replaces the value for `key`.
    mutating func set(_ value: consuming Value, for key: UInt16) {
        if let p = position(of: key) {
            values[p] = value
            return
        }
        insertNew(value, for: key)
    }

    /// Inserts a value for a key known to be absent (`position(of:)` was nil): no second lookup.
    mutating func insertNew(_ value: consuming Value, for key: UInt16) {
        if (keys.count + 1) * 2 > slots.count { grow() }
        keys.append(key)
        values.append(value)
        placeInSlot(key, position: Int32(keys.count - 1))
    }

    @discardableResult
    mutating func removeValue(for key: UInt16) -> Value? {
        guard let s = slot(of: key) else { return nil }
        return remove(slot: s)
    }

    /// Removes the entry at a position from `position(of:)` (no second lookup by key).
    mutating func remove(at p: Int) {
        let mask = slots.count - 1
        var s = home(keys[p])
        while Int(slots[s]) != p { s = (s + 1) & mask }
        remove(slot: s)
    }

    @discardableResult
    private mutating func remove(slot s: Int) -> Value {
        let mask = slots.count - 1
        let p = Int(slots[s])
        deleteSlot(s)
        // Keep storage dense: the last entry moves into the freed position.
        let last = keys.count - 1
        if p != last {
            let movedKey = keys[last]
            var m = home(movedKey)
            while Int(slots[m]) != last { m = (m + 1) & mask }
            slots[m] = Int32(p)
            keys.swapAt(p, last)
            values.swapAt(p, last)
        }
        keys.removeLast()
        return values.removeLast()
    }

    mutating func removeAll() {
        slots = []
        keys = []
        values = []
        shift = 32
    }

    /// Empties slot `s` and shifts later members of its probe run back, so that no lookup stops
    /// early at the hole (no tombstones needed).
    private mutating func deleteSlot(_ s: Int) {
        let mask = slots.count - 1
        var hole = s
        var j = s
        while true {
            j = (j + 1) & mask
            let p = Int(slots[j])
            if p < 0 { break }
            let h = home(keys[p])
            // The entry at j may move to the hole when its home is not cyclically in (hole, j].
            let between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !between {
                slots[hole] = slots[j]
                hole = j
            }
        }
        slots[hole] = -1
    }

    private mutating func placeInSlot(_ key: UInt16, position: Int32) {
        let mask = slots.count - 1
        var s = home(key)
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = position
    }

    private mutating func grow() {
        let size = max(8, slots.count * 2)
        shift = 32 - size.trailingZeroBitCount
        slots = Array(repeating: -1, count: size)
        for (p, k) in keys.enumerated() { placeInSlot(k, position: Int32(p)) }
    }
}
