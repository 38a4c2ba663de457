/// Where a packet sits in the input: which file, which frame (1-based per file, as Wireshark
/// numbers them) and when it was captured.
public struct FrameRef: Sendable, Hashable {
    /// Index into the list of input files.
    public var file: Int
    /// 1-based frame number within that file.
    public var frame: Int
    /// Capture timestamp, nanoseconds since the Unix epoch.
    public var timeNs: Int64

    public init(file: Int, frame: Int, timeNs: Int64) {
        self.file = file
        self.frame = frame
        self.timeNs = timeNs
    }

    public static let none = FrameRef(file: -1, frame: 0, timeNs: 0)
}

/// Link-layer header types, as libpcap's `pcap_datalink` reports them (DLT_ values).
public enum LinkType: Int32, Sendable {
    case null = 0          // DLT_NULL: 4-byte address family in the capturing host's byte order
    case ethernet = 1      // DLT_EN10MB
    case raw = 12          // DLT_RAW on Linux (LINKTYPE_RAW 101 in files)
    case rawOpenBSD = 14   // DLT_RAW on OpenBSD
    case rawLinktype = 101 // LINKTYPE_RAW, should libpcap pass it through
    case loop = 108        // DLT_LOOP: address family in network byte order
    case linuxSLL = 113    // DLT_LINUX_SLL
    case ipv4 = 228        // DLT_IPV4
    case ipv6 = 229        // DLT_IPV6
    case linuxSLL2 = 276   // DLT_LINUX_SLL2
}

/// One captured packet. `bytes` is only valid during the callback that receives it.
public struct Packet {
    public var ref: FrameRef
    public var linkType: Int32
    /// Length on the wire; `bytes.count` is the captured length (may be smaller: snaplen).
    public var wireLength: Int
    public var bytes: UnsafeRawBufferPointer
}
