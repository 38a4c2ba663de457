#!/usr/bin/env python3
"""Independent NVMe/TCP capture generator for checking nvmetrace.

Why this exists
    nvmetrace's benchmarks and tests use captures made by the project's own
    generator (nvmetrace-gen). A generator and an analyser written by the same
    hands tend to share assumptions (one PDU per TCP segment, PDU headers never
    split, ...). This script was written separately, from the protocol facts
    alone (NVMe/TCP transport spec, Linux include/linux/nvme-tcp.h, the
    project's PROTOCOL.md), without reading or reusing the project's
    generator, so that nvmetrace's speed and correctness can be checked on
    captures it was not co-designed with. Standard library only.

What it writes
    A classic pcap (link type Ethernet, microsecond or nanosecond timestamps)
    of healthy NVMe/TCP traffic on port 4420 between H hosts and one target:

    * per connection: TCP three-way handshake (MSS/SACK/timestamp/wscale
      options), ICReq/ICResp, Fabrics Connect with 1024 bytes of in-capsule
      Connect data and its CapsuleResp (cntlid in DW0), ACK segments from the
      receiver, FIN/FIN/ACK at the end;
    * per host an admin queue (Connect KATO --kato ms; Property Get/Set,
      Identify controller and namespace, Set Features, an outstanding
      Asynchronous Event Request, Keep Alive every KATO/2 of capture time,
      controller shutdown before closing) and --io-queues I/O queues
      (Connect KATO 0, as Linux does);
    * reads (CapsuleCmd, C2HData PDUs split at --max-data-pdu, completion by
      CapsuleResp or by the C2HData SUCCESS flag) and writes (in-capsule data
      up to --inline-max, else R2T + H2CData PDUs + CapsuleResp), random mix
      per --read-fraction and --io-size, up to --qd commands per burst;
    * optional header and data digests (CRC32C), PDA 0.

    Segmentation (--segmentation):
      kernel  the sender coalesces consecutive PDUs of a queue into MSS-sized
              (1448 B) segments, so PDU headers straddle segment boundaries;
      tso     as kernel, but segments of up to 45 * 1448 = 65160 bytes, as
              captured on a host with TSO/GSO/GRO;
      mss     each PDU starts a new segment and is cut at 1448 bytes.

    Everything is deterministic from --seed. A summary of what was written
    (packets, PDUs per type and direction, commands, Keep Alives) is printed
    as JSON on stderr and, with --summary FILE, saved.

Examples
    independent-gen.py -o k4k.pcap --size 256M --io-size 4k --segmentation kernel --hosts 2 --io-queues 3
    independent-gen.py -o tso.pcap --size 512M --io-size 128k --segmentation tso
    independent-gen.py -o dg.pcap --size 256M --io-size 4k --digests --segmentation kernel
"""

import argparse
import json
import random
import struct
import sys

PORT = 4420
MSS = 1448
TSO_SEG = 45 * MSS

# PDU types
IC_REQ, IC_RESP, CAPSULE_CMD, CAPSULE_RESP, H2C_DATA, C2H_DATA, R2T = 0, 1, 4, 5, 6, 7, 9
TYPE_NAMES = {IC_REQ: "ICReq", IC_RESP: "ICResp", CAPSULE_CMD: "CapsuleCmd",
              CAPSULE_RESP: "CapsuleResp", H2C_DATA: "H2CData", C2H_DATA: "C2HData", R2T: "R2T"}
HDGSTF, DDGSTF, DATA_LAST, DATA_SUCCESS = 0x01, 0x02, 0x04, 0x08

# TCP flags
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

# ---------------------------------------------------------------- CRC32C


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    t = _CRC_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---------------------------------------------------------------- pcap writer

_PCAP_REC = struct.Struct("<IIII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP_TS = struct.Struct("!HHIIBBHHHBBBBII")   # 32-byte header: NOP NOP TS
_TCP_SYN = struct.Struct("!HHIIBBHHH BBH BB BBII B BBB".replace(" ", ""))  # 40 bytes


class PcapWriter:
    def __init__(self, path, size_budget, duration, nanosecond, checksums, start_epoch):
        self.f = open(path, "wb")
        self.buf = bytearray()
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self.buf += struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, 1)
        self.tsdiv = 1_000_000_000 if nanosecond else 1_000_000
        self.written = 24
        self.packets = 0
        self.clock = 0.0                      # seconds since start
        self.sec_per_byte = duration / max(size_budget, 1)
        self.checksums = checksums
        self.epoch = start_epoch

    def record(self, frame_parts, frame_len):
        t = self.epoch + self.clock
        sec = int(t)
        frac = int(round((t - sec) * self.tsdiv))
        if frac >= self.tsdiv:
            sec += 1
            frac -= self.tsdiv
        b = self.buf
        b += _PCAP_REC.pack(sec, frac, frame_len, frame_len)
        for p in frame_parts:
            b += p
        self.written += 16 + frame_len
        self.packets += 1
        self.clock += (frame_len + 16) * self.sec_per_byte
        if len(b) >= (8 << 20):
            self.f.write(b)
            del b[:]

    def close(self):
        self.f.write(self.buf)
        self.f.close()


def _csum_fold(v):
    """One's-complement 16-bit checksum of a big-endian integer made of
    16-bit words (2**16 == 1 mod 0xFFFF, so v % 0xFFFF is the folded sum)."""
    s = v % 0xFFFF
    return 0xFFFF - s if s else 0


# ---------------------------------------------------------------- TCP flow


class Flow:
    """One TCP connection between a host (client) and the target."""

    def __init__(self, gen, host_ip, host_mac, sport, host_idx):
        self.g = gen
        self.w = gen.w
        self.ip = [host_ip, gen.target_ip]            # index 0 = host, 1 = target
        self.port = [sport, PORT]
        self.host_idx = host_idx
        r = gen.rng
        self.seq = [r.getrandbits(32), r.getrandbits(32)]
        self.ipid = [r.getrandbits(16), r.getrandbits(16)]
        self.tsbase = [r.getrandbits(31), r.getrandbits(31)]
        self.eth = [gen.target_mac + host_mac + b"\x08\x00", host_mac + gen.target_mac + b"\x08\x00"]
        self.pseudo = [int.from_bytes(self.ip[0] + self.ip[1] + b"\x00\x06", "big"),
                       int.from_bytes(self.ip[1] + self.ip[0] + b"\x00\x06", "big")]
        self.ipsum = [int.from_bytes(self.ip[0] + self.ip[1], "big"), int.from_bytes(self.ip[1] + self.ip[0], "big")]
        self.seg_max = TSO_SEG if gen.style == "tso" else MSS
        self.ack_every = 1 if gen.style == "tso" else 2

    def _ts(self, d):
        return (self.tsbase[d] + int(self.w.clock * 1000)) & 0xFFFFFFFF

    def emit(self, d, flags, payload=b"", syn=False):
        """Write one segment from side d (0 host, 1 target)."""
        o = 1 - d
        plen = len(payload)
        seq = self.seq[d]
        ack = self.seq[o] if flags & ACK else 0
        if syn:
            tcp = _TCP_SYN.pack(self.port[d], self.port[o], seq, ack, 0xA0, flags, 64240 if d == 0 else 65160, 0, 0,
                                2, 4, 1460, 4, 2, 8, 10, self._ts(d), self._ts(o) if d == 1 else 0, 1, 3, 3, 7)
        else:
            tcp = _TCP_TS.pack(self.port[d], self.port[o], seq, ack, 0x80, flags, 8192, 0, 0,
                               1, 1, 8, 10, self._ts(d), self._ts(o))
        tlen = len(tcp) + plen
        total = 20 + tlen
        ipid = self.ipid[d]
        self.ipid[d] = (ipid + 1) & 0xFFFF
        if self.w.checksums:
            ipc = _csum_fold(self.ipsum[d] + ((0x4500 << 64) | (total << 48) | (ipid << 32) | (0x4000 << 16) | 0x4006))
            v = int.from_bytes(payload, "big")
            if plen & 1:
                v <<= 8
            tc = _csum_fold(self.pseudo[d] * 65536 + tlen + int.from_bytes(tcp, "big") + v)
            tcp = tcp[:16] + tc.to_bytes(2, "big") + tcp[18:]
        else:
            ipc = 0
        ip = _IP.pack(0x45, 0, total, ipid, 0x4000, 64, 6, ipc, self.ip[d], self.ip[o])
        self.w.record((self.eth[d], ip, tcp, payload), 14 + total)
        self.seq[d] = (seq + plen + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    # -- generators: yield after every packet so connections interleave --

    def handshake(self):
        self.emit(0, SYN, syn=True)
        yield
        self.emit(1, SYN | ACK, syn=True)
        yield
        self.emit(0, ACK)
        yield

    def close(self):
        self.emit(0, FIN | ACK)
        yield
        self.emit(1, FIN | ACK)
        yield
        self.emit(0, ACK)
        yield

    def send(self, d, pdus, ack_at_end):
        """Send a burst of PDUs (list of bytes) from side d, segmented per style,
        with pure ACKs from the receiver every ack_every segments."""
        if self.g.style == "mss":
            pieces = pdus
        else:
            pieces = [b"".join(pdus)]
        seg_max = self.seg_max
        unacked = 0
        npieces = len(pieces)
        for i, piece in enumerate(pieces):
            mv = memoryview(piece)
            n = len(piece)
            off = 0
            while off < n:
                end = off + seg_max
                last = end >= n
                self.emit(d, ACK | PSH if last else ACK, mv[off:end])
                off = end
                self.g.segments += 1
                yield
                unacked += 1
                if unacked >= self.ack_every and not (last and i == npieces - 1):
                    self.emit(1 - d, ACK)
                    unacked = 0
                    yield
        if ack_at_end and unacked:
            self.emit(1 - d, ACK)
            yield


def drain(it):
    for _ in it:
        pass


# ---------------------------------------------------------------- NVMe/TCP


def nqn_field(s, n=256):
    b = s.encode()
    return b + bytes(n - len(b))


class Queue:
    def __init__(self, flow, qid, host):
        self.flow = flow
        self.qid = qid
        self.host = host
        self.cid = 0
        self.sqhd = 0
        self.ttag = 0

    def next_cid(self):
        c = self.cid
        self.cid = (c + 1) & 0xFFFF
        return c


class Host:
    def __init__(self, idx, gen):
        self.idx = idx
        self.ip = bytes([10, 0, 0, 10 + idx])
        self.mac = bytes([0x02, 0x00, 0x00, 0x00, 0x01, 10 + idx])
        u = random.Random(gen.seed * 1000 + idx).getrandbits(128).to_bytes(16, "big")
        self.hostid = u
        h = u.hex()
        self.hostnqn = "nqn.2014-08.org.nvmexpress:uuid:%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
        self.cntlid = 0x10 + idx
        self.admin = None
        self.io = []
        self.next_ka = 0.0


class Generator:
    def __init__(self, a):
        self.a = a
        self.seed = a.seed
        self.rng = random.Random(a.seed)
        self.style = a.segmentation
        self.hd = self.dd = a.digests
        self.target_ip = bytes([10, 0, 0, 1])
        self.target_mac = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x01])
        self.subnqn = "nqn.2024-02.org.example.indep:subsys1"
        self.w = PcapWriter(a.output, a.size, a.duration, a.nanosecond, not a.no_checksums, 1767225600.0 + a.seed)
        self.pool = self.rng.randbytes((4 << 20) + (256 << 10))
        self.pool_mv = memoryview(self.pool)
        self.ddcache = {}
        self.counts = {}          # "host:CapsuleCmd" -> n
        self.segments = 0
        self.stats = {"reads": 0, "writes": 0, "writes_inline": 0, "writes_r2t": 0, "read_success_flag": 0,
                      "keep_alives": 0, "data_bytes": 0}
        self.stop = False
        sizes = {"512": [512], "4k": [4096], "128k": [131072],
                 "mixed": [512, 4096, 4096, 4096, 8192, 16384, 65536, 131072]}
        self.sizes = sizes[a.io_size]

    # -- PDU builders (return bytes of one whole PDU) --

    def count(self, d, t):
        k = ("host:" if d == 0 else "target:") + TYPE_NAMES[t]
        self.counts[k] = self.counts.get(k, 0) + 1

    def pdu(self, d, ptype, flags, hlen, header_body, data=None, data_key=None):
        """header_body: hlen-8 bytes following the common header."""
        hd = self.hd and ptype not in (IC_REQ, IC_RESP)
        dd = self.dd and data is not None and ptype not in (IC_REQ, IC_RESP)
        if hd:
            flags |= HDGSTF
        if dd:
            flags |= DDGSTF
        dlen = len(data) if data is not None else 0
        pdo = 0
        if data is not None:
            pdo = hlen + (4 if hd else 0)
        plen = hlen + (4 if hd else 0) + dlen + (4 if dd else 0)
        hdr = struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen) + header_body
        parts = [hdr]
        if hd:
            parts.append(crc32c(hdr).to_bytes(4, "little"))
        if data is not None:
            parts.append(data)
            if dd:
                c = self.ddcache.get(data_key) if data_key is not None else None
                if c is None:
                    c = crc32c(data)
                    if data_key is not None:
                        self.ddcache[data_key] = c
                parts.append(c.to_bytes(4, "little"))
        self.count(d, ptype)
        return b"".join(parts)

    def sqe(self, opcode, cid, nsid=0, sgl=None, cdw=(0, 0, 0, 0, 0, 0), fctype=None):
        b = bytearray(64)
        b[0] = opcode
        b[1] = 0x40                       # PSDT: SGL for data
        struct.pack_into("<HI", b, 2, cid, nsid)
        if fctype is not None:
            b[4] = fctype                 # Fabrics: fctype replaces nsid byte 0
        if sgl is None:
            sgl = (0, 0, 0x5A)            # transport SGL data block, no data
        addr, length, typ = sgl
        struct.pack_into("<QI", b, 24, addr, length)
        b[39] = typ
        struct.pack_into("<6I", b, 40, *cdw)
        return bytes(b)

    def capsule_cmd(self, d, sqe, data=None, key=None):
        return self.pdu(d, CAPSULE_CMD, 0, 72, sqe, data, key)

    def capsule_resp(self, q, cid, dw0=0, dw1=0, status=0):
        q.sqhd = (q.sqhd + 1) & 0xFFFF
        cqe = struct.pack("<IIHHHH", dw0, dw1, q.sqhd, q.qid, cid, status)
        return self.pdu(1, CAPSULE_RESP, 0, 24, cqe)

    def data_slice(self, base, off, n):
        p = (base + off) % (len(self.pool) - n) if n < len(self.pool) else 0
        p -= p % 512
        return bytes(self.pool_mv[p:p + n]), (p, n)

    # -- exchanges --

    def ic(self, q):
        f = q.flow
        dg = (1 if self.hd else 0) | (2 if self.dd else 0)
        req = self.pdu(0, IC_REQ, 0, 128, struct.pack("<HBBI", 0, 0, dg, 0) + bytes(112))
        yield from f.send(0, [req], False)
        resp = self.pdu(1, IC_RESP, 0, 128, struct.pack("<HBBI", 0, 0, dg, self.a.max_data_pdu) + bytes(112))
        yield from f.send(1, [resp], True)

    def connect(self, q, kato):
        h = q.host
        cid = q.next_cid()
        cdw10 = (q.qid << 16) | 0             # recfmt 0, qid
        sqsize = 31 if q.qid == 0 else 127
        cdw11 = sqsize                          # sqsize (0's based), cattr 0
        sqe = self.sqe(0x7F, cid, 0, (0, 1024, 0x01), (cdw10, cdw11, kato, 0, 0, 0), fctype=0x01)
        data = bytearray(1024)
        data[0:16] = h.hostid
        struct.pack_into("<H", data, 16, 0xFFFF if q.qid == 0 else h.cntlid)
        data[256:512] = nqn_field(self.subnqn)
        data[512:768] = nqn_field(h.hostnqn)
        yield from q.flow.send(0, [self.capsule_cmd(0, sqe, bytes(data))], False)
        yield from q.flow.send(1, [self.capsule_resp(q, cid, dw0=h.cntlid)], True)

    def admin_cmd(self, q, sqe_fn, resp_dw=(0, 0), c2h=None):
        cid = q.next_cid()
        yield from q.flow.send(0, [self.capsule_cmd(0, sqe_fn(cid))], False)
        pdus = []
        if c2h is not None:
            body = struct.pack("<HHII", cid, 0, 0, len(c2h)) + bytes(4)
            pdus.append(self.pdu(1, C2H_DATA, DATA_LAST, 24, body, c2h))
        pdus.append(self.capsule_resp(q, cid, *resp_dw))
        yield from q.flow.send(1, pdus, True)

    def prop_get(self, q, off, size8, value):
        return self.admin_cmd(q, lambda cid: self.sqe(0x7F, cid, cdw=(1 if size8 else 0, off, 0, 0, 0, 0), fctype=0x04),
                              (value & 0xFFFFFFFF, value >> 32))

    def prop_set(self, q, off, value):
        return self.admin_cmd(q, lambda cid: self.sqe(0x7F, cid, cdw=(0, off, value & 0xFFFFFFFF, value >> 32, 0, 0),
                                                      fctype=0x00))

    def identify_ctrl(self, h):
        b = bytearray(4096)
        struct.pack_into("<HH", b, 0, 0x1B36, 0x1B36)
        b[4:24] = b"%-20s" % (b"INDEP%04d" % h.idx)
        b[24:64] = b"%-40s" % b"Independent NVMe/TCP model"
        b[64:72] = b"1.0     "
        b[77] = 5                                   # MDTS 2^5 * 4 KiB = 128 KiB
        struct.pack_into("<HI", b, 78, h.cntlid, 0x00010400)
        b[111] = 1                                  # CNTRLTYPE I/O
        struct.pack_into("<H", b, 320, 10)          # KAS 1 s
        b[512], b[513] = 0x66, 0x44
        struct.pack_into("<I", b, 516, 1)           # NN
        b[768:1024] = nqn_field(self.subnqn)
        struct.pack_into("<II", b, 1792, 4 + self.a.inline_max // 16, 1)
        return bytes(b)

    def identify_ns(self):
        b = bytearray(4096)
        n = 1 << 31
        struct.pack_into("<QQQ", b, 0, n, n, n)
        b[130] = 9                                  # LBAF0 512-byte LBAs
        return bytes(b)

    def admin_setup(self, h):
        q = h.admin
        yield from q.flow.handshake()
        yield from self.ic(q)
        yield from self.connect(q, self.a.kato)
        yield from self.prop_get(q, 0x00, True, 0x0000_0020_3C03_007F)     # CAP
        yield from self.prop_get(q, 0x08, False, 0x00010400)               # VS
        yield from self.prop_set(q, 0x14, 0x00460001)                      # CC.EN
        yield from self.prop_get(q, 0x1C, False, 0x1)                      # CSTS.RDY
        yield from self.admin_cmd(q, lambda cid: self.sqe(0x06, cid, sgl=(0, 4096, 0x5A), cdw=(1, 0, 0, 0, 0, 0)),
                                  c2h=self.identify_ctrl(h))
        nq = self.a.io_queues - 1
        yield from self.admin_cmd(q, lambda cid: self.sqe(0x09, cid, cdw=(0x07, nq | nq << 16, 0, 0, 0, 0)),
                                  (nq | nq << 16, 0))
        yield from self.admin_cmd(q, lambda cid: self.sqe(0x09, cid, cdw=(0x0B, 0x900, 0, 0, 0, 0)))
        yield from self.admin_cmd(q, lambda cid: self.sqe(0x06, cid, 1, (0, 4096, 0x5A), (0, 0, 0, 0, 0, 0)),
                                  c2h=self.identify_ns())
        # Asynchronous Event Request, left outstanding as Linux does
        yield from q.flow.send(0, [self.capsule_cmd(0, self.sqe(0x0C, q.next_cid()))], True)
        h.next_ka = self.w.clock + self.a.kato / 2000.0

    def keep_alive(self, h):
        q = h.admin
        cid = q.next_cid()
        self.stats["keep_alives"] += 1
        yield from q.flow.send(0, [self.capsule_cmd(0, self.sqe(0x18, cid))], False)
        yield from q.flow.send(1, [self.capsule_resp(q, cid)], True)

    def admin_shutdown(self, h):
        q = h.admin
        yield from self.prop_set(q, 0x14, 0x00464001)                      # CC.SHN normal
        yield from self.prop_get(q, 0x1C, False, 0x9)                      # CSTS.SHST complete
        yield from q.flow.close()

    def io_setup(self, q):
        yield from q.flow.handshake()
        yield from self.ic(q)
        yield from self.connect(q, 0)

    def io_queue(self, q):
        """Bursts of up to --qd commands until the size budget is reached."""
        a = self.a
        rng = self.rng
        sizes = self.sizes
        maxd = a.max_data_pdu
        f = q.flow
        budget = a.size - a.size // 200 - 65536
        while self.w.written < budget:
            n = rng.randint(1, a.qd)
            cmds = []
            host_pdus = []
            for _ in range(n):
                size = sizes[rng.randrange(len(sizes))]
                is_read = rng.random() < a.read_fraction
                cid = q.next_cid()
                base = rng.randrange(64) * 4096
                slba = rng.randrange(1 << 30) * 8
                nlb = size // 512 - 1
                inline = (not is_read) and size <= a.inline_max
                sgl = (0, size, 0x01) if inline else (0, size, 0x5A)
                sqe = self.sqe(0x02 if is_read else 0x01, cid, 1, sgl,
                               (slba & 0xFFFFFFFF, slba >> 32, nlb, 0, 0, 0))
                if inline:
                    data, key = self.data_slice(base, 0, size)
                    host_pdus.append(self.capsule_cmd(0, sqe, data, key))
                    self.stats["writes_inline"] += 1
                else:
                    host_pdus.append(self.capsule_cmd(0, sqe))
                if is_read:
                    self.stats["reads"] += 1
                else:
                    self.stats["writes"] += 1
                self.stats["data_bytes"] += size
                cmds.append((cid, size, is_read, inline, base))
            yield from f.send(0, host_pdus, False)

            tpdus = []
            r2ts = []
            for cid, size, is_read, inline, base in cmds:
                if is_read:
                    success = rng.random() < a.c2h_success
                    off = 0
                    while off < size:
                        n2 = min(maxd, size - off)
                        last = off + n2 >= size
                        fl = (DATA_LAST | (DATA_SUCCESS if success else 0)) if last else 0
                        data, key = self.data_slice(base, off, n2)
                        tpdus.append(self.pdu(1, C2H_DATA, fl, 24, struct.pack("<HHII", cid, 0, off, n2) + bytes(4),
                                              data, key))
                        off += n2
                    if success:
                        self.stats["read_success_flag"] += 1
                        q.sqhd = (q.sqhd + 1) & 0xFFFF
                    else:
                        tpdus.append(self.capsule_resp(q, cid))
                elif inline:
                    tpdus.append(self.capsule_resp(q, cid))
                else:
                    ttag = q.ttag
                    q.ttag = (ttag + 1) & 0xFFFF
                    tpdus.append(self.pdu(1, R2T, 0, 24, struct.pack("<HHII", cid, ttag, 0, size) + bytes(4)))
                    r2ts.append((cid, ttag, size, base))
            yield from f.send(1, tpdus, not r2ts)
            if r2ts:
                hp = []
                for cid, ttag, size, base in r2ts:
                    self.stats["writes_r2t"] += 1
                    off = 0
                    while off < size:
                        n2 = min(maxd, size - off)
                        fl = DATA_LAST if off + n2 >= size else 0
                        data, key = self.data_slice(base, off, n2)
                        hp.append(self.pdu(0, H2C_DATA, fl, 24, struct.pack("<HHII", cid, ttag, off, n2) + bytes(4),
                                           data, key))
                        off += n2
                yield from f.send(0, hp, False)
                yield from f.send(1, [self.capsule_resp(q, cid) for cid, _, _, _ in r2ts], True)

    # -- main --

    def run(self):
        a = self.a
        rng = self.rng
        hosts = [Host(i, self) for i in range(a.hosts)]
        ports = rng.sample(range(32768, 60999), a.hosts * (a.io_queues + 1))
        for h in hosts:
            h.admin = Queue(Flow(self, h.ip, h.mac, ports.pop(), h.idx), 0, h)
            h.io = [Queue(Flow(self, h.ip, h.mac, ports.pop(), h.idx), i + 1, h) for i in range(a.io_queues)]
        for h in hosts:
            drain(self.admin_setup(h))
            for q in h.io:
                drain(self.io_setup(q))
        active = [self.io_queue(q) for h in hosts for q in h.io]
        kato_half = a.kato / 2000.0
        w = self.w
        next_ka = min(h.next_ka for h in hosts) if a.kato else float("inf")
        while active:
            i = rng.randrange(len(active))
            g = active[i]
            for _ in range(rng.randint(1, 4)):       # a few packets of one queue, then another
                if w.clock >= next_ka:
                    for h in hosts:
                        if w.clock >= h.next_ka:
                            drain(self.keep_alive(h))
                            h.next_ka += kato_half
                    next_ka = min(h.next_ka for h in hosts)
                try:
                    next(g)
                except StopIteration:
                    active.pop(i)
                    break
        for h in hosts:
            for q in h.io:
                drain(q.flow.close())
            drain(self.admin_shutdown(h))
        w.close()
        pdus = sum(self.counts.values())
        by_type = {}
        for k, v in self.counts.items():
            t = k.split(":")[1]
            by_type[t] = by_type.get(t, 0) + v
        return {
            "file": a.output, "bytes": w.written, "packets": w.packets, "data_segments": self.segments,
            "duration_s": round(w.clock, 6), "connections": a.hosts * (a.io_queues + 1), "hosts": a.hosts,
            "io_queues_per_host": a.io_queues, "segmentation": self.style, "digests": self.hd,
            "io_size": a.io_size, "pdus": pdus, "pdus_by_type": dict(sorted(by_type.items())),
            "pdus_by_direction_type": dict(sorted(self.counts.items())), **self.stats,
            "argv": sys.argv[1:],
        }


def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, help="pcap file to write")
    p.add_argument("--size", type=parse_size, default=parse_size("64M"), help="approximate file size (e.g. 256M, 1G)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hosts", type=int, default=1, help="hosts (each: one admin queue + --io-queues I/O queues)")
    p.add_argument("--io-queues", type=int, default=1, help="I/O queue connections per host")
    p.add_argument("--io-size", choices=["512", "4k", "128k", "mixed"], default="4k")
    p.add_argument("--read-fraction", type=float, default=0.7)
    p.add_argument("--digests", action="store_true", help="header and data digests on")
    p.add_argument("--segmentation", choices=["kernel", "tso", "mss"], default="kernel")
    p.add_argument("--qd", type=int, default=16, help="most commands per burst on a queue")
    p.add_argument("--inline-max", type=int, default=8192, help="largest write sent as in-capsule data")
    p.add_argument("--max-data-pdu", type=int, default=65536, help="largest C2H/H2C data PDU (and ICResp maxh2cdata)")
    p.add_argument("--c2h-success", type=float, default=0.5,
                   help="fraction of reads completed by the C2HData SUCCESS flag instead of a CapsuleResp")
    p.add_argument("--kato", type=int, default=5000, help="admin queue Connect KATO (ms)")
    p.add_argument("--duration", type=float,
                   help="capture time span in seconds (default: size at 20 MiB/s, at least 12 s)")
    p.add_argument("--nanosecond", action="store_true", help="nanosecond-resolution pcap magic")
    p.add_argument("--no-checksums", action="store_true", help="leave IPv4/TCP checksums 0 (faster)")
    p.add_argument("--summary", help="also write the JSON summary to this file")
    a = p.parse_args()
    if a.duration is None:
        a.duration = max(12.0, a.size / (20 << 20))
    if a.max_data_pdu < 4096 or a.max_data_pdu % 4:
        p.error("--max-data-pdu must be a multiple of 4 and >= 4096")
    s = Generator(a).run()
    out = json.dumps(s, indent=1)
    print(out, file=sys.stderr)
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
