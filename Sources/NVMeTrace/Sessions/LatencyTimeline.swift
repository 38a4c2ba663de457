/// Latency over time in bounded memory: time cut into slices (2^20 ns, about 1 ms, wide at first,
/// by when each command was sent), keeping the longest latency of each slice and when that
/// command was sent. Past `maxSlices` slices the width doubles and neighbours merge, so a capture
/// of an hour and one of a second both end with at most `maxSlices` points, each the worst of
/// its slice: what a latency-over-time scatter must not hide.
///
/// Two numbers per slice, not the command: every command is compared with its slice's worst,
/// and a command's frames (a hundred bytes with the rest) copied whenever it was the worst so
/// far cost 2-3% of the wall clock of 4 KiB I/O. The slowest commands, with their frames, are
/// kept apart (`CommandLatencies.Group.slowest`).
struct LatencyTimeline: Sendable {
    /// Slices are 2^shift ns wide: a shift, not a division (tens of cycles) per command.
    private var shift: Int64 = 20
    var widthNs: Int64 { 1 << shift }
    /// The first slice's index (issue time >> shift; times after 1970).
    private var origin: Int64 = 0
    /// Per slice, the longest latency of a command sent in it (-1: none), and when that one was sent.
    private var worst: [Int64] = []
    private var sent: [Int64] = []

    static let maxSlices = 128

    /// One point: the worst command of a slice.
    struct Point: Sendable, Equatable {
        var issuedNs: Int64
        var latencyNs: Int64
    }

    @inline(__always)
    mutating func record(issuedNs: Int64, latencyNs: Int64) {
        let i = issuedNs >> shift &- origin
        if i >= 0 && i < Int64(worst.count) {
            // The common case: a slice already made, and the command not its slowest.
            if worst[Int(i)] >= latencyNs { return }
            worst[Int(i)] = latencyNs
            sent[Int(i)] = issuedNs
            return
        }
        put(Point(issuedNs: issuedNs, latencyNs: latencyNs))
    }

    /// A command outside the slices made so far: more slices, or wider ones.
    @inline(never)
    private mutating func put(_ p: Point) {
        let t = max(p.issuedNs, 0)
        if worst.isEmpty {
            origin = t >> shift
            worst.append(p.latencyNs)
            sent.append(p.issuedNs)
            return
        }
        // Before the first slice (time went backwards, or merging): slices in front.
        while t >> shift < origin {
            let missing = origin - t >> shift
            if Int64(worst.count) + missing > Int64(Self.maxSlices) {
                coarsen()
                continue
            }
            worst.insert(contentsOf: repeatElement(-1, count: Int(missing)), at: 0)
            sent.insert(contentsOf: repeatElement(0, count: Int(missing)), at: 0)
            origin -= missing
        }
        while t >> shift - origin >= Int64(Self.maxSlices) { coarsen() }
        let i = Int(t >> shift - origin)
        while worst.count <= i {
            worst.append(-1)
            sent.append(0)
        }
        if worst[i] >= p.latencyNs { return }
        worst[i] = p.latencyNs
        sent[i] = p.issuedNs
    }

    /// Doubles the width: each pair of neighbouring slices becomes one, in place (slice i moves
    /// to j ≤ i, so walking up never overwrites one not yet moved).
    private mutating func coarsen() {
        let newOrigin = origin >> 1
        var count = 0
        for i in worst.indices {
            let j = Int(((origin + Int64(i)) >> 1) - newOrigin)
            count = j + 1
            let ns = worst[i]
            guard ns >= 0 else { continue }
            let at = sent[i]
            if j != i { worst[i] = -1 }
            if worst[j] >= ns { continue }
            worst[j] = ns
            sent[j] = at
        }
        worst.removeLast(worst.count - count)
        sent.removeLast(sent.count - count)
        shift += 1
        origin = newOrigin
    }

    /// Another series' points in this one (at the wider of the two widths, or wider).
    mutating func add(_ other: LatencyTimeline) {
        while shift < other.shift { coarsen() }
        for p in other.points { put(p) }
    }

    /// The points, oldest first.
    var points: [Point] {
        worst.indices.compactMap { worst[$0] >= 0 ? Point(issuedNs: sent[$0], latencyNs: worst[$0]) : nil }
    }
}
