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

/// X25519 key agreement (RFC 7748) and Ed25519 signatures (RFC 8032), by libcrypto.
public enum Curve25519 {
    public enum KeyAgreement {
        public struct PublicKey {
            let bytes: [UInt8]

            /// Any 32 bytes; a low-order point is refused when it is used, not here.
            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                bytes = try publicKeyBytes(rawRepresentation)
            }

            init(bytes: [UInt8]) {
                self.bytes = bytes
            }

            public var rawRepresentation: Data { Data(bytes) }
        }

        /// A private key. Its public key is computed when asked for, not when the key is made: the
        /// relay makes its key from bytes for every key agreement, and a scalar multiplication
        /// there would be wasted.
        public struct PrivateKey {
            let secret: SecretBytes

            /// A random key, clamped (RFC 7748 section 5) as CryptoKit's are, so its raw
            /// representation is also a WireGuard private key as `wg genkey` prints one.
            public init() {
                secret = SecretBytes(randomCount: 32) { key in
                    key[0] &= 248
                    key[31] &= 127
                    key[31] |= 64
                }
            }

            /// Any 32 bytes, kept as given: X25519 clamps the scalar when it uses it.
            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                let secret = rawRepresentation.withUnsafeBytes { SecretBytes(copying: $0) }
                guard secret.count == 32 else { throw CryptoKitError.incorrectKeySize }
                self.secret = secret
            }

            public var publicKey: PublicKey {
                guard let bytes = LibCrypto.x25519PublicKey(of: secret) else {
                    fatalError("libcrypto cannot compute an X25519 public key (out of memory)")
                }
                return PublicKey(bytes: bytes)
            }

            public var rawRepresentation: Data { secret.withUnsafeBytes { Data($0) } }

            /// X25519 with the other side's public key. Throws `CryptoKitError.lowOrderPoint` when
            /// the result is all zero (CryptoKit returns the zeros; every caller here refuses them).
            public func sharedSecretFromKeyAgreement(with publicKeyShare: PublicKey) throws -> SharedSecret {
                SharedSecret(secret: try LibCrypto.x25519(privateKey: secret, publicKey: publicKeyShare.bytes))
            }
        }
    }

    public enum Signing {
        public struct PublicKey {
            let bytes: [UInt8]

            /// Any 32 bytes; one that is not a point on the curve verifies no signature.
            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                bytes = try publicKeyBytes(rawRepresentation)
            }

            init(bytes: [UInt8]) {
                self.bytes = bytes
            }

            public var rawRepresentation: Data { Data(bytes) }

            public func isValidSignature<S: DataProtocol, D: DataProtocol>(_ signature: S, for data: D) -> Bool {
                LibCrypto.ed25519Verify(publicKey: bytes, signature: signature, message: data)
            }
        }

        /// An Ed25519 key; its raw representation is the 32-byte seed (RFC 8032 section 5.1.5). Its
        /// public key is computed when asked for: signing does not need it from here.
        public struct PrivateKey {
            let seed: SecretBytes

            public init() {
                seed = SecretBytes(randomCount: 32)
            }

            /// Any 32 bytes are a seed.
            public init<D: ContiguousBytes>(rawRepresentation: D) throws {
                let seed = rawRepresentation.withUnsafeBytes { SecretBytes(copying: $0) }
                guard seed.count == 32 else { throw CryptoKitError.incorrectKeySize }
                self.seed = seed
            }

            public var publicKey: PublicKey {
                guard let bytes = LibCrypto.ed25519PublicKey(of: seed) else {
                    fatalError("libcrypto cannot compute an Ed25519 public key (out of memory)")
                }
                return PublicKey(bytes: bytes)
            }

            public var rawRepresentation: Data { seed.withUnsafeBytes { Data($0) } }

            /// The 64-byte signature of `data`: deterministic (RFC 8032), the same bytes every time.
            public func signature<D: DataProtocol>(for data: D) throws -> Data {
                try LibCrypto.ed25519Sign(seed: seed, message: data)
            }
        }
    }
}

/// The result of a key agreement: secret, zeroed when the last copy goes away, and to be put
/// through a key derivation function (HKDF) before use as a key.
public struct SharedSecret {
    let secret: SecretBytes

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secret.withUnsafeBytes(body)
    }
}

/// A raw Curve25519 public key (X25519 or Ed25519): exactly 32 bytes.
private func publicKeyBytes<D: ContiguousBytes>(_ raw: D) throws -> [UInt8] {
    try raw.withUnsafeBytes { bytes in
        guard bytes.count == 32 else { throw CryptoKitError.incorrectKeySize }
        return Array(bytes)
    }
}
