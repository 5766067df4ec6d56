import EdgeErrors
import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// The plan's one secret: 32 random bytes from which every other secret derives (docs/keys.md).
public struct MasterSecret: Sendable, Equatable {
    public let bytes: Data

    public init(bytes: Data) throws {
        guard bytes.count == 32 else { throw KeyError.masterWrongLength(bytes.count) }
        self.bytes = bytes
    }

    /// 32 bytes from the system CSPRNG.
    public static func generate() -> MasterSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        return try! MasterSecret(bytes: bytes)
    }

    /// `master.key` holds one line: standard base64 of the 32 bytes (easy to paste into a CI secret).
    public init(fileText: String) throws {
        let line = fileText.trimmingWhitespace()
        guard let bytes = Data(base64Encoded: line) else { throw KeyError.masterNotBase64 }
        try self.init(bytes: bytes)
    }

    public var fileText: String { bytes.base64EncodedString() + "\n" }
}

/// A WireGuard key pair in WireGuard's own conventions: a clamped X25519 private key and standard
/// base64 text that `wg pubkey` agrees with.
public struct WireGuardKey: Sendable, Equatable {
    /// The clamped private scalar (RFC 7748 section 5), as `wg genkey` would print it.
    public let privateKey: Data

    public init(privateKey raw: Data) throws {
        guard raw.count == 32 else { throw KeyError.wireGuardKeyWrongLength(raw.count) }
        self.privateKey = WireGuardKey.clamp(raw)
    }

    static func clamp(_ raw: Data) -> Data {
        var bytes = [UInt8](raw)
        bytes[0] &= 248
        bytes[31] &= 127
        bytes[31] |= 64
        return Data(bytes)
    }

    public var agreementKey: Curve25519.KeyAgreement.PrivateKey {
        // 32 bytes are always a valid X25519 scalar.
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
    }

    public var publicKey: Data { agreementKey.publicKey.rawRepresentation }
    public var privateKeyBase64: String { privateKey.base64EncodedString() }
    public var publicKeyBase64: String { publicKey.base64EncodedString() }
}

/// A router's 32-byte secret: sealed onto its stick; the device derives its WireGuard key from it.
public struct RouterSecret: Sendable, Equatable {
    public let bytes: Data

    public init(bytes: Data) throws {
        guard bytes.count == 32 else { throw KeyError.routerSecretWrongLength(bytes.count) }
        self.bytes = bytes
    }

    /// The router's WireGuard key: HKDF(router secret, "edgekit/v1/router-wireguard"), clamped.
    public var wireGuardKey: WireGuardKey {
        try! WireGuardKey(privateKey: KeyDerivation.expand(bytes, label: "router-wireguard", fields: []))
    }
}

/// Every key of a plan, derived from its master secret with HKDF-SHA256 and fixed labels.
///
/// Each derivation is `HKDF-SHA256(ikm: input, salt: "edgekit/v1", info: label || fields)` with the
/// label `edgekit/v1/<name>` and each field as a 2-byte big-endian length followed by its bytes, so
/// no two (label, fields) pairs can produce the same info. The exact table is docs/keys.md; the
/// vectors in Tests/EdgeCryptoTests pin it.
public enum KeyDerivation {
    static let salt = Data("edgekit/v1".utf8)

    static func expand(_ input: Data, label: String, fields: [Data], count: Int = 32) -> Data {
        var info = Data("edgekit/v1/\(label)".utf8)
        for field in fields {
            info.append(UInt8(field.count >> 8))
            info.append(UInt8(field.count & 0xff))
            info.append(field)
        }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: input), salt: salt, info: info, outputByteCount: count)
        return key.withUnsafeBytes { Data($0) }
    }

    static func text(_ string: String) -> Data { Data(string.utf8) }

    static func number(_ value: Int, bytes: Int) -> Data {
        Data((0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }
}

/// The keys of one plan. Holds the master secret; never print or log it.
public struct PlanKeys: Sendable {
    public let master: MasterSecret
    public let planName: String

    public init(master: MasterSecret, planName: String) {
        self.master = master
        self.planName = planName
    }

    /// Ed25519 seed of the operator signing key (signs profiles and site certificates).
    public var operatorSigningSeed: Data {
        KeyDerivation.expand(master.bytes, label: "operator-signing", fields: [KeyDerivation.text(planName)])
    }

    /// signify's 8-byte key number of the operator key, so signatures name the key that made them.
    public var operatorKeyNumber: Data {
        KeyDerivation.expand(master.bytes, label: "operator-keynum", fields: [KeyDerivation.text(planName)], count: 8)
    }

    /// The WireGuard identity of the relay called `name`. The relay of a one-relay plan (`relay:`,
    /// named `relay`) keeps the derivation it had before plans could hold several (the plan name
    /// alone); every other relay's name is an input too.
    public func relayWireGuardKey(name: String = Relay.singleName) -> WireGuardKey {
        let fields = name == Relay.singleName ? [KeyDerivation.text(planName)]
                                              : [KeyDerivation.text(planName), KeyDerivation.text(name)]
        return try! WireGuardKey(privateKey: KeyDerivation.expand(master.bytes, label: "relay-wireguard", fields: fields))
    }

    /// The relays' public keys (base64), in the order of `plan.relays`.
    public func relayPublicKeys(of plan: Plan) -> [String] {
        plan.relays.map { relayWireGuardKey(name: $0.name).publicKeyBase64 }
    }

    /// The X25519 secret baked into a site's image; profiles for the site's routers are sealed to it.
    public func siteIdentityKey(site: String) -> Curve25519.KeyAgreement.PrivateKey {
        let raw = KeyDerivation.expand(
            master.bytes, label: "site-identity", fields: [KeyDerivation.text(planName), KeyDerivation.text(site)])
        return try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
    }

    /// The secret of router `slot` of `site` at `generation`; bumping the generation rotates it.
    public func routerSecret(site: String, slot: Int, generation: Int) -> RouterSecret {
        try! RouterSecret(bytes: KeyDerivation.expand(
            master.bytes, label: "router-secret",
            fields: [KeyDerivation.text(planName), KeyDerivation.text(site),
                     KeyDerivation.number(slot, bytes: 2), KeyDerivation.number(generation, bytes: 4)]))
    }

    public func routerSecret(site: Site, router: Router) -> RouterSecret {
        routerSecret(site: site.name, slot: router.slot, generation: router.generation)
    }

    /// The WireGuard key of server `name` in the servers' mesh at `generation`; bumping the
    /// generation in the plan rotates it. Derived on the operator's machine or CI (the mesh files
    /// carry it), so unlike a router's it needs no intermediate secret.
    public func serverWireGuardKey(server name: String, generation: Int) -> WireGuardKey {
        namedWireGuardKey(label: "server-wireguard", name: name, generation: generation)
    }

    /// A WireGuard key derived straight from the master secret for one named holder of a kind
    /// (`label`): plan name, holder name, generation (docs/keys.md).
    func namedWireGuardKey(label: String, name: String, generation: Int) -> WireGuardKey {
        try! WireGuardKey(privateKey: KeyDerivation.expand(
            master.bytes, label: label,
            fields: [KeyDerivation.text(planName), KeyDerivation.text(name), KeyDerivation.number(generation, bytes: 4)]))
    }

    public func serverWireGuardKey(_ server: Server) -> WireGuardKey {
        serverWireGuardKey(server: server.name, generation: server.generation)
    }

    /// The WireGuard key of client `name` (a laptop or phone, `clients:`) at `generation`; bumping
    /// the generation rotates it. Derived where the client's file is made; the relay's bundle
    /// carries only its public half.
    public func clientWireGuardKey(client name: String, generation: Int) -> WireGuardKey {
        namedWireGuardKey(label: "client-wireguard", name: name, generation: generation)
    }

    public func clientWireGuardKey(_ client: Client) -> WireGuardKey {
        clientWireGuardKey(client: client.name, generation: client.generation)
    }

    /// Every client of `plan`: name → base64 public key (what the client relay's relay.json lists).
    public func clientPublicKeys(of plan: Plan) -> [String: String] {
        Dictionary(uniqueKeysWithValues: plan.clients.map { ($0.name, clientWireGuardKey($0).publicKeyBase64) })
    }
}

/// Problems with key material, worded for the operator.
public enum KeyError: EdgeError, Equatable {
    case masterWrongLength(Int)
    case masterNotBase64
    case wireGuardKeyWrongLength(Int)
    case routerSecretWrongLength(Int)

    public var description: String {
        switch self {
        case .masterWrongLength(let n): "the master secret must be 32 bytes, found \(n)"
        case .masterNotBase64: "the master secret is not one line of base64"
        case .wireGuardKeyWrongLength(let n): "a WireGuard key must be 32 bytes, found \(n)"
        case .routerSecretWrongLength(let n): "a router secret must be 32 bytes, found \(n)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .masterWrongLength: "key.master-length"
        case .masterNotBase64: "key.master-not-base64"
        case .wireGuardKeyWrongLength: "key.wireguard-length"
        case .routerSecretWrongLength: "key.router-secret-length"
        }
    }
}
