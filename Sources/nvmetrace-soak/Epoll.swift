#if canImport(Glibc)
import Glibc
#endif

/// Linux epoll, which Swift's Glibc module does not expose (sys/epoll.h is not in it): the three
/// calls looked up in libc with dlsym as C function pointers, and `struct epoll_event` handled
/// as bytes (packed, 12 bytes, on x86_64; 16 with the data at offset 8 elsewhere).
enum Epoll {
    static let IN: UInt32 = 0x001
    static let OUT: UInt32 = 0x004
    static let ERR: UInt32 = 0x008
    static let HUP: UInt32 = 0x010
    static let ctlAdd: Int32 = 1
    static let ctlMod: Int32 = 3
    static let cloexec: Int32 = 0o2000000

    #if arch(x86_64)
    static let eventSize = 12, dataOffset = 4
    #else
    static let eventSize = 16, dataOffset = 8
    #endif

    private typealias Create1 = @convention(c) (Int32) -> Int32
    private typealias Ctl = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    private typealias Wait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32

    private static func symbol<T>(_ name: String, as: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let p = dlsym(handle, name) else { fatalError("\(name) not found in libc") }
        return unsafeBitCast(p, to: T.self)
    }

    nonisolated(unsafe) private static let create1Fn = symbol("epoll_create1", as: Create1.self)
    nonisolated(unsafe) private static let ctlFn = symbol("epoll_ctl", as: Ctl.self)
    nonisolated(unsafe) private static let waitFn = symbol("epoll_wait", as: Wait.self)

    static func create() -> Int32 { create1Fn(cloexec) }

    /// Adds or modifies `fd` with these events and 64 bits of user data.
    @discardableResult
    static func ctl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, data: UInt64) -> Int32 {
        var ev = [UInt8](repeating: 0, count: eventSize)
        return ev.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: data, toByteOffset: dataOffset, as: UInt64.self)
            return ctlFn(epfd, op, fd, raw.baseAddress)
        }
    }

    /// A buffer for `wait`'s results.
    final class Events {
        let capacity: Int
        let raw: UnsafeMutableRawPointer
        init(capacity: Int) {
            self.capacity = capacity
            raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * Epoll.eventSize, alignment: 8)
        }
        deinit { raw.deallocate() }
        func events(_ i: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: i * Epoll.eventSize, as: UInt32.self) }
        func data(_ i: Int) -> UInt64 { raw.loadUnaligned(fromByteOffset: i * Epoll.eventSize + Epoll.dataOffset, as: UInt64.self) }
    }

    /// epoll_wait: the number of events ready (-1 on EINTR).
    static func wait(_ epfd: Int32, _ buffer: Events, timeoutMs: Int32) -> Int32 {
        waitFn(epfd, buffer.raw, Int32(buffer.capacity), timeoutMs)
    }
}
