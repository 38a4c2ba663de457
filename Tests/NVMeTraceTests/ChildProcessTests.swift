import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The guarantees every test that starts a process rests on (Support/ChildProcess.swift).
@Suite struct ChildProcessTests {
    /// More than a pipe holds (64 KiB) on stderr before stdout closes: read one after the other,
    /// the child would block writing stderr while the test waited for stdout's end.
    @Test func bothPipesAreReadAtOnce() throws {
        let run = try runChild("/bin/sh", ["-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o"],
                               seconds: 30)
        #expect(run.status == 0)
        #expect(run.stderr.utf8.count == 300_000 && run.stderr.allSatisfy { $0 == "e" })
        #expect(run.stdout.utf8.count == 300_000 && run.stdout.allSatisfy { $0 == "o" })
    }

    /// A child that does not finish is killed at its time limit, and the error says so.
    @Test func aStuckChildIsKilledAndTheTestFails() throws {
        let p = try ChildProcess("/bin/sh", ["-c", "echo started; exec sleep 60"])
        try p.waitFor("started", in: p.stdout, seconds: 10)
        let started = Date()
        let error = try #require(throws: ChildProcessError.self) { try p.wait(seconds: 1) }
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(error.description.contains("did not exit within 1.0 s and was killed"), "\(error)")
        #expect(error.description.contains("sleep 60"))
        #expect(!p.isRunning)
        #expect(kill(p.pid, 0) != 0)  // gone (reaped)
    }

    /// Environment variables given to a child reach it and only it.
    @Test func environmentIsTheChildsAlone() throws {
        let run = try runChild("/bin/sh", ["-c", "echo \"$NVMETRACE_TEST_ONLY_VAR\""],
                               environment: ["NVMETRACE_TEST_ONLY_VAR": "child"], seconds: 30)
        #expect(run.stdout == "child\n")
        #expect(ProcessInfo.processInfo.environment["NVMETRACE_TEST_ONLY_VAR"] == nil)
        #expect(getenv("NVMETRACE_TEST_ONLY_VAR") == nil)
    }

    /// Standard input larger than a pipe holds is delivered whole, and a child that exits
    /// without reading it does not take the test process down with SIGPIPE.
    @Test func standardInput() throws {
        let data = Data(repeating: 0x61, count: 500_000)
        let run = try runChild("/usr/bin/wc", ["-c"], stdin: data, seconds: 30)
        #expect(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "500000")
        let ignored = try runChild("/bin/true", [], stdin: data, seconds: 30)
        #expect(ignored.status == 0)
    }
}
