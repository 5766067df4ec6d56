import EdgeModel
import Foundation

/// The relay daemon's own config file, `/etc/edgekit/relay.json` (`edgekit-relay serve --config`).
///
/// Only public parameters: the relay needs no per-site configuration, because every router brings an
/// operator-signed site certificate (DESIGN.md, "Sealed profile"). JSON with sorted keys, so the file is
/// deterministic and any language can read it.
public struct RelayDaemonConfig: Codable, Sendable, Equatable {
    /// UDP port of the registration protocol.
    public var registrationPort: UInt16
    /// The WireGuard interface the daemon adds and removes peers on.
    public var wireguardInterface: String
    /// The WireGuard listen port (routers' endpoint).
    public var wireguardPort: UInt16
    /// The relay's WireGuard private key, which also authenticates registration answers.
    public var wireguardPrivateKeyPath: String
    /// The operator's signify public key; site certificates must verify against it.
    public var operatorPublicKeyPath: String
    /// SQLite database of peers, /64 owners, replay counters and revocations.
    public var stateDatabasePath: String
    public var plan: PlanParameters

    /// The plan parameters a relay checks registrations against.
    public struct PlanParameters: Codable, Sendable, Equatable {
        public var name: String
        public var ula: IPv6Prefix
        public var tunnel: IPv6Prefix
        public var relayHost: String
        public var relayTunnelAddress: IPv6Address

        public init(name: String, ula: IPv6Prefix, tunnel: IPv6Prefix, relayHost: String, relayTunnelAddress: IPv6Address) {
            self.name = name
            self.ula = ula
            self.tunnel = tunnel
            self.relayHost = relayHost
            self.relayTunnelAddress = relayTunnelAddress
        }
    }

    public init(registrationPort: UInt16, wireguardInterface: String, wireguardPort: UInt16,
                wireguardPrivateKeyPath: String, operatorPublicKeyPath: String, stateDatabasePath: String,
                plan: PlanParameters) {
        self.registrationPort = registrationPort
        self.wireguardInterface = wireguardInterface
        self.wireguardPort = wireguardPort
        self.wireguardPrivateKeyPath = wireguardPrivateKeyPath
        self.operatorPublicKeyPath = operatorPublicKeyPath
        self.stateDatabasePath = stateDatabasePath
        self.plan = plan
    }

    /// The config for `plan` with the standard paths of `ConfigPaths`.
    public init(plan: Plan) {
        self.init(
            registrationPort: plan.relay.registrationPort,
            wireguardInterface: InterfaceNames.relayTunnel,
            wireguardPort: plan.relay.wireguardPort,
            wireguardPrivateKeyPath: ConfigPaths.relayWireGuardKey,
            operatorPublicKeyPath: ConfigPaths.operatorPublicKey,
            stateDatabasePath: ConfigPaths.relayStateDatabase,
            plan: PlanParameters(name: plan.name, ula: plan.ula, tunnel: plan.tunnel,
                                 relayHost: plan.relay.host, relayTunnelAddress: plan.relay.tunnelAddress))
    }

    /// Pretty-printed JSON with sorted keys and a final newline.
    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only strings, integers and nested structs: encoding cannot fail.
        let data = try! encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Reads a config file's contents; throws `DecodingError` naming the bad field.
    public static func decode(_ text: String) throws -> RelayDaemonConfig {
        try JSONDecoder().decode(RelayDaemonConfig.self, from: Data(text.utf8))
    }
}
