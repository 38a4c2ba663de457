import CPcap

/// Writes the packets of chosen connections from the input files into a new pcap: the evidence
/// to attach to a ticket instead of the whole capture. Timestamps (nanosecond) and link type are
/// kept. With `snaplen`, packets carrying more than `keepWholeBelow` bytes of TCP payload (I/O data
/// segments) are cut to that many bytes, the original length kept in the record; smaller ones
/// (ICReq, Connect with its 1024 data bytes, Keep Alive, completions) stay whole so the evidence
/// still decodes to the same findings.
public enum EvidenceWriter {
    /// A connection to keep: its endpoints, and the frames from its first to its last packet.
    public struct Connection: Sendable {
        public var key: FlowKey
        public var first: FrameRef
        public var last: FrameRef

        public init(a: Endpoint, b: Endpoint, first: FrameRef, last: FrameRef) {
            key = FlowKey(a, b)
            self.first = first
            self.last = last
        }

        func contains(_ ref: FrameRef) -> Bool {
            (ref.file, ref.frame) >= (first.file, first.frame) && (ref.file, ref.frame) <= (last.file, last.frame)
        }
    }

    /// Reads `files` again and writes the packets of `connections` to `output`. Returns how many
    /// packets were written.
    public static let keepWholeBelow = 1200

    @discardableResult
    public static func write(files: [String], connections: [Connection], to output: String,
                             snaplen: Int? = nil) throws(CaptureError) -> Int {
        if files.contains("-") {
            throw .cannotOpen(file: output, reason: "evidence is cut from files read again; standard input cannot be")
        }
        var byKey: [FlowKey: [Connection]] = [:]
        for c in connections { byKey[c.key, default: []].append(c) }
        var dead: OpaquePointer?
        var dumper: OpaquePointer?
        var linkType: Int32 = -1
        var written = 0
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
                      candidates.contains(where: { $0.contains(packet.ref) }) else { return }
                let cut = segment.payloadLength > keepWholeBelow ? (snaplen ?? Int.max) : Int.max
                let caplen = min(packet.bytes.count, cut)
                var header = pcap_pkthdr()
                header.ts.tv_sec = Int(packet.ref.timeNs / 1_000_000_000)
                header.ts.tv_usec = Int(packet.ref.timeNs % 1_000_000_000)  // nanoseconds (dead handle is nano)
                header.caplen = UInt32(caplen)
                header.len = UInt32(max(packet.wireLength, caplen))
                if let base = packet.bytes.baseAddress {
                    pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                              base.assumingMemoryBound(to: UInt8.self))
                    written += 1
                }
            }
        }
        return written
    }
}
