/// Connection attempts one NVMe/TCP target port never accepted (`FailedConnect`): counts, the
/// first and last, the hosts, and the latest few one by one (for outages to count theirs).
/// Bounded whatever arrives: a SYN flood costs a counter, not a list.
public struct FailedConnects: Sendable {
    public struct Attempt: Sendable, Equatable {
        /// The host's endpoint (its address and the port it tried from).
        public var client: Endpoint
        public var attempt: FailedConnect
        public var host: IPAddress { client.address }
    }

    public var target: Endpoint
    public private(set) var refused = 0
    public private(set) var unanswered = 0
    /// The attempt with the earliest SYN, and the one with the latest.
    public private(set) var first: Attempt
    public private(set) var last: Attempt
    /// Hosts that tried (up to `maxHosts`; `moreHosts` says some were not kept).
    public private(set) var hosts: Set<IPAddress> = []
    public private(set) var moreHosts = false
    /// The latest `recentKept` attempts by SYN time, oldest first; `recentDropped` older ones were let go.
    public private(set) var recent: [Attempt] = []
    public private(set) var recentDropped = 0

    static let maxHosts = 64
    static let recentKept = 128

    init(target: Endpoint, first: Attempt) {
        self.target = target
        self.first = first
        self.last = first
        add(first, counted: false)
    }

    public var count: Int { refused + unanswered }

    mutating func add(_ a: Attempt, counted: Bool = true) {
        if case .refused = a.attempt { refused += 1 } else { unanswered += 1 }
        if counted {
            if a.attempt.syn.timeNs < first.attempt.syn.timeNs { first = a }
            if a.attempt.syn.timeNs >= last.attempt.syn.timeNs { last = a }
        }
        if hosts.count < Self.maxHosts { hosts.insert(a.host) } else if !hosts.contains(a.host) { moreHosts = true }
        // Attempts end (and arrive here) in about SYN order: insert from the back.
        var i = recent.count
        while i > 0, recent[i - 1].attempt.syn.timeNs > a.attempt.syn.timeNs { i -= 1 }
        recent.insert(a, at: i)
        if recent.count > Self.recentKept {
            recent.removeFirst()
            recentDropped += 1
        }
    }

    /// Attempts by `host` whose SYN falls in `from...to`: how many, the first and last, and
    /// whether the count is complete (false when older attempts were let go and the interval
    /// reaches back before the oldest kept).
    public func attempts(host: IPAddress, from: Int64, to: Int64) -> Window {
        let mine = recent.filter { $0.host == host && $0.attempt.syn.timeNs >= from && $0.attempt.syn.timeNs <= to }
        let complete = recentDropped == 0 || (recent.first.map { $0.attempt.syn.timeNs <= from } ?? true)
        let refused = mine.filter { if case .refused = $0.attempt { true } else { false } }.count
        return Window(count: mine.count, refused: refused, first: mine.first, last: mine.last, complete: complete)
    }

    /// Attempts in a window of time (see `attempts(host:from:to:)`).
    public struct Window {
        public var count: Int
        public var refused: Int
        public var first: Attempt?
        public var last: Attempt?
        public var complete: Bool
        public var unanswered: Int { count - refused }

        /// "2 refused (RST), 1 unanswered".
        public var outcomes: String {
            [refused > 0 ? "\(refused) refused (RST)" : nil, unanswered > 0 ? "\(unanswered) unanswered" : nil]
                .compactMap { $0 }.joined(separator: ", ")
        }
    }
}
