import CZlib
import Foundation

/// A PNG image decoded to RGBA, for tests that read screenshots back. Only what Chromium writes is
/// read: 8-bit truecolour (RGB) or truecolour with alpha (RGBA), not interlaced, with any of the
/// five filter types (PNG specification, ISO/IEC 15948, sections 11.2.2 and 9). Anything else
/// (palette or grey images, other bit depths, Adam7) is refused with an error that says what it
/// is; chunk CRCs and the zlib stream's checksum are verified.
struct PNGImage {
    var width: Int
    var height: Int
    /// 4 bytes (R, G, B, A) per pixel, rows from the top; RGB images get alpha 255.
    var rgba: [UInt8]

    struct RGB: Equatable, CustomStringConvertible {
        var r: Int, g: Int, b: Int
        init(_ r: Int, _ g: Int, _ b: Int) { self.r = r; self.g = g; self.b = b }
        /// #rrggbb.
        init(hex: UInt32) { self.init(Int(hex >> 16 & 0xFF), Int(hex >> 8 & 0xFF), Int(hex & 0xFF)) }
        /// `self` painted over `under` with the given opacity.
        func over(_ under: RGB, opacity: Double) -> RGB {
            func mix(_ a: Int, _ b: Int) -> Int { Int((Double(a) * opacity + Double(b) * (1 - opacity)).rounded()) }
            return RGB(mix(r, under.r), mix(g, under.g), mix(b, under.b))
        }
        func isClose(to o: RGB, within t: Int) -> Bool { abs(r - o.r) <= t && abs(g - o.g) <= t && abs(b - o.b) <= t }
        var description: String { String(format: "#%02x%02x%02x", r, g, b) }
    }

    func pixel(_ x: Int, _ y: Int) -> RGB {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)x\(height)")
        let i = (y * width + x) * 4
        return RGB(Int(rgba[i]), Int(rgba[i + 1]), Int(rgba[i + 2]))
    }

    enum DecodeError: Error, CustomStringConvertible {
        case notPNG
        case malformed(String)
        case unsupported(String)
        var description: String {
            switch self {
            case .notPNG: "not a PNG file (signature)"
            case .malformed(let s): "malformed PNG: \(s)"
            case .unsupported(let s): "unsupported PNG (this decoder reads 8-bit RGB or RGBA, not interlaced): \(s)"
            }
        }
    }

    init(contentsOf url: URL) throws {
        try self.init(data: try Data(contentsOf: url))
    }

    init(data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw DecodeError.notPNG }
        func be32(_ o: Int) -> UInt32 { bytes[o..<o + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        var offset = 8
        var header: (width: Int, height: Int, channels: Int)?
        var compressed: [UInt8] = []
        var sawEnd = false
        while !sawEnd {
            guard offset + 12 <= bytes.count else { throw DecodeError.malformed("file ends inside a chunk header at byte \(offset)") }
            let length = Int(be32(offset))
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            guard length <= bytes.count - offset - 12 else { throw DecodeError.malformed("chunk \(type) of \(length) bytes runs past the end") }
            let body = offset + 8
            let crc = bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress! + offset + 4, uInt(4 + length)) }
            guard crc == uLong(be32(body + length)) else { throw DecodeError.malformed("CRC mismatch in chunk \(type) at byte \(offset)") }
            if header == nil && type != "IHDR" { throw DecodeError.malformed("first chunk is \(type), not IHDR") }
            switch type {
            case "IHDR":
                guard header == nil, length == 13 else { throw DecodeError.malformed("IHDR of \(length) bytes, or a second IHDR") }
                let w = Int(be32(body)), h = Int(be32(body + 4))
                let depth = bytes[body + 8], color = bytes[body + 9]
                let (compression, filter, interlace) = (bytes[body + 10], bytes[body + 11], bytes[body + 12])
                guard w > 0, h > 0, w <= 1 << 15, h <= 1 << 15 else { throw DecodeError.unsupported("size \(w)x\(h)") }
                guard depth == 8 else { throw DecodeError.unsupported("bit depth \(depth)") }
                guard color == 2 || color == 6 else {
                    throw DecodeError.unsupported("colour type \(color) (\([0: "grey", 3: "palette", 4: "grey with alpha"][color] ?? "invalid"))")
                }
                guard compression == 0, filter == 0 else { throw DecodeError.malformed("compression method \(compression), filter method \(filter)") }
                guard interlace == 0 else { throw DecodeError.unsupported("interlace method \(interlace) (Adam7)") }
                header = (w, h, color == 6 ? 4 : 3)
            case "IDAT":
                compressed += bytes[body..<body + length]
            case "IEND":
                sawEnd = true
            default:
                // Ancillary chunks (lower-case first letter) carry nothing needed here; PLTE is only
                // a suggested palette in a truecolour image. Any other critical chunk is not known.
                guard type.first?.isLowercase == true || type == "PLTE" else { throw DecodeError.unsupported("critical chunk \(type)") }
            }
            offset = body + length + 4
        }
        guard let header else { throw DecodeError.malformed("no IHDR") }
        guard !compressed.isEmpty else { throw DecodeError.malformed("no IDAT") }
        let stride = header.width * header.channels
        let expected = header.height * (1 + stride)
        var raw = [UInt8](repeating: 0, count: expected)
        var produced = uLongf(expected)
        let status = raw.withUnsafeMutableBufferPointer { out in
            compressed.withUnsafeBufferPointer { src in
                uncompress(out.baseAddress, &produced, src.baseAddress, uLong(src.count))
            }
        }
        guard status == Z_OK else {
            throw DecodeError.malformed(status == Z_BUF_ERROR ? "image data longer than \(expected) bytes, or cut short"
                                        : "zlib error \(status) inflating the image data")
        }
        guard Int(produced) == expected else { throw DecodeError.malformed("image data of \(produced) bytes, \(expected) expected") }

        // Undo the per-row filters (section 9.2), in place: each row's filter byte, then the row.
        let bpp = header.channels
        var rgba = [UInt8](repeating: 255, count: header.width * header.height * 4)
        try raw.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            for y in 0..<header.height {
                let row = p + y * (1 + stride) + 1
                let prior: UnsafeMutablePointer<UInt8>? = y > 0 ? row - (1 + stride) : nil
                let filter = row[-1]
                switch filter {
                case 0:
                    break
                case 1:
                    for i in bpp..<stride { row[i] &+= row[i - bpp] }
                case 2:
                    if let prior { for i in 0..<stride { row[i] &+= prior[i] } }
                case 3:
                    for i in 0..<stride {
                        let left = i >= bpp ? Int(row[i - bpp]) : 0
                        let up = prior.map { Int($0[i]) } ?? 0
                        row[i] &+= UInt8((left + up) / 2)
                    }
                case 4:
                    for i in 0..<stride {
                        let a = i >= bpp ? Int(row[i - bpp]) : 0
                        let b = prior.map { Int($0[i]) } ?? 0
                        let c = i >= bpp ? prior.map { Int($0[i - bpp]) } ?? 0 : 0
                        let estimate = a + b - c
                        let (pa, pb, pc) = (abs(estimate - a), abs(estimate - b), abs(estimate - c))
                        row[i] &+= UInt8(pa <= pb && pa <= pc ? a : pb <= pc ? b : c)
                    }
                default:
                    throw DecodeError.malformed("filter type \(filter) on row \(y)")
                }
            }
            rgba.withUnsafeMutableBufferPointer { out in
                for y in 0..<header.height {
                    let row = p + y * (1 + stride) + 1
                    for x in 0..<header.width {
                        let o = (y * header.width + x) * 4
                        for k in 0..<bpp { out[o + k] = row[x * bpp + k] }
                    }
                }
            }
        }
        width = header.width
        height = header.height
        self.rgba = rgba
    }
}
