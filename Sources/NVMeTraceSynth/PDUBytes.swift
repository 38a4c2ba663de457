import NVMeTrace

/// Builds NVMe/TCP PDUs byte by byte from the spec's layouts (NVMe/TCP Transport §3.6), for the
/// capture generator and for tests that must not depend on the decoder to produce their input.
public enum PDUBuilder {
    public static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    public static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    public static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// The digest as stored on the wire (little-endian CRC32C).
    public static func crc32c(_ b: [UInt8]) -> [UInt8] {
        le32(CRC32C.checksum(b))
    }

    /// A PDU: common header + type-specific header (padded to hlen), optional header digest,
    /// padding up to `pdo`, data, optional data digest.
    public static func pdu(type: UInt8, flags: UInt8 = 0, hlen: Int, specific: [UInt8], data: [UInt8] = [],
                    hdgst: Bool = false, ddgst: Bool = false, pad: Int = 0) -> [UInt8] {
        var header = specific + [UInt8](repeating: 0, count: max(0, hlen - 8 - specific.count))
        var f = flags
        if hdgst { f |= 0x01 }
        if ddgst && !data.isEmpty { f |= 0x02 }
        let hd = hdgst ? 4 : 0
        let dd = ddgst && !data.isEmpty ? 4 : 0
        let pdo = data.isEmpty ? 0 : hlen + hd + pad
        let plen = data.isEmpty ? hlen + hd : pdo + data.count + dd
        header = [type, f, UInt8(hlen), UInt8(pdo)] + le32(UInt32(plen)) + header
        var out = header
        if hdgst { out += crc32c(header) }
        if !data.isEmpty {
            out += [UInt8](repeating: 0xAA, count: pad)
            out += data
            if ddgst { out += crc32c(data) }
        }
        return out
    }

    public static func icReq(hdgst: Bool = false, ddgst: Bool = false) -> [UInt8] {
        pdu(type: 0x00, hlen: 128, specific: le16(0) + [0, (hdgst ? 1 : 0) | (ddgst ? 2 : 0)] + le32(0))
    }

    public static func icResp(hdgst: Bool = false, ddgst: Bool = false, maxh2cdata: UInt32 = 131072) -> [UInt8] {
        pdu(type: 0x01, hlen: 128, specific: le16(0) + [0, (hdgst ? 1 : 0) | (ddgst ? 2 : 0)] + le32(maxh2cdata))
    }

    /// A 64-byte SQE. SGL flags (PSDT 01b) set as NVMe-oF requires.
    public static func sqe(opcode: UInt8, cid: UInt16, nsid: UInt32 = 0, fctype: UInt8 = 0,
                    cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0, cdw13: UInt32 = 0) -> [UInt8] {
        var s = [opcode, 0x40] + le16(cid) + le32(nsid)
        if opcode == 0x7F { s[4] = fctype }
        s += [UInt8](repeating: 0, count: 40 - s.count)
        s += le32(cdw10) + le32(cdw11) + le32(cdw12) + le32(cdw13) + le32(0) + le32(0)
        return s
    }

    public static func capsuleCmd(_ sqe: [UInt8], data: [UInt8] = [], hdgst: Bool = false, ddgst: Bool = false, pad: Int = 0) -> [UInt8] {
        pdu(type: 0x04, hlen: 72, specific: sqe, data: data, hdgst: hdgst, ddgst: ddgst, pad: pad)
    }

    public static func connectSQE(cid: UInt16, qid: UInt16, sqsize: UInt16 = 31, kato: UInt32) -> [UInt8] {
        sqe(opcode: 0x7F, cid: cid, fctype: 0x01, cdw10: UInt32(qid) << 16, cdw11: UInt32(sqsize), cdw12: kato)
    }

    public static func connectData(cntlid: UInt16 = 0xFFFF, subnqn: String, hostnqn: String) -> [UInt8] {
        var d = [UInt8](repeating: 0, count: 1024)
        for i in 0..<16 { d[i] = UInt8(i + 1) }
        d[16] = UInt8(cntlid & 0xFF); d[17] = UInt8(cntlid >> 8)
        for (i, b) in subnqn.utf8.enumerated() where i < 255 { d[256 + i] = b }
        for (i, b) in hostnqn.utf8.enumerated() where i < 255 { d[512 + i] = b }
        return d
    }

    public static func capsuleResp(cid: UInt16, status: UInt16 = 0, dw0: UInt32 = 0, dw1: UInt32 = 0, hdgst: Bool = false) -> [UInt8] {
        let cqe = le32(dw0) + le32(dw1) + le16(0) + le16(0) + le16(cid) + le16(status << 1)
        return pdu(type: 0x05, hlen: 24, specific: cqe, hdgst: hdgst)
    }

    public static func c2hData(cid: UInt16, offset: UInt32 = 0, data: [UInt8], last: Bool = true, success: Bool = false,
                        hdgst: Bool = false, ddgst: Bool = false, pad: Int = 0) -> [UInt8] {
        let flags: UInt8 = (last ? 0x04 : 0) | (success ? 0x08 : 0)
        return pdu(type: 0x07, flags: flags, hlen: 24,
                   specific: le16(cid) + le16(0) + le32(offset) + le32(UInt32(data.count)),
                   data: data, hdgst: hdgst, ddgst: ddgst, pad: pad)
    }

    public static func h2cData(cid: UInt16, ttag: UInt16, offset: UInt32 = 0, data: [UInt8], last: Bool = true,
                        hdgst: Bool = false, ddgst: Bool = false) -> [UInt8] {
        pdu(type: 0x06, flags: last ? 0x04 : 0, hlen: 24,
            specific: le16(cid) + le16(ttag) + le32(offset) + le32(UInt32(data.count)),
            data: data, hdgst: hdgst, ddgst: ddgst)
    }

    public static func r2t(cid: UInt16, ttag: UInt16, offset: UInt32 = 0, length: UInt32, hdgst: Bool = false) -> [UInt8] {
        pdu(type: 0x09, hlen: 24, specific: le16(cid) + le16(ttag) + le32(offset) + le32(length), hdgst: hdgst)
    }

    public static func termReq(c2h: Bool, fes: UInt16, fei: UInt32 = 0, offending: [UInt8] = []) -> [UInt8] {
        var b = pdu(type: c2h ? 0x03 : 0x02, hlen: 24, specific: le16(fes) + le32(fei))
        // TermReq carries the offending header as data right after its header (no PDO).
        b += offending
        let plen = UInt32(b.count)
        b.replaceSubrange(4..<8, with: le32(plen))
        return b
    }
}

