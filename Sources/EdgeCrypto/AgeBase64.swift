#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Canonical standard-alphabet base64, shared by age (unpadded) and signify (padded).
///
/// Foundation's decoder tolerates non-zero trailing bits, and some decoders skip CR/LF; both
/// formats are defined over one canonical encoding, so anything else must be rejected rather
/// than silently accepted (a second encoding of the same header would change its HMAC input).
enum StrictBase64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = Int8(index) }
        return table
    }()

    /// Encodes with or without `=` padding.
    static func encode<C: Collection>(_ data: C, padded: Bool) -> String where C.Element == UInt8 {
        let bytes = Array(data)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        switch bytes.count - i {
        case 1:
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
            if padded { out += Array("==".utf8) }
        case 2:
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
            if padded { out += Array("=".utf8) }
        default:
            break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes canonical base64: only the 64 alphabet characters (no whitespace, CR or LF),
    /// zero trailing bits, and padding exactly when `padded` (and then only as much as needed).
    /// Returns nil for anything else.
    static func decode<C: Collection>(_ text: C, padded: Bool) -> Data? where C.Element == UInt8 {
        var chars = Array(text)
        if padded {
            guard chars.count % 4 == 0 else { return nil }
            var pads = 0
            while pads < 2, chars.last == UInt8(ascii: "=") {
                chars.removeLast()
                pads += 1
            }
            // "xx==" leaves 2 characters in the last group, "xxx=" leaves 3.
            if pads > 0 && chars.count % 4 != 4 - pads { return nil }
        }
        guard chars.count % 4 != 1 else { return nil }
        var out = Data()
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for char in chars {
            let value = reverse[Int(char)]
            guard value >= 0 else { return nil }
            acc = (acc << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        // Leftover bits (2 or 4) must be zero for the encoding to be canonical.
        guard acc == 0 else { return nil }
        return out
    }
}
