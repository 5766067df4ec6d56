#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// BIP-173 Bech32 (the original checksum constant 1, not Bech32m), as age uses for its
/// recipient (`age1…`) and identity (`AGE-SECRET-KEY-1…`) strings.
///
/// Like age's own implementation there is no 90-character limit, and the human-readable part
/// is returned in the case it was written in, so callers can insist on `age` (lower case) or
/// `AGE-SECRET-KEY-` (upper case).
enum Bech32 {
    /// Why decoding failed; the message names the offending input.
    struct DecodingError: Error, Equatable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    private static let charset: [UInt8] = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let charsetReverse: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (index, char) in charset.enumerated() { table[Int(char)] = Int8(index) }
        return table
    }()
    private static let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        var chk: UInt32 = 1
        for value in values {
            let top = chk >> 25
            chk = (chk & 0x1ff_ffff) << 5 ^ UInt32(value)
            for i in 0..<5 where (top >> UInt32(i)) & 1 == 1 {
                chk ^= generator[i]
            }
        }
        return chk
    }

    private static func expandHRP(_ hrp: [UInt8]) -> [UInt8] {
        hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
    }

    /// Regroups bits; when `pad` is false, leftover bits must be fewer than `from` and zero,
    /// which is what makes decoding canonical.
    private static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var acc = 0
        var bits = 0
        var out: [UInt8] = []
        let maxValue = (1 << to) - 1
        for value in data {
            guard Int(value) >> from == 0 else { return nil }
            acc = (acc << from) | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((acc >> bits) & maxValue))
            }
        }
        if pad {
            if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxValue)) }
        } else if bits >= from || (acc << (to - bits)) & maxValue != 0 {
            return nil
        }
        return out
    }

    /// Encodes `data` under `hrp`; the result is lower case unless `hrp` is upper case, in which
    /// case the whole string is upper case (age identities).
    static func encode(hrp: String, data: Data) -> String {
        let hrpBytes = Array(hrp.lowercased().utf8)
        let values = convertBits(Array(data), from: 8, to: 5, pad: true) ?? []
        let checksumInput = expandHRP(hrpBytes) + values + [0, 0, 0, 0, 0, 0]
        let mod = polymod(checksumInput) ^ 1
        let checksum = (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
        let encoded = String(decoding: hrpBytes + [UInt8(ascii: "1")] + (values + checksum).map { charset[Int($0)] },
                             as: UTF8.self)
        return hrp == hrp.uppercased() && hrp != hrp.lowercased() ? encoded.uppercased() : encoded
    }

    /// Decodes a Bech32 string, validating case, characters, checksum and padding bits.
    /// Returns the human-readable part as written (not case-folded) and the payload bytes.
    static func decode(_ string: String) throws(DecodingError) -> (hrp: String, data: Data) {
        let bytes = Array(string.utf8)
        guard bytes.allSatisfy({ $0 >= 33 && $0 <= 126 }) else {
            throw DecodingError(message: "Bech32 string contains characters outside printable ASCII")
        }
        let hasLower = bytes.contains { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
        let hasUpper = bytes.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        guard !(hasLower && hasUpper) else {
            throw DecodingError(message: "Bech32 string mixes upper and lower case")
        }
        guard let separator = bytes.lastIndex(of: UInt8(ascii: "1")) else {
            throw DecodingError(message: "Bech32 string has no '1' separator")
        }
        guard separator >= 1 else { throw DecodingError(message: "Bech32 string has an empty human-readable part") }
        guard bytes.count - separator - 1 >= 6 else {
            throw DecodingError(message: "Bech32 string is too short to hold a checksum")
        }
        let lowered = bytes.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }
        let hrpBytes = Array(lowered[..<separator])
        var values: [UInt8] = []
        for char in lowered[(separator + 1)...] {
            let value = char < 128 ? charsetReverse[Int(char)] : -1
            guard value >= 0 else {
                throw DecodingError(message: "Bech32 string contains invalid data character '\(Character(Unicode.Scalar(char)))'")
            }
            values.append(UInt8(value))
        }
        guard polymod(expandHRP(hrpBytes) + values) == 1 else {
            throw DecodingError(message: "Bech32 checksum is invalid")
        }
        guard let data = convertBits(Array(values.dropLast(6)), from: 5, to: 8, pad: false) else {
            throw DecodingError(message: "Bech32 data has invalid padding")
        }
        let hrp = String(decoding: bytes[..<separator], as: UTF8.self)
        return (hrp, Data(data))
    }
}
