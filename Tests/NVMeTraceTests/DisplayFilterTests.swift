import Foundation
import Testing
@testable import NVMeTrace
import NVMeTraceSynth

/// Every Wireshark display filter a report prints, run through tshark on the capture it came from:
/// the evidence filter must select exactly the frames the finding cites, the stream filter exactly
/// the packets of the connections it names. The captures: every sample, and one synthetic capture
/// per way each rule fires.
@Suite struct DisplayFilterTests {
    enum Capture: CustomStringConvertible, Sendable {
        case sample(String)
        case scenario(RuleScenario)
        var description: String {
            switch self {
            case .sample(let s): s
            case .scenario(let s): "synthetic: \(s.name)"
            }
        }
    }

    static let captures: [Capture] = sampleNames.map { .sample($0) } + RuleScenario.all.map { .scenario($0) }

    /// One frame as tshark dissects it.
    struct TsharkFrame {
        var number: Int
        var stream: Int
        var time: Double
        var fin: Bool
        var rst: Bool
        var pduTypes: Set<Int>
        var opcodes: Set<Int>
        var fctypes: Set<Int>
        /// Header and data digest status (Wireshark's checksum status: 0 bad, 1 good, 2 unverified).
        var digestStatus: Set<Int>
        var endpoints: Set<String>
        var syn: Bool
        var window: Int?
        /// tshark's tcp.analysis.retransmission (or fast retransmission) flag.
        var retransmission: Bool
    }

    /// The frames `filter` selects in `path` (every frame without one).
    static func tshark(_ path: String, filter: String?) throws -> [TsharkFrame] {
        let rows = try Tshark.fields(path, filter: filter, [
            "frame.number", "tcp.stream", "frame.time_relative", "tcp.flags.fin", "tcp.flags.reset", "nvme-tcp.type",
            "nvme.cmd.opc", "nvme.fabrics.cmd.fctype", "nvme-tcp.hdgst.status", "nvme-tcp.ddgst.status",
            "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.flags.syn", "tcp.window_size_value",
            "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission"])
        func ints(_ s: Substring, radix: Int = 10) -> Set<Int> {
            Set(s.split(separator: ",").compactMap { Int($0.hasPrefix("0x") ? $0.dropFirst(2) : $0, radix: radix) })
        }
        return rows.map { f in
            TsharkFrame(number: Int(f[0])!, stream: Int(f[1]) ?? -1, time: Double(f[2]) ?? -1,
                        fin: f[3] == "1" || f[3] == "True", rst: f[4] == "1" || f[4] == "True",
                        pduTypes: ints(f[5]), opcodes: ints(f[6], radix: 16), fctypes: ints(f[7], radix: 16),
                        digestStatus: ints(f[8]).union(ints(f[9])),
                        endpoints: ["\(f[10]):\(f[11])", "\(f[12]):\(f[13])"],
                        syn: f[14] == "1" || f[14] == "True", window: Int(f[15]),
                        retransmission: !f[16].isEmpty || !f[17].isEmpty)
        }
    }

    /// The two filters printed for each finding, in report order, from the Markdown report.
    static func printedFilters(_ markdown: String) -> [(evidence: String, streams: String?)] {
        markdown.split(separator: "\n").filter { $0.hasPrefix("Wireshark display filter for the evidence:") }.map { line in
            let quoted = line.split(separator: "`", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) }
            return (quoted[0], quoted.count > 1 ? quoted[1] : nil)
        }
    }

    @Test(arguments: captures)
    func printedFiltersSelectExactlyTheCitedFramesAndConnections(_ capture: Capture) throws {
        let path: String, arguments: [String]
        var truth: GroundTruth?
        switch capture {
        case .sample(let s):
            path = samplePath(s)
            arguments = []
            truth = try GroundTruth(sample: s)
        case .scenario(let s):
            path = s.build().write()
            arguments = s.arguments
        }
        let json = try runCLI(["--format", "json", "--fail-on", "none"] + arguments + [path])
        let markdown = try runCLI(["--format", "markdown", "--fail-on", "none"] + arguments + [path])
        let html = try runCLI(["--format", "html", "--fail-on", "none"] + arguments + [path])
        #expect(json.status == 0 && markdown.status == 0 && html.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let findings = try #require(doc["findings"] as? [[String: Any]])
        let connections = try #require(doc["connections"] as? [[String: Any]])
        let endpointsOf = Dictionary(uniqueKeysWithValues: connections.map { ($0["id"] as! Int, Set([$0["src"] as! String, $0["dst"] as! String])) })
        let filters = Self.printedFilters(markdown.stdout)
        #expect(filters.count == findings.count, "\(capture): \(filters.count) filters for \(findings.count) findings")
        if case .scenario = capture { #expect(!findings.isEmpty) }
        guard !findings.isEmpty else { return }

        let all = try Self.tshark(path, filter: nil)
        let byNumber = Dictionary(uniqueKeysWithValues: all.map { ($0.number, $0) })
        for (f, printed) in zip(findings, filters) {
            let rule = f["rule"] as! String
            let cited = Set(f["frames"] as! [Int])
            // The HTML report prints the same evidence filter.
            #expect(html.stdout.contains(printed.evidence), "\(capture) \(rule): HTML lacks \(printed.evidence)")

            let selected = try Self.tshark(path, filter: printed.evidence)
            #expect(Set(selected.map(\.number)) == cited, "\(capture) \(rule): \(printed.evidence)")

            // Each cited frame is what the finding says it is, when tshark saw it.
            for e in f["evidence"] as! [[String: Any]] {
                let what = e["what"] as! String
                guard let frame = byNumber[e["frame"] as! Int] else {
                    // Only "end of capture" may cite a frame outside a connection... which is still a frame.
                    Issue.record("\(capture) \(rule): evidence frame \(e["frame"]!) not in the capture")
                    continue
                }
                #expect(abs(frame.time - (e["time"] as! Double)) < 1e-6, "\(capture) \(rule) \(what)")
                if let c = e["connection"] as? Int { #expect(frame.endpoints == endpointsOf[c], "\(capture) \(rule) \(what)") }
                if what.hasSuffix("(FIN)") { #expect(frame.fin, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasSuffix("(RST)") { #expect(frame.rst, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasSuffix("(TermReq)") { #expect(!frame.pduTypes.isDisjoint(with: [2, 3]), "\(capture) \(rule) frame \(frame.number): \(what)") }
                let pdu: Set<Int>? = what.hasPrefix("H2CTermReq") ? [2] : what.hasPrefix("C2HTermReq") ? [3]
                    : what.hasPrefix("Connect response") || what.hasPrefix("Keep Alive completion") ? [5] : nil
                if let pdu { #expect(!frame.pduTypes.isDisjoint(with: pdu), "\(capture) \(rule) frame \(frame.number): \(what)") }
                else if what.hasPrefix("Connect") { #expect(frame.fctypes.contains(0x01), "\(capture) \(rule) frame \(frame.number): \(what)") }
                else if what.hasPrefix("Asynchronous Event completion") { #expect(frame.pduTypes.contains(5), "\(capture) \(rule) frame \(frame.number): \(what)") }
                else if what.hasSuffix(") sent"), what.contains("(CID ") { #expect(frame.pduTypes.contains(4), "\(capture) \(rule) frame \(frame.number): \(what)") }
                else if what.hasPrefix("Get Log Page") { #expect(frame.opcodes.contains(0x02), "\(capture) \(rule) frame \(frame.number): \(what)") }
                else if what.contains("Keep Alive") { #expect(frame.opcodes.contains(0x18), "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.contains("SYN") { #expect(frame.syn, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasPrefix("RST from") { #expect(frame.rst, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.contains("retransmission by") { #expect(frame.retransmission, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasPrefix("zero window") { #expect(frame.window == 0, "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasPrefix("Property Set") { #expect(frame.fctypes.contains(0x00), "\(capture) \(rule) frame \(frame.number): \(what)") }
                if what.hasSuffix("mismatch") { #expect(frame.digestStatus.contains(0), "\(capture) \(rule) frame \(frame.number): \(what) \(frame.digestStatus)") }
                if what == "end of capture" { #expect(frame.number == all.map(\.number).max()) }
            }

            let named = f["connections"] as! [Int]
            guard let streams = printed.streams else {
                #expect(named.isEmpty, "\(capture) \(rule): no stream filter for connections \(named)")
                continue
            }
            // The stream filter selects every packet between the named connections' endpoints
            // and nothing else (tshark's own stream numbers are not trusted to be ours).
            let inStreams = try Self.tshark(path, filter: streams)
            let wanted = Set(named.compactMap { endpointsOf[$0] })
            #expect(wanted.count == named.count)
            #expect(Set(inStreams.map(\.endpoints)) == wanted, "\(capture) \(rule): \(streams)")
            #expect(inStreams.count == all.filter { wanted.contains($0.endpoints) }.count, "\(capture) \(rule): \(streams)")
            if let truth {
                // ... which the ground truth counts per connection.
                let hosts = Set(connections.filter { named.contains($0["id"] as! Int) }.map { $0["src"] as! String })
                let expected = truth.connections.filter { hosts.contains($0.host) }.reduce(0) { $0 + $1.packets }
                #expect(inStreams.count == expected, "\(capture) \(rule): \(streams)")
            }
        }
    }
}
