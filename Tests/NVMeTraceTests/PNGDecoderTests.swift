import CZlib
import Foundation
import NVMeTraceSynth
import Testing

/// The tests' PNG decoder (Support/PNG.swift), against PNG files written here from the
/// specification's filter definitions (ISO/IEC 15948 section 9.2), row by row with each filter
/// type, and refusing what it does not read.
@Suite struct PNGDecoderTests {
    /// A PNG file: IHDR with the given fields, the rows filtered with `filters[y % count]`, one
    /// IDAT, IEND.
    static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8], filters: [UInt8],
                       depth: UInt8 = 8, colorType: UInt8? = nil, interlace: UInt8 = 0) -> [UInt8] {
        let stride = width * channels
        var raw: [UInt8] = []
        for y in 0..<height {
            let filter = filters[y % filters.count]
            raw.append(filter)
            func orig(_ x: Int, _ row: Int) -> Int { x < 0 || row < 0 ? 0 : Int(pixels[row * stride + x]) }
            for i in 0..<stride {
                let a = orig(i - channels, y), b = orig(i, y - 1), c = orig(i - channels, y - 1)
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                default:
                    let p = a + b - c
                    let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
                }
                raw.append(UInt8(truncatingIfNeeded: orig(i, y) - predicted))
            }
        }
        var packed = [UInt8](repeating: 0, count: Int(compressBound(uLong(raw.count))))
        var packedLength = uLongf(packed.count)
        let status = compress2(&packed, &packedLength, raw, uLong(raw.count), 9)
        precondition(status == Z_OK)
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return be32(body.count) + typed + be32(Int(crc32(0, typed, uInt(typed.count))))
        }
        let ihdr = be32(width) + be32(height) + [depth, colorType ?? (channels == 4 ? 6 : 2), 0, 0, interlace]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr)
            + chunk("tEXt", Array("Comment\0test".utf8)) + chunk("IDAT", Array(packed.prefix(Int(packedLength)))) + chunk("IEND", [])
    }

    /// Pixels that make every filter's arithmetic wrap somewhere.
    static func pixels(width: Int, height: Int, channels: Int) -> [UInt8] {
        var rng = SplitMix64(seed: 14)
        return (0..<width * height * channels).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    @Test(arguments: [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]] as [[UInt8]], [3, 4])
    func decodesEveryFilterType(filters: [UInt8], channels: Int) throws {
        let (w, h) = (13, 11)
        let original = Self.pixels(width: w, height: h, channels: channels)
        let image = try PNGImage(data: Data(Self.encode(width: w, height: h, channels: channels, pixels: original, filters: filters)))
        #expect(image.width == w && image.height == h)
        var expected: [UInt8] = []
        for p in 0..<w * h {
            expected += original[p * channels..<p * channels + 3]
            expected.append(channels == 4 ? original[p * channels + 3] : 255)
        }
        #expect(image.rgba == expected)
        let last = image.pixel(w - 1, h - 1)
        #expect([last.r, last.g, last.b] == original[(w * h - 1) * channels..<(w * h - 1) * channels + 3].map(Int.init))
    }

    @Test func refusesWhatItDoesNotRead() throws {
        let px = Self.pixels(width: 4, height: 4, channels: 3)
        func error(_ bytes: [UInt8]) -> String {
            do { _ = try PNGImage(data: Data(bytes)); return "decoded" } catch { return "\(error)" }
        }
        #expect(error(Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [0], colorType: 3)).contains("colour type 3 (palette)"))
        #expect(error(Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [0], colorType: 0)).contains("colour type 0 (grey)"))
        #expect(error(Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [0], depth: 16)).contains("bit depth 16"))
        #expect(error(Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [0], interlace: 1)).contains("Adam7"))
        #expect(error(Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [5])).contains("filter type 5 on row 0"))
        var corrupt = Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [1])
        corrupt[corrupt.count - 20] ^= 0x40  // inside the IDAT data
        #expect(error(corrupt).contains("CRC mismatch in chunk IDAT"))
        let good = Self.encode(width: 4, height: 4, channels: 3, pixels: px, filters: [1])
        #expect(error(Array(good.prefix(good.count - 12))).contains("ends inside a chunk header"))
        #expect(error(Array(good.dropFirst())).contains("not a PNG"))
    }
}
