/// ICReq (§3.6.2.2) and ICResp (§3.6.2.3): connection parameters.
public struct InitializeConnection: Sendable, Equatable {
    public var pfv: UInt16
    /// HPDA (ICReq) or CPDA (ICResp): required data alignment, in dwords minus one.
    public var pda: UInt8
    public var headerDigest: Bool
    public var dataDigest: Bool
    /// MAXR2T (ICReq, 0's based) or MAXH2CDATA (ICResp, bytes).
    public var maxValue: UInt32

    public init?(header h: [UInt8]) {
        guard let v = h.withUnsafeBytes({ InitializeConnection(header: $0) }) else { return nil }
        self = v
    }

    public init?(header h: UnsafeRawBufferPointer) {
        guard let pfv = h.le16(at: 8), let pda = h.u8(at: 10), let dg = h.u8(at: 11), let m = h.le32(at: 12) else {
            return nil
        }
        self.pfv = pfv; self.pda = pda
        headerDigest = dg & 1 != 0
        dataDigest = dg & 2 != 0
        maxValue = m
    }
}

/// H2CTermReq / C2HTermReq (§3.6.2.4): the fatal error that ends the connection.
public struct TerminationRequest: Sendable, Equatable {
    public var fes: UInt16
    /// Fatal Error Information (e.g. the offset of the offending field).
    public var fei: UInt32

    public init?(header h: [UInt8]) {
        guard let v = h.withUnsafeBytes({ TerminationRequest(header: $0) }) else { return nil }
        self = v
    }

    public init?(header h: UnsafeRawBufferPointer) {
        guard let fes = h.le16(at: 8), let fei = h.le32(at: 10) else { return nil }
        self.fes = fes; self.fei = fei
    }
}

/// H2CData / C2HData (§3.6.2.7, §3.6.2.8) and R2T (§3.6.2.6) headers.
public struct DataTransferHeader: Sendable, Equatable {
    /// Command capsule CID the data belongs to.
    public var cccid: UInt16
    /// Transfer tag (H2CData, R2T).
    public var ttag: UInt16
    /// DATAO / R2TO: offset of this transfer within the command's data.
    public var offset: UInt32
    /// DATAL / R2TL.
    public var length: UInt32

    public init?(header h: [UInt8]) {
        guard let v = h.withUnsafeBytes({ DataTransferHeader(header: $0) }) else { return nil }
        self = v
    }

    public init?(header h: UnsafeRawBufferPointer) {
        guard let c = h.le16(at: 8), let t = h.le16(at: 10), let o = h.le32(at: 12), let l = h.le32(at: 16) else {
            return nil
        }
        cccid = c; ttag = t; offset = o; length = l
    }
}
