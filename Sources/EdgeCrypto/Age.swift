import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// Why an age operation failed. `kind` is what callers branch on (`code` names it for tests and
/// programs); `message` says what was wrong and where, for logs and users.
public struct AgeError: EdgeError, Equatable {
    public enum Kind: Sendable, Equatable {
        /// None of the identities could unwrap any recipient stanza.
        case noMatch
        /// The header is malformed, or a stanza we understand is malformed (the file is broken,
        /// not merely addressed to someone else).
        case headerFailure
        /// The header MAC does not match: the header was altered after encryption.
        case hmacFailure
        /// The payload is truncated, extended or corrupted.
        case payloadFailure
        /// The first line names an age version other than v1 (also a kind of header failure).
        case unsupportedVersion
        /// An identity string or key is not a valid X25519 age identity.
        case invalidIdentity
        /// A recipient string or key is not a valid X25519 age recipient.
        case invalidRecipient
        /// `encrypt` was given no recipients.
        case noRecipients
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var code: ErrorCode {
        switch kind {
        case .noMatch: "age.no-match"
        case .headerFailure: "age.header"
        case .hmacFailure: "age.header-mac"
        case .payloadFailure: "age.payload"
        case .unsupportedVersion: "age.unsupported-version"
        case .invalidIdentity: "age.invalid-identity"
        case .invalidRecipient: "age.invalid-recipient"
        case .noRecipients: "age.no-recipients"
        }
    }

    public var description: String { "age: \(message)" }
}

/// age v1 (https://age-encryption.org/v1) with X25519 recipients, binary (not armored) files.
///
/// edgekit seals per-site secrets so that any stock `age` can open them, and opens files
/// produced by stock `age`; hence strict adherence to the spec rather than a private format.
public enum Age {
    static let fileKeySize = 16
    static let x25519Label = "age-encryption.org/v1/X25519"

    /// An X25519 age identity (secret key). Stored as raw bytes so the type is `Sendable`.
    public struct Identity: Sendable {
        /// The 32-byte X25519 scalar.
        public let rawRepresentation: Data

        public init(privateKey: Curve25519.KeyAgreement.PrivateKey) {
            self.rawRepresentation = privateKey.rawRepresentation
        }

        /// Wraps a 32-byte X25519 secret key.
        public init(rawRepresentation: Data) throws {
            guard rawRepresentation.count == 32,
                  (try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawRepresentation)) != nil else {
                throw AgeError(.invalidIdentity, "X25519 identity must be 32 bytes, got \(rawRepresentation.count)")
            }
            self.rawRepresentation = Data(rawRepresentation)
        }

        /// Parses `AGE-SECRET-KEY-1…` (upper case, as age-keygen writes it), or a whole
        /// age-keygen file: blank lines and `#` comment lines are ignored, and exactly one key
        /// line must remain.
        public init(parsing text: String) throws {
            let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                .map { $0.trimmingSpaces() }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            guard lines.count == 1, let line = lines.first else {
                throw AgeError(.invalidIdentity, "expected exactly one AGE-SECRET-KEY-1… line, found \(lines.count)")
            }
            let decoded: (hrp: String, data: Data)
            do {
                decoded = try Bech32.decode(line)
            } catch {
                throw AgeError(.invalidIdentity, "malformed age identity: \(error.message)")
            }
            guard decoded.hrp == "AGE-SECRET-KEY-" else {
                throw AgeError(.invalidIdentity, "not an X25519 age identity: prefix is \"\(decoded.hrp)\", expected \"AGE-SECRET-KEY-\" in upper case")
            }
            try self.init(rawRepresentation: decoded.data)
        }

        /// Creates a fresh random identity.
        public static func generate() -> Identity {
            Identity(privateKey: Curve25519.KeyAgreement.PrivateKey())
        }

        public var privateKey: Curve25519.KeyAgreement.PrivateKey {
            // 32 bytes were validated by every initialiser, and X25519 accepts any 32 bytes.
            guard let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawRepresentation) else {
                preconditionFailure("validated X25519 identity was rejected")
            }
            return key
        }

        /// `AGE-SECRET-KEY-1…`, upper case.
        public var text: String { Bech32.encode(hrp: "AGE-SECRET-KEY-", data: rawRepresentation) }

        public var recipient: Recipient { Recipient(publicKey: privateKey.publicKey) }
    }

    /// An X25519 age recipient (public key), `age1…`.
    public struct Recipient: Sendable, Hashable, CustomStringConvertible {
        /// The 32-byte X25519 public key.
        public let rawRepresentation: Data

        public init(publicKey: Curve25519.KeyAgreement.PublicKey) {
            self.rawRepresentation = publicKey.rawRepresentation
        }

        /// Parses `age1…` (lower case).
        public init(parsing text: String) throws {
            let trimmed = text.trimmingWhitespace()
            let decoded: (hrp: String, data: Data)
            do {
                decoded = try Bech32.decode(trimmed)
            } catch {
                throw AgeError(.invalidRecipient, "malformed age recipient \"\(trimmed)\": \(error.message)")
            }
            guard decoded.hrp == "age" else {
                throw AgeError(.invalidRecipient, "not an X25519 age recipient: prefix is \"\(decoded.hrp)\", expected \"age\"")
            }
            guard decoded.data.count == 32 else {
                throw AgeError(.invalidRecipient, "X25519 recipient must be 32 bytes, got \(decoded.data.count)")
            }
            self.rawRepresentation = decoded.data
        }

        public var publicKey: Curve25519.KeyAgreement.PublicKey {
            get throws {
                do {
                    return try Curve25519.KeyAgreement.PublicKey(rawRepresentation: rawRepresentation)
                } catch {
                    throw AgeError(.invalidRecipient, "X25519 recipient is not a valid public key")
                }
            }
        }

        /// `age1…`, lower case.
        public var text: String { Bech32.encode(hrp: "age", data: rawRepresentation) }
        public var description: String { text }
    }

    // MARK: Encryption

    /// Encrypts `plaintext` to every recipient, producing a binary age v1 file.
    public static func encrypt(_ plaintext: Data, to recipients: [Recipient]) throws -> Data {
        guard !recipients.isEmpty else { throw AgeError(.noRecipients, "encrypt needs at least one recipient") }
        let fileKey = SymmetricKey(size: .bits128)
        var stanzas: [AgeStanza] = []
        for recipient in recipients {
            stanzas.append(try wrap(fileKey: fileKey, to: recipient))
        }
        let macInput = AgeHeader.encode(stanzas: stanzas)
        let mac = HMAC<SHA256>.authenticationCode(for: macInput, using: headerKey(fileKey))
        var out = macInput
        out.append(contentsOf: Array(" \(StrictBase64.encode(Data(mac), padded: false))\n".utf8))
        var nonce = Data(count: 16)
        nonce.withUnsafeMutableBytes { buffer in
            var generator = SystemRandomNumberGenerator()
            for i in buffer.indices { buffer[i] = generator.next() }
        }
        out.append(nonce)
        out.append(try AgeStream.seal(plaintext, key: payloadKey(fileKey, nonce: nonce)))
        return out
    }

    static func wrap(fileKey: SymmetricKey, to recipient: Recipient) throws -> AgeStanza {
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let share = ephemeral.publicKey.rawRepresentation
        let recipientKey = try recipient.publicKey
        // The key agreement refuses the all-zero secret of a low-order point (RFC 7748 section 6.1).
        guard let secret = try? ephemeral.sharedSecretFromKeyAgreement(with: recipientKey) else {
            throw AgeError(.invalidRecipient, "recipient \(recipient.text) is a low-order point")
        }
        let secretBytes = secret.withUnsafeBytes { Data($0) }
        let wrapKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secretBytes), salt: share + recipient.rawRepresentation,
            info: Data(x25519Label.utf8), outputByteCount: 32)
        let box = try ChaChaPoly.seal(fileKey.withUnsafeBytes { Data($0) }, using: wrapKey, nonce: zeroNonce())
        return AgeStanza(type: "X25519", arguments: [StrictBase64.encode(share, padded: false)],
                         body: box.ciphertext + box.tag)
    }

    // MARK: Decryption

    /// Decrypts a binary age v1 file with the first identity that matches a stanza.
    public static func decrypt(_ file: Data, with identities: [Identity]) throws -> Data {
        var plaintext = Data()
        try decrypt(file, with: identities) { plaintext.append($0) }
        return plaintext
    }

    /// Decrypts chunk by chunk, handing each authenticated chunk to `released` as soon as it is
    /// verified. On a later payload failure the already released chunks stand (this is what
    /// the age spec calls released plaintext); callers that need all-or-nothing use
    /// `decrypt(_:with:)`, which discards them by throwing.
    public static func decrypt(_ file: Data, with identities: [Identity], released: (Data) -> Void) throws {
        let bytes = [UInt8](file)
        let header = try AgeHeader.parse(bytes)
        let fileKey = try unwrap(header.stanzas, with: identities)
        guard HMAC<SHA256>.isValidAuthenticationCode(header.mac, authenticating: header.macInput,
                                                      using: headerKey(fileKey)) else {
            throw AgeError(.hmacFailure, "header MAC does not match: the header was modified or the file key is wrong")
        }
        guard bytes.count - header.payloadOffset >= 16 else {
            throw AgeError(.headerFailure, "file ends before the 16-byte payload nonce (\(bytes.count - header.payloadOffset) bytes left)")
        }
        let nonce = Data(bytes[header.payloadOffset..<(header.payloadOffset + 16)])
        try AgeStream.open(bytes[(header.payloadOffset + 16)...], key: payloadKey(fileKey, nonce: nonce), released: released)
    }

    /// Tries every identity against every stanza. A stanza addressed to someone else is
    /// skipped; an X25519 stanza that is malformed fails the whole file, as in the reference
    /// implementation.
    static func unwrap(_ stanzas: [AgeStanza], with identities: [Identity]) throws -> SymmetricKey {
        for identity in identities {
            for stanza in stanzas where stanza.type == "X25519" {
                if let key = try unwrap(stanza, with: identity) { return key }
            }
        }
        throw AgeError(.noMatch, "no identity matched any of the \(stanzas.count) recipient stanza(s)")
    }

    /// Returns the file key, nil if the stanza is for another key, or throws if it is malformed.
    static func unwrap(_ stanza: AgeStanza, with identity: Identity) throws -> SymmetricKey? {
        guard stanza.arguments.count == 1 else {
            throw AgeError(.headerFailure, "X25519 stanza must have exactly one argument, has \(stanza.arguments.count)")
        }
        guard let share = StrictBase64.decode(Array(stanza.arguments[0].utf8), padded: false), share.count == 32 else {
            throw AgeError(.headerFailure, "X25519 stanza share \"\(stanza.arguments[0])\" is not 32 bytes of canonical unpadded base64")
        }
        guard stanza.body.count == fileKeySize + 16 else {
            throw AgeError(.headerFailure, "X25519 stanza body is \(stanza.body.count) bytes, expected \(fileKeySize + 16)")
        }
        let secretBytes: Data
        do {
            let sharePoint = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: share)
            let secret = try identity.privateKey.sharedSecretFromKeyAgreement(with: sharePoint)
            secretBytes = secret.withUnsafeBytes { Data($0) }
        } catch {
            throw AgeError(.headerFailure, "X25519 stanza share \"\(stanza.arguments[0])\" is a low-order point")
        }
        guard secretBytes.contains(where: { $0 != 0 }) else {
            throw AgeError(.headerFailure, "X25519 stanza share \"\(stanza.arguments[0])\" gives an all-zero shared secret")
        }
        let wrapKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secretBytes),
            salt: share + identity.recipient.rawRepresentation,
            info: Data(x25519Label.utf8), outputByteCount: 32)
        guard let box = try? ChaChaPoly.SealedBox(nonce: zeroNonce(), ciphertext: stanza.body.prefix(fileKeySize),
                                                  tag: stanza.body.suffix(16)),
              let fileKey = try? ChaChaPoly.open(box, using: wrapKey) else {
            return nil
        }
        return SymmetricKey(data: fileKey)
    }

    // MARK: Key schedule

    static func zeroNonce() -> ChaChaPoly.Nonce {
        // 12 zero bytes is always a valid nonce; `try!` here does not depend on input.
        try! ChaChaPoly.Nonce(data: Data(count: 12))
    }

    static func headerKey(_ fileKey: SymmetricKey) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: Data(), info: Data("header".utf8), outputByteCount: 32)
    }

    static func payloadKey(_ fileKey: SymmetricKey, nonce: Data) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Data("payload".utf8), outputByteCount: 32)
    }
}
