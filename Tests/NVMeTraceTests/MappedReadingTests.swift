import Foundation
import Testing
@testable import NVMeTrace

#if canImport(Glibc)
import Glibc
#endif

/// Regular files are mapped and read by libpcap through `fmemopen`; anything else (standard
/// input, pipes) through stdio. Both must deliver the same packets and the same errors, and the
/// mapping must not keep what was read resident.
@Suite struct MappedReadingTests {
    /// Frames, timestamps and a checksum of every captured byte, or the read error.
    static func digest(_ source: PcapFileSource) -> (Int, UInt64, String?) {
        var frames = 0
        var sum: UInt64 = 0
        do {
            try source.forEach { p in
                frames += 1
                sum = sum &* 31 &+ UInt64(bitPattern: p.ref.timeNs) &+ UInt64(p.bytes.count)
                for b in p.bytes { sum = sum &* 131 &+ UInt64(b) }
            }
        } catch {
            return (frames, sum, error.description)
        }
        return (frames, sum, nil)
    }

    static func streamed(_ path: String) throws -> PcapFileSource {
        let f = try #require(fopen(path, "rb"))
        return try PcapFileSource(file: f, name: path, fileIndex: 0)
    }

    @Test func mappedAndStreamedReadingDeliverTheSamePackets() throws {
        let path = GeneratorTests.generate(seed: 5, steps: 700)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let size = try #require(CaptureAnalysis.size(of: path))
        #expect(size > 2 * Int64(PcapFileSource.dropEvery), "capture too small to test dropping")
        let mapped = try PcapFileSource(path: path, fileIndex: 0)
        #expect(mapped.isMapped)
        let a = Self.digest(mapped)
        let streamed = try Self.streamed(path)
        #expect(!streamed.isMapped)
        let b = Self.digest(streamed)
        #expect(a.0 > 10_000 && a.0 == b.0 && a.1 == b.1 && a.2 == nil && b.2 == nil)
        // What was read is no longer mapped in: all but the last stretch was dropped.
        #expect(mapped.droppedBytes > 0)
        #expect(Int64(mapped.droppedBytes) >= size - 2 * Int64(PcapFileSource.dropEvery))
    }

    @Test func aTruncatedFileGivesTheSameErrorEitherWay() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: samplePath("D-io-traffic")))
        let url = temporaryFile("truncated.pcap")
        try full.prefix(full.count - 700).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let mapped = try PcapFileSource(path: url.path, fileIndex: 0)
        #expect(mapped.isMapped)
        let a = Self.digest(mapped)
        let b = Self.digest(try Self.streamed(url.path))
        #expect(a.2 != nil && a.2 == b.2)
        #expect(a.0 == b.0 && a.1 == b.1 && a.0 > 100)
    }

    @Test func aPipeIsReadThroughStdio() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let fifo = dir + "/nvmetrace-fifo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: samplePath("C-oneshot-discovery")))
        let writer = Thread {
            if let h = FileHandle(forWritingAtPath: fifo) {
                h.write(bytes)
                try? h.close()
            }
            // A reader that wrongly opens the pipe a second time would wait for a writer forever:
            // open and close it a few more times, so that such a bug fails the test, not hangs it.
            for _ in 0..<30 {
                usleep(100_000)
                let fd = open(fifo, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { close(fd) }
            }
        }
        writer.start()
        let source = try PcapFileSource(path: fifo, fileIndex: 0)
        #expect(!source.isMapped)
        let piped = Self.digest(source)
        let file = Self.digest(try PcapFileSource(path: samplePath("C-oneshot-discovery"), fileIndex: 0))
        #expect(piped.0 > 100 && piped.0 == file.0 && piped.1 == file.1 && piped.2 == nil)
    }

    /// A file that shrinks while it is read (tcpdump -W reopens its oldest ring file with
    /// O_TRUNC) must not kill the process with SIGBUS: the read ends with an error naming the
    /// last good frame.
    @Test func aFileThatShrinksWhileReadIsAnErrorNotACrash() throws {
        let path = GeneratorTests.generate(seed: 6, steps: 500)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = try PcapFileSource(path: path, fileIndex: 0)
        #expect(source.isMapped)
        var frames = 0
        var truncatedAt = 0
        do {
            try source.forEach { _ in
                frames += 1
                if frames == 2000 {
                    truncatedAt = frames
                    #expect(truncate(path, 100_000) == 0)
                }
            }
            Issue.record("no error after the file shrank")
        } catch {
            #expect(error.description.contains("shrank while it was being read"), "\(error)")
            if case .readFailed(_, let lastGood, _) = error { #expect(lastGood >= truncatedAt) }
        }
        #expect(truncatedAt == 2000)
    }
}
