import CPcap

/// Writes the packets of chosen connections from the input files into a new pcap: the evidence
/// to attach to a ticket instead of the whole capture. Timestamps (nanosecond) and link type are
/// kept. With `snaplen`, packets carrying more than `keepWholeBelow` bytes of TCP payload (I/O data
/// segments) are cut to that many bytes, the original length kept in the record; smaller ones
/// (ICReq, Connect with its 1024 data bytes, Keep Alive, completions) stay whole, and so do all
/// packets of a connection marked `keepWhole` (an admin queue: its Identify data says whether any
/// command restarts the keep-alive timer), so the evidence still decodes to the same findings.
public enum EvidenceWriter {
    /// A connection to keep: its endpoints, and the frames from its first to its last packet.
    public struct Connection: Sendable {
        public var key: FlowKey
        public var first: FrameRef
        public var last: FrameRef
        /// Never cut by the snap length.
        public var keepWhole: Bool
        /// Matched by capture time rather than frame number: for files other than those the
        /// connection was numbered in (a daemon's evidence ring, `EvidenceRing`).
        public var byTime = false

        public init(a: Endpoint, b: Endpoint, first: FrameRef, last: FrameRef, keepWhole: Bool = false) {
            key = FlowKey(a, b)
            self.first = first
            self.last = last
            self.keepWhole = keepWhole
        }

        func contains(_ ref: FrameRef) -> Bool {
            if byTime { return ref.timeNs >= first.timeNs && ref.timeNs <= last.timeNs }
            return (ref.file, ref.frame) >= (first.file, first.frame) && (ref.file, ref.frame) <= (last.file, last.frame)
        }
    }

    public static let keepWholeBelow = 1200

    /// What `write` wrote.
    public struct Written: Sendable, Equatable {
        /// Packets written.
        public var packets = 0
        /// Packets whose time a pcap record cannot hold (`recordTime`), written at the nearest time
        /// it can.
        public var clampedTimes = 0
    }

    /// The seconds and nanoseconds of a pcap record header for a capture time. The header holds
    /// two unsigned 32-bit values (so the pcap specification, Wireshark and libpcap from 1.11 read
    /// them), which reach from 1970 to 2106: a time outside that range (before 1970 through a
    /// pcapng if_tsoffset, or a 64-bit timestamp wrapped when scaled to nanoseconds) becomes the
    /// nearest time they hold. Clamped as a whole, not per field, so the fraction stays in
    /// 0..<1e9 and packets stay in time order.
    static func recordTime(_ timeNs: Int64) -> (seconds: UInt32, nanoseconds: UInt32, clamped: Bool) {
        let last = Int64(UInt32.max) * 1_000_000_000 + 999_999_999
        let t = min(max(timeNs, 0), last)
        return (UInt32(t / 1_000_000_000), UInt32(t % 1_000_000_000), t != timeNs)
    }

    /// Reads `files` again and writes the packets of `connections` to `output`.
    @discardableResult
    public static func write(files: [String], connections: [Connection], to output: String,
                             snaplen: Int? = nil) throws(CaptureError) -> Written {
        if files.contains("-") {
            throw .cannotOpen(file: output, reason: "evidence is cut from files read again; standard input cannot be")
        }
        var byKey: [FlowKey: [Connection]] = [:]
        for c in connections { byKey[c.key, default: []].append(c) }
        var dead: OpaquePointer?
        var dumper: OpaquePointer?
        var linkType: Int32 = -1
        var written = Written()
        defer {
            if let dumper { pcap_dump_flush(dumper); pcap_dump_close(dumper) }
            if let dead { pcap_close(dead) }
        }
        for (index, path) in files.enumerated() {
            let source = try PcapFileSource(path: path, fileIndex: index)
            if dead == nil {
                linkType = source.linkType
                dead = pcap_open_dead_with_tstamp_precision(linkType, 262_144, UInt32(PCAP_TSTAMP_PRECISION_NANO))
                guard let dead, let d = pcap_dump_open(dead, output) else {
                    throw .cannotOpen(file: output, reason: "cannot write the evidence file")
                }
                dumper = d
            } else if source.linkType != linkType {
                throw .cannotOpen(file: path, reason: "link type \(source.linkType) differs from the first file's (\(linkType)); evidence goes into one pcap")
            }
            guard let dumper else { continue }
            try source.forEach { packet in
                guard case .tcp(let segment) = PacketDecoder.decode(linkType: packet.linkType, bytes: packet.bytes),
                      let candidates = byKey[FlowKey(segment.src, segment.dst)],
                      let connection = candidates.first(where: { $0.contains(packet.ref) }) else { return }
                let cut = segment.payloadLength > keepWholeBelow && !connection.keepWhole ? (snaplen ?? Int.max) : Int.max
                let caplen = min(packet.bytes.count, cut)
                var header = pcap_pkthdr()
                let time = recordTime(packet.ref.timeNs)
                header.ts.tv_sec = Int(time.seconds)
                header.ts.tv_usec = Int(time.nanoseconds)  // nanoseconds (dead handle is nano)
                header.caplen = UInt32(caplen)
                header.len = UInt32(max(packet.wireLength, caplen))
                if let base = packet.bytes.baseAddress {
                    pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                              base.assumingMemoryBound(to: UInt8.self))
                    written.packets += 1
                    if time.clamped { written.clampedTimes += 1 }
                }
            }
        }
        return written
    }
}
