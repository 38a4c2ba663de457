import Foundation
import Synchronization
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

#if canImport(Glibc)
import Glibc
#endif

/// Whether this process can open a capture device on the loopback interface.
func canCaptureOnLoopback() -> Bool {
    (try? LivePcapSource(options: LiveCaptureOptions(device: "lo"))) != nil
}

/// A TCP socket on 127.0.0.1, blocking, for playing both sides of an NVMe/TCP exchange.
final class LoopbackSocket {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    static func listener() -> (LoopbackSocket, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 8)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) } }
        return (LoopbackSocket(fd: fd), UInt16(bigEndian: addr.sin_port))
    }

    static func connect(port: UInt16) -> LoopbackSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return LoopbackSocket(fd: fd)
    }

    func accept() -> LoopbackSocket {
        LoopbackSocket(fd: Glibc.accept(fd, nil, nil))
    }

    func send(_ bytes: [UInt8]) {
        var off = 0
        bytes.withUnsafeBytes { raw in
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, 0)
                if n <= 0 { return }
                off += n
            }
        }
    }
}

/// Lines a child process writes, collected from another thread.
final class LineCollector: Sendable {
    private let state = Mutex<(lines: [(Date, String)], partial: String)>(([], ""))
    func append(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        state.withLock { s in
            s.partial += text
            while let nl = s.partial.firstIndex(of: "\n") {
                s.lines.append((Date(), String(s.partial[..<nl])))
                s.partial = String(s.partial[s.partial.index(after: nl)...])
            }
        }
    }
    var lines: [(Date, String)] { state.withLock { $0.lines } }
    var all: String { state.withLock { $0.lines.map(\.1).joined(separator: "\n") + "\n" + $0.partial } }
}

@Suite(.serialized) struct LiveCaptureTests {
    @Test(.enabled(if: canCaptureOnLoopback(), "needs a capture device on lo (root or CAP_NET_RAW and CAP_NET_ADMIN)"))
    func findingsAppearLiveAndTheSavedCaptureGivesTheSame() throws {
        let binary = try #require(nvmetraceBinary())
        let (discoveryListener, discoveryPort) = LoopbackSocket.listener()
        let (adminListener, adminPort) = LoopbackSocket.listener()
        let saved = temporaryFile("live.pcap")
        let p = Process()
        p.executableURL = binary
        p.arguments = ["-i", "lo", "--format", "json", "-w", saved.path, "--duration", "60",
                       "tcp port \(discoveryPort) or tcp port \(adminPort)"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let stdout = LineCollector(), stderr = LineCollector()
        out.fileHandleForReading.readabilityHandler = { stdout.append($0.availableData) }
        err.fileHandleForReading.readabilityHandler = { stderr.append($0.availableData) }
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        func waitFor(_ what: String, in c: LineCollector, seconds: Double) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if c.all.contains(what) { return true }
                usleep(50_000)
            }
            return false
        }
        #expect(waitFor("listening on lo", in: stderr, seconds: 10), "stderr: \(stderr.all)")
        usleep(200_000)

        let hostnqn = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
        // A persistent discovery connection with KATO 0: log read, AER outstanding, stays open.
        let dHost = LoopbackSocket.connect(port: discoveryPort)
        let dTarget = discoveryListener.accept()
        dHost.send(PDUBuilder.icReq())
        dTarget.send(PDUBuilder.icResp())
        dHost.send(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 0),
                                         data: PDUBuilder.connectData(subnqn: NVMeScript.discoveryNQN, hostnqn: hostnqn)))
        dTarget.send(PDUBuilder.capsuleResp(cid: 1, dw0: 1))
        dHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 2, cdw10: 0x70 | (255 << 16))))
        dTarget.send(PDUBuilder.c2hData(cid: 2, data: [UInt8](repeating: 0, count: 1024)) + PDUBuilder.capsuleResp(cid: 2))
        dHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: 3)))
        // An admin queue with KATO 1 s whose Keep Alives stop after two.
        let aHost = LoopbackSocket.connect(port: adminPort)
        let aTarget = adminListener.accept()
        aHost.send(PDUBuilder.icReq())
        aTarget.send(PDUBuilder.icResp())
        aHost.send(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 1000),
                                         data: PDUBuilder.connectData(subnqn: "nqn.2024-01.test:live", hostnqn: hostnqn)))
        aTarget.send(PDUBuilder.capsuleResp(cid: 1, dw0: 7))
        for cid: UInt16 in [10, 11] {
            usleep(400_000)
            aHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: cid)))
            aTarget.send(PDUBuilder.capsuleResp(cid: cid))
        }
        let lastKeepAlive = Date()

        // keep-alive-overdue is noticed by the clock, with no packet arriving.
        #expect(waitFor("keep-alive-overdue", in: stdout, seconds: 8), "stdout: \(stdout.all)")
        let overdueAt = stdout.lines.first { $0.1.contains("keep-alive-overdue") }?.0
        if let overdueAt { #expect(overdueAt.timeIntervalSince(lastKeepAlive) < 4) }
        // The discovery connection turns persistent 10 s after its log read.
        #expect(waitFor("discovery-kato-zero", in: stdout, seconds: 20), "stdout: \(stdout.all)")
        // Some more packets so the saved capture ends after both thresholds, then Ctrl-C.
        let extra = LoopbackSocket.connect(port: adminPort)
        _ = adminListener.accept()
        extra.send(Array("not nvme".utf8))
        usleep(300_000)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        stdout.append(out.fileHandleForReading.readDataToEndOfFile())
        stderr.append(err.fileHandleForReading.readDataToEndOfFile())
        #expect(p.terminationStatus == 1)  // findings at error level
        #expect(stderr.all.contains("packets received by filter"))
        #expect(stderr.all.contains("packets dropped by kernel"))

        // Streamed findings: one JSON object per line, then the final report document.
        let text = stdout.all
        let eventLines = text.split(separator: "\n").filter { $0.hasPrefix("{\"event\"") }
        #expect(eventLines.count >= 2)
        let docStart = try #require(text.range(of: "\n{\n") ?? text.range(of: "{\n  \""))
        let doc = try JSONSerialization.jsonObject(with: Data(text[docStart.lowerBound...].utf8)) as! [String: Any]
        #expect(doc["schema"] as? String == "nvmetrace.report/1")
        let liveFindings = Set((doc["findings"] as! [[String: Any]]).map { "\($0["rule"]!)#\($0["connection"]!)" })
        #expect(liveFindings.contains { $0.hasPrefix("discovery-kato-zero#") })
        #expect(liveFindings.contains { $0.hasPrefix("keep-alive-overdue#") })

        // The -w capture analysed offline gives the same findings.
        let offline = try runCLI(["--format", "json", saved.path])
        let odoc = try JSONSerialization.jsonObject(with: Data(offline.stdout.utf8)) as! [String: Any]
        let offlineFindings = Set((odoc["findings"] as! [[String: Any]]).map { "\($0["rule"]!)#\($0["connection"]!)" })
        #expect(offlineFindings == liveFindings)
        _ = (dHost, dTarget, aHost, aTarget)
    }

    @Test(.enabled(if: canCaptureOnLoopback(), "needs a capture device on lo"))
    func countAndErrors() throws {
        // -c stops after N packets; a report follows.
        let (listener, port) = LoopbackSocket.listener()
        let binary = try #require(nvmetraceBinary())
        let p = Process()
        p.executableURL = binary
        p.arguments = ["-i", "lo", "-c", "3", "-q", "--duration", "20", "tcp port \(port)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        usleep(700_000)
        let c = LoopbackSocket.connect(port: port)
        _ = listener.accept()
        c.send([1, 2, 3])
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(String(decoding: data, as: UTF8.self).contains("No findings."))
        // Unknown interface and bad filter: clear messages, exit 2.
        let bad = try runCLI(["-i", "nosuchif0"])
        #expect(bad.status == 2 && bad.stderr.contains("no such interface"))
        let filter = try runCLI(["-i", "lo", "tcp port (("])
        #expect(filter.status == 2 && filter.stderr.contains("bad filter expression"))
    }

    @Test(.enabled(if: canCaptureOnLoopback() && geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                   "needs root and setpriv"))
    func privilegesAreDroppedAndTheirLackIsExplained() throws {
        let binary = try #require(nvmetraceBinary())
        // -Z: once the device and the -w file are open, the process runs as the given user.
        let saved = temporaryFile("dropped.pcap")
        let p = Process()
        p.executableURL = binary
        p.arguments = ["-i", "lo", "-Z", "nobody", "-q", "--duration", "3", "-w", saved.path]
        p.standardOutput = Pipe()
        p.standardError = Pipe()
        try p.run()
        usleep(1_000_000)
        let status = try String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(uid?.split(separator: "\t").dropFirst().allSatisfy { $0 == "65534" } == true, "\(uid ?? "no Uid line")")
        #expect(FileManager.default.fileExists(atPath: saved.path))
        // Without the capabilities, the error says what is needed.
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        q.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                       binary.path, "-i", "lo", "--duration", "1"]
        let err = Pipe()
        q.standardOutput = Pipe()
        q.standardError = err
        try q.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        q.waitUntilExit()
        #expect(q.terminationStatus == 2)
        #expect(message.contains("CAP_NET_RAW") && message.contains("root"), "\(message)")
    }
}
