#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#endif

/// A symmetric key. Its bytes are zeroed when the last copy of the key goes away.
public struct SymmetricKey {
    let secret: SecretBytes

    public init<D: ContiguousBytes>(data: D) {
        secret = data.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// A random key from the system's CSPRNG.
    public init(size: SymmetricKeySize) {
        secret = SecretBytes(randomCount: size.bitCount / 8)
    }

    init(secret: SecretBytes) {
        self.secret = secret
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secret.withUnsafeBytes(body)
    }
}

/// The size of a random `SymmetricKey`.
public struct SymmetricKeySize {
    public let bitCount: Int

    public static var bits128: SymmetricKeySize { SymmetricKeySize(bitCount: 128) }
    public static var bits256: SymmetricKeySize { SymmetricKeySize(bitCount: 256) }
}

/// HMAC (RFC 2104) with any of the hash functions, written over them in Swift.
public struct HMAC<H: HashFunction> {
    private var inner: H
    private var outer: H

    public init(key: SymmetricKey) {
        // The key padded with zeros to a block; a longer key is hashed first (RFC 2104 section 2).
        var block = [UInt8](repeating: 0, count: H.blockByteCount)
        key.withUnsafeBytes { key in
            if key.count > H.blockByteCount {
                var digest = H.hash(data: key)
                block.replaceSubrange(0..<digest.bytes.count, with: digest.bytes)
                digest.cleanse()
            } else {
                block.replaceSubrange(0..<key.count, with: key)
            }
        }
        inner = H()
        outer = H()
        for index in block.indices { block[index] ^= 0x36 }
        inner.update(data: block)
        for index in block.indices { block[index] ^= 0x36 ^ 0x5c }
        outer.update(data: block)
        LibCrypto.cleanse(&block)
    }

    public mutating func update<D: DataProtocol>(data: D) {
        inner.update(data: data)
    }

    /// The MAC of everything so far; the HMAC can go on after it.
    public func finalize() -> HashDigest<H> {
        var innerDigest = inner.finalize()
        defer { innerDigest.cleanse() }
        var outer = self.outer
        outer.update(data: innerDigest.bytes)
        return outer.finalize()
    }

    public static func authenticationCode<D: DataProtocol>(for data: D, using key: SymmetricKey) -> HashDigest<H> {
        var hmac = HMAC(key: key)
        hmac.update(data: data)
        return hmac.finalize()
    }

    /// Whether `authenticationCode` is the MAC of `authenticatedData`, compared in constant time.
    public static func isValidAuthenticationCode<C: ContiguousBytes, D: DataProtocol>(
        _ authenticationCode: C, authenticating authenticatedData: D, using key: SymmetricKey
    ) -> Bool {
        let expected = Self.authenticationCode(for: authenticatedData, using: key)
        return authenticationCode.withUnsafeBytes { given in
            expected.bytes.withUnsafeBytes { LibCrypto.constantTimeEqual($0, given) }
        }
    }
}

/// HKDF (RFC 5869) over HMAC with any of the hash functions.
public enum HKDF<H: HashFunction> {
    /// Extract then expand: `outputByteCount` bytes, at most 255 digests.
    public static func deriveKey<Salt: DataProtocol, Info: DataProtocol>(
        inputKeyMaterial: SymmetricKey, salt: Salt, info: Info, outputByteCount: Int
    ) -> SymmetricKey {
        precondition((0...(255 * H.byteCount)).contains(outputByteCount),
                     "HKDF gives at most 255 digests of output (RFC 5869 section 2.3)")
        // Extract (section 2.2). An empty salt pads to the same HMAC key as the RFC's default of
        // HashLen zeros, so it needs no case of its own.
        var pseudoRandomKey = inputKeyMaterial.withUnsafeBytes {
            HMAC<H>.authenticationCode(for: $0, using: SymmetricKey(data: Array(salt)))
        }
        defer { pseudoRandomKey.cleanse() }
        // Keyed once: each block starts from a copy of it instead of padding the key again.
        let keyed = HMAC<H>(key: SymmetricKey(data: pseudoRandomKey.bytes))
        let info = Array(info)
        // Expand (section 2.3): T(i) = HMAC(PRK, T(i-1) | info | i), the output is T(1) | T(2) | …
        return SymmetricKey(secret: SecretBytes(count: outputByteCount) { output in
            var block = HashDigest<H>(bytes: [])
            defer { block.cleanse() }
            var filled = 0
            var counter: UInt8 = 1
            while filled < outputByteCount {
                var hmac = keyed
                hmac.update(data: block.bytes)
                hmac.update(data: info)
                hmac.update(data: [counter])
                block.cleanse()
                block = hmac.finalize()
                let count = min(block.bytes.count, outputByteCount - filled)
                block.bytes.withUnsafeBytes { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: output[filled..<(filled + count)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
                }
                filled += count
                counter &+= 1
            }
        })
    }
}

/// ChaCha20-Poly1305 (RFC 8439, the IETF variant: 12-byte nonce, 16-byte tag), by libcrypto.
public enum ChaChaPoly {
    /// A 12-byte nonce. A nonce must never be used twice with the same key.
    public struct Nonce {
        let bytes: [UInt8]

        public init<D: DataProtocol>(data: D) throws {
            guard data.count == 12 else { throw CryptoKitError.incorrectParameterSize }
            bytes = Array(data)
        }
    }

    /// A ciphertext with the nonce it was sealed with and its 16-byte tag.
    public struct SealedBox {
        let nonce: Nonce
        public let ciphertext: Data
        public let tag: Data

        public init<C: DataProtocol, T: DataProtocol>(nonce: Nonce, ciphertext: C, tag: T) throws {
            guard tag.count == 16 else { throw CryptoKitError.incorrectParameterSize }
            self.nonce = nonce
            self.ciphertext = Data(ciphertext)
            self.tag = Data(tag)
        }
    }

    public static func seal<Plaintext: DataProtocol>(
        _ message: Plaintext, using key: SymmetricKey, nonce: Nonce
    ) throws -> SealedBox {
        try seal(message, using: key, nonce: nonce, authenticating: Data())
    }

    /// Encrypts `message` and authenticates it together with `authenticatedData`, which is not
    /// encrypted and must be given again to open the box.
    public static func seal<Plaintext: DataProtocol, AuthenticatedData: DataProtocol>(
        _ message: Plaintext, using key: SymmetricKey, nonce: Nonce, authenticating authenticatedData: AuthenticatedData
    ) throws -> SealedBox {
        let sealed = try LibCrypto.chaCha20Poly1305(
            sealing: message, key: key.secret, nonce: nonce.bytes, authenticating: authenticatedData)
        return try SealedBox(nonce: nonce, ciphertext: sealed.ciphertext, tag: sealed.tag)
    }

    /// The plaintext, or `CryptoKitError.authenticationFailure` for a wrong key or an altered box.
    public static func open(_ sealedBox: SealedBox, using key: SymmetricKey) throws -> Data {
        try open(sealedBox, using: key, authenticating: Data())
    }

    public static func open<AuthenticatedData: DataProtocol>(
        _ sealedBox: SealedBox, using key: SymmetricKey, authenticating authenticatedData: AuthenticatedData
    ) throws -> Data {
        try LibCrypto.chaCha20Poly1305(
            opening: sealedBox.ciphertext, tag: sealedBox.tag, key: key.secret, nonce: sealedBox.nonce.bytes,
            authenticating: authenticatedData)
    }
}
