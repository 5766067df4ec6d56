import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// Why a signify operation failed. `kind` is what callers branch on (`code` names it for tests
/// and programs); `message` says what was wrong and in which input.
public struct SignifyError: EdgeError, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The key or signature file (or raw input) is not well-formed; the message says what.
        case malformed
        /// The signature names a different key number than the public key: it was signed by
        /// another key. Checked before the signature itself.
        case wrongKey
        /// The key numbers match but the Ed25519 signature does not verify: the message or
        /// the signature was altered.
        case badSignature
        /// Well-formed but not something we implement: a passphrase-protected secret key, or
        /// an algorithm other than Ed25519 / bcrypt-pbkdf.
        case unsupported
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var code: ErrorCode {
        switch kind {
        case .malformed: "signify.malformed"
        case .wrongKey: "signify.wrong-key"
        case .badSignature: "signify.bad-signature"
        case .unsupported: "signify.unsupported"
        }
    }

    public var description: String { "signify: \(message)" }
}

/// OpenBSD signify-compatible Ed25519 keys and signatures.
///
/// edgekit signs release artefacts and site profiles so that a device (or an operator with
/// stock `signify`) can check them; hence byte-for-byte compatibility with signify's files:
/// `untrusted comment: <text>\n<base64 of a packed struct>\n`, optionally followed (embedded
/// signatures, `signify -S -e`) by the message itself.
public enum Signify {
    static let algorithm: [UInt8] = Array("Ed".utf8)
    static let kdfAlgorithm: [UInt8] = Array("BK".utf8)
    static let commentHeader = "untrusted comment: "
    /// signify copies the comment into a 1024-byte C buffer, so it holds at most 1023 bytes.
    static let maxCommentBytes = 1023
    static let keyNumberSize = 8

    /// An unencrypted (kdfrounds 0) Ed25519 secret key with its 8-byte key number.
    public struct SecretKey: Sendable {
        /// Random tag that signify copies into public keys and signatures to match them up.
        public let keyNumber: Data
        /// The 32-byte Ed25519 seed.
        let seed: Data
        /// The bcrypt-pbkdf salt from the file; meaningless with 0 rounds, kept so a parsed key
        /// re-serialises to the same bytes.
        let salt: Data

        /// Builds a key from a 32-byte Ed25519 seed and an 8-byte key number.
        public init(seed: Data, keyNumber: Data) throws {
            try self.init(seed: seed, keyNumber: keyNumber, salt: Data(count: 16))
        }

        init(seed: Data, keyNumber: Data, salt: Data) throws {
            guard seed.count == 32 else {
                throw SignifyError(.malformed, "Ed25519 seed must be 32 bytes, got \(seed.count)")
            }
            guard keyNumber.count == keyNumberSize else {
                throw SignifyError(.malformed, "key number must be \(keyNumberSize) bytes, got \(keyNumber.count)")
            }
            guard (try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)) != nil else {
                throw SignifyError(.malformed, "Ed25519 seed was rejected")
            }
            self.seed = Data(seed)
            self.keyNumber = Data(keyNumber)
            self.salt = Data(salt)
        }

        /// A fresh random key (what `signify -G -n` makes).
        public static func generate() -> SecretKey {
            let key = Curve25519.Signing.PrivateKey()
            // Both sizes are fixed by construction, so this cannot fail.
            guard let secret = try? SecretKey(seed: key.rawRepresentation, keyNumber: randomBytes(keyNumberSize)) else {
                preconditionFailure("a generated Ed25519 seed was rejected")
            }
            return secret
        }

        /// Parses a `.sec` file as written by `signify -G -n` (no passphrase). A
        /// passphrase-protected key fails with `.unsupported`.
        public init(parsing fileText: String) throws {
            let parsed = try Signify.parseFile(Array(fileText.utf8), size: 104, what: "secret key")
            try Signify.requireNothingAfter(parsed, what: "secret key")
            let raw = parsed.payload
            guard Array(raw[2..<4]) == kdfAlgorithm else {
                throw SignifyError(.unsupported, "secret key uses KDF \(Signify.quote(raw[2..<4])), only bcrypt-pbkdf (\"BK\") exists")
            }
            let rounds = raw[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard rounds == 0 else {
                throw SignifyError(.unsupported, "secret key is passphrase-protected (\(rounds) bcrypt-pbkdf rounds); only unencrypted keys (signify -G -n) are supported")
            }
            let salt = Data(raw[8..<24])
            let checksum = Data(raw[24..<32])
            let keyNumber = Data(raw[32..<40])
            let secret = Data(raw[40..<104])
            guard Data(SHA512.hash(data: secret).prefix(8)) == checksum else {
                throw SignifyError(.malformed, "secret key checksum does not match its contents")
            }
            try self.init(seed: secret.prefix(32), keyNumber: keyNumber, salt: salt)
            guard publicKey.key == secret.suffix(32) else {
                throw SignifyError(.malformed, "secret key's public half does not match its seed")
            }
        }

        var signingKey: Curve25519.Signing.PrivateKey {
            // The seed was validated by every initialiser.
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
                preconditionFailure("validated Ed25519 seed was rejected")
            }
            return key
        }

        public var publicKey: PublicKey {
            PublicKey(uncheckedKeyNumber: keyNumber, key: signingKey.publicKey.rawRepresentation)
        }

        /// The `.sec` file: `Ed`, `BK`, 0 rounds, salt, checksum, key number, seed || public key.
        public func fileText(comment: String) -> String {
            let secret = seed + publicKey.key
            var raw = Data(algorithm + kdfAlgorithm + [0, 0, 0, 0])
            raw += salt
            raw += SHA512.hash(data: secret).prefix(8)
            raw += keyNumber
            raw += secret
            return Signify.fileText(comment: comment, defaultComment: "signify secret key", payload: raw)
        }
    }

    /// An Ed25519 public key with its key number (signify `.pub` file).
    public struct PublicKey: Sendable, Equatable {
        public let keyNumber: Data
        /// The 32-byte Ed25519 public key.
        public let key: Data

        init(uncheckedKeyNumber keyNumber: Data, key: Data) {
            self.keyNumber = keyNumber
            self.key = key
        }

        public init(keyNumber: Data, key: Data) throws {
            guard keyNumber.count == keyNumberSize else {
                throw SignifyError(.malformed, "key number must be \(keyNumberSize) bytes, got \(keyNumber.count)")
            }
            guard key.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: key)) != nil else {
                throw SignifyError(.malformed, "Ed25519 public key must be 32 bytes, got \(key.count)")
            }
            self.init(uncheckedKeyNumber: Data(keyNumber), key: Data(key))
        }

        /// Parses a `.pub` file.
        public init(parsing fileText: String) throws {
            let parsed = try Signify.parseFile(Array(fileText.utf8), size: 42, what: "public key")
            try Signify.requireNothingAfter(parsed, what: "public key")
            try self.init(keyNumber: parsed.payload[2..<10], key: parsed.payload[10..<42])
        }

        public func fileText(comment: String) -> String {
            Signify.fileText(comment: comment, defaultComment: "signify public key",
                             payload: Data(algorithm) + keyNumber + key)
        }
    }

    /// A detached Ed25519 signature with the key number of the key that made it (`.sig` file).
    public struct Signature: Sendable, Equatable {
        public let keyNumber: Data
        /// The 64-byte Ed25519 signature.
        public let bytes: Data

        public init(keyNumber: Data, bytes: Data) throws {
            guard keyNumber.count == keyNumberSize else {
                throw SignifyError(.malformed, "key number must be \(keyNumberSize) bytes, got \(keyNumber.count)")
            }
            guard bytes.count == 64 else {
                throw SignifyError(.malformed, "Ed25519 signature must be 64 bytes, got \(bytes.count)")
            }
            self.keyNumber = Data(keyNumber)
            self.bytes = Data(bytes)
        }

        /// Parses a detached `.sig` file (nothing may follow the base64 line; embedded
        /// signatures go through `verifyEmbedded`).
        public init(parsing fileText: String) throws {
            let parsed = try Signify.parseFile(Array(fileText.utf8), size: 74, what: "signature")
            try Signify.requireNothingAfter(parsed, what: "signature")
            try self.init(keyNumber: parsed.payload[2..<10], bytes: parsed.payload[10..<74])
        }

        public func fileText(comment: String) -> String {
            Signify.fileText(comment: comment, defaultComment: "signify signature",
                             payload: Data(algorithm) + keyNumber + bytes)
        }
    }

    // MARK: Signing and verification

    /// Signs `message` (Ed25519, deterministic) and tags the signature with the key number.
    public static func sign(_ message: Data, with key: SecretKey) -> Signature {
        let bytes: Data
        do {
            bytes = try key.signingKey.signature(for: message)
        } catch {
            // Ed25519 signing with a valid key has no failure mode.
            preconditionFailure("Ed25519 signing failed: \(error)")
        }
        return Signature(uncheckedKeyNumber: key.keyNumber, bytes: bytes)
    }

    /// Checks the key number first (so "signed by another key" is told apart from tampering),
    /// then the Ed25519 signature.
    public static func verify(_ message: Data, signature: Signature, publicKey: PublicKey) throws {
        guard signature.keyNumber == publicKey.keyNumber else {
            throw SignifyError(.wrongKey, "signed by another key: signature has key number \(hex(signature.keyNumber)), public key has \(hex(publicKey.keyNumber))")
        }
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey.key),
              key.isValidSignature(signature.bytes, for: message) else {
            throw SignifyError(.badSignature, "signature verification failed for a \(message.count)-byte message: message or signature was altered")
        }
    }

    /// Exactly what `signify -S -e` writes: the signature file followed by the message.
    public static func signEmbedded(_ message: Data, with key: SecretKey, comment: String) -> Data {
        Data(sign(message, with: key).fileText(comment: comment).utf8) + message
    }

    /// The message of an embedded signature file, **not verified**: for showing what a file
    /// claims to be before it reaches the one who verifies it.
    public static func embeddedMessageUnverified(_ file: Data) throws -> Data {
        Data(try parseFile([UInt8](file), size: 74, what: "embedded signature").rest)
    }

    /// Like `signify -V -e`: verifies a signature file with the message appended and returns
    /// the message.
    public static func verifyEmbedded(_ file: Data, publicKey: PublicKey) throws -> Data {
        let parsed = try parseFile([UInt8](file), size: 74, what: "embedded signature")
        let signature = try Signature(keyNumber: parsed.payload[2..<10], bytes: parsed.payload[10..<74])
        let message = Data(parsed.rest)
        try verify(message, signature: signature, publicKey: publicKey)
        return message
    }

    // MARK: File format

    struct ParsedFile {
        var comment: String
        var payload: Data
        var rest: ArraySlice<UInt8>
    }

    /// Parses `untrusted comment: …\n<base64>\n` like signify's parseb64file: a non-empty
    /// comment of at most 1023 bytes, exactly `size` bytes of payload starting with `Ed`.
    /// Stricter than signify in one way: the base64 line must be canonical padded base64 with
    /// no whitespace (signify skips whitespace, e.g. a CR).
    static func parseFile(_ bytes: [UInt8], size: Int, what: String) throws -> ParsedFile {
        let header = Array(commentHeader.utf8)
        guard bytes.starts(with: header) else {
            throw SignifyError(.malformed, "\(what) file must start with \"\(commentHeader)\", starts with \(quote(bytes.prefix(24)))")
        }
        guard let commentEnd = bytes.firstIndex(of: 0x0A) else {
            throw SignifyError(.malformed, "\(what) file has no newline after its comment line")
        }
        let commentBytes = bytes[header.count..<commentEnd]
        guard !commentBytes.isEmpty, commentBytes.count <= maxCommentBytes, !commentBytes.contains(0) else {
            throw SignifyError(.malformed, "\(what) file comment must be 1 to \(maxCommentBytes) bytes, is \(commentBytes.count)")
        }
        guard let base64End = bytes[(commentEnd + 1)...].firstIndex(of: 0x0A) else {
            throw SignifyError(.malformed, "\(what) file has no newline after its base64 line")
        }
        let line = bytes[(commentEnd + 1)..<base64End]
        guard let payload = StrictBase64.decode(line, padded: true) else {
            throw SignifyError(.malformed, "\(what) file's second line \(quote(line)) is not canonical base64")
        }
        guard payload.count == size else {
            throw SignifyError(.malformed, "\(what) file holds \(payload.count) bytes, expected \(size)")
        }
        guard Array(payload.prefix(2)) == algorithm else {
            throw SignifyError(.unsupported, "\(what) file uses algorithm \(quote(payload.prefix(2))), only Ed25519 (\"Ed\") is supported")
        }
        return ParsedFile(comment: String(decoding: commentBytes, as: UTF8.self), payload: payload,
                          rest: bytes[(base64End + 1)...])
    }

    static func requireNothingAfter(_ parsed: ParsedFile, what: String) throws {
        guard parsed.rest.isEmpty else {
            throw SignifyError(.malformed, "\(what) file has \(parsed.rest.count) unexpected bytes after its base64 line")
        }
    }

    /// Writes the two-line file. Line breaks in `comment` become spaces, an empty comment is
    /// replaced by `defaultComment` (signify rejects empty ones), and it is cut to 1023 bytes.
    static func fileText(comment: String, defaultComment: String, payload: Data) -> String {
        var text = comment.map { $0.isNewline ? " " : String($0) }.joined()
        if text.isEmpty { text = defaultComment }
        while text.utf8.count > maxCommentBytes { text.removeLast() }
        return commentHeader + text + "\n" + StrictBase64.encode(payload, padded: true) + "\n"
    }

    static func randomBytes(_ count: Int) -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    static func hex(_ data: Data) -> String { data.map { String(cFormat: "%02x", $0) }.joined() }

    static func quote<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 { AgeHeader.describe(bytes) }
}

extension Signify.Signature {
    init(uncheckedKeyNumber keyNumber: Data, bytes: Data) {
        self.keyNumber = keyNumber
        self.bytes = bytes
    }
}
