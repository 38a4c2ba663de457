import Histogram

/// A latency distribution in bounded memory: values are kept one by one, up to `pendingKept`
/// of them; past that, HdrHistogram (1 µs to 1 h, two significant digits: every value within 1%)
/// takes them. Most groups of a capture of many connections see a handful of commands, and a
/// histogram costs ~13 KiB and tens of thousands of instructions to make (callgrind): their
/// figures are the values themselves. (Values kept and fed to the histogram in batches were
/// tried: no faster on the wall clock, 25 instructions a value more.)
public struct LatencyDistribution: Sendable {
    public private(set) var count: UInt64 = 0
    /// The largest value, exact (a histogram holds it within 1%).
    public private(set) var maxNs: Int64 = 0
    /// Values of 0, counted apart: a phase that ends in the packet it starts in (a read's data and
    /// its CapsuleResp in one segment, as Linux's target sends them) is 0 for most commands, and a
    /// counter costs less than a value kept.
    private var zeros: UInt64 = 0
    /// Values (above 0) not in the histogram: all of them while there is none (then at most
    /// `pendingKept`), none after (but after merging, `add`).
    private var pending: [Int64] = []
    /// In a box: an optional `Histogram` in place was tested, copied and stored through its
    /// type's value witnesses on every value (callgrind); a class reference is tested against nil.
    /// Made by this distribution and recorded into by it alone; a copy of the distribution (the
    /// model's) shares it only after recording ended.
    private var box: HistogramBox? {
        didSet { unretained = box.map { Unmanaged.passUnretained($0) } }
    }
    /// The same box, unretained, for `record`: testing a strong reference retained and released
    /// it for every value (callgrind). `box` keeps it alive.
    private var unretained: Unmanaged<HistogramBox>?

    final class HistogramBox: @unchecked Sendable {
        var histogram: Histogram<UInt32>
        init(_ h: Histogram<UInt32>) { histogram = h }
    }

    static let pendingKept = 256
    /// Longer latencies are counted as this long (the maximum stays exact).
    static let highestNs: Int64 = 3_600_000_000_000

    public init() {}

    static func makeHistogram() -> Histogram<UInt32> {
        Histogram<UInt32>(lowestDiscernibleValue: 1_000, highestTrackableValue: UInt64(highestNs), numberOfSignificantValueDigits: .two)
    }

    @inline(__always)
    mutating func record(_ ns: Int64) {
        count &+= 1
        if ns <= 0 {
            zeros &+= 1
            return
        }
        if ns > maxNs { maxNs = ns }
        if let unretained {
            unretained._withUnsafeGuaranteedRef { _ = $0.histogram.record(UInt64(min(ns, Self.highestNs))) }
        } else {
            keep(ns)
        }
    }

    /// A value kept one by one; past `pendingKept` of them, all into a histogram.
    @inline(never)
    private mutating func keep(_ ns: Int64) {
        pending.append(ns)
        guard pending.count > Self.pendingKept else { return }
        var h = Self.makeHistogram()
        for v in pending { _ = h.record(UInt64(min(v, Self.highestNs))) }
        box = HistogramBox(h)
        pending = []
    }

    /// This distribution with every value in the histogram, when it has one (or all values
    /// pending, when they fit: then its figures are exact).
    private var flushed: LatencyDistribution {
        if pending.isEmpty || (box == nil && pending.count <= Self.pendingKept) { return self }
        var d = self
        var h = box?.histogram ?? Self.makeHistogram()
        for v in pending { _ = h.record(UInt64(min(v, Self.highestNs))) }
        d.box = HistogramBox(h)
        d.pending = []
        return d
    }

    /// Both distributions in one.
    mutating func add(_ other: LatencyDistribution) {
        guard other.count > 0 else { return }
        count &+= other.count
        zeros &+= other.zeros
        maxNs = max(maxNs, other.maxNs)
        pending += other.pending
        if let o = other.box?.histogram {
            var h = box?.histogram ?? Self.makeHistogram()
            h.add(o)
            box = HistogramBox(h)
        }
    }

    /// The value at or below which `q` percent of the values lie: the nearest-rank value of
    /// the values, or HdrHistogram's (within 1%, never above the maximum) once there were more
    /// than `pendingKept`.
    public func percentile(_ q: Double) -> Int64 {
        guard count > 0 else { return 0 }
        // Nearest rank among all values; the zeros come first.
        let rank = max(1, UInt64((q / 100 * Double(count)).rounded(.up)))
        if rank <= zeros { return 0 }
        let (r, n) = (rank - zeros, count - zeros)
        let all = flushed
        if let h = all.box?.histogram {
            // The histogram holds the n values past the zeros: the percentile that is its rank r
            // (half a rank less, so that rounding up lands on r).
            return min(Int64(h.valueAtPercentile(100 * (Double(r) - 0.5) / Double(n))), maxNs)
        }
        let sorted = pending.sorted()
        return sorted[min(sorted.count - 1, Int(r) - 1)]
    }

    /// Whether a histogram holds the values (figures within 1%) rather than the values themselves.
    public var isApproximate: Bool { box != nil || pending.count > Self.pendingKept }

    /// The figures the reports print, computed once (each percentile of a histogram walks its
    /// counts).
    public var figures: LatencyFigures {
        let d = flushed
        return LatencyFigures(count: count, p50Ns: d.percentile(50), p90Ns: d.percentile(90), p99Ns: d.percentile(99),
                              p999Ns: d.percentile(99.9), maxNs: maxNs, approximate: isApproximate)
    }
}

/// A latency distribution's figures (nanoseconds): what the reports print of it.
public struct LatencyFigures: Sendable, Equatable {
    public var count: UInt64
    public var p50Ns: Int64
    public var p90Ns: Int64
    public var p99Ns: Int64
    public var p999Ns: Int64
    public var maxNs: Int64
    /// From a histogram (within 1%) rather than the values themselves.
    public var approximate: Bool
}
