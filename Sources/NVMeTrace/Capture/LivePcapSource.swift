import CPcap
import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings for a live capture, named as tcpdump names them.
public struct LiveCaptureOptions: Sendable {
    public var device: String
    /// BPF filter expression; `tcp` unless told otherwise.
    public var filter = "tcp"
    public var snaplen: Int32 = 262_144
    public var promiscuous = true
    /// How long libpcap may wait before returning with no packet: the tick that lets timers fire
    /// while the link is quiet.
    public var timeoutMs: Int32 = 100
    /// Deliver each packet at once instead of in ring-buffer blocks (at most `timeoutMs` late).
    /// Off by default: on Linux with libpcap 1.10 it loses packets of bursts (measured on lo:
    /// `tcpdump --immediate-mode` kept 20 of 25 packets of an NVMe/TCP exchange that plain
    /// tcpdump kept whole), and findings do not need lower latency than the timeout gives.
    public var immediate = false

    public init(device: String) { self.device = device }
}

/// An interface as `-D` lists it.
public struct CaptureInterface: Sendable {
    public var name: String
    public var description: String?
    public var isUp: Bool
    public var isLoopback: Bool
}

/// Captures from a network interface with libpcap, optionally saving every packet to a pcap file
/// (`-w`) as it is analysed.
///
/// Reads block; a ticker thread breaks the loop every `timeoutMs` so timers run on a quiet link
/// whatever the platform does with read timeouts (in immediate mode on Linux the timeout never
/// fires). `breakLoop` is the one method safe to call from another thread.
public final class LivePcapSource: @unchecked Sendable {
    public let options: LiveCaptureOptions
    private var handle: OpaquePointer?
    private var dumper: OpaquePointer?
    public let linkType: Int32
    public private(set) var framesRead = 0
    private let nanosecond: Bool

    public init(options: LiveCaptureOptions) throws(CaptureError) {
        self.options = options
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_create(options.device, &errbuf) else {
            throw .liveFailed(device: options.device, reason: cString(errbuf))
        }
        pcap_set_snaplen(h, options.snaplen)
        pcap_set_promisc(h, options.promiscuous ? 1 : 0)
        pcap_set_timeout(h, options.timeoutMs)
        pcap_set_immediate_mode(h, options.immediate ? 1 : 0)
        _ = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let rc = pcap_activate(h)
        if rc < 0 {
            let detail = String(cString: pcap_geterr(h))
            pcap_close(h)
            switch rc {
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw .liveFailed(device: options.device, reason: "no such interface (nvmetrace -D lists them)" + (detail.isEmpty ? "" : ": \(detail)"))
            case PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED:
                throw .liveFailed(device: options.device, reason: "permission denied: capturing needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities" + (detail.isEmpty ? "" : " (\(detail))"))
            case PCAP_ERROR_IFACE_NOT_UP:
                throw .liveFailed(device: options.device, reason: "interface is down")
            default:
                throw .liveFailed(device: options.device, reason: detail.isEmpty ? String(cString: pcap_statustostr(rc)) : detail)
            }
        }
        handle = h
        linkType = pcap_datalink(h)
        nanosecond = pcap_get_tstamp_precision(h) == Int32(PCAP_TSTAMP_PRECISION_NANO)
        var program = bpf_program()
        if pcap_compile(h, &program, options.filter, 1, PCAP_NETMASK_UNKNOWN) != 0 {
            let reason = String(cString: pcap_geterr(h))
            throw .liveFailed(device: options.device, reason: "bad filter expression '\(options.filter)': \(reason)")
        }
        defer { pcap_freecode(&program) }
        if pcap_setfilter(h, &program) != 0 {
            throw .liveFailed(device: options.device, reason: "cannot set filter: \(String(cString: pcap_geterr(h)))")
        }
    }

    deinit {
        closeDump()
        if let handle { pcap_close(handle) }
    }

    public var linkTypeName: String {
        guard let handle, let name = pcap_datalink_val_to_name(pcap_datalink(handle)) else { return "\(linkType)" }
        return String(cString: name)
    }

    /// Saves every packet read from now on to `path` (pcap, the capture's own timestamp precision).
    public func openDump(path: String) throws(CaptureError) {
        guard let handle else { return }
        guard let d = pcap_dump_open(handle, path) else {
            throw .liveFailed(device: options.device, reason: "cannot write \(path): \(String(cString: pcap_geterr(handle)))")
        }
        dumper = d
    }

    public func flushDump() {
        if let dumper { pcap_dump_flush(dumper) }
    }

    public func closeDump() {
        if let dumper {
            pcap_dump_flush(dumper)
            pcap_dump_close(dumper)
        }
        dumper = nil
    }

    /// Makes `run` return soon; safe to call from another thread or a signal handler's queue.
    public func breakLoop() {
        if let handle { pcap_breakloop(handle) }
    }

    /// What another thread (a signal or timer handler) holds to stop `run`: the bare pcap handle,
    /// no reference to this object, which belongs to the capture loop's thread.
    public var loopBreaker: LoopBreaker { LoopBreaker(handle: handle) }

    public struct LoopBreaker: @unchecked Sendable {
        fileprivate let handle: OpaquePointer?
        /// `pcap_breakloop` is documented as safe from other threads and signal handlers.
        public func breakLoop() {
            if let handle { pcap_breakloop(handle) }
        }
    }

    /// Reads packets until `shouldStop` says so, `maxPackets` have been read, or an error.
    /// `onTick` runs after every batch of packets and every tick, with the wall clock, so timers
    /// fire on quiet links.
    public func run(maxPackets: Int? = nil, onPacket: (Packet) -> Void, onTick: (Int64) -> Void,
                    shouldStop: () -> Bool) throws(CaptureError) {
        guard let handle else { return }
        let ticker = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "nvmetrace.ticker"))
        let interval = DispatchTimeInterval.milliseconds(Int(options.timeoutMs))
        ticker.schedule(deadline: .now() + interval, repeating: interval)
        // The handler runs on the ticker's thread: it captures the pcap handle only (see
        // `loopBreaker`).
        let breaker = loopBreaker
        ticker.setEventHandler { breaker.breakLoop() }
        ticker.resume()
        defer { ticker.cancel() }
        try withoutActuallyEscaping(onPacket) { (deliver) throws(CaptureError) in
            let context = DispatchContext(source: self, deliver: deliver)
            let user = Unmanaged.passUnretained(context).toOpaque().assumingMemoryBound(to: UInt8.self)
            while !shouldStop() {
                // -c N: ask for no more than the packets still allowed, so that exactly N are
                // analysed and saved (a batch is a whole ring-buffer block otherwise, and the
                // packets after the N-th would be counted, written to -w and analysed).
                var wanted: Int32 = -1
                if let maxPackets {
                    guard framesRead < maxPackets else { break }
                    wanted = Int32(clamping: maxPackets - framesRead)
                }
                let rc = pcap_dispatch(handle, wanted, { user, header, data in
                    guard let user, let header, let data else { return }
                    let ctx = Unmanaged<DispatchContext>.fromOpaque(UnsafeRawPointer(user)).takeUnretainedValue()
                    ctx.source.handle(header: header, data: data, deliver: ctx.deliver)
                }, user)
                if rc >= 0 || rc == PCAP_ERROR_BREAK {
                    onTick(LivePcapSource.now())
                } else {
                    throw .liveFailed(device: options.device, reason: String(cString: pcap_geterr(handle)))
                }
            }
        }
    }

    private final class DispatchContext {
        let source: LivePcapSource
        let deliver: (Packet) -> Void
        init(source: LivePcapSource, deliver: @escaping (Packet) -> Void) {
            self.source = source
            self.deliver = deliver
        }
    }

    private func handle(header: UnsafePointer<pcap_pkthdr>, data: UnsafePointer<UInt8>, deliver: (Packet) -> Void) {
        framesRead += 1
        let h = header.pointee
        let sub = Int64(h.ts.tv_usec)
        let ns = Int64(h.ts.tv_sec) &* 1_000_000_000 &+ (nanosecond ? sub : sub &* 1000)
        if let dumper {
            pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), header, data)
        }
        deliver(Packet(ref: FrameRef(file: 0, frame: framesRead, timeNs: ns), linkType: linkType,
                       wireLength: Int(h.len), bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen))))
    }

    /// libpcap's counters: packets received by the filter, dropped by the kernel, dropped by the
    /// interface.
    public func stats() -> (received: UInt32, dropped: UInt32, ifDropped: UInt32)? {
        guard let handle else { return nil }
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return (s.ps_recv, s.ps_drop, s.ps_ifdrop)
    }

    /// Wall clock in nanoseconds since the epoch.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The interfaces libpcap can capture on (`-D`).
    public static func interfaces() throws(CaptureError) -> [CaptureInterface] {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        var list: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&list, &errbuf) == 0 else {
            throw .liveFailed(device: "-D", reason: cString(errbuf))
        }
        defer { pcap_freealldevs(list) }
        var out: [CaptureInterface] = []
        var p = list
        while let dev = p {
            let d = dev.pointee
            out.append(CaptureInterface(
                name: String(cString: d.name), description: d.description.map { String(cString: $0) },
                isUp: d.flags & UInt32(PCAP_IF_UP) != 0, isLoopback: d.flags & UInt32(PCAP_IF_LOOPBACK) != 0))
            p = d.next
        }
        return out
    }
}

/// Drops root privileges to `user` after the capture device is open, as tcpdump's -Z does.
public func dropPrivileges(to user: String) throws(CaptureError) {
    guard let pw = getpwnam(user) else { throw .liveFailed(device: "-Z", reason: "unknown user '\(user)'") }
    let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
    guard initgroups(user, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
        throw .liveFailed(device: "-Z", reason: "cannot switch to user '\(user)': \(String(cString: strerror(errno)))")
    }
    // Make sure root cannot be regained.
    if uid != 0 && setuid(0) == 0 { throw .liveFailed(device: "-Z", reason: "privileges could not be dropped") }
}
