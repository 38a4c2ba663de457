import CMappedFile
import CPcap

#if canImport(Glibc)
import Glibc
#endif

/// Reads a pcap or pcapng file (or standard input for "-") through libpcap, with nanosecond
/// timestamps, and hands each packet to a callback without copying it.
public final class PcapFileSource {
    public let path: String
    public let fileIndex: Int
    private var handle: OpaquePointer?
    public let linkType: Int32
    public let snaplen: Int32
    /// Frames read so far (the frame number of the last packet delivered).
    public private(set) var framesRead = 0

    /// For what is not mapped (standard input, pipes, a file that cannot be mapped): libpcap
    /// reads each record with `fread`; with stdio's default 4 KiB buffer that is a
    /// `read(2)` per 4 KiB, and the system calls cost more than everything else nvmetrace does per
    /// packet (a 1 GiB capture: 262 000 reads, 0.22 s; with 1 MiB: 1 100 reads, 0.09 s).
    public static let readBufferSize = 1 << 20
    /// The stdio buffer handed to libpcap's stream, freed after `pcap_close` has closed the stream.
    private var readBuffer: UnsafeMutablePointer<CChar>?
    /// Standard input's buffer lives as long as the process (the stream is never closed).
    nonisolated(unsafe) private static var stdinBuffer: UnsafeMutablePointer<CChar>?

    /// A regular file is mapped and handed to libpcap as an `fmemopen` stream: its freads copy
    /// from the page cache's own pages, with no read(2) (the kernel's copies into a stdio buffer
    /// were 22% of the time on 4 KiB I/O; perf). Pages already read are dropped from the mapping
    /// as reading goes on, so the resident set does not grow with the file.
    private var mapping: UnsafeMutableRawPointer?
    private var mappingSize = 0
    /// The mapped stream (libpcap owns and closes it): its position says what has been read.
    private var mappedStream: UnsafeMutablePointer<FILE>?
    private var droppedUpTo = 0
    private var readSinceDrop = 0
    /// Bytes read between two drops of the pages behind.
    static let dropEvery = 8 << 20

    public init(path: String, fileIndex: Int) throws(CaptureError) {
        self.path = path
        self.fileIndex = fileIndex
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        let file: UnsafeMutablePointer<FILE>
        if path == "-" {
            file = nvmetrace_stdin()
            if Self.stdinBuffer == nil {
                let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: Self.readBufferSize)
                // Only allowed before the stream's first read; otherwise stdio keeps its own.
                if setvbuf(file, buffer, _IOFBF, Self.readBufferSize) == 0 { Self.stdinBuffer = buffer } else { buffer.deallocate() }
            }
        } else if let mapped = Self.mapRegularFile(path) {
            file = mapped.stream
            mapping = mapped.base
            mappingSize = mapped.size
            mappedStream = mapped.stream
        } else {
            guard let f = fopen(path, "rb") else {
                // The same words libpcap uses when it opens the file itself.
                throw .cannotOpen(file: path, reason: "\(path): \(String(cString: strerror(errno)))")
            }
            file = f
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: Self.readBufferSize)
            if setvbuf(f, buffer, _IOFBF, Self.readBufferSize) == 0 { readBuffer = buffer } else { buffer.deallocate() }
        }
        guard let h = pcap_fopen_offline_with_tstamp_precision(file, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            if path != "-" { fclose(file) }
            readBuffer?.deallocate()
            if let mapping { nvmetrace_unmap_file(mapping, mappingSize) }
            throw .cannotOpen(file: path, reason: cString(errbuf))
        }
        handle = h
        linkType = pcap_datalink(h)
        snaplen = pcap_snapshot(h)
    }

    /// Reads from an open stdio stream (libpcap takes it over and closes it), e.g. `fmemopen`.
    public init(file: UnsafeMutablePointer<FILE>, name: String, fileIndex: Int) throws(CaptureError) {
        path = name
        self.fileIndex = fileIndex
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_fopen_offline_with_tstamp_precision(file, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            fclose(file)
            throw .cannotOpen(file: name, reason: cString(errbuf))
        }
        handle = h
        linkType = pcap_datalink(h)
        snaplen = pcap_snapshot(h)
    }

    deinit {
        if let handle { pcap_close(handle) }  // closes the stream (not standard input)
        readBuffer?.deallocate()
        if let mapping { nvmetrace_unmap_file(mapping, mappingSize) }
    }

    /// Maps a non-empty regular file and opens a stream over it; nil (nothing left open) for
    /// anything else (standard input, a pipe, an empty file, a failed mapping): those are read
    /// through stdio.
    private static func mapRegularFile(_ path: String) -> (base: UnsafeMutableRawPointer, size: Int, stream: UnsafeMutablePointer<FILE>)? {
        // Checked by name before opening: opening a pipe here would take its writer's first
        // bytes from the stdio path that must then read it.
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size > 0, let size = Int(exactly: st.st_size) else { return nil }
        // Mapped with a guard against the file shrinking meanwhile (CMappedFile).
        guard let base = nvmetrace_map_file(fd, size) else { return nil }
        guard let stream = fmemopen(base, size, "rb") else {
            nvmetrace_unmap_file(base, size)
            return nil
        }
        return (base, size, stream)
    }

    /// True when the file is read through a mapping (tests).
    var isMapped: Bool { mapping != nil }
    /// Bytes at the start of the mapping whose pages were dropped (tests).
    var droppedBytes: Int { droppedUpTo }

    /// Drops the mapped pages before the stream's position: libpcap has copied what it read.
    private func dropPagesRead() {
        readSinceDrop = 0
        guard let mapping, let mappedStream else { return }
        let page = 1 << 16  // a multiple of any page size in use
        let position = ftell(mappedStream) & ~(page - 1)
        guard position > droppedUpTo else { return }
        _ = madvise(mapping + droppedUpTo, position - droppedUpTo, MADV_DONTNEED)
        droppedUpTo = position
    }

    /// Delivers every packet in order. Returns normally at the end of the file; throws when the
    /// file ends in the middle of a record or libpcap reports another read error. Packets read
    /// before the error have been delivered.
    /// Packets stored shorter than they were on the wire (a snap length), and the longest of
    /// them as stored: the snap length that was applied, which `editcap -s` does not write into
    /// the file header. Counted here, where both lengths are at hand, not on the per-packet path.
    public private(set) var packetsCut = 0
    public private(set) var longestCutPacket = 0

    public func forEach(_ body: (Packet) -> Void) throws(CaptureError) {
        guard let handle else { return }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let faultsBefore = nvmetrace_mapped_faults_total()
        while true {
            let rc = pcap_next_ex(handle, &header, &data)
            if mapping != nil && nvmetrace_mapped_faults_total() != faultsBefore, let mapping,
               nvmetrace_mapping_faults(mapping) > 0 {
                // Part of the file was gone when read: what libpcap read there is zeros.
                throw .readFailed(file: path, lastGoodFrame: framesRead,
                                  reason: "the file shrank while it was being read")
            }
            if rc == 1, let header, let data {
                framesRead += 1
                let h = header.pointee
                let ns = Int64(h.ts.tv_sec) &* 1_000_000_000 &+ Int64(h.ts.tv_usec)
                let caplen = Int(h.caplen)
                if _slowPath(h.caplen < h.len) {
                    packetsCut &+= 1
                    longestCutPacket = max(longestCutPacket, caplen)
                }
                readSinceDrop &+= caplen
                if readSinceDrop >= Self.dropEvery { dropPagesRead() }
                let packet = Packet(
                    ref: FrameRef(file: fileIndex, frame: framesRead, timeNs: ns),
                    linkType: linkType,
                    wireLength: Int(h.len),
                    bytes: UnsafeRawBufferPointer(start: data, count: caplen))
                body(packet)
            } else if rc == PCAP_ERROR_BREAK {
                return  // end of file
            } else if rc == 0 {
                continue  // live timeout; not seen offline
            } else {
                let reason = String(cString: pcap_geterr(handle))
                throw .readFailed(file: path, lastGoodFrame: framesRead, reason: reason)
            }
        }
    }
}

/// A C string from a NUL-terminated buffer (libpcap's error buffer).
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
