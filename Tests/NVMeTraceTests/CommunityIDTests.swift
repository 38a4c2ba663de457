import Foundation
import Testing
@testable import NVMeTrace

/// The Community ID of each connection against Wireshark's own (`communityid`, enabled with
/// `--enable-protocol communityid`), per `tcp.stream`, on every sample and on IPv6 copies of two;
/// and the live finding lines carry their connection's.
@Suite struct CommunityIDTests {
    static func tsharkIDs(_ path: String) throws -> [Int: String] {
        var out: [Int: String] = [:]
        for f in try Tshark.fields(path, filter: "tcp", ["tcp.stream", "communityid"],
                                   options: Tshark.options + ["--enable-protocol", "communityid"]) where !f[1].isEmpty {
            out[Int(f[0])!] = String(f[1])
        }
        return out
    }

    static func check(_ path: String, _ what: String) throws {
        let expected = try tsharkIDs(path)
        let doc = try jsonDocument(try runCLI(["--format", "json", "--fail-on", "none", path]).stdout)
        let connections = try #require(doc["connections"] as? [[String: Any]])
        #expect(!connections.isEmpty)
        for c in connections {
            let id = c["id"] as! Int
            #expect(c["communityId"] as? String == expected[id], "\(what) connection \(id): \(c["communityId"] ?? "-") vs tshark \(expected[id] ?? "-")")
        }
    }

    @Test(arguments: sampleNames)
    func communityIDsAreWiresharks(_ sample: String) throws {
        try Self.check(samplePath(sample), sample)
    }

    @Test(arguments: ["A-persistent-discovery-kato0", "D-io-traffic"])
    func communityIDsOverIPv6AreWiresharks(_ sample: String) throws {
        let v6 = toIPv6(try readPcapIndependently(samplePath(sample)))
        let path = writeTemporaryCapture(v6, name: "v6")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.check(path, "\(sample) over IPv6")
    }

    /// The published example of the specification (TCP 128.232.110.120:34855 → 66.35.250.204:80,
    /// seed 0), both ways round.
    @Test func theSpecificationsExample() {
        let a = Endpoint(address: IPAddress(v4: 0x80E8_6E78), port: 34855)
        let b = Endpoint(address: IPAddress(v4: 0x4223_FACC), port: 80)
        #expect(CommunityID.tcp(a, b) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        #expect(CommunityID.tcp(b, a) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    }
}
