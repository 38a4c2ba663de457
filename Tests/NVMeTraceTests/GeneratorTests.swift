import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// The synthetic capture generator, and the decoder on what it writes: deterministic, every
/// command completed, reordering invisible after reassembly, loss reported.
@Suite struct GeneratorTests {
    static func generate(seed: UInt64 = 3, steps: Int = 300, mss: Int = 1448, digests: Bool = false,
                         loss: Double = 0, reorder: Double = 0) -> String {
        let url = temporaryFile("gen.pcap")
        let writer = try! PcapWriter(path: url.path)
        let sink = PacketSink(writer: writer, loss: loss, reorder: reorder, seed: seed)
        let gen = TrafficGenerator(sink: sink, hosts: 2, ioQueues: 2, mss: mss, kato: 5000, digests: digests, readFraction: 0.6)
        var rng = SplitMix64(seed: seed)
        gen.connectAll()
        for _ in 0..<steps { gen.step(&rng) }
        gen.closeAll()
        sink.finish()
        writer.close()
        return url.path
    }

    @Test(arguments: [(1448, false), (8948, true)])
    func cleanTrafficDecodesCompletely(mss: Int, digests: Bool) throws {
        let path = Self.generate(mss: mss, digests: digests)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var o = AnalyzerOptions()
        o.verifyDataDigests = true
        let r = analyze(path, options: o)
        #expect(r.diagnostics.isEmpty, "\(r.diagnostics.prefix(3))")
        let commands = r.records.filter { if case .command = $0.body { true } else { false } }.count
        let completions = r.records.filter {
            switch $0.body {
            case .completion: $0.completed != nil
            case .c2hData(_, let cqe): cqe != nil && $0.completed != nil
            default: false
            }
        }.count
        // tshark counts the same command capsules (and, with digests, the same good data digests).
        let tshark = try Tshark.fields(path, filter: "nvme-tcp", ["nvme-tcp.type", "nvme-tcp.ddgst.status"])
        func occurrences(_ column: Int, of value: Substring) -> Int {
            tshark.reduce(0) { $0 + $1[column].split(separator: ",").filter { $0 == value }.count }
        }
        #expect(commands == occurrences(0, of: "4"))
        #expect(commands >= 300)  // the 300 steps each issued a command at least
        #expect(completions == commands)
        if digests {
            #expect(r.records.filter { $0.pdu.dataDigest == .ok }.count == occurrences(1, of: "1"))
            #expect(!r.records.contains { if case .mismatch = $0.pdu.dataDigest { true } else { false } })
        }
        // Same seed, same bytes.
        let again = Self.generate(mss: mss, digests: digests)
        defer { try? FileManager.default.removeItem(atPath: again) }
        #expect(FileManager.default.contents(atPath: path) == FileManager.default.contents(atPath: again))
    }

    @Test func reorderingIsUndoneAndLossIsReported() throws {
        let clean = analyze(Self.generate())
        let reordered = analyze(Self.generate(reorder: 0.05))
        #expect(reordered.diagnostics.isEmpty)
        #expect(reordered.pduTypesByConnection == clean.pduTypesByConnection)
        let lossy = analyze(Self.generate(loss: 0.01))
        #expect(lossy.diagnostics.contains { $0.message.contains("bytes missing from the capture") })
        // Loss costs PDUs but invents none: every PDU decoded from the lossy capture is one of the
        // clean capture's, at the same place in the same connection, of the same type.
        let cleanPDUs = Set(clean.records.map { "\($0.connection) \($0.pdu.streamOffset) \($0.pdu.type.name)" })
        let lossyPDUs = lossy.records.map { "\($0.connection) \($0.pdu.streamOffset) \($0.pdu.type.name)" }
        #expect(lossyPDUs.allSatisfy(cleanPDUs.contains), "\(lossyPDUs.filter { !cleanPDUs.contains($0) }.prefix(5))")
        #expect(lossyPDUs.count < clean.records.count)
    }
}
