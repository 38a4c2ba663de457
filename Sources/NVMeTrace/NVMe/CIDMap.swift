/// Outstanding commands keyed by their 16-bit command identifier.
///
/// A `Dictionary` hashes every key with seeded SipHash; with three or four lookups per I/O that
/// was 5% of all instructions on 4 KiB I/O (callgrind). CIDs are small integers chosen by the
/// host, so a multiplicative hash into an open-addressed table (linear probing, backward-shift
/// deletion, load ≤ 1/2) is enough. Entries live in the table itself: one array to check and
/// touch per operation (an index array over dense key and value arrays cost ~300 instructions
/// per command and completion). An empty map allocates nothing; the table doubles when half
/// full and does not shrink, so a connection costs memory in proportion to the most it had
/// outstanding.
struct CIDMap<Value> {
    private struct Entry {
        var key: UInt16
        /// nil: the slot is empty.
        var value: Value?
    }

    private var table: [Entry] = []
    private var shift = 32
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    private func home(_ key: UInt16) -> Int {
        // Fibonacci hashing: the top bits of key × 2^32/φ spread consecutive CIDs (and Linux's
        // generation-counter CIDs, which differ in the top 4 bits) over the table.
        Int(truncatingIfNeeded: (UInt32(key) &* 0x9E37_79B9) >> UInt32(shift))
    }

    /// The position (slot) holding `key`, or nil. Valid until the map is next changed.
    @inline(__always)
    func position(of key: UInt16) -> Int? {
        guard count > 0 else { return nil }
        let mask = table.count - 1
        var s = home(key)
        while true {
            if table[s].value == nil { return nil }
            if table[s].key == key { return s }
            s = (s + 1) & mask
        }
    }

    /// Every value held, in no particular order.
    var values: some Sequence<Value> { table.lazy.compactMap(\.value) }

    subscript(key: UInt16) -> Value? {
        guard let p = position(of: key) else { return nil }
        return table[p].value
    }

    /// The value at a position from `position(of:)`, mutable in place.
    /// (`_read`: reading one field of a large value borrows it instead of copying all of it.)
    subscript(position p: Int) -> Value {
        _read { yield table[p].value! }
        _modify { yield &table[p].value! }
    }

    /// Inserts or replaces the value for `key`.
    mutating func set(_ value: consuming Value, for key: UInt16) {
        if let p = position(of: key) {
            table[p].value = value
            return
        }
        insertNew(value, for: key)
    }

    /// Inserts a value for a key known to be absent (`position(of:)` was nil): no second lookup.
    mutating func insertNew(_ value: consuming Value, for key: UInt16) {
        if (count + 1) * 2 > table.count { grow() }
        let mask = table.count - 1
        var s = home(key)
        while table[s].value != nil { s = (s + 1) & mask }
        table[s] = Entry(key: key, value: value)
        count += 1
    }

    @discardableResult
    mutating func removeValue(for key: UInt16) -> Value? {
        guard let p = position(of: key) else { return nil }
        let v = table[p].value
        remove(at: p)
        return v
    }

    /// Removes the entry at a position from `position(of:)`. Later members of its probe run
    /// shift back into the hole, so that no lookup stops early there (no tombstones needed).
    mutating func remove(at p: Int) {
        let mask = table.count - 1
        var hole = p
        var j = p
        while true {
            j = (j + 1) & mask
            if table[j].value == nil { break }
            let h = home(table[j].key)
            // The entry at j may move to the hole when its home is not cyclically in (hole, j].
            let between = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j)
            if !between {
                table.swapAt(hole, j)
                hole = j
            }
        }
        table[hole].value = nil
        count -= 1
    }

    mutating func removeAll() {
        table = []
        shift = 32
        count = 0
    }

    private mutating func grow() {
        let size = max(4, table.count * 2)
        let old = table
        shift = 32 - size.trailingZeroBitCount
        table = Array(repeating: Entry(key: 0, value: nil), count: size)
        let mask = size - 1
        for e in old where e.value != nil {
            var s = home(e.key)
            while table[s].value != nil { s = (s + 1) & mask }
            table[s] = e
        }
    }
}
