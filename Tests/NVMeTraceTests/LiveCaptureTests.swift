import Foundation
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

/// Live tests run as root (as CI does) or wherever `lo` can be opened; as root they never skip,
/// so a root that cannot open `lo` fails them (with the open error) rather than passing silently.
func liveCaptureExpected() -> Bool { geteuid() == 0 || canCaptureOnLoopback() }

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
        let s = LoopbackSocket(fd: fd)
        return (s, s.localPort)
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

    /// The port this socket is bound to.
    var localPort: UInt16 {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    func accept() -> LoopbackSocket {
        LoopbackSocket(fd: Glibc.accept(fd, nil, nil))
    }

    func send(_ bytes: [UInt8]) {
        var off = 0
        bytes.withUnsafeBytes { raw in
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }
}

/// The live capture as a user runs it: `nvmetrace -i lo …` started, waited on until it says it is
/// listening (the device is open and the filter set: packets from then on are captured), given
/// real traffic on lo, and stopped by -c, --duration or a signal. Each child has a time limit
/// (ChildProcess): a capture that does not stop fails the test instead of hanging it.
@Suite(.serialized) struct LiveCaptureTests {
    static let hostnqn = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"

    /// Starts a live capture and returns once it says it is listening.
    /// A persistent discovery association with KATO 0 played over real sockets: its Connect, a
    /// discovery log read, an Asynchronous Event Request left outstanding. Returns host and target.
    static func playKATO0Discovery(_ listener: LoopbackSocket, port: UInt16) -> (LoopbackSocket, LoopbackSocket) {
        let host = LoopbackSocket.connect(port: port)
        let target = listener.accept()
        host.send(PDUBuilder.icReq())
        target.send(PDUBuilder.icResp())
        host.send(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 0),
                                        data: PDUBuilder.connectData(subnqn: NVMeScript.discoveryNQN, hostnqn: hostnqn)))
        target.send(PDUBuilder.capsuleResp(cid: 1, dw0: 1))
        host.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x02, cid: 2, cdw10: 0x70 | (255 << 16))))
        target.send(PDUBuilder.c2hData(cid: 2, data: [UInt8](repeating: 0, count: 1024)) + PDUBuilder.capsuleResp(cid: 2))
        host.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x0C, cid: 3)))
        return (host, target)
    }

    /// An admin queue with KATO 1 s connected over real sockets (CNTLID 7). Returns host and target.
    static func connectAdmin(_ listener: LoopbackSocket, port: UInt16) -> (LoopbackSocket, LoopbackSocket) {
        let host = LoopbackSocket.connect(port: port)
        let target = listener.accept()
        host.send(PDUBuilder.icReq())
        target.send(PDUBuilder.icResp())
        host.send(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 1000),
                                        data: PDUBuilder.connectData(subnqn: "nqn.2024-01.test:live", hostnqn: hostnqn)))
        target.send(PDUBuilder.capsuleResp(cid: 1, dw0: 7))
        return (host, target)
    }

    static func startLive(_ args: [String]) throws -> ChildProcess {
        let binary = try #require(nvmetraceBinary())
        let p = try ChildProcess(binary.path, args)
        try p.waitFor("listening on lo", in: p.stderr, seconds: 30)
        return p
    }

    /// The report document that ends a live `--format json` run, after the finding lines.
    static func finalReport(_ stdout: String) throws -> [String: Any] {
        let start = try #require(stdout.range(of: "\n{\n") ?? stdout.range(of: "{\n  \""), "no report in: \(stdout)")
        return try #require(try JSONSerialization.jsonObject(with: Data(stdout[start.lowerBound...].utf8)) as? [String: Any])
    }

    /// The libpcap counters' "N packets captured" line.
    static func packetsCaptured(_ stderr: String) -> Int? {
        stderr.split(separator: "\n").first { $0.hasSuffix(" packets captured") }
            .flatMap { Int($0.split(separator: " ")[0]) }
    }

    /// One NVMe/TCP association whose Connect the target rejects (Connect Invalid Parameters):
    /// a `connect-rejected` error as soon as the response is seen. Returns the host's port.
    static func rejectedConnect(listener: LoopbackSocket, port: UInt16) -> (UInt16, [LoopbackSocket]) {
        let host = LoopbackSocket.connect(port: port)
        let target = listener.accept()
        host.send(PDUBuilder.icReq())
        target.send(PDUBuilder.icResp())
        host.send(PDUBuilder.capsuleCmd(PDUBuilder.connectSQE(cid: 1, qid: 0, kato: 5000),
                                        data: PDUBuilder.connectData(subnqn: "nqn.2024-01.test:live", hostnqn: hostnqn)))
        target.send(PDUBuilder.capsuleResp(cid: 1, status: 0x182))
        return (host.localPort, [host, target])
    }

    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo (root or CAP_NET_RAW and CAP_NET_ADMIN)"))
    func findingsAppearLiveAndTheSavedCaptureGivesTheSame() throws {
        let (discoveryListener, discoveryPort) = LoopbackSocket.listener()
        let (adminListener, adminPort) = LoopbackSocket.listener()
        let (endListener, endPort) = LoopbackSocket.listener()
        let saved = temporaryFile("live.pcap")
        let p = try Self.startLive(["-i", "lo", "--format", "json", "-w", saved.path,
                                    "tcp port \(discoveryPort) or tcp port \(adminPort) or tcp port \(endPort)"])

        // A persistent discovery connection with KATO 0: log read, AER outstanding, stays open.
        let (dHost, dTarget) = Self.playKATO0Discovery(discoveryListener, port: discoveryPort)
        // An admin queue with KATO 1 s whose Keep Alives stop after two. The pauses are the
        // scenario's own Keep Alive cadence, not waits for readiness.
        let (aHost, aTarget) = Self.connectAdmin(adminListener, port: adminPort)
        for cid: UInt16 in [10, 11] {
            usleep(400_000)
            aHost.send(PDUBuilder.capsuleCmd(PDUBuilder.sqe(opcode: 0x18, cid: cid)))
            aTarget.send(PDUBuilder.capsuleResp(cid: cid))
        }
        let lastKeepAlive = Date()

        // keep-alive-overdue is noticed by the clock, with no packet arriving.
        try p.waitFor("keep-alive-overdue", in: p.stdout, seconds: 8)
        let overdueAt = p.stdout.lines.first { $0.1.contains("keep-alive-overdue") }?.0
        if let overdueAt { #expect(overdueAt.timeIntervalSince(lastKeepAlive) < 4) }
        // The discovery connection turns persistent 10 s after its log read.
        try p.waitFor("discovery-kato-zero", in: p.stdout, seconds: 20)
        // A last association, to its own target, so the saved capture ends after both thresholds:
        // its rejected Connect is printed once analysed, so its packets are in the -w file when
        // Ctrl-C comes.
        let (_, endSockets) = Self.rejectedConnect(listener: endListener, port: endPort)
        try p.waitFor("connect-rejected", in: p.stdout, seconds: 10)
        p.send(signal: SIGINT)
        let run = try p.wait(seconds: 15)
        #expect(run.status == 1)  // findings at error level
        #expect(run.stderr.contains("packets received by filter"))
        #expect(run.stderr.contains("packets dropped by kernel"))

        // Streamed findings: one JSON object per line, then the final report document.
        let eventLines = run.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"") && $0.contains("\"event\":\"finding\"") }
        #expect(eventLines.count >= 3)
        let doc = try Self.finalReport(run.stdout)
        #expect(doc["schema"] as? String == "nvmetrace.report/1")
        let liveFindings = Set((doc["findings"] as! [[String: Any]]).map { "\($0["rule"]!)#\($0["connection"]!)" })
        // Each line carries its connection's Community ID, as the report's connection table has it.
        let flows = Dictionary(uniqueKeysWithValues: (doc["connections"] as! [[String: Any]]).map { ($0["id"] as! Int, $0["communityId"] as! String) })
        for line in eventLines {
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let connection = try #require((event["finding"] as? [String: Any])?["connection"] as? Int)
            #expect(event["communityId"] as? String == flows[connection], "\(line)")
        }
        #expect(liveFindings.contains { $0.hasPrefix("discovery-kato-zero#") })
        #expect(liveFindings.contains { $0.hasPrefix("keep-alive-overdue#") })
        #expect(liveFindings.contains { $0.hasPrefix("connect-rejected#") })

        // The -w capture analysed offline gives the same findings.
        let offline = try runCLI(["--format", "json", saved.path])
        let odoc = try #require(try JSONSerialization.jsonObject(with: Data(offline.stdout.utf8)) as? [String: Any])
        let offlineFindings = Set((odoc["findings"] as! [[String: Any]]).map { "\($0["rule"]!)#\($0["connection"]!)" })
        #expect(offlineFindings == liveFindings)
        // Both ends on 127.0.0.1: the Community ID orders the endpoints by port (Wireshark's agree).
        try CommunityIDTests.check(saved.path, "live capture on lo")
        _ = (dHost, dTarget, aHost, aTarget, endSockets)
    }

    /// `-c 3` alone ends the capture: no --duration, and far more than 3 packets on the wire. Were
    /// -c ignored, the capture would run until the time limit kills it. Exactly 3 packets are
    /// analysed and saved: the handshake, as the saved file's own bytes show.
    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo"))
    func countEndsTheCaptureAfterExactlyThatManyPackets() throws {
        let (listener, port) = LoopbackSocket.listener()
        let saved = temporaryFile("count.pcap")
        let p = try Self.startLive(["-i", "lo", "-c", "3", "--format", "json", "-w", saved.path, "tcp port \(port)"])
        let host = LoopbackSocket.connect(port: port)
        let target = listener.accept()
        // 20 segments each way (TCP_NODELAY on the host): well over 3 packets, sent at once so
        // that they share ring-buffer blocks with the handshake.
        for i in 0..<20 {
            host.send([UInt8(i)])
            target.send([UInt8(i)])
        }
        let run = try p.wait(seconds: 20)
        #expect(run.status == 0, "\(run.stderr)")  // no NVMe/TCP, so no finding
        #expect(Self.packetsCaptured(run.stderr) == 3, "\(run.stderr)")
        let doc = try Self.finalReport("\n" + run.stdout)
        #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == 3)

        // The saved pcap, read byte by byte: 3 records, SYN, SYN-ACK, ACK of this connection.
        let bytes = [UInt8](try Data(contentsOf: saved))
        func u32(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 | Int(bytes[o + 2]) << 16 | Int(bytes[o + 3]) << 24 }
        #expect([0xA1B2_C3D4, 0xA1B2_3C4D].contains(u32(0)))
        #expect(u32(20) == 1)  // LINKTYPE_ETHERNET, as Linux presents lo
        var flags: [UInt8] = []
        var ports: [(Int, Int)] = []
        var off = 24
        while off + 16 <= bytes.count {
            let caplen = u32(off + 8)
            let frame = Array(bytes[(off + 16)..<min(bytes.count, off + 16 + caplen)])
            off += 16 + caplen
            guard frame.count >= 14 + 20, frame[12] == 0x08, frame[13] == 0x00 else { flags.append(0xFF); continue }
            let tcp = 14 + Int(frame[14] & 0x0F) * 4
            guard frame.count >= tcp + 14 else { flags.append(0xFF); continue }
            ports.append((Int(frame[tcp]) << 8 | Int(frame[tcp + 1]), Int(frame[tcp + 2]) << 8 | Int(frame[tcp + 3])))
            flags.append(frame[tcp + 13])
        }
        #expect(off == bytes.count, "trailing bytes in the saved capture")
        #expect(flags == [0x02, 0x12, 0x10], "TCP flags of the saved packets: \(flags)")
        let hostPort = Int(host.localPort)
        #expect(ports.map { [$0.0, $0.1] } == [[hostPort, Int(port)], [Int(port), hostPort], [hostPort, Int(port)]])
    }

    /// Ctrl-C and SIGTERM end a capture that has no other end (no -c, no --duration): promptly,
    /// with the report of what was seen and the exit status as offline. Were the signal ignored,
    /// the capture would run until the time limit kills it.
    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo"),
          arguments: [SIGINT, SIGTERM])
    func signalEndsTheCaptureWithAReport(signal: Int32) throws {
        let (listener, port) = LoopbackSocket.listener()
        let p = try Self.startLive(["-i", "lo", "--format", "json", "tcp port \(port)"])
        let (hostPort, sockets) = Self.rejectedConnect(listener: listener, port: port)
        // The finding line says the exchange has been analysed: from then on it is in the report.
        try p.waitFor("connect-rejected", in: p.stdout, seconds: 15)
        p.send(signal: signal)
        let run = try p.wait(seconds: 10)
        #expect(run.status == 1, "\(run.stderr)")  // connect-rejected is an error, as offline
        #expect(run.stderr.contains("packets received by filter"))
        let doc = try Self.finalReport(run.stdout)
        let conns = try #require(doc["connections"] as? [[String: Any]])
        #expect(conns.count == 1)
        #expect(conns.first?["src"] as? String == "127.0.0.1:\(hostPort)")
        #expect(conns.first?["dst"] as? String == "127.0.0.1:\(port)")
        let findings = try #require(doc["findings"] as? [[String: Any]])
        #expect(findings.map { $0["rule"] as? String } == ["connect-rejected"])
        // Handshake and four PDUs at least, and the report counts what libpcap handed over.
        let frames = (doc["capture"] as? [String: Any])?["frames"] as? Int
        #expect((frames ?? 0) >= 5)
        #expect(frames == Self.packetsCaptured(run.stderr))
        _ = sockets
    }

    /// --duration alone ends a capture, not before its time: were it ignored, the capture would
    /// run until the time limit kills it.
    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo"))
    func durationEndsTheCapture() throws {
        let (_, port) = LoopbackSocket.listener()
        let p = try Self.startLive(["-i", "lo", "--duration", "1", "--format", "json", "tcp port \(port)"])
        let listening = Date()
        let run = try p.wait(seconds: 15)
        #expect(Date().timeIntervalSince(listening) > 0.8)
        #expect(run.status == 0, "\(run.stderr)")
        let doc = try Self.finalReport("\n" + run.stdout)
        #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == 0)
    }

    /// "listening on" means a signal from then on stops the capture cleanly: it is neither lost
    /// (the capture would run on) nor fatal (status 130, no report). Five times, since a signal
    /// sent while a handler is being installed is lost only sometimes.
    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo"))
    func signalRightAfterListeningEndsTheCapture() throws {
        let (_, port) = LoopbackSocket.listener()
        for _ in 0..<5 {
            let p = try Self.startLive(["-i", "lo", "--format", "json", "tcp port \(port)"])
            p.send(signal: SIGINT)
            let run = try p.wait(seconds: 10)
            #expect(run.status == 0, "\(run.stderr)")
            let doc = try Self.finalReport("\n" + run.stdout)
            #expect((doc["capture"] as? [String: Any])?["frames"] as? Int == 0)
        }
    }

    @Test(.enabled(if: liveCaptureExpected(), "needs a capture device on lo"))
    func openErrorsAreExplained() throws {
        let bad = try runCLI(["-i", "nosuchif0"], seconds: 30)
        #expect(bad.status == 2 && bad.stderr.contains("no such interface"), "\(bad.stderr)")
        #expect(bad.stdout.isEmpty)
        let filter = try runCLI(["-i", "lo", "tcp port (("], seconds: 30)
        #expect(filter.status == 2 && filter.stderr.contains("bad filter expression"), "\(filter.stderr)")
        #expect(filter.stdout.isEmpty)
    }

    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                   "needs root and setpriv"))
    func privilegesAreDroppedAndTheirLackIsExplained() throws {
        // -Z: once the device and the -w file are open, the process runs as the given user. It
        // says it is listening only after dropping them.
        let saved = temporaryFile("dropped.pcap")
        let p = try Self.startLive(["-i", "lo", "-Z", "nobody", "-w", saved.path])
        let status = try String(contentsOfFile: "/proc/\(p.pid)/status", encoding: .utf8)
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
        p.send(signal: SIGINT)
        let run = try p.wait(seconds: 10)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(uid?.split(separator: "\t").dropFirst().allSatisfy { $0 == "65534" } == true, "\(uid ?? "no Uid line")")
        #expect(FileManager.default.fileExists(atPath: saved.path))
        // Without the capabilities, the error says what is needed.
        let binary = try #require(nvmetraceBinary())
        let q = try runChild("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            binary.path, "-i", "lo", "--duration", "1",
        ], seconds: 30)
        #expect(q.status == 2)
        #expect(q.stderr.contains("CAP_NET_RAW") && q.stderr.contains("root"), "\(q.stderr)")
    }
}

/// Live options are checked before any device is opened. The interface does not exist, so were a
/// check missing, the run would fail opening it instead, with another message: these hold whether
/// or not this machine can capture.
@Suite struct LiveOptionValidationTests {
    @Test(arguments: [
        (["-c", "0"], "-c takes a positive number of packets."),
        (["--duration", "0"], "--duration takes a positive number of seconds."),
        (["--duration", "nan"], "--duration takes a positive number of seconds."),
        (["-s", "0"], "-s takes a snap length from 1 to 262144."),
        (["-s", "262145"], "-s takes a snap length from 1 to 262144."),
        // A huge --discovery-kato once trapped converting to UInt32.
        (["--discovery-kato", "1e10"], "--discovery-kato must be a positive number of seconds."),
        (["--discovery-kato", "nan"], "--discovery-kato must be a positive number of seconds."),
        (["--discovery-kato", "0.0001"], "--discovery-kato must be a positive number of seconds."),
        (["--disable", "bogus"], "Unknown rule 'bogus'; --rules lists them."),
    ])
    func rejectedBeforeTheDeviceIsOpened(args: [String], message: String) throws {
        let run = try runCLI(["-i", "nosuchif0"] + args, seconds: 30)
        #expect(run.status == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
        #expect(!run.stderr.contains("nosuchif0"), "a capture was attempted: \(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    /// Options that only mean something live are refused with a file, before it is read.
    @Test(arguments: [["-c", "3"], ["--duration", "5"], ["-Z", "nobody"], ["-w", "WRITE"]])
    func liveOnlyOptionsNeedAnInterface(args: [String]) throws {
        let written = temporaryFile("not-written.pcap")
        let run = try runCLI(args.map { $0 == "WRITE" ? written.path : $0 } + [samplePath("E-keepalive-stall")], seconds: 30)
        #expect(run.status == 2)
        #expect(run.stderr.contains("-w, -c, --duration and -Z go with -i (live capture)."), "\(run.stderr)")
        #expect(run.stdout.isEmpty)  // E has findings: a report would not be empty
        #expect(!FileManager.default.fileExists(atPath: written.path))
    }
}
