/// The first events of one kind on a connection, and how many there were in all.
///
/// A connection's state must not grow with the length of the capture: a corrupted link can put a
/// digest error on every PDU of a 20 GB capture, and a broken target can fail every Keep Alive of
/// a week-long soak. The rules cite the first ones and count the rest.
public struct FirstEvents<Element: Sendable>: Sendable {
    /// How many are kept.
    public static var limit: Int { 64 }
    /// The first `limit` events, in capture order.
    public private(set) var kept: [Element] = []
    /// All events, kept or not.
    public private(set) var total = 0

    public init() {}

    public var isEmpty: Bool { total == 0 }
    public var first: Element? { kept.first }
    /// Events that were counted but not kept.
    public var notKept: Int { total - kept.count }

    /// Appends an event; true when it was kept.
    @discardableResult
    mutating func append(_ event: Element) -> Bool {
        total += 1
        guard kept.count < Self.limit else { return false }
        kept.append(event)
        return true
    }

    /// Changes the kept events from position `start` on.
    mutating func updateKept(from start: Int, _ body: (inout Element) -> Void) {
        for i in kept.indices where i >= start { body(&kept[i]) }
    }
}

/// A connection's Keep Alives: how many were sent, and the exchanges themselves for the timeline
/// (and the evidence of the first one) in bounded memory.
///
/// Up to `capacity` exchanges are kept one by one, which covers every real capture in `Samples/`
/// and hours of a healthy connection. Past that the sample is thinned evenly: every other kept
/// exchange is dropped and only every `stride`-th new one is kept, so a week of Keep Alives every
/// 2.5 s (242,000) costs the same 1,024 entries and still spans the whole connection. Gaps are
/// judged from `TimerSeries`, which sees every Keep Alive, never from this sample.
public struct KeepAliveLog: Sendable {
    /// What reports draw (the HTML timeline's ticks): 1024 exchanges per connection.
    public static var capacity: Int { 1024 }
    /// Exchanges kept at most: `capacity` for reports; a daemon, which draws nothing, keeps a few
    /// (each kept one is ~70 bytes: 1024 of them on each of 5,000 connections are 350 MiB).
    public let limit: Int
    /// Keep Alive commands seen.
    public private(set) var count = 0
    /// Kept exchanges in capture order: the Keep Alives whose number (from 0) is a multiple of
    /// `stride`. The first one is always kept.
    public private(set) var sample: [KeepAliveExchange] = []
    /// 1 while every exchange is kept.
    public private(set) var stride = 1

    public init(limit: Int = KeepAliveLog.capacity) { self.limit = max(2, limit) }

    public var isEmpty: Bool { count == 0 }
    public var first: KeepAliveExchange? { sample.first }
    public var isThinned: Bool { stride > 1 }

    mutating func add(_ exchange: KeepAliveExchange) {
        defer { count += 1 }
        guard count % stride == 0 else { return }
        if sample.count >= limit {
            // Kept numbers are multiples of `stride`; keeping every other one leaves the
            // multiples of twice that.
            var thinned: [KeepAliveExchange] = []
            thinned.reserveCapacity(limit / 2 + 1)
            for i in Swift.stride(from: 0, to: sample.count, by: 2) { thinned.append(sample[i]) }
            sample = thinned
            stride *= 2
            guard count % stride == 0 else { return }
        }
        sample.append(exchange)
    }

    /// Records the completion of the Keep Alive sent at frame `issued` (the decoder matched it by
    /// CID), when that one was kept. Only the last few are searched: a completion follows its
    /// command closely, and one whose command was not kept has nothing to update.
    /// Keep Alives whose completion was seen, and how many of those had their status cut by the
    /// snap length.
    public private(set) var completed = 0
    public private(set) var statusNotCaptured = 0

    mutating func complete(issued: FrameRef, ref: FrameRef, status: NVMeStatus?) {
        completed += 1
        if status == nil { statusNotCaptured += 1 }
        var i = sample.count - 1
        let stop = max(0, sample.count - 8)
        while i >= stop {
            if sample[i].command == issued {
                sample[i].completion = ref
                sample[i].status = status
                return
            }
            i -= 1
        }
    }
}
