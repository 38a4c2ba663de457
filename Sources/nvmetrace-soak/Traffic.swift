import Dispatch
import Foundation
import NVMeTraceSynth
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The traffic generator: NVMe/TCP admin-queue associations over real sockets on 127.0.0.1, the
// host side and the target side both played here. One listener is every target; each
// association is a client socket (the host) and the socket the listener accepted for it (the
// target). A connector thread makes associations (blocking handshake: ICReq, ICResp, Connect,
// Connect response); a few worker threads then own them, nonblocking, on one epoll each:
// hosts send Keep Alives (on a timer per association, or paced at a given total rate), targets
// answer each with a capsule response of the same CID, and some associations are torn down and
// re-made (churn). Every socket is close-on-exec, so the daemon child holds none of them.

/// Monotonic clock in nanoseconds.
func monoNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The PDUs the associations exchange, built once by NVMeTraceSynth's PDUBuilder.
enum Wire {
    static let subnqn = "nqn.2026-12.io.nvmetrace:soak"
    static func hostnqn(_ slot: Int) -> String {
        "nqn.2014-08.org.nvmexpress:uuid:50a150a1-0000-4000-8000-\(String(format: "%012d", slot))"
    }
    static let icReq = PDUBuilder.icReq()
    static let icResp = PDUBuilder.icResp()
    static func connect(slot: Int, katoMs: UInt32) -> [UInt8] {
        PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: katoMs),
                              data: PDUBuilder.connectData(subnqn: subnqn, hostnqn: hostnqn(slot)))
    }
    static func connectResp(cntlid: UInt16) -> [UInt8] { PDUBuilder.capsuleResp(cid: 1, dw0: UInt32(cntlid)) }
    /// Keep Alive (admin opcode 0x18) capsule: 72 bytes, the CID at bytes 10-11 (SQE at 8).
    static let keepAlive = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 0))
    static let keepAliveCID = 10
    /// Capsule response: 24 bytes, the CQE's CID at bytes 20-21.
    static let response = PDUBuilder.capsuleResp(cid: 0)
    static let responseCID = 20

    /// The offsets above, checked against PDUBuilder's own output.
    static func selfCheck() -> Bool {
        let k = PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: 0x1234))
        let r = PDUBuilder.capsuleResp(cid: 0x1234)
        return k.count == 72 && k[keepAliveCID] == 0x34 && k[keepAliveCID + 1] == 0x12
            && r.count == 24 && r[responseCID] == 0x34 && r[responseCID + 1] == 0x12
    }
}

/// Blocking socket helpers for the connector, the listener and the metrics scraper.
enum Sock {
    static let stream = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    static func address(port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = port.bigEndian
        return a
    }

    /// A listener on 127.0.0.1, any port: (fd, port).
    static func listener(backlog: Int32 = 4096) -> (Int32, UInt16)? {
        let fd = socket(AF_INET, stream, 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = address(port: 0)
        let ok = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(fd, backlog) == 0 else { close(fd); return nil }
        return (fd, localPort(fd))
    }

    /// A port nothing listens on at the moment (for the daemon's metrics).
    static func freePort() -> UInt16 {
        guard let (fd, port) = listener() else { return 9464 }
        close(fd)
        return port
    }

    static func localPort(_ fd: Int32) -> UInt16 {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: a.sin_port)
    }

    /// A blocking connection to 127.0.0.1:port with TCP_NODELAY (one PDU per segment), or nil.
    static func connect(port: UInt16, timeoutSeconds: Int = 5) -> Int32? {
        let fd = socket(AF_INET, stream, 0)
        guard fd >= 0 else { return nil }
        noDelay(fd)
        setTimeouts(fd, seconds: timeoutSeconds)
        var a = address(port: port)
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }

    static func noDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        return bytes.withUnsafeBytes { raw in
            while off < raw.count {
                let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return false }
                off += n
            }
            return true
        }
    }

    static func recvExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: count)
        var off = 0
        let ok = buf.withUnsafeMutableBytes { raw in
            while off < count {
                let n = recv(fd, raw.baseAddress! + off, count - off, 0)
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        return ok ? buf : nil
    }
}

/// What the workers do with their associations.
enum TrafficMode: Sendable, Equatable {
    /// Nothing is sent (responses still answered).
    case idle
    /// Each host sends a Keep Alive every KATO/2 (±10 % jitter, random phase); `churn` of the
    /// associations are torn down (FIN) and re-made per KATO.
    case soak(katoNs: Int64, churn: Double)
    /// Keep Alives at this total rate per worker, round-robin over its associations.
    case paced(keepAlivesPerSecond: Double)
}

/// One association: the host's socket and the target's (accepted) socket. Made by the connector,
/// then handed over to one worker, which alone touches it from then on (hence unchecked).
final class Association: @unchecked Sendable {
    let id: UInt64
    let slot: Int
    let host: Int32
    let target: Int32
    var hostOpen = true, targetOpen = true
    /// Bytes received and not yet a whole PDU; bytes not yet sent (socket buffer full).
    var hostRx: [UInt8] = [], targetRx: [UInt8] = []
    var hostTx: [UInt8] = [], targetTx: [UInt8] = []
    var nextCID: UInt16 = 2
    /// Keep Alives sent and not yet answered.
    var outstanding = 0
    /// Torn down by churn (host sent FIN): no more Keep Alives.
    var closing = false
    /// Position in the worker's list of live associations (-1: not in it).
    var livePos = -1

    init(id: UInt64, slot: Int, host: Int32, target: Int32) {
        self.id = id
        self.slot = slot
        self.host = host
        self.target = target
    }
}

/// A small binary min-heap of (due time, association id): the Keep Alive timers.
struct TimerHeap {
    private var a: [(Int64, UInt64)] = []
    var isEmpty: Bool { a.isEmpty }
    var top: (Int64, UInt64)? { a.first }
    mutating func removeAll() { a.removeAll(keepingCapacity: true) }
    mutating func push(_ e: (Int64, UInt64)) {
        a.append(e)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[p].0 <= a[i].0 { break }
            a.swapAt(p, i)
            i = p
        }
    }
    mutating func pop() -> (Int64, UInt64)? {
        guard !a.isEmpty else { return nil }
        let top = a[0]
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < a.count && a[l].0 < a[m].0 { m = l }
                if r < a.count && a[r].0 < a[m].0 { m = r }
                if m == i { break }
                a.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// Counters a worker keeps (read by the control thread at any time).
final class WorkerStats: Sendable {
    let keepAlives = Atomic<Int>(0)      // Keep Alive capsules sent by hosts
    let responses = Atomic<Int>(0)       // their responses received by hosts
    let pdus = Atomic<Int>(0)            // every PDU sent after the handshake (Keep Alives + responses)
    let teardowns = Atomic<Int>(0)       // associations closed by churn
    let errors = Atomic<Int>(0)          // sockets that failed or closed unasked
    let saturated = Atomic<Int>(0)       // paced Keep Alives that found no association free (8 outstanding)
    let behind = Atomic<Int>(0)          // paced Keep Alives given up because the worker fell > 100 ms behind
    let live = Atomic<Int>(0)            // associations up
}

/// One thread with an epoll set and the associations handed to it.
final class Worker: @unchecked Sendable {
    // Shared with other threads: the inbox (Mutex), the mode (Mutex), stats and stop (atomics),
    // the eventfd. Everything else belongs to the worker's thread.
    let index: Int
    let stats = WorkerStats()
    private let inbox = Mutex<[Association]>([])
    private let modeBox = Mutex<(TrafficMode, Int)>((.idle, 0))
    private let stopFlag = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let epfd: Int32
    /// A pipe whose read end is in the epoll set (user data 0): a byte written wakes the thread.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// Called (on this thread) with the slot of an association churn has closed, to re-make it.
    private let replace: @Sendable (Int) -> Void

    private var assocs: [UInt64: Association] = [:]
    private var live: [Association] = []
    private var timers = TimerHeap()
    private var mode: TrafficMode = .idle
    private var modeGeneration = 0
    private var pacedStartNs: Int64 = 0
    private var pacedSent = 0
    private var roundRobin = 0
    private var churnCredit = 0.0
    private var lastLoopNs: Int64 = 0
    private var kaBuf = Wire.keepAlive
    private var respBuf = Wire.response
    private var scratch = [UInt8](repeating: 0, count: 65536)

    /// Keep Alive CIDs cycle through 2 ..< 2 + cidRange on each association.
    private let cidRange: Int

    init(index: Int, cidRange: Int, replace: @escaping @Sendable (Int) -> Void) {
        self.index = index
        self.cidRange = max(1, min(cidRange, 0xFFF0 - 2))
        self.replace = replace
        epfd = Epoll.create()
        var p: [Int32] = [0, 0]
        pipe(&p)
        wakeRead = p[0]
        wakeWrite = p[1]
        for fd in p {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            Sock.setNonBlocking(fd)
        }
        Epoll.ctl(epfd, Epoll.ctlAdd, wakeRead, events: Epoll.IN, data: 0)  // id 0: the wake-up pipe
    }

    func start() {
        let t = Thread { [self] in loop(); finished.signal() }
        t.name = "soak-worker-\(index)"
        t.start()
    }

    /// Stops the thread (waits for it) and closes every socket it holds.
    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        wake()
        finished.wait()
        for a in assocs.values {
            if a.hostOpen { close(a.host) }
            if a.targetOpen { close(a.target) }
        }
        assocs.removeAll()
        for a in inbox.withLock({ $0 }) { close(a.host); close(a.target) }
        close(epfd)
        close(wakeRead)
        close(wakeWrite)
    }

    func setMode(_ m: TrafficMode) {
        modeBox.withLock { $0 = (m, $0.1 + 1) }
        wake()
    }

    /// Hands an association (its handshake done, sockets nonblocking) to this worker.
    func adopt(_ a: Association) {
        inbox.withLock { $0.append(a) }
        wake()
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)  // a full pipe already wakes it
    }

    // MARK: The thread

    private func loop() {
        let events = Epoll.Events(capacity: 512)
        while !stopFlag.load(ordering: .relaxed) {
            takeInbox()
            let now = monoNs()
            followMode(now: now)
            var timeoutMs: Int32 = 50
            switch mode {
            case .idle:
                break
            case .soak(let katoNs, let churn):
                timeoutMs = soakStep(now: now, katoNs: katoNs, churn: churn)
            case .paced(let rate):
                timeoutMs = pacedStep(now: now, rate: rate)
            }
            lastLoopNs = now
            let n = Epoll.wait(epfd, events, timeoutMs: timeoutMs)
            if n < 0 { continue }  // EINTR
            for i in 0..<Int(n) { handle(events: events.events(i), key: events.data(i)) }
        }
    }

    private func takeInbox() {
        let new = inbox.withLock { box -> [Association] in
            defer { box.removeAll() }
            return box
        }
        for a in new {
            assocs[a.id] = a
            register(a.host, id: a.id, side: 0, out: false, add: true)
            register(a.target, id: a.id, side: 1, out: false, add: true)
            a.livePos = live.count
            live.append(a)
            stats.live.add(1, ordering: .relaxed)
            if case .soak(let katoNs, _) = mode { timers.push((monoNs() + Int64.random(in: 0..<max(1, katoNs / 2)), a.id)) }
        }
    }

    private func register(_ fd: Int32, id: UInt64, side: UInt64, out: Bool, add: Bool) {
        Epoll.ctl(epfd, add ? Epoll.ctlAdd : Epoll.ctlMod, fd, events: Epoll.IN | (out ? Epoll.OUT : 0), data: id << 1 | side)
    }

    /// A new mode from the control thread: timers re-armed (soak) or the pacing restarted.
    private func followMode(now: Int64) {
        let (m, gen) = modeBox.withLock { $0 }
        guard gen != modeGeneration else { return }
        modeGeneration = gen
        mode = m
        timers.removeAll()
        churnCredit = 0
        pacedStartNs = now
        pacedSent = 0
        if case .soak(let katoNs, _) = m {
            for a in live { timers.push((now + Int64.random(in: 0..<max(1, katoNs / 2)), a.id)) }
        }
    }

    /// Fires due Keep Alive timers and churn; returns how long epoll may wait.
    private func soakStep(now: Int64, katoNs: Int64, churn: Double) -> Int32 {
        while let (due, id) = timers.top, due <= now {
            _ = timers.pop()
            guard let a = assocs[id], !a.closing else { continue }
            sendKeepAlive(a)
            let period = Double(katoNs / 2) * Double.random(in: 0.9...1.1)
            timers.push((now + Int64(period), id))
        }
        // Churn: `churn` of the associations per KATO, spread evenly in time.
        if churn > 0, lastLoopNs > 0 {
            churnCredit += churn * Double(live.count) * Double(now - lastLoopNs) / Double(katoNs)
            while churnCredit >= 1, !live.isEmpty {
                churnCredit -= 1
                tearDown(live[Int.random(in: 0..<live.count)])
            }
        }
        guard let (due, _) = timers.top else { return 50 }
        return Int32(max(0, min(50, (due - now + 999_999) / 1_000_000)))
    }

    /// Sends the Keep Alives due at `rate` per second since the mode began; returns epoll's wait.
    private func pacedStep(now: Int64, rate: Double) -> Int32 {
        var due = Int(Double(now - pacedStartNs) * rate / 1e9) - pacedSent
        // More than 100 ms behind: the generator cannot keep up; forget the backlog rather
        // than send it as a burst (counted: the achieved rate shows it).
        let limit = max(64, Int(rate / 10))
        if due > limit {
            stats.behind.add(due - limit, ordering: .relaxed)
            pacedSent += due - limit
            due = limit
        }
        var sent = 0
        while sent < due && sent < 256 {
            guard let a = nextFree() else {
                stats.saturated.add(due - sent, ordering: .relaxed)
                pacedSent += due - sent
                break
            }
            sendKeepAlive(a)
            sent += 1
            pacedSent += 1
        }
        return pacedSent < Int(Double(monoNs() - pacedStartNs) * rate / 1e9) ? 0 : 1
    }

    /// The next association round-robin with fewer than 8 Keep Alives outstanding.
    private func nextFree() -> Association? {
        guard !live.isEmpty else { return nil }
        for _ in 0..<live.count {
            roundRobin = (roundRobin + 1) % live.count
            let a = live[roundRobin]
            if a.outstanding < 8 { return a }
        }
        return nil
    }

    private func sendKeepAlive(_ a: Association) {
        let cid = a.nextCID
        a.nextCID = Int(cid) + 1 >= 2 + cidRange ? 2 : cid + 1
        kaBuf[Wire.keepAliveCID] = UInt8(cid & 0xFF)
        kaBuf[Wire.keepAliveCID + 1] = UInt8(cid >> 8)
        a.outstanding += 1
        stats.keepAlives.add(1, ordering: .relaxed)
        stats.pdus.add(1, ordering: .relaxed)
        let buf = kaBuf
        transmit(a, side: 0, buf)
    }

    /// Sends on one side (0 host, 1 target), queueing what the socket does not take.
    private func transmit(_ a: Association, side: Int, _ bytes: [UInt8]) {
        let fd = side == 0 ? a.host : a.target
        guard side == 0 ? a.hostOpen : a.targetOpen else { return }
        if !(side == 0 ? a.hostTx : a.targetTx).isEmpty {
            if side == 0 { a.hostTx += bytes } else { a.targetTx += bytes }
            return
        }
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if n == bytes.count { return }
        if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK { fail(a); return }
        let rest = Array(bytes[max(0, n)...])
        if side == 0 { a.hostTx = rest } else { a.targetTx = rest }
        register(fd, id: a.id, side: UInt64(side), out: true, add: false)
    }

    private func flush(_ a: Association, side: Int) {
        let fd = side == 0 ? a.host : a.target
        var pending = side == 0 ? a.hostTx : a.targetTx
        guard !pending.isEmpty else { return }
        let n = pending.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if n < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { fail(a) }
            return
        }
        pending.removeFirst(n)
        if side == 0 { a.hostTx = pending } else { a.targetTx = pending }
        if pending.isEmpty { register(fd, id: a.id, side: UInt64(side), out: false, add: false) }
    }

    private func handle(events: UInt32, key: UInt64) {
        if key == 0 {
            var drain = [UInt8](repeating: 0, count: 256)
            _ = read(wakeRead, &drain, drain.count)
            return
        }
        guard let a = assocs[key >> 1] else { return }
        let side = Int(key & 1)
        if events & Epoll.OUT != 0 { flush(a, side: side) }
        if events & (Epoll.IN | Epoll.HUP | Epoll.ERR) != 0 { receive(a, side: side) }
    }

    /// Reads what one side received: the target answers each capsule command with a response of
    /// its CID; the host counts responses. End of stream closes that side.
    private func receive(_ a: Association, side: Int) {
        guard side == 0 ? a.hostOpen : a.targetOpen else { return }
        let fd = side == 0 ? a.host : a.target
        while true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                if side == 0 { a.hostRx.append(contentsOf: scratch[0..<n]) } else { a.targetRx.append(contentsOf: scratch[0..<n]) }
                if n < scratch.count { break }
                continue
            }
            if n == 0 { endOfStream(a, side: side); return }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
            fail(a)
            return
        }
        if side == 0 { hostPDUs(a) } else { targetPDUs(a) }
    }

    /// Whole PDUs at the front of `buf` (the common header's PLEN at bytes 4-7).
    private static func wholePDUs(_ buf: [UInt8], _ body: (Int, Int) -> Void) -> Int {
        var off = 0
        while buf.count - off >= 8 {
            let plen = Int(buf[off + 4]) | Int(buf[off + 5]) << 8 | Int(buf[off + 6]) << 16 | Int(buf[off + 7]) << 24
            guard plen >= 8, buf.count - off >= plen else { break }
            body(off, plen)
            off += plen
        }
        return off
    }

    private func targetPDUs(_ a: Association) {
        var cids: [(UInt8, UInt8)] = []
        let used = Self.wholePDUs(a.targetRx) { off, _ in
            if a.targetRx[off] == 0x04 { cids.append((a.targetRx[off + Wire.keepAliveCID], a.targetRx[off + Wire.keepAliveCID + 1])) }
        }
        if used > 0 { a.targetRx.removeFirst(used) }
        for (lo, hi) in cids {
            respBuf[Wire.responseCID] = lo
            respBuf[Wire.responseCID + 1] = hi
            stats.pdus.add(1, ordering: .relaxed)
            let buf = respBuf
            transmit(a, side: 1, buf)
        }
    }

    private func hostPDUs(_ a: Association) {
        var responses = 0
        let used = Self.wholePDUs(a.hostRx) { off, _ in if a.hostRx[off] == 0x05 { responses += 1 } }
        if used > 0 { a.hostRx.removeFirst(used) }
        a.outstanding = max(0, a.outstanding - responses)
        stats.responses.add(responses, ordering: .relaxed)
    }

    /// Churn: the host closes its side (FIN); the target closes when it reads the end, then the
    /// host when it reads the target's; the slot is re-made once both are closed.
    private func tearDown(_ a: Association) {
        a.closing = true
        removeLive(a)
        shutdown(a.host, Int32(SHUT_WR))
    }

    private func endOfStream(_ a: Association, side: Int) {
        if !a.closing { stats.errors.add(1, ordering: .relaxed) }  // closed unasked
        if side == 1 {
            close(a.target)
            a.targetOpen = false
        } else {
            close(a.host)
            a.hostOpen = false
        }
        if !a.hostOpen && !a.targetOpen { retire(a) }
    }

    /// A socket error: both sides closed at once, the slot re-made.
    private func fail(_ a: Association) {
        stats.errors.add(1, ordering: .relaxed)
        if a.hostOpen { close(a.host); a.hostOpen = false }
        if a.targetOpen { close(a.target); a.targetOpen = false }
        retire(a)
    }

    private func retire(_ a: Association) {
        guard assocs.removeValue(forKey: a.id) != nil else { return }
        removeLive(a)
        stats.live.subtract(1, ordering: .relaxed)
        if a.closing { stats.teardowns.add(1, ordering: .relaxed) }
        replace(a.slot)
    }

    private func removeLive(_ a: Association) {
        guard a.livePos >= 0 else { return }
        let last = live.removeLast()
        if last !== a {
            live[a.livePos] = last
            last.livePos = a.livePos
        }
        a.livePos = -1
    }
}

/// Makes associations, one at a time, on its own thread: connect, accept, the handshake over
/// blocking sockets, then the pair goes nonblocking to the worker of its slot. Requests carry a
/// not-before time, so the first ones ramp up at a set rate.
final class Connector: @unchecked Sendable {
    let listenFD: Int32
    let port: UInt16
    let workers: [Worker]
    let katoMs: UInt32
    let created = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    private let queue = Mutex<[(slot: Int, notBefore: Int64)]>([])
    private let signal = DispatchSemaphore(value: 0)
    private let stopFlag = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let nextID = Atomic<UInt64>(1)

    init(listenFD: Int32, port: UInt16, workers: [Worker], katoMs: UInt32) {
        self.listenFD = listenFD
        self.port = port
        self.workers = workers
        self.katoMs = katoMs
    }

    func start() {
        let t = Thread { [self] in loop(); finished.signal() }
        t.name = "soak-connector"
        t.start()
    }

    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        signal.signal()
        finished.wait()
    }

    func request(slot: Int, notBefore: Int64 = 0) {
        queue.withLock { $0.append((slot, notBefore)) }
        signal.signal()
    }

    var pending: Int { queue.withLock { $0.count } }

    private func loop() {
        while !stopFlag.load(ordering: .relaxed) {
            guard signal.wait(timeout: .now() + .milliseconds(200)) == .success else { continue }
            guard let r = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            while !stopFlag.load(ordering: .relaxed), monoNs() < r.notBefore {
                usleep(UInt32(min(100_000, max(100, (r.notBefore - monoNs()) / 1000))))
            }
            if stopFlag.load(ordering: .relaxed) { break }
            if let a = establish(slot: r.slot) {
                created.add(1, ordering: .relaxed)
                workers[r.slot % workers.count].adopt(a)
            } else {
                failed.add(1, ordering: .relaxed)
                usleep(100_000)
                request(slot: r.slot)  // try again
            }
        }
    }

    private func establish(slot: Int) -> Association? {
        guard let host = Sock.connect(port: port) else { return nil }
        let target = accept(listenFD, nil, nil)
        guard target >= 0 else { close(host); return nil }
        _ = fcntl(target, F_SETFD, FD_CLOEXEC)  // (Glibc has no accept4; no child is started meanwhile)
        Sock.noDelay(target)
        Sock.setTimeouts(target, seconds: 5)
        let connect = Wire.connect(slot: slot, katoMs: katoMs)
        let ok = Sock.sendAll(host, Wire.icReq)
            && Sock.recvExactly(target, Wire.icReq.count) != nil
            && Sock.sendAll(target, Wire.icResp)
            && Sock.recvExactly(host, Wire.icResp.count) != nil
            && Sock.sendAll(host, connect)
            && Sock.recvExactly(target, connect.count) != nil
            && Sock.sendAll(target, Wire.connectResp(cntlid: UInt16(slot % 0xFFEF + 1)))
            && Sock.recvExactly(host, 24) != nil
        guard ok else { close(host); close(target); return nil }
        Sock.setNonBlocking(host)
        Sock.setNonBlocking(target)
        return Association(id: nextID.add(1, ordering: .relaxed).oldValue, slot: slot, host: host, target: target)
    }
}

/// The generator as the command drives it: a listener, workers and a connector.
final class Traffic {
    let listenFD: Int32
    let port: UInt16
    let workers: [Worker]
    let connector: Connector

    init(threads: Int, katoSeconds: Double, cidRange: Int) throws {
        guard let (fd, port) = Sock.listener() else { throw SoakError("cannot listen on 127.0.0.1") }
        listenFD = fd
        self.port = port
        // The connector exists after the workers, which call it back: through this box.
        let box = ConnectorBox()
        workers = (0..<max(1, threads)).map { i in Worker(index: i, cidRange: cidRange, replace: { slot in box.connector?.request(slot: slot) }) }
        connector = Connector(listenFD: fd, port: port, workers: workers, katoMs: UInt32(katoSeconds * 1000))
        box.connector = connector
        workers.forEach { $0.start() }
        connector.start()
    }

    /// Asks for `count` associations, made at `perSecond` from now.
    func open(count: Int, perSecond: Double) {
        let t0 = monoNs()
        for slot in 0..<count {
            connector.request(slot: slot, notBefore: t0 + Int64(Double(slot) / perSecond * 1e9))
        }
    }

    func setMode(_ m: TrafficMode) { workers.forEach { $0.setMode(m) } }

    /// Totals over the workers.
    struct Totals: Codable, Sendable {
        var keepAlives = 0, responses = 0, pdus = 0, teardowns = 0, errors = 0, saturated = 0, behind = 0, live = 0
        var created = 0, failedConnects = 0
    }

    func totals() -> Totals {
        var t = Totals()
        for w in workers {
            t.keepAlives += w.stats.keepAlives.load(ordering: .relaxed)
            t.responses += w.stats.responses.load(ordering: .relaxed)
            t.pdus += w.stats.pdus.load(ordering: .relaxed)
            t.teardowns += w.stats.teardowns.load(ordering: .relaxed)
            t.errors += w.stats.errors.load(ordering: .relaxed)
            t.saturated += w.stats.saturated.load(ordering: .relaxed)
            t.behind += w.stats.behind.load(ordering: .relaxed)
            t.live += w.stats.live.load(ordering: .relaxed)
        }
        t.created = connector.created.load(ordering: .relaxed)
        t.failedConnects = connector.failed.load(ordering: .relaxed)
        return t
    }

    /// Stops every thread and closes every socket.
    func shutdown() {
        connector.stop()
        workers.forEach { $0.stop() }
        close(listenFD)
    }
}

final class ConnectorBox: @unchecked Sendable {
    // Set once, before any worker can call it back (no association exists before).
    var connector: Connector?
}

struct SoakError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
