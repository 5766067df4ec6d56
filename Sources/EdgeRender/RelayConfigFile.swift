import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The relay daemon's own config file, `/etc/edgekit/relay.json` (`edgekit-relay serve --config`),
/// filled from the plan. Its schema is `EdgeModel.RelayConfig`, the one the daemon reads
/// (docs/relay.md). Only public parameters and file paths: the relay needs no per-site
/// configuration, because every router brings an operator-signed site certificate; the exceptions
/// are plan data the relay routes by, the clients and the sites' DMZs. JSON with sorted
/// keys, so it is deterministic; rate limits and timers keep the daemon's defaults and are not written.
extension RelayConfig {
    /// The config of `relay` (the plan's first when not given) with the standard paths of `ConfigPaths`.
    /// `clientPublicKeys` (client name → base64 public key, `PlanKeys.clientPublicKeys`) fill
    /// `clients` on the plan's client relay; without them, or on another relay, there are none.
    public init(plan: Plan, relay: Relay? = nil, clientPublicKeys: [String: String] = [:]) {
        let relay = relay ?? plan.relay
        let clients = relay == plan.clientRelay ? plan.clients.compactMap { client in
            clientPublicKeys[client.name].map { RelayConfig.Client(name: client.name, publicKey: $0, address: client.address) }
        } : []
        self.init(
            listenAddress: "::", listenPort: relay.registrationPort, interface: InterfaceNames.relayTunnel,
            wireguardPort: relay.wireguardPort, privateKeyFile: ConfigPaths.relayWireGuardKey,
            operatorPublicKeyFile: ConfigPaths.operatorPublicKey, plan: plan.name, ula: plan.ula,
            tunnelPrefix: plan.tunnel, stateDatabase: ConfigPaths.relayStateDatabase,
            // The routers' PersistentKeepalive: `status` judges a router down after 3 of them silent.
            keepaliveSeconds: plan.defaults.keepalive,
            // Prometheus on the relay itself scrapes `::1`; one elsewhere comes through a tunnel.
            metricsAddresses: ["::1", relay.tunnelAddress.description],
            // Update bundles for the routers, on the tunnel address only (docs/updates.md).
            bundlesDirectory: ConfigPaths.relayBundles, updateAddresses: [relay.tunnelAddress.description],
            clients: clients,
            // The sites' DMZs this relay routes (docs/dmz.md): plan data, like the clients.
            publicPrefix: relay.publicPrefix,
            dmzRoutes: plan.dmzSites(of: relay).compactMap { site in
                site.dmz.map { RelayConfig.DMZRoute(sitePrefix: site.prefix, prefix: $0.prefix) }
            })
    }

    /// Pretty-printed JSON with sorted keys and a final newline.
    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only strings, numbers and prefixes: encoding cannot fail.
        let data = try! encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Reads a config file's contents; throws `DecodingError` naming the bad field.
    public static func decode(_ text: String) throws -> RelayConfig {
        try JSONDecoder().decode(RelayConfig.self, from: Data(text.utf8))
    }
}
