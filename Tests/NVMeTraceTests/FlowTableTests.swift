import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The flow table finds a segment's connection through the last flow, a cache of recent flows
/// and the dictionary; whichever answers, every segment must reach its own connection, and flows
/// that leave the table must leave no reference behind.
@Suite struct FlowTableTests {
    /// Records what one connection direction received; every payload names its connection.
    final class TaggedRecorder: StreamSink {
        var tags: Set<[UInt8]> = []
        var bytes = 0
        /// Set when the flow left the table; bytes after that reached a flow nobody can find.
        var evicted = false
        var bytesAfterEviction = 0
        override func streamData(_ b: UnsafeRawBufferPointer, ref: FrameRef) {
            bytes += b.count
            if evicted { bytesAfterEviction += b.count }
            for i in Swift.stride(from: 0, to: b.count, by: 4) { tags.insert(Array(b[i..<min(i + 3, b.count)])) }
        }
    }

    struct Conn {
        var client: Endpoint
        var server: Endpoint
        var seq: [UInt32] = [1001, 5001]
        var sent = [0, 0]
        var tag: [UInt8]
    }

    final class Harness {
        let table: FlowTable
        var frame = 0
        var sinks: [Int: (TaggedRecorder, TaggedRecorder)] = [:]
        var evicted: [Int] = []
        let hooks = TableHooks()
        init(maxFlows: Int) {
            table = FlowTable(maxFlows: maxFlows, closedLingerSeconds: 1, serverPorts: [4420])
            hooks.started = { [unowned self] flow in
                flow.enableReassembly(maxBufferedBytes: 1 << 16)
                let pair = (TaggedRecorder(), TaggedRecorder())
                flow.clientStream.sink = pair.0
                flow.serverStream.sink = pair.1
                sinks[flow.index] = pair
            }
            hooks.ended = { [unowned self] flow in
                evicted.append(flow.index)
                sinks[flow.index]?.0.evicted = true
                sinks[flow.index]?.1.evicted = true
            }
            table.delegate = hooks
        }
        func send(_ from: Endpoint, _ to: Endpoint, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8] = []) {
            frame += 1
            payload.withUnsafeBytes { raw in
                let s = TCPSegment(src: from, dst: to, seq: seq, ack: ack, flags: flags, payload: raw, payloadLength: raw.count)
                table.process(s, ref: FrameRef(file: 0, frame: frame, timeNs: Int64(frame) * 1_000_000))
            }
        }
        func open(_ c: Conn) {
            send(c.client, c.server, seq: 1000, ack: 0, flags: [.syn])
            send(c.server, c.client, seq: 5000, ack: 1001, flags: [.syn, .ack])
        }
        func data(_ c: inout Conn, fromClient: Bool) {
            let d = fromClient ? 0 : 1
            let payload = c.tag + [UInt8(d)]
            if fromClient {
                send(c.client, c.server, seq: c.seq[0], ack: c.seq[1], flags: [.ack, .psh], payload: payload)
            } else {
                send(c.server, c.client, seq: c.seq[1], ack: c.seq[0], flags: [.ack, .psh], payload: payload)
            }
            c.seq[d] &+= UInt32(payload.count)
            c.sent[d] += payload.count
        }
    }

    static func conn(_ i: Int, host: UInt32) -> Conn {
        Conn(client: Endpoint(address: IPAddress(v4: host), port: UInt16(30000 + i)),
             server: Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 4420),
             tag: [UInt8(i & 0xFF), UInt8(i >> 8), 0xEE])
    }

    /// 3,000 connections (far more than the 256 cache slots, so slots collide) with their
    /// segments interleaved at random in both directions: each connection gets exactly its own
    /// bytes, and no segment starts a connection that does not exist.
    @Test func interleavedConnectionsEachGetTheirOwnBytes() {
        let h = Harness(maxFlows: 200_000)
        var conns = (0..<3000).map { Self.conn($0, host: 0x0A00_0100 + UInt32($0 % 7)) }
        for c in conns { h.open(c) }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<30_000 {
            let i = Int.random(in: 0..<conns.count, using: &rng)
            h.data(&conns[i], fromClient: Bool.random(using: &rng))
            // Bursts on one connection go through the last-flow check.
            if Int.random(in: 0..<4, using: &rng) == 0 { h.data(&conns[i], fromClient: true) }
        }
        #expect(h.table.nextIndex == conns.count)
        for (i, c) in conns.enumerated() {
            guard let (toServer, toClient) = h.sinks[i] else {
                if c.sent != [0, 0] { Issue.record("connection \(i) carried data but was never attached") }
                continue
            }
            #expect(toServer.bytes == c.sent[0] && toClient.bytes == c.sent[1], "connection \(i)")
            #expect(toServer.tags.isSubset(of: [c.tag]) && toClient.tags.isSubset(of: [c.tag]), "connection \(i)")
        }
    }

    /// A table of 16 flows under 64 interleaved connections evicts all the time, and closed
    /// connections are re-opened on the same endpoints: segments after an eviction or a re-open
    /// must start or find the right flow, never reach one that left the table (the flow cache
    /// still holds such flows; only `Flow.retired` keeps them from being matched).
    @Test func evictedAndReopenedFlowsAreNotFoundAgain() {
        let h = Harness(maxFlows: 16)
        var conns = (0..<64).map { Self.conn($0, host: 0x0A00_0200) }
        var rng = SplitMix64(seed: 3)
        var expectedFlows = 0
        for round in 0..<20 {
            for i in conns.indices.shuffled(using: &rng) {
                if round % 5 == 0 {
                    // Re-open: FIN both ways, then a new SYN on the same endpoints.
                    if round > 0 {
                        h.send(conns[i].client, conns[i].server, seq: conns[i].seq[0], ack: conns[i].seq[1], flags: [.fin, .ack])
                        h.send(conns[i].server, conns[i].client, seq: conns[i].seq[1], ack: conns[i].seq[0] &+ 1, flags: [.fin, .ack])
                    }
                    conns[i].seq = [1001, 5001]
                    h.open(conns[i])
                    expectedFlows += 1
                }
                h.data(&conns[i], fromClient: true)
            }
        }
        // Every flow ever created was for one of our connections, and the table never holds more
        // than its cap.
        #expect(h.table.flows.count <= 16)
        #expect(!h.evicted.isEmpty)
        for (index, (toServer, toClient)) in h.sinks {
            #expect(toServer.tags.count <= 1, "flow \(index) received bytes of several connections: \(toServer.tags)")
            #expect(toServer.bytesAfterEviction + toClient.bytesAfterEviction == 0, "flow \(index) got bytes after it left the table")
        }
        #expect(h.table.nextIndex >= expectedFlows)
    }

    // MARK: guessed roles

    /// Only guessed roles can be swapped; a swap moves each direction's reassembler (with what it
    /// holds and delivers to) and FIN/RST record to the side its bytes belong to.
    @Test func onlyGuessedRolesSwap() {
        let a = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40000)
        let b = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 50000)
        func flow(_ flags: TCPFlags) -> Flow {
            let seg = TCPSegment(src: a, dst: b, seq: 1, ack: 0, flags: flags, payload: UnsafeRawBufferPointer(start: nil, count: 0), payloadLength: 0)
            return Flow(index: 0, key: FlowKey(a, b), first: seg, ref: FrameRef(file: 0, frame: 1, timeNs: 0), serverPorts: [])
        }
        let handshake = flow([.syn])
        #expect(handshake.client == a)
        #expect(!handshake.swapGuessedRoles())
        #expect(handshake.client == a && handshake.server == b)

        let guessed = flow([.ack])
        #expect(guessed.client == b && guessed.server == a)  // the lower port was guessed the server
        let clientStream = guessed.clientStream, serverStream = guessed.serverStream
        let payload: [UInt8] = [1, 2, 3]
        payload.withUnsafeBytes { raw in
            guessed.enableReassembly(maxBufferedBytes: 1 << 16)
            guessed.process(TCPSegment(src: a, dst: b, seq: 100, ack: 0, flags: [.ack, .fin], payload: raw, payloadLength: 3),
                            ref: FrameRef(file: 0, frame: 2, timeNs: 1))
        }
        #expect(serverStream.nextExpectedOffset == 3)
        #expect(guessed.closes[1]?.kind == .fin)
        #expect(guessed.swapGuessedRoles())
        #expect(guessed.client == a && guessed.server == b)
        #expect(guessed.clientStream === serverStream && guessed.serverStream === clientStream)
        #expect(guessed.closes[0]?.kind == .fin && guessed.closes[1] == nil)
        #expect(guessed.direction(of: TCPSegment(src: a, dst: b, seq: 0, ack: 0, flags: [], payload: UnsafeRawBufferPointer(start: nil, count: 0), payloadLength: 0)) == .clientToServer)
    }

    /// A flow set aside and decoded after all starts its streams again at the next segment:
    /// whatever the reassembler held is dropped, and that segment's first byte is offset 0.
    @Test func resumingAnIgnoredFlowRestartsItsStreams() {
        let a = Endpoint(address: IPAddress(v4: 0x0A00_0002), port: 40000)
        let b = Endpoint(address: IPAddress(v4: 0x0A00_0001), port: 5555)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        let flow = Flow(index: 0, key: FlowKey(a, b), first: TCPSegment(src: a, dst: b, seq: 1, ack: 0, flags: [.ack], payload: none, payloadLength: 0),
                        ref: FrameRef(file: 0, frame: 1, timeNs: 0), serverPorts: [])
        flow.enableReassembly(maxBufferedBytes: 1 << 16)
        let sink = TaggedRecorder()
        #expect(flow.client == a)       // the lower port was guessed the server
        flow.clientStream.sink = sink
        let bytes: [UInt8] = Array(repeating: 7, count: 100)
        func send(_ seq: UInt32, _ n: Int, frame: Int) {
            bytes.withUnsafeBytes { raw in
                flow.process(TCPSegment(src: a, dst: b, seq: seq, ack: 0, flags: [.ack], payload: UnsafeRawBufferPointer(rebasing: raw.prefix(n)), payloadLength: n),
                             ref: FrameRef(file: 0, frame: frame, timeNs: Int64(frame)))
            }
        }
        send(1000, 100, frame: 2)
        send(1200, 100, frame: 3)   // out of order: held
        #expect(flow.clientStream.bufferedBytes == 100)
        flow.ignored = true
        send(1300, 100, frame: 4)   // not reassembled
        flow.resumeAfterIgnoring()
        #expect(!flow.ignored && flow.clientStream.bufferedBytes == 0)
        send(900_000, 40, frame: 5)
        #expect(flow.clientStream.nextExpectedOffset == 40)
        #expect(sink.bytes == 140)
    }
}
