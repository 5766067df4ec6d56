import EdgeModel
import Foundation

/// The relay daemon's own config file, `/etc/edgekit/relay.json` (`edgekit-relay serve --config`).
///
/// Its schema is the daemon's (`EdgeRelay.RelayConfig`, docs/relay.md): the renderer writes the
/// keys the daemon reads, and RelayTests load the rendered file with the daemon's own loader. Only
/// public parameters and file paths: the relay needs no per-site configuration, because every
/// router brings an operator-signed site certificate. JSON with sorted keys, so it is deterministic.
public struct RelayDaemonConfig: Codable, Sendable, Equatable {
    public var listenAddress: String
    /// UDP port of the registration protocol.
    public var listenPort: UInt16
    /// The WireGuard interface the daemon adds and removes peers on.
    public var interface: String
    /// The WireGuard listen port (routers' endpoint).
    public var wireguardPort: UInt16
    /// The relay's WireGuard private key (0600), which also authenticates registration answers.
    public var privateKeyFile: String
    /// The operator's signify public key; site certificates must verify against it.
    public var operatorPublicKeyFile: String
    public var plan: String
    public var ula: IPv6Prefix
    public var tunnelPrefix: IPv6Prefix
    /// SQLite database of peers, /64 owners, replay state and revocations.
    public var stateDatabase: String

    enum CodingKeys: String, CodingKey {
        case listenAddress = "listen_address"
        case listenPort = "listen_port"
        case interface
        case wireguardPort = "wireguard_port"
        case privateKeyFile = "private_key_file"
        case operatorPublicKeyFile = "operator_public_key_file"
        case plan, ula
        case tunnelPrefix = "tunnel_prefix"
        case stateDatabase = "state_database"
    }

    /// The config for `plan` with the standard paths of `ConfigPaths`; rate limits and timers keep
    /// the daemon's defaults.
    public init(plan: Plan) {
        listenAddress = "::"
        listenPort = plan.relay.registrationPort
        interface = InterfaceNames.relayTunnel
        wireguardPort = plan.relay.wireguardPort
        privateKeyFile = ConfigPaths.relayWireGuardKey
        operatorPublicKeyFile = ConfigPaths.operatorPublicKey
        self.plan = plan.name
        ula = plan.ula
        tunnelPrefix = plan.tunnel
        stateDatabase = ConfigPaths.relayStateDatabase
    }

    /// Pretty-printed JSON with sorted keys and a final newline.
    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only strings, integers and prefixes: encoding cannot fail.
        let data = try! encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Reads a config file's contents; throws `DecodingError` naming the bad field.
    public static func decode(_ text: String) throws -> RelayDaemonConfig {
        try JSONDecoder().decode(RelayDaemonConfig.self, from: Data(text.utf8))
    }
}
