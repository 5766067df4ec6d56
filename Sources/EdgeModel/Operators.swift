import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A person who may log in to the plan's routers over SSH (docs/plan.md, `operators:`): a name for
/// logs and the authorized_keys file, and one or more SSH public keys.
public struct Operator: Sendable, Equatable {
    /// A DNS label, unique within the plan.
    public var name: String
    /// At least one key; each line checked by `FieldRules.sshPublicKey`.
    public var sshKeys: [SSHPublicKey]

    public init(name: String, sshKeys: [SSHPublicKey]) {
        self.name = name
        self.sshKeys = sshKeys
    }
}

/// One OpenSSH public key line, `TYPE BASE64 [COMMENT]` (sshd(8), "AUTHORIZED_KEYS FILE FORMAT",
/// without options), whose key blob has been read and checked (RFC 4253 section 6.6, RFC 5656
/// section 3.1, RFC 8709 section 4).
public struct SSHPublicKey: Sendable, Equatable, CustomStringConvertible {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256|384|521` or `ssh-rsa`.
    public var type: String
    /// The key blob as the base64 field carries it.
    public var blob: Data
    /// Free text after the key; never holds a control character.
    public var comment: String

    /// The key types operators may use. DSA is gone from OpenSSH; RSA needs 2048 bits or more.
    public static let acceptedTypes = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]
    /// NIST SP 800-131A: RSA below 2048 bits is disallowed.
    public static let minimumRSABits = 2048

    /// The normalised line: `TYPE BASE64` and the comment, one space apart.
    public var description: String {
        let key = "\(type) \(blob.base64EncodedString())"
        return comment.isEmpty ? key : "\(key) \(comment)"
    }
}

extension FieldRules {
    /// One SSH public key line: a known type, base64 that decodes to a blob of that type with the
    /// right structure (ed25519: 32 bytes; ECDSA: the curve's uncompressed point; RSA: 2048 bits or
    /// more), no options in front, no control character anywhere (a newline would add a second,
    /// unchecked line to authorized_keys).
    public static func sshPublicKey(_ text: String) -> Result<SSHPublicKey, FieldProblem> {
        let shown = quoted(text)
        func refuse(_ why: String) -> Result<SSHPublicKey, FieldProblem> { .failure(FieldProblem("\(shown) \(why)")) }
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || (0x80..<0xa0).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" }) {
            return refuse("holds a control character (a line break?); give one key per list entry, on one line")
        }
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2 else {
            return refuse("is not an SSH public key line (TYPE BASE64 [COMMENT], as in ~/.ssh/id_ed25519.pub)")
        }
        let type = String(parts[0])
        guard SSHPublicKey.acceptedTypes.contains(type) else {
            if type.hasPrefix("ssh-dss") { return refuse("is a DSA key, which OpenSSH no longer accepts; use ssh-keygen -t ed25519") }
            if parts.count >= 2, SSHPublicKey.acceptedTypes.contains(String(parts[1])) {
                return refuse("starts with options (\(quoted(type))); give the key alone, TYPE BASE64 [COMMENT]")
            }
            return refuse("has key type \(quoted(type)); accepted: \(SSHPublicKey.acceptedTypes.joined(separator: ", "))")
        }
        guard let blob = Data(base64Encoded: String(parts[1])), !blob.isEmpty else {
            return refuse("has a key field that is not base64")
        }
        var reader = SSHWireReader(blob)
        guard let inner = reader.string(), String(decoding: inner, as: UTF8.self) == type else {
            return refuse("says \(type) but its key data is of another type; copy the line again from the .pub file")
        }
        switch type {
        case "ssh-ed25519":
            guard let key = reader.string(), key.count == 32, reader.atEnd else {
                return refuse("is a damaged ssh-ed25519 key (RFC 8709: 32 bytes of public key); copy the line again")
            }
        case "ssh-rsa":
            guard let exponent = reader.string(), let modulus = reader.string(), reader.atEnd,
                  let e = exponent.first, e & 0x80 == 0, let last = exponent.last, last & 1 == 1,
                  let n = modulus.first, n & 0x80 == 0 else {
                return refuse("is a damaged ssh-rsa key (RFC 4253: exponent and modulus); copy the line again")
            }
            let digits = modulus.drop { $0 == 0 }
            let bits = digits.isEmpty ? 0 : (digits.count - 1) * 8 + (8 - digits.first!.leadingZeroBitCount)
            guard bits >= SSHPublicKey.minimumRSABits else {
                return refuse("is an RSA key of \(bits) bits; use \(SSHPublicKey.minimumRSABits) bits or more (or ssh-keygen -t ed25519)")
            }
        default:
            // ecdsa-sha2-nistpN: the curve name again, then the uncompressed point 04 || X || Y.
            let curve = String(type.dropFirst("ecdsa-sha2-".count))
            let coordinate = ["nistp256": 32, "nistp384": 48, "nistp521": 66][curve]!
            guard let name = reader.string(), String(decoding: name, as: UTF8.self) == curve,
                  let point = reader.string(), point.count == 1 + 2 * coordinate, point.first == 4, reader.atEnd else {
                return refuse("is a damaged \(type) key (RFC 5656: curve \(curve) and an uncompressed point); copy the line again")
            }
        }
        let comment = parts.count == 3 ? String(parts[2]).trimmingSpaces() : ""
        return .success(SSHPublicKey(type: type, blob: blob, comment: comment))
    }
}

/// Reads SSH wire `string`s (RFC 4251 section 5: a 4-byte big-endian length, then the bytes).
struct SSHWireReader {
    var bytes: [UInt8]
    var offset = 0

    init(_ data: Data) { bytes = [UInt8](data) }

    var atEnd: Bool { offset == bytes.count }

    mutating func string() -> [UInt8]? {
        guard bytes.count - offset >= 4 else { return nil }
        let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        offset += 4
        guard length <= bytes.count - offset else { return nil }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }
}

/// The wire form of an operator in the profile's `plan.operators`: `name` and `ssh_keys` (the
/// normalised key lines), each read with the plan's rules.
extension Operator: Codable {
    enum CodingKeys: String, CodingKey {
        case name
        case sshKeys = "ssh_keys"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.field(.name, as: String.self, FieldRules.name)
        let lines = try c.field(.sshKeys, as: [String].self) { lines in
            lines.isEmpty ? .failure(FieldProblem("is empty; an operator needs at least one key")) : .success(lines)
        }
        var nested = try c.nestedUnkeyedContainer(forKey: .sshKeys)
        var keys: [SSHPublicKey] = []
        for _ in lines {
            keys.append(try nested.field(as: String.self, FieldRules.sshPublicKey, path: c.codingPath + [CodingKeys.sshKeys]))
        }
        sshKeys = keys
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(sshKeys.map(\.description), forKey: .sshKeys)
    }
}

extension UnkeyedDecodingContainer {
    /// The next element, checked by `rule`; a refusal names it as `PATH[INDEX]`.
    mutating func field<Raw: Decodable, Value>(as raw: Raw.Type, _ rule: (Raw) -> Result<Value, FieldProblem>,
                                               path: [any CodingKey]) throws -> Value {
        let index = currentIndex
        let value = try decode(Raw.self)
        switch rule(value) {
        case .success(let checked): return checked
        case .failure(let problem):
            throw DocumentError(field: DocumentCoding.fieldPath(path) + "[\(index)]", problem: problem.message,
                                code: "document.bad-value", cause: problem)
        }
    }
}
