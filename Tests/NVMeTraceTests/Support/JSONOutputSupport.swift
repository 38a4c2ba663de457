import Foundation
import Testing
@testable import NVMeTrace

// Support for the tests of nvmetrace's JSON output (issue #14): the schemas kept in schemas/, the
// validator that checks output against them (schemas/validate.py, run by the system's python3
// with its jsonschema module), a pcap reader that owes nothing to NVMeTrace or libpcap (frame times
// and bytes for expected values), and the frames each PDU of a full capture starts and ends in.

/// The repository's schemas/ folder.
let schemasDirectory: URL = samplesDirectory.deletingLastPathComponent().appendingPathComponent("schemas")

// MARK: - a pcap reader of its own

enum IndependentPcapError: Error { case notClassicPcap(String) }

/// Reads a classic pcap file (either byte order, micro- or nanosecond timestamps) record by
/// record: each packet's time and captured bytes, numbered from 1 as Wireshark numbers frames.
func readPcapIndependently(_ path: String) throws -> StoredCapture {
    let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard b.count >= 24 else { throw IndependentPcapError.notClassicPcap(path) }
    let le = { (o: Int) -> UInt32 in UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }
    let be = { (o: Int) -> UInt32 in UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3]) }
    let big: Bool, nano: Bool
    switch le(0) {
    case 0xA1B2_C3D4: big = false; nano = false
    case 0xA1B2_3C4D: big = false; nano = true
    case 0xD4C3_B2A1: big = true; nano = false
    case 0x4D3C_B2A1: big = true; nano = true
    default: throw IndependentPcapError.notClassicPcap(path)
    }
    let u32 = big ? be : le
    var packets: [StoredPacket] = []
    var o = 24
    while o + 16 <= b.count {
        let seconds = Int64(u32(o)), fraction = Int64(u32(o + 4))
        let captured = Int(u32(o + 8)), wire = Int(u32(o + 12))
        guard o + 16 + captured <= b.count else { break }
        packets.append(StoredPacket(timeNs: seconds * 1_000_000_000 + (nano ? fraction : fraction * 1000), wireLength: wire,
                                    bytes: Array(b[(o + 16)..<(o + 16 + captured)]), origin: packets.count + 1))
        o += 16 + captured
    }
    return StoredCapture(linkType: u32(20) & 0x0FFF_FFFF, packets: packets)
}

extension StoredCapture {
    /// Seconds from the first packet to frame `frame` (Wireshark's frame.time_relative).
    func relativeTime(frame: Int) -> Double {
        Double(packets[frame - 1].timeNs - packets[0].timeNs) / 1e9
    }
    func epochTime(frame: Int) -> Double { Double(packets[frame - 1].timeNs) / 1e9 }
}

// MARK: - the validator

/// What schemas/validate.py found.
struct SchemaValidation: Decodable {
    /// Documents and PDU lines it validated.
    var objects: [String: Int]
    var errors: [String]
    /// Objects whose keys were not in sorted order (or repeated).
    var unsorted: [String]
    /// Per schema, the field paths it defines that no validated output used.
    var uncovered: [String: [String]]
}

enum SchemaValidatorError: Error, CustomStringConvertible {
    case unavailable(String)
    case failed(String)
    var description: String {
        switch self {
        case .unavailable(let why):
            "The JSON Schema validator is not available (\(why)). The schema tests need \(SchemaValidator.python) with the "
                + "jsonschema module (4.x, draft 2020-12): apt-get install python3-jsonschema"
        case .failed(let why): "schemas/validate.py failed: \(why)"
        }
    }
}

enum SchemaValidator {
    /// The system's python3 (Debian's python3-jsonschema installs for it), or $NVMETRACE_SCHEMA_PYTHON.
    static var python: String { ProcessInfo.processInfo.environment["NVMETRACE_SCHEMA_PYTHON"] ?? "/usr/bin/python3" }
    static let script = schemasDirectory.appendingPathComponent("validate.py").path

    /// Validates every file in one python process. `pythonOptions` go before the script (tests of
    /// the missing-module path pass -S).
    static func run(reports: [String], pdus: [String], events: [String] = [], coverage: Bool = false, pythonOptions: [String] = [],
                    timeLimit: TimeInterval = 120) throws -> SchemaValidation {
        guard FileManager.default.isExecutableFile(atPath: python) else { throw SchemaValidatorError.unavailable("no \(python)") }
        var args = pythonOptions + [script, "--json"]
        if coverage { args.append("--coverage") }
        if !reports.isEmpty { args += ["--report"] + reports }
        if !pdus.isEmpty { args += ["--pdus"] + pdus }
        if !events.isEmpty { args += ["--events"] + events }
        let run = try runChild(python, args, seconds: timeLimit)
        if run.status == 3 { throw SchemaValidatorError.unavailable(run.stderr.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard run.status == 0 || run.status == 1,
              let result = try? JSONDecoder().decode(SchemaValidation.self, from: Data(run.stdout.utf8)) else {
            throw SchemaValidatorError.failed("exit status \(run.status): \(run.stderr.suffix(2000))")
        }
        return result
    }
}

// MARK: - JSON

func jsonDocument(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object")
}

func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not a JSON object: \($0)")
    }
}

/// `o` as JSON with every object's keys in code point order, as nvmetrace writes them
/// (JSONSerialization's .sortedKeys orders "closeFrame" after "closedBy": not the format's order).
func sortedJSON(_ o: Any) throws -> String {
    if let d = o as? [String: Any] {
        return "{" + (try d.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }.map {
            try sortedJSON($0) + ":" + sortedJSON(d[$0]!)
        }).joined(separator: ",") + "}"
    }
    if let a = o as? [Any] { return "[" + (try a.map(sortedJSON)).joined(separator: ",") + "]" }
    return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.fragmentsAllowed]), as: UTF8.self)
}

/// JSON null (NSNull) or absent.
func isNull(_ v: Any?) -> Bool { v == nil || v is NSNull }

// MARK: - where each PDU of a full capture lies

/// One PDU of a full capture as the reference framer walked it, with the frames holding its first
/// and last byte (nvmetrace reports a PDU at the frame that completes it).
struct LocatedPDU {
    var fact: PDUFact
    var connection: Int
    /// 0 host → target, 1 target → host.
    var dir: Int
    var firstFrame: Int
    var lastFrame: Int
    /// The PDU's bytes as the full capture holds them.
    var bytes: [UInt8]

    var type: UInt8 { fact.pdu.type }
    var flags: UInt8 { fact.pdu.flags }
    var hlen: Int { Int(bytes[2]) }
    var pdo: Int { Int(bytes[3]) }
    func u8(_ o: Int) -> Int { Int(bytes[o]) }
    func le16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
    func le32(_ o: Int) -> Int { le16(o) | le16(o + 2) << 16 }
    func le64(_ o: Int) -> UInt64 { UInt64(le32(o)) | UInt64(le32(o + 4)) << 32 }
    /// The data the PDU carries (after PDO, before a data digest).
    var data: ArraySlice<UInt8> {
        let start = fact.pdu.dataStart, end = start + fact.pdu.dataLength
        return end <= bytes.count && start < end ? bytes[start..<end] : []
    }
}

/// Every PDU of every connection of a full capture, each with the frames holding its first and
/// last byte: the first data segment, in capture order, that carried the byte.
func locatedPDUs(_ full: FullCapture) -> [[LocatedPDU]] {
    full.connections.enumerated().map { ci, c in
        var out: [LocatedPDU] = []
        for d in 0..<2 {
            let segments = c.ref.streams[d].segments
            func frame(holding offset: Int) -> Int {
                segments.filter { $0.range.contains(offset) }.map(\.frame).min() ?? 0
            }
            for f in c.pdus[d] {
                let o = f.pdu.offset
                let end = min(o + f.pdu.plen, c.bytes[d].count)
                out.append(LocatedPDU(fact: f, connection: ci, dir: d, firstFrame: frame(holding: o),
                                      lastFrame: frame(holding: o + f.pdu.plen - 1), bytes: Array(c.bytes[d][o..<end])))
            }
        }
        // In the order nvmetrace completes them: by last frame, then stream order.
        return out.sorted { ($0.lastFrame, $0.dir, $0.fact.pdu.offset) < ($1.lastFrame, $1.dir, $1.fact.pdu.offset) }
    }
}
