#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered line output to a file descriptor (stdout: flushed when 64 KiB accumulate and at the
/// end; stderr: each line written at once so warnings interleave sensibly).
final class OutputStream {
    let fd: Int32
    let buffered: Bool
    private var buffer: [UInt8] = []

    init(fd: Int32, buffered: Bool) {
        self.fd = fd
        self.buffered = buffered
        buffer.reserveCapacity(1 << 16)
    }

    static func standardOutput() -> OutputStream { OutputStream(fd: 1, buffered: true) }
    static func standardError() -> OutputStream { OutputStream(fd: 2, buffered: false) }

    func write(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if !buffered || buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        var offset = 0
        buffer.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 {
                    if n < 0 && errno == EINTR { continue }
                    return  // closed pipe or error: output is lost, as with any CLI tool
                }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    deinit { flush() }
}
