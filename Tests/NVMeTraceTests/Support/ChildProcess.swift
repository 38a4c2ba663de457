import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Every process the tests start (nvmetrace, setpriv, python3, chromium) goes through `ChildProcess`:
// a time limit on each, after which it is killed and the test fails saying so (a stuck child must
// fail CI, not hang it); stdout and stderr read at once by their own threads (a child that fills
// one pipe while the test reads the other would deadlock both); its environment given to it alone
// (setenv in the test process races with other tests starting processes).

/// What a finished child did.
struct ChildResult {
    /// The exit status, or 128 + the signal's number when a signal ended it (as a shell says it).
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A child that could not start, did not finish in time, or did not say what was awaited.
struct ChildProcessError: Error, CustomStringConvertible {
    var description: String
}

/// Everything one pipe of a child carries, collected by a reader thread. Waiters are woken as
/// bytes arrive and when the pipe closes.
final class ChildOutput: @unchecked Sendable {
    private let condition = NSCondition()
    private var bytes: [UInt8] = []
    private var partial: [UInt8] = []
    private var stamped: [(Date, String)] = []
    private var closed = false

    fileprivate func append(_ chunk: ArraySlice<UInt8>) {
        condition.lock()
        bytes.append(contentsOf: chunk)
        for b in chunk {
            if b == 0x0A {
                stamped.append((Date(), String(decoding: partial, as: UTF8.self)))
                partial.removeAll(keepingCapacity: true)
            } else {
                partial.append(b)
            }
        }
        condition.broadcast()
        condition.unlock()
    }

    fileprivate func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    var text: String { locked { String(decoding: bytes, as: UTF8.self) } }
    /// Complete lines with the time each arrived.
    var lines: [(Date, String)] { locked { stamped } }
    var isClosed: Bool { locked { closed } }

    /// Waits until `predicate` holds for the text so far; false when the pipe closed without it or
    /// the deadline passed.
    func wait(until deadline: Date, for predicate: (String) -> Bool) -> Bool {
        let deadline = min(deadline, Date().addingTimeInterval(1e6))  // wait(until: .distantFuture) traps
        condition.lock()
        defer { condition.unlock() }
        while true {
            if predicate(String(decoding: bytes, as: UTF8.self)) { return true }
            if closed { return false }
            if !condition.wait(until: deadline) { return predicate(String(decoding: bytes, as: UTF8.self)) }
        }
    }

    /// Waits until the pipe is closed (the child and everything it started are gone).
    func waitClosed(until deadline: Date) -> Bool { wait(until: deadline) { _ in false } || isClosed }
}

/// The wait status of a child, once it is reaped.
private final class ExitBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var status: Int32?

    func set(_ s: Int32) {
        condition.lock()
        status = s
        condition.broadcast()
        condition.unlock()
    }

    func wait(until deadline: Date) -> Int32? {
        let deadline = min(deadline, Date().addingTimeInterval(1e6))  // wait(until: .distantFuture) traps
        condition.lock()
        defer { condition.unlock() }
        while status == nil {
            if !condition.wait(until: deadline) { break }
        }
        return status
    }

    var value: Int32? {
        condition.lock()
        defer { condition.unlock() }
        return status
    }
}

/// Writing to a child's stdin after it exited must not kill the test process with SIGPIPE: the
/// write fails with EPIPE instead. (Children get SIGPIPE back at its default: see `spawn`.)
private let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()

/// Held from creating a child's pipes to starting it (see `ChildProcess.init`).
private let spawnLock = NSLock()

/// A running child process in its own process group.
final class ChildProcess {
    let pid: pid_t
    /// The command line, for messages.
    let command: String
    let stdout = ChildOutput()
    let stderr = ChildOutput()
    private let exit = ExitBox()

    /// Starts `executable` with `arguments`. `environment` is added to this process's environment
    /// for the child only; `stdin` is written to its standard input (else /dev/null).
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil) throws {
        _ = ignoreSIGPIPE
        command = ([URL(fileURLWithPath: executable).lastPathComponent] + arguments)
            .map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
        // Close-on-exec on every pipe end: a child another test starts meanwhile must not inherit
        // a write end, or this child's output would never reach end-of-file. dup2 onto 0, 1, 2
        // clears the flag for the child's own ends. (Glibc's module lacks pipe2, so pipe and
        // fcntl, under a lock every spawn here takes: no spawn falls between the two.)
        spawnLock.lock()
        defer { spawnLock.unlock() }
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1], inPipe: [Int32] = [-1, -1]
        func cloexecPipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
        }
        guard cloexecPipe(&outPipe), cloexecPipe(&errPipe), stdin == nil || cloexecPipe(&inPipe) else {
            throw ChildProcessError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdin != nil {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // No blocked signals: the spawning thread may be one of the runtime's, which block most of
        // them, and a child inheriting a blocked SIGINT would never see the tests' Ctrl-C.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attr, &noSignals)
        // Default dispositions for what this process may ignore (SIGPIPE above): ignored signals
        // survive exec.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        // Its own process group, so that a timeout kills whatever it started too (chromium's
        // helpers), whose open pipe ends would otherwise keep the output from closing.
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        if stdin != nil { close(inPipe[0]) }
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            if stdin != nil { close(inPipe[1]) }
            throw ChildProcessError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        let spawned = child

        Self.read(outPipe[0], into: stdout)
        Self.read(errPipe[0], into: stderr)
        if let stdin {
            let fd = inPipe[1]
            Thread {
                let bytes = [UInt8](stdin)
                var off = 0
                while off < bytes.count {
                    let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }  // the child closed its stdin (EPIPE)
                    off += n
                }
                close(fd)
            }.start()
        }
        let box = exit
        Thread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 {
                if errno != EINTR { status = -1; break }
            }
            box.set(status)
        }.start()
    }

    /// A child still running when its test ends (an expectation failed before the wait) is killed.
    deinit {
        if exit.value == nil { kill(-pid, SIGKILL) }
    }

    private static func read(_ fd: Int32, into output: ChildOutput) {
        Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                output.append(buffer[..<n])
            }
            close(fd)
            output.close()
        }.start()
    }

    func send(signal: Int32) {
        kill(pid, signal)
    }

    var isRunning: Bool { exit.value == nil }

    /// What the child wrote so far, for failure messages.
    var transcript: String {
        "stderr: \(stderr.text.suffix(4000))\nstdout: \(stdout.text.suffix(2000))"
    }

    /// Waits up to `seconds` for the child to exit; past that it is killed (with its process
    /// group) and the wait throws, naming the command, the limit and what it wrote.
    func wait(seconds: Double) throws -> ChildResult {
        let deadline = Date().addingTimeInterval(seconds)
        guard let raw = exit.wait(until: deadline) else {
            kill(-pid, SIGKILL)
            _ = exit.wait(until: Date().addingTimeInterval(10))
            _ = stdout.waitClosed(until: Date().addingTimeInterval(2))
            _ = stderr.waitClosed(until: Date().addingTimeInterval(2))
            throw ChildProcessError(description: "`\(command)` did not exit within \(seconds) s and was killed\n\(transcript)")
        }
        // The pipes close once everything the child started has exited too; what is left of its
        // group after the time limit is killed.
        let pipesDeadline = max(deadline, Date().addingTimeInterval(2))
        if !stdout.waitClosed(until: pipesDeadline) || !stderr.waitClosed(until: pipesDeadline) {
            kill(-pid, SIGKILL)
            _ = stdout.waitClosed(until: Date().addingTimeInterval(2))
            _ = stderr.waitClosed(until: Date().addingTimeInterval(2))
        }
        let status: Int32
        if raw == -1 {
            status = -1  // reaped by someone else: no status to give
        } else if raw & 0x7F == 0 {
            status = (raw >> 8) & 0xFF
        } else {
            status = 128 + (raw & 0x7F)
        }
        return ChildResult(status: status, stdout: stdout.text, stderr: stderr.text)
    }

    /// Waits until `output` (the child's stdout or stderr) contains `text`; throws when the
    /// deadline passes or the child closes that output first (it exited), with what it wrote.
    func waitFor(_ text: String, in output: ChildOutput, seconds: Double) throws {
        if output.wait(until: Date().addingTimeInterval(seconds), for: { $0.contains(text) }) { return }
        let why = output.isClosed ? "exited (or closed its output) without writing" : "did not write within \(seconds) s"
        throw ChildProcessError(description: "`\(command)` \(why) '\(text)'\n\(transcript)")
    }
}

/// Runs a command to its end within `seconds` (see `ChildProcess.wait`).
func runChild(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
              stdin: Data? = nil, seconds: Double) throws -> ChildResult {
    try ChildProcess(executable, arguments, environment: environment, stdin: stdin).wait(seconds: seconds)
}
