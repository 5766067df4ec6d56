import EdgeCrypto
import EdgeModel
import Foundation

/// Public keys only: what `keys show` prints and CI may publish.
public struct PublicKeySummary: Encodable, Sendable {
    public var plan: String
    public var operatorKeyNumber: String
    public var operatorPublicKey: String
    /// The first relay's key: the one relay of a `relay:` plan (kept for scripts that read it).
    public var relayWireguardPublicKey: String
    /// Every relay's key, by name; absent (not in the JSON) when the plan has one relay.
    public var relays: [RelayKeys]?
    public var sites: [SiteKeys]
    /// The servers' mesh keys; absent (not in the JSON) when the plan has no servers.
    public var servers: [ServerKeys]?
    /// The clients' keys (laptops, phones; docs/clients.md); absent when the plan has no clients.
    /// Same shape as a server's.
    public var clients: [ServerKeys]?

    public struct ServerKeys: Encodable, Sendable {
        public var name: String
        public var generation: Int
        public var wireguardPublicKey: String
        enum CodingKeys: String, CodingKey { case name, generation, wireguardPublicKey = "wireguard_public_key" }
    }

    public struct RelayKeys: Encodable, Sendable {
        public var name: String
        public var wireguardPublicKey: String
        enum CodingKeys: String, CodingKey { case name, wireguardPublicKey = "wireguard_public_key" }
    }

    public struct SiteKeys: Encodable, Sendable {
        public var name: String
        public var imageRecipient: String
        public var routers: [RouterKeys]
        enum CodingKeys: String, CodingKey { case name, routers, imageRecipient = "image_recipient" }
    }

    public struct RouterKeys: Encodable, Sendable {
        public var slot: Int
        public var generation: Int
        public var wireguardPublicKey: String
        enum CodingKeys: String, CodingKey { case slot, generation, wireguardPublicKey = "wireguard_public_key" }
    }

    enum CodingKeys: String, CodingKey {
        case plan, relays, sites, servers, clients
        case operatorKeyNumber = "operator_key_number"
        case operatorPublicKey = "operator_public_key"
        case relayWireguardPublicKey = "relay_wireguard_public_key"
    }

    public init(plan: Plan, keys: PlanKeys) {
        self.plan = plan.name
        operatorKeyNumber = keys.operatorKeyNumber.map { String(format: "%02x", $0) }.joined()
        operatorPublicKey = keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")
        let relayKeys = keys.relayPublicKeys(of: plan)
        relayWireguardPublicKey = relayKeys[0]
        if plan.relays.count > 1 {
            relays = zip(plan.relays, relayKeys).map { RelayKeys(name: $0.name, wireguardPublicKey: $1) }
        }
        sites = plan.sites.map { site in
            SiteKeys(
                name: site.name, imageRecipient: keys.siteIdentity(site: site.name).recipient.text,
                routers: site.routers.map { router in
                    RouterKeys(slot: router.slot, generation: router.generation,
                               wireguardPublicKey: keys.routerSecret(site: site, router: router).wireGuardKey.publicKeyBase64)
                })
        }
        if !plan.servers.isEmpty {
            servers = plan.servers.map { server in
                ServerKeys(name: server.name, generation: server.generation,
                           wireguardPublicKey: keys.serverWireGuardKey(server).publicKeyBase64)
            }
        }
        if !plan.clients.isEmpty {
            clients = plan.clients.map { client in
                ServerKeys(name: client.name, generation: client.generation,
                           wireguardPublicKey: keys.clientWireGuardKey(client).publicKeyBase64)
            }
        }
    }

    /// What `edgekit keys show` prints.
    public var text: String {
        var lines = [
            "plan \(plan)",
            "operator key (signify, key number \(operatorKeyNumber)):",
        ]
        lines += operatorPublicKey.split(separator: "\n").map { "  \($0)" }
        if let relays {
            for relay in relays { lines.append("relay \(relay.name) wireguard public key: \(relay.wireguardPublicKey)") }
        } else {
            lines.append("relay wireguard public key: \(relayWireguardPublicKey)")
        }
        for site in sites {
            lines.append("site \(site.name)")
            lines.append("  image recipient (age): \(site.imageRecipient)")
            for router in site.routers {
                lines.append("  router \(router.slot) (generation \(router.generation)) wireguard public key: \(router.wireguardPublicKey)")
            }
        }
        for server in servers ?? [] {
            lines.append("server \(server.name) (generation \(server.generation)) mesh wireguard public key: \(server.wireguardPublicKey)")
        }
        for client in clients ?? [] {
            lines.append("client \(client.name) (generation \(client.generation)) wireguard public key: \(client.wireguardPublicKey)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
