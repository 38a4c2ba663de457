import Foundation
@testable import NVMeTrace

// In-memory captures for tests: read a sample into memory, transform it (CaptureTransforms.swift),
// and write it back as classic pcap (microsecond or nanosecond) or pcapng.

/// LINKTYPE_ values as they are written in capture files (tcpdump.org/linktypes.html).
enum LinkTypeValue {
    static let null: UInt32 = 0
    static let ethernet: UInt32 = 1
    static let raw: UInt32 = 101
    static let loop: UInt32 = 108
    static let linuxSLL: UInt32 = 113
    static let linuxSLL2: UInt32 = 276
}

/// One packet held in memory.
struct StoredPacket: Sendable, Equatable {
    /// Capture time, nanoseconds since the Unix epoch.
    var timeNs: Int64
    /// Length on the wire (`bytes.count` is the captured length and may be smaller).
    var wireLength: Int
    var bytes: [UInt8]
    /// 1-based frame number of the packet this one was made from in the file that was read
    /// (nil for packets a transform made up). Lets tests map ground-truth frame numbers onto a
    /// transformed capture.
    var origin: Int?
}

/// A whole capture in memory: its link type (a LINKTYPE_ value) and its packets.
struct StoredCapture: Sendable {
    var linkType: UInt32
    var packets: [StoredPacket]

    /// The 1-based frame number of the first packet made from original frame `frame`.
    func frame(forOrigin frame: Int) -> Int? {
        packets.firstIndex { $0.origin == frame }.map { $0 + 1 }
    }
}

// MARK: - reading

/// Loads every packet of a capture file through NVMeTrace's own libpcap reader.
func loadCapture(_ path: String) throws -> StoredCapture {
    let source = try PcapFileSource(path: path, fileIndex: 0)
    var packets: [StoredPacket] = []
    try source.forEach { p in
        packets.append(StoredPacket(timeNs: p.ref.timeNs, wireLength: p.wireLength,
                                    bytes: Array(p.bytes), origin: p.ref.frame))
    }
    // libpcap reports DLT_ values; map the ones that differ from their LINKTYPE_ value.
    var link = UInt32(bitPattern: source.linkType)
    if source.linkType == 12 || source.linkType == 14 { link = LinkTypeValue.raw }
    return StoredCapture(linkType: link, packets: packets)
}

/// The samples, each read once per test process (static lets initialise lazily and thread-safely).
enum SampleCaptures {
    static let a = try! loadCapture(samplePath("A-persistent-discovery-kato0"))
    static let d = try! loadCapture(samplePath("D-io-traffic"))
    static let d2 = try! loadCapture(samplePath("D2-io-traffic-digests"))
    static let e = try! loadCapture(samplePath("E-keepalive-stall"))

    static func named(_ sample: String) -> StoredCapture {
        switch sample {
        case "A-persistent-discovery-kato0": return a
        case "D-io-traffic": return d
        case "D2-io-traffic-digests": return d2
        case "E-keepalive-stall": return e
        default: return try! loadCapture(samplePath(sample))
        }
    }
}

// MARK: - writing

enum CaptureFormat: Sendable, CustomStringConvertible {
    /// Classic pcap (magic a1b2c3d4 for microseconds, a1b23c4d for nanoseconds), little-endian.
    case pcap(nanoseconds: Bool)
    /// pcapng, little-endian: SHB, one IDB (if_tsresol 9 for nanoseconds, no option otherwise:
    /// the default resolution is microseconds), one EPB per packet.
    case pcapng(nanoseconds: Bool)

    var description: String {
        switch self {
        case .pcap(let ns): ns ? "pcap-ns" : "pcap-us"
        case .pcapng(let ns): ns ? "pcapng-ns" : "pcapng-us"
        }
    }
}

/// Little-endian byte buffer builder.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func append<C: Collection>(_ c: C) where C.Element == UInt8 { bytes.append(contentsOf: c) }
    mutating func pad4() { while bytes.count % 4 != 0 { bytes.append(0) } }
    /// A pcapng block: type, total length, the body padded to 4 bytes, total length again.
    mutating func pcapngBlock(_ type: UInt32, _ body: [UInt8]) {
        var b = body
        while b.count % 4 != 0 { b.append(0) }
        u32(type); u32(UInt32(b.count + 12)); append(b); u32(UInt32(b.count + 12))
    }
    /// A little-endian pcapng Section Header Block (version 1.0, length unknown).
    mutating func pcapngSectionHeader() {
        var shb = ByteWriter()
        shb.u32(0x1A2B_3C4D); shb.u16(1); shb.u16(0); shb.u64(UInt64.max)
        pcapngBlock(0x0A0D_0D0A, shb.bytes)
    }
    /// Overwrites a little-endian UInt32 already written.
    mutating func set32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
}

/// A classic pcap file image. With `snaplen`, packets are cut to it (caplen < len) and the file
/// header announces it; otherwise the header says 262144.
func pcapFile(_ capture: StoredCapture, nanoseconds: Bool = false, snaplen: Int? = nil) -> [UInt8] {
    var w = ByteWriter()
    w.bytes.reserveCapacity(24 + capture.packets.reduce(0) { $0 + 16 + $1.bytes.count })
    w.u32(nanoseconds ? 0xA1B2_3C4D : 0xA1B2_C3D4)
    w.u16(2); w.u16(4)          // version 2.4
    w.u32(0); w.u32(0)          // thiszone, sigfigs
    w.u32(UInt32(snaplen ?? 262_144))
    w.u32(capture.linkType)
    let unit: Int64 = nanoseconds ? 1 : 1000
    for p in capture.packets {
        let ticks = p.timeNs / unit   // times are positive: plain division truncates toward zero
        let perSecond = 1_000_000_000 / unit
        let data = snaplen.map { p.bytes.prefix($0) } ?? p.bytes[...]
        w.u32(UInt32(ticks / perSecond))
        w.u32(UInt32(ticks % perSecond))
        w.u32(UInt32(data.count))
        w.u32(UInt32(max(p.wireLength, data.count)))
        w.append(data)
    }
    return w.bytes
}

/// A pcapng file image (one section, one interface).
func pcapngFile(_ capture: StoredCapture, nanoseconds: Bool = false, snaplen: Int? = nil) -> [UInt8] {
    var w = ByteWriter()
    // Section Header Block
    w.u32(0x0A0D_0D0A); w.u32(28)
    w.u32(0x1A2B_3C4D)          // byte-order magic
    w.u16(1); w.u16(0)          // version 1.0
    w.u64(UInt64.max)           // section length unknown
    w.u32(28)
    // Interface Description Block
    let idbStart = w.bytes.count
    w.u32(1); w.u32(0)          // type, length (patched)
    w.u16(UInt16(capture.linkType)); w.u16(0)
    w.u32(UInt32(snaplen ?? 0)) // 0: no limit
    if nanoseconds {
        w.u16(9); w.u16(1); w.u8(9); w.pad4()   // if_tsresol: 10^-9
        w.u16(0); w.u16(0)                      // opt_endofopt
    }
    let idbLength = UInt32(w.bytes.count - idbStart + 4)
    w.u32(idbLength)
    w.set32(idbLength, at: idbStart + 4)
    // Enhanced Packet Blocks
    let unit: Int64 = nanoseconds ? 1 : 1000
    for p in capture.packets {
        let data = snaplen.map { p.bytes.prefix($0) } ?? p.bytes[...]
        let start = w.bytes.count
        w.u32(6); w.u32(0)
        w.u32(0)                                // interface id
        let ts = UInt64(p.timeNs / unit)
        w.u32(UInt32(truncatingIfNeeded: ts >> 32)); w.u32(UInt32(truncatingIfNeeded: ts))
        w.u32(UInt32(data.count)); w.u32(UInt32(max(p.wireLength, data.count)))
        w.append(data); w.pad4()
        let length = UInt32(w.bytes.count - start + 4)
        w.u32(length)
        w.set32(length, at: start + 4)
    }
    return w.bytes
}

func captureFile(_ capture: StoredCapture, format: CaptureFormat, snaplen: Int? = nil) -> [UInt8] {
    switch format {
    case .pcap(let ns): pcapFile(capture, nanoseconds: ns, snaplen: snaplen)
    case .pcapng(let ns): pcapngFile(capture, nanoseconds: ns, snaplen: snaplen)
    }
}

/// Writes the capture to a new temporary file and returns its path.
func writeTemporaryCapture(_ capture: StoredCapture, format: CaptureFormat = .pcap(nanoseconds: false),
                           snaplen: Int? = nil, name: String = "variant") -> String {
    let ext: String
    switch format { case .pcap: ext = "pcap"; case .pcapng: ext = "pcapng" }
    let url = temporaryFile("\(name).\(ext)")
    try! Data(captureFile(capture, format: format, snaplen: snaplen)).write(to: url)
    return url.path
}

/// Writes a variant, analyses it and removes the file again.
func analyzeVariant(_ capture: StoredCapture, format: CaptureFormat = .pcap(nanoseconds: false),
                    snaplen: Int? = nil, options: AnalyzerOptions = AnalyzerOptions()) -> AnalysisResult {
    let path = writeTemporaryCapture(capture, format: format, snaplen: snaplen)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return analyze(path, options: options)
}
