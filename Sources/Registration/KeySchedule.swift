import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// The two MAC keys that only the router and the relay can compute (docs/protocol.md, "Keys"):
/// X25519 between the router's and the relay's static WireGuard keys, then HKDF-SHA256.
public struct SessionKeys: Sendable {
    // Raw bytes: SystemCrypto's key types are not Sendable.
    let requestBytes: [UInt8]
    let responseBytes: [UInt8]

    /// MACs router → relay messages (HELLO, REGISTER).
    public var requestKey: SymmetricKey { SymmetricKey(data: requestBytes) }
    /// MACs relay → router messages (CHALLENGE, RESULT).
    public var responseKey: SymmetricKey { SymmetricKey(data: responseBytes) }

    static let salt = Array("edgekit/registration/v1".utf8)
    static let info = Array("edgekit/registration/v1/mac".utf8)

    /// Derives the keys from our private key and the other side's public key. `routerKey` and
    /// `relayKey` are the two public keys (one of them is ours), bound into the derivation.
    public init(privateKey: Curve25519.KeyAgreement.PrivateKey, peerPublicKey: [UInt8],
                routerKey: [UInt8], relayKey: [UInt8]) throws(KeyScheduleError) {
        guard peerPublicKey.count == Wire.keySize, routerKey.count == Wire.keySize, relayKey.count == Wire.keySize,
              let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerPublicKey) else {
            throw .badPublicKey
        }
        guard let shared = try? privateKey.sharedSecretFromKeyAgreement(with: peer) else { throw .lowOrderPoint }
        let secret = shared.withUnsafeBytes { [UInt8]($0) }
        guard secret.contains(where: { $0 != 0 }) else { throw .lowOrderPoint }
        let okm = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), salt: SessionKeys.salt,
            info: SessionKeys.info + routerKey + relayKey, outputByteCount: 64)
        let bytes = okm.withUnsafeBytes { [UInt8]($0) }
        requestBytes = Array(bytes[0..<32])
        responseBytes = Array(bytes[32..<64])
    }

    /// The router's view: its WireGuard key and the relay public key from its profile.
    public init(router: WireGuardKeyPair, relayPublicKey: [UInt8]) throws(KeyScheduleError) {
        try self.init(privateKey: router.privateKey, peerPublicKey: relayPublicKey,
                      routerKey: router.publicKey, relayKey: relayPublicKey)
    }

    /// The relay's view: its WireGuard key and the router key from a HELLO or REGISTER.
    public init(relay: WireGuardKeyPair, routerPublicKey: [UInt8]) throws(KeyScheduleError) {
        try self.init(privateKey: relay.privateKey, peerPublicKey: routerPublicKey,
                      routerKey: routerPublicKey, relayKey: relay.publicKey)
    }
}

/// An X25519 key pair as both ends hold it.
public struct WireGuardKeyPair: Sendable {
    let raw: [UInt8]
    public let publicKey: [UInt8]

    public var privateKey: Curve25519.KeyAgreement.PrivateKey {
        // `raw` came from a valid key.
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
    }

    public init(privateKey: Curve25519.KeyAgreement.PrivateKey) {
        raw = [UInt8](privateKey.rawRepresentation)
        publicKey = [UInt8](privateKey.publicKey.rawRepresentation)
    }
}

public enum KeyScheduleError: EdgeError, Equatable, Sendable {
    case badPublicKey
    case lowOrderPoint

    public var description: String {
        switch self {
        case .badPublicKey: "a public key is not 32 bytes"
        case .lowOrderPoint: "the X25519 result is all zero (low-order public key)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .badPublicKey: "registration.bad-public-key"
        case .lowOrderPoint: "registration.low-order-point"
        }
    }
}

/// The truncated HMAC of docs/protocol.md: `HMAC-SHA256(key, message)[0..<16]`.
public enum MessageMAC {
    public static func compute(_ key: SymmetricKey, _ message: some Collection<UInt8>) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: Array(message))
        return Array(Array(hmac.finalize()).prefix(Wire.macSize))
    }

    /// Constant-time comparison of the expected and received MAC.
    public static func verify(_ key: SymmetricKey, _ message: some Collection<UInt8>, mac: some Collection<UInt8>) -> Bool {
        let expected = compute(key, message)
        guard mac.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, mac) { difference |= a ^ b }
        return difference == 0
    }

    /// The datagram: authenticated bytes followed by their MAC.
    public static func seal(_ authenticated: [UInt8], with key: SymmetricKey) -> [UInt8] {
        authenticated + compute(key, authenticated)
    }
}

/// HELLO's proof of knowing the relay's public key S (docs/protocol.md, "HELLO"), as WireGuard's
/// `mac1` proves knowing the responder's: one HMAC, no key agreement, to check. S is in every profile
/// and the relay bundle and never on the wire, so a spoofed flood of made-up router keys cannot make
/// one, and the relay keeps a key-agreement budget for HELLOs that carry it.
public enum HelloProof {
    static let info = Array("edgekit/registration/v1/hello".utf8)
    /// The proof covers bytes 0..<52 of the HELLO (header, R, N).
    public static let covered = 52
    /// A HELLO without a proof: a router from before it.
    public static let none = [UInt8](repeating: 0, count: Wire.macSize)

    /// `HKDF-SHA256(ikm = S, salt = "edgekit/registration/v1", info = "edgekit/registration/v1/hello", L = 32)`.
    public static func key(relayPublicKey: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: relayPublicKey), salt: SessionKeys.salt,
                               info: info, outputByteCount: 32)
    }

    public static func compute(relayPublicKey: [UInt8], covering bytes: [UInt8]) -> [UInt8] {
        MessageMAC.compute(key(relayPublicKey: relayPublicKey), bytes)
    }
}
