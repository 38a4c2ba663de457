#if canImport(Glibc)
import Glibc
#endif

/// Where a daemon's JSON lines go: standard output, or a file rotated by size as logrotate and
/// `tcpdump -C` do — when a line would take `FILE` past `maxBytes`, `FILE.(n-1)` becomes
/// `FILE.n` (the oldest, `FILE.keep`, is removed), `FILE` becomes `FILE.1`, and a new `FILE` is
/// begun. A log shipper tailing `FILE` by name (Vector, Fluent Bit, Promtail) follows the
/// rename. Each line goes out in one write(2): a reader never sees half a line.
public final class EventLog {
    public let path: String?
    public let maxBytes: Int
    public let keep: Int
    private var fd: Int32
    private var size: Int
    /// Rotations done (for the tests and the shutdown line).
    public private(set) var rotations = 0

    public enum OpenError: Error, CustomStringConvertible {
        case cannotOpen(String, Int32)
        public var description: String {
            switch self {
            case .cannotOpen(let p, let e): "cannot open \(p): \(String(cString: strerror(e)))"
            }
        }
    }

    /// `path` nil: standard output (never rotated).
    public init(path: String?, maxBytes: Int = 100 << 20, keep: Int = 5) throws(OpenError) {
        self.path = path
        self.maxBytes = max(1, maxBytes)
        self.keep = max(1, keep)
        if let path {
            (fd, size) = try Self.open(path)
        } else {
            fd = 1
            size = 0
        }
    }

    deinit { if path != nil { close(fd) } }

    private static func open(_ path: String) throws(OpenError) -> (Int32, Int) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path, errno) }
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        return (fd, size)
    }

    /// Writes `line` and a newline; rotates first when the file would pass `maxBytes`.
    public func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        if let path, size > 0, size + bytes.count > maxBytes { rotate(path) }
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }  // disk full, pipe closed: the event is lost, not the daemon
                off += n
            }
        }
        size += bytes.count
    }

    private func rotate(_ path: String) {
        close(fd)
        unlink("\(path).\(keep)")
        for n in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(n)", "\(path).\(n + 1)") }
        rename(path, "\(path).1")
        rotations += 1
        if let (f, s) = try? Self.open(path) {
            fd = f
            size = s
        } else {
            // The directory went away or filled up: lines go nowhere until it comes back.
            fd = Glibc.open("/dev/null", O_WRONLY | O_CLOEXEC)
            size = 0
        }
    }
}
