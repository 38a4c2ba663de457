import CPcap
import Foundation

/// The last minutes of a live capture in rotating pcap files, as `tcpdump -G/-W` keeps them, so
/// that a daemon can cut the evidence of a finding when it fires (issue #17): the packets it
/// captured (headers only, at the daemon's snap length) go into `ring-<UTC start>.pcap` files of
/// `fileSeconds` each; files that ended more than `keepSeconds` ago are deleted. Disk use is
/// bounded by the packet rate times `keepSeconds`, never by how long the daemon runs.
///
/// Ring files a previous run left in the directory (a restart, a crash) are taken over and
/// deleted as their time comes (their modification time standing for their last packet), so disk
/// use stays bounded across restarts. The evidence directory keeps the newest `evidenceKept`
/// cuts.
///
/// Not thread-safe: written and read on the capture thread.
public final class EvidenceRing {
    public let directory: String
    public let fileSeconds: Int64
    public let keepSeconds: Int64
    public let linkType: Int32
    /// Evidence files kept in `directory/evidence` (the oldest go first).
    public var evidenceKept = 1000
    private var dead: OpaquePointer?
    private var dumper: OpaquePointer?
    /// The ring's files, oldest first: path, first and last packet time.
    private(set) var files: [(path: String, firstNs: Int64, lastNs: Int64)] = []
    private var currentStartNs: Int64 = .min

    public init(directory: String, linkType: Int32, fileSeconds: Int64 = 60, keepSeconds: Int64 = 600) throws(CaptureError) {
        self.directory = directory
        self.fileSeconds = max(1, fileSeconds)
        self.keepSeconds = max(self.fileSeconds, keepSeconds)
        self.linkType = linkType
        do {
            try FileManager.default.createDirectory(atPath: directory + "/evidence", withIntermediateDirectories: true)
        } catch {
            throw .cannotOpen(file: directory, reason: "cannot make the evidence ring's directory: \(error.localizedDescription)")
        }
        guard let d = pcap_open_dead_with_tstamp_precision(linkType, 262_144, UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            throw .cannotOpen(file: directory, reason: "libpcap cannot make a handle for link type \(linkType)")
        }
        dead = d
        guard access(directory, W_OK) == 0, access(directory + "/evidence", W_OK) == 0 else {
            throw .cannotOpen(file: directory, reason: "the evidence ring's directory is not writable")
        }
        for name in Self.names(directory, prefix: "ring-") {
            let path = "\(directory)/\(name)"
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            files.append((path, mtime, mtime))
        }
    }

    /// The pcap files in `dir` whose names begin with `prefix`, in name (time) order.
    static func names(_ dir: String, prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) && $0.hasSuffix(".pcap") }.sorted()
    }

    deinit {
        close()
        if let dead { pcap_close(dead) }
    }

    /// Appends a captured packet, beginning a new file every `fileSeconds` of capture time.
    public func write(_ p: Packet) {
        if dumper == nil || p.ref.timeNs &- currentStartNs >= fileSeconds * 1_000_000_000 { rotate(at: p.ref.timeNs) }
        guard let dumper, let base = p.bytes.baseAddress else { return }
        var header = pcap_pkthdr()
        let time = EvidenceWriter.recordTime(p.ref.timeNs)
        header.ts.tv_sec = Int(time.seconds)
        header.ts.tv_usec = Int(time.nanoseconds)  // nanoseconds: the dead handle is nano
        header.caplen = UInt32(p.bytes.count)
        header.len = UInt32(max(p.wireLength, p.bytes.count))
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header, base.assumingMemoryBound(to: UInt8.self))
        files[files.count - 1].lastNs = p.ref.timeNs
    }

    private func rotate(at ns: Int64) {
        close()
        currentStartNs = ns
        let path = "\(directory)/ring-\(Self.stamp(ns)).pcap"
        guard let dead, let d = pcap_dump_open(dead, path) else { return }
        dumper = d
        files.append((path, ns, ns))
        // Files that ended before the window: the oldest first.
        while files.count > 1, files[0].lastNs < ns &- keepSeconds * 1_000_000_000 {
            unlink(files.removeFirst().path)
        }
    }

    private func close() {
        if let dumper {
            pcap_dump_flush(dumper)
            pcap_dump_close(dumper)
        }
        dumper = nil
    }

    /// Writes the packets the ring holds of `connections` (matched by endpoints and time: the
    /// ring's files number their frames anew) to `evidence/<name>.pcap`; returns its path and
    /// the packets written.
    public func cut(_ connections: [EvidenceWriter.Connection], name: String) throws(CaptureError) -> (path: String, packets: Int) {
        if let dumper { pcap_dump_flush(dumper) }
        let path = "\(directory)/evidence/\(name).pcap"
        let written = try EvidenceWriter.write(files: files.map(\.path), connections: connections.map { var c = $0; c.byTime = true; return c }, to: path)
        let cuts = Self.names(directory + "/evidence", prefix: "")
        for old in cuts.dropLast(max(1, evidenceKept)) { unlink("\(directory)/evidence/\(old)") }
        return (path, written.packets)
    }

    /// A file-name-safe UTC time: 20261205T013437.123456789Z.
    static func stamp(_ ns: Int64) -> String {
        let iso = Report.utc(FrameRef(file: 0, frame: 0, timeNs: ns))  // 2026-12-05T01:34:37.123Z
        let digits = iso.filter { $0 != "-" && $0 != ":" }
        let frac = String(format: "%09lld", Int64(((ns % 1_000_000_000) + 1_000_000_000) % 1_000_000_000))
        return String(digits.prefix(15)) + "." + frac + "Z"
    }
}
