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
internal import COpenSSL

// The one file that calls libcrypto (Sources/COpenSSL/shim.h): C pointers and result codes stay
// here, and the rest of the module sees Swift values, optionals and errors.

/// Why an operation failed. Like CryptoKit's error of the same name it says what was wrong, never
/// which bytes: no key, secret or plaintext ever goes into an error.
public enum CryptoKitError: Error, Equatable, CustomStringConvertible {
    /// A key has the wrong number of bytes.
    case incorrectKeySize
    /// A nonce or tag has the wrong number of bytes.
    case incorrectParameterSize
    /// A sealed box does not open under the key: wrong key, or altered ciphertext, tag or nonce.
    case authenticationFailure
    /// X25519 with this public key gives the all-zero shared secret: it is a low-order point, which
    /// anyone can make and which would leave the "secret" known to everyone.
    case lowOrderPoint
    /// libcrypto failed where valid input cannot fail (out of memory); names the operation.
    case libcryptoFailure(String)

    public var description: String {
        switch self {
        case .incorrectKeySize: "key has the wrong size"
        case .incorrectParameterSize: "nonce or tag has the wrong size"
        case .authenticationFailure: "authentication failed: wrong key, or the data was altered"
        case .lowOrderPoint: "X25519 public key is a low-order point (the shared secret would be all zero)"
        case .libcryptoFailure(let operation): "libcrypto failed: \(operation)"
        }
    }
}

/// Secret bytes (a key, a shared secret) in memory this module allocates, and zeroes with
/// `OPENSSL_cleanse` (which the optimiser may not remove) when the last value holding them goes.
/// Never changed after `init`, so sharing it between values and threads is safe.
final class SecretBytes: @unchecked Sendable {
    private let buffer: UnsafeMutableRawBufferPointer

    /// `count` bytes, zero until `initialize` writes them.
    init(count: Int, initializingWith initialize: (UnsafeMutableRawBufferPointer) -> Void = { _ in }) {
        buffer = .allocate(byteCount: count, alignment: 1)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        initialize(buffer)
    }

    convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count) { $0.copyMemory(from: bytes) }
    }

    /// `count` bytes from the system's CSPRNG (getrandom(2)), then `adjust`ed (clamping).
    convenience init(randomCount count: Int, adjust: (UnsafeMutableRawBufferPointer) -> Void = { _ in }) {
        self.init(count: count) { buffer in
            var generator = SystemRandomNumberGenerator()
            for index in buffer.indices { buffer[index] = generator.next() }
            adjust(buffer)
        }
    }

    var count: Int { buffer.count }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(buffer))
    }

    deinit {
        LibCrypto.cleanse(buffer)
        buffer.deallocate()
    }
}

/// A running libcrypto hash (EVP_MD_CTX), shared by hasher values until one of them changes it.
final class HashContext {
    enum Algorithm: Int32 {
        case sha256 = 0
        case sha512 = 1

        var byteCount: Int { self == .sha256 ? 32 : 64 }
    }

    private let context: OpaquePointer
    let algorithm: Algorithm

    init(_ algorithm: Algorithm) {
        guard let context = edgekit_hash_new(algorithm.rawValue) else {
            fatalError("libcrypto cannot start a \(algorithm) hash (out of memory)")
        }
        self.context = context
        self.algorithm = algorithm
    }

    private init(copying other: HashContext) {
        guard let context = edgekit_hash_copy(other.context) else {
            fatalError("libcrypto cannot copy a \(other.algorithm) hash (out of memory)")
        }
        self.context = context
        self.algorithm = other.algorithm
    }

    deinit { edgekit_hash_free(context) }

    /// Hashes `data` into `context`, first giving it a copy of its own when another hasher value
    /// shares it: hasher values behave as values, a copy goes on from where the original was.
    static func update(_ context: inout HashContext, with data: some DataProtocol) {
        if !isKnownUniquelyReferenced(&context) { context = HashContext(copying: context) }
        for region in data.regions {
            region.withUnsafeBytes { bytes in
                guard edgekit_hash_update(context.context, bytes.baseAddress, bytes.count) == 1 else {
                    fatalError("libcrypto failed to update a \(context.algorithm) hash")
                }
            }
        }
    }

    /// The digest so far; the context stays as it was and can go on.
    func finalize() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: algorithm.byteCount) { buffer, count in
            guard edgekit_hash_final(context, buffer.baseAddress) == 1 else {
                fatalError("libcrypto failed to finish a \(algorithm) hash")
            }
            count = algorithm.byteCount
        }
    }
}

/// The calls into libcrypto, with every size checked before C sees a pointer.
enum LibCrypto {
    static func cleanse(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }

    static func cleanse(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { cleanse($0) }
    }

    /// Equal bytes, compared in time that depends only on the length (CRYPTO_memcmp), for MACs.
    static func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard let left = a.baseAddress, let right = b.baseAddress else { return true }
        return CRYPTO_memcmp(left, right, a.count) == 0
    }

    /// The X25519 public key of a 32-byte private key; nil only when libcrypto fails.
    static func x25519PublicKey(of privateKey: SecretBytes) -> [UInt8]? {
        publicKey(of: privateKey, edgekit_x25519_public)
    }

    /// The Ed25519 public key of a 32-byte seed; nil only when libcrypto fails.
    static func ed25519PublicKey(of seed: SecretBytes) -> [UInt8]? {
        publicKey(of: seed, edgekit_ed25519_public)
    }

    private static func publicKey(
        of privateKey: SecretBytes, _ derive: (UnsafePointer<UInt8>?, UnsafeMutablePointer<UInt8>?) -> Int32
    ) -> [UInt8]? {
        precondition(privateKey.count == 32)
        var ok = false
        let key = [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            ok = privateKey.withUnsafeBytes { derive($0.bindMemory(to: UInt8.self).baseAddress, out.baseAddress) } == 1
            count = 32
        }
        return ok ? key : nil
    }

    static func x25519(privateKey: SecretBytes, publicKey: [UInt8]) throws(CryptoKitError) -> SecretBytes {
        precondition(privateKey.count == 32 && publicKey.count == 32)
        var ok = false
        let secret = SecretBytes(count: 32) { out in
            ok = privateKey.withUnsafeBytes { key in
                edgekit_x25519(key.bindMemory(to: UInt8.self).baseAddress, publicKey,
                               out.bindMemory(to: UInt8.self).baseAddress)
            } == 1
        }
        // Short of running out of memory, the shim fails only for the all-zero result.
        guard ok else { throw .lowOrderPoint }
        return secret
    }

    static func ed25519Sign(seed: SecretBytes, message: some DataProtocol) throws(CryptoKitError) -> Data {
        precondition(seed.count == 32)
        var signature = Data(count: 64)
        let ok = signature.withUnsafeMutableBytes { out in
            seed.withUnsafeBytes { seed in
                message.withContiguousBytes { message in
                    edgekit_ed25519_sign(seed.bindMemory(to: UInt8.self).baseAddress,
                                         message.bindMemory(to: UInt8.self).baseAddress, message.count,
                                         out.bindMemory(to: UInt8.self).baseAddress)
                }
            }
        } == 1
        guard ok else { throw .libcryptoFailure("Ed25519 signing") }
        return signature
    }

    static func ed25519Verify(publicKey: [UInt8], signature: some DataProtocol, message: some DataProtocol) -> Bool {
        precondition(publicKey.count == 32)
        let signature = Array(signature)
        guard signature.count == 64 else { return false }
        return message.withContiguousBytes { message in
            edgekit_ed25519_verify(publicKey, message.bindMemory(to: UInt8.self).baseAddress, message.count, signature)
        } == 1
    }

    /// ChaCha20-Poly1305 encryption: the ciphertext (as long as `plaintext`) and the 16-byte tag.
    static func chaCha20Poly1305(
        sealing plaintext: some DataProtocol, key: SecretBytes, nonce: [UInt8], authenticating aad: some DataProtocol
    ) throws(CryptoKitError) -> (ciphertext: Data, tag: Data) {
        precondition(nonce.count == 12)
        guard key.count == 32 else { throw .incorrectKeySize }
        var ciphertext = Data(count: plaintext.count)
        var tag = Data(count: 16)
        let ok = chaCha20Poly1305(seal: true, key: key, nonce: nonce, aad: aad, input: plaintext,
                                  output: &ciphertext, tag: &tag)
        guard ok else { throw .libcryptoFailure("ChaCha20-Poly1305 encryption") }
        return (ciphertext, tag)
    }

    /// ChaCha20-Poly1305 decryption: the plaintext, only when `tag` authenticates it and `aad`.
    static func chaCha20Poly1305(
        opening ciphertext: Data, tag: Data, key: SecretBytes, nonce: [UInt8], authenticating aad: some DataProtocol
    ) throws(CryptoKitError) -> Data {
        precondition(nonce.count == 12 && tag.count == 16)
        guard key.count == 32 else { throw .incorrectKeySize }
        var plaintext = Data(count: ciphertext.count)
        var tag = tag
        let ok = chaCha20Poly1305(seal: false, key: key, nonce: nonce, aad: aad, input: ciphertext,
                                  output: &plaintext, tag: &tag)
        guard ok else { throw .authenticationFailure }
        return plaintext
    }

    private static func chaCha20Poly1305(
        seal: Bool, key: SecretBytes, nonce: [UInt8], aad: some DataProtocol, input: some DataProtocol,
        output: inout Data, tag: inout Data
    ) -> Bool {
        output.withUnsafeMutableBytes { output in
            tag.withUnsafeMutableBytes { tag in
                key.withUnsafeBytes { key in
                    aad.withContiguousBytes { aad in
                        input.withContiguousBytes { input in
                            edgekit_chacha20_poly1305(
                                seal ? 1 : 0, key.bindMemory(to: UInt8.self).baseAddress, nonce,
                                aad.bindMemory(to: UInt8.self).baseAddress, aad.count,
                                input.bindMemory(to: UInt8.self).baseAddress, input.count,
                                output.bindMemory(to: UInt8.self).baseAddress,
                                tag.bindMemory(to: UInt8.self).baseAddress)
                        }
                    }
                }
            }
        } == 1
    }
}

extension DataProtocol {
    /// Runs `body` on the bytes in one piece, copying only data held in several regions.
    func withContiguousBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if regions.count == 1, let region = regions.first {
            return try region.withUnsafeBytes(body)
        }
        return try Array(self).withUnsafeBytes(body)
    }
}
