import EdgeModel
import Foundation

/// The operator-signed statement the relay checks: this WireGuard key is router `slot` of `site`
/// in `plan`, owns `tunnelAddress`, and may claim `sitePrefix`. The relay needs nothing else per site.
public struct SiteCertificate: Codable, Sendable, Equatable {
    public static let currentSchema = 1

    public var schema: Int
    public var plan: String
    public var site: String
    public var slot: Int
    /// Standard base64, as `wg pubkey` prints it.
    public var wireguardPublicKey: String
    public var tunnelAddress: IPv6Address
    public var sitePrefix: IPv6Prefix
    public var serial: UInt64

    public init(plan: String, site: String, slot: Int, wireguardPublicKey: String, tunnelAddress: IPv6Address,
                sitePrefix: IPv6Prefix, serial: UInt64) {
        self.schema = SiteCertificate.currentSchema
        self.plan = plan
        self.site = site
        self.slot = slot
        self.wireguardPublicKey = wireguardPublicKey
        self.tunnelAddress = tunnelAddress
        self.sitePrefix = sitePrefix
        self.serial = serial
    }

    enum CodingKeys: String, CodingKey {
        case schema, plan, site, slot, serial
        case wireguardPublicKey = "wireguard_public_key"
        case tunnelAddress = "tunnel_address"
        case sitePrefix = "site_prefix"
    }

    /// Signs the certificate as a signify embedded-signature file (`signify -V -e` verifies it).
    public func signed(with key: Signify.SecretKey) throws -> String {
        let body = try DocumentCoding.encode(self)
        return String(decoding: Signify.signEmbedded(body, with: key, comment: "edgekit site certificate \(plan)/\(site)/\(slot)"), as: UTF8.self)
    }

    /// Verifies a signed certificate against the operator key and decodes it.
    public static func verify(_ signed: Data, operatorKey: Signify.PublicKey) throws -> SiteCertificate {
        let body = try Signify.verifyEmbedded(signed, publicKey: operatorKey)
        let certificate = try DocumentCoding.decode(SiteCertificate.self, from: body)
        guard certificate.schema == currentSchema else {
            throw ProfileError.unknownSchema(certificate.schema, what: "site certificate")
        }
        return certificate
    }
}

/// What a router needs to become itself: the plan's public parameters, its site and slot, a
/// monotonic serial, the router secret, the relay's endpoint and key, and its site certificate.
/// Signed by the operator and sealed to the site image identity (docs/keys.md, "Sealed profile").
public struct ProfileDocument: Codable, Sendable, Equatable {
    public static let currentSchema = 1

    public var schema: Int
    public var plan: PlanParameters
    public var site: SiteParameters
    public var router: RouterParameters
    /// Grows with every seal; an agent refuses a profile older than the last one it applied.
    public var serial: UInt64
    /// RFC 3339 UTC time of sealing; informational (devices may have no clock).
    public var issuedAt: String
    /// Base64 of the 32-byte router secret. Redacted by `redacted()`.
    public var routerSecret: String
    /// The signed site certificate (signify embedded form).
    public var certificate: String

    enum CodingKeys: String, CodingKey {
        case schema, plan, site, router, serial, certificate
        case issuedAt = "issued_at"
        case routerSecret = "router_secret"
    }

    public struct PlanParameters: Codable, Sendable, Equatable {
        public var name: String
        public var ula: IPv6Prefix
        public var tunnel: IPv6Prefix
        public var relay: RelayParameters
        public var uplinkMTU: Int
        public var keepalive: Int
        public var vrrpAdvertIntervalCentiseconds: Int
        public var serverWireguardPorts: String

        enum CodingKeys: String, CodingKey {
            case name, ula, tunnel, relay, keepalive
            case uplinkMTU = "uplink_mtu"
            case vrrpAdvertIntervalCentiseconds = "vrrp_advert_interval_cs"
            case serverWireguardPorts = "server_wireguard_ports"
        }
    }

    public struct RelayParameters: Codable, Sendable, Equatable {
        public var host: String
        public var wireguardPort: UInt16
        public var registrationPort: UInt16
        public var tunnelAddress: IPv6Address
        /// The relay's WireGuard public key (base64); also authenticates its registration answers.
        public var publicKey: String

        enum CodingKeys: String, CodingKey {
            case host
            case wireguardPort = "wireguard_port"
            case registrationPort = "registration_port"
            case tunnelAddress = "tunnel_address"
            case publicKey = "public_key"
        }
    }

    public struct SiteParameters: Codable, Sendable, Equatable {
        public var name: String
        public var index: Int
        public var prefix: IPv6Prefix
        public var vrrpID: Int
        public var vip: IPv6Address
        public var linkLocalVIP: IPv6Address
        /// Every router of the site (public parameters only): the VRRP policy depends on the peers'
        /// priorities, so a router renders the same keepalived.conf as `edgekit render` does.
        public var routers: [RouterParameters]

        enum CodingKeys: String, CodingKey {
            case name, index, prefix, vip, routers
            case vrrpID = "vrrp_id"
            case linkLocalVIP = "link_local_vip"
        }
    }

    public struct RouterParameters: Codable, Sendable, Equatable {
        public var slot: Int
        public var priority: Int
        public var generation: Int
        public var uplink: String
        public var lan: String
        public var tunnelAddress: IPv6Address
        public var lanAddress: IPv6Address

        enum CodingKeys: String, CodingKey {
            case slot, priority, generation, uplink, lan
            case tunnelAddress = "tunnel_address"
            case lanAddress = "lan_address"
        }
    }

    /// The document for router `router` of `site`, with the public parts of `plan`.
    public init(plan: Plan, site: Site, router: Router, relayPublicKey: String, serial: UInt64,
                issuedAt: Date, routerSecret: RouterSecret, certificate: String) {
        schema = ProfileDocument.currentSchema
        let ports = plan.defaults.serverWireGuardPorts
        self.plan = PlanParameters(
            name: plan.name, ula: plan.ula, tunnel: plan.tunnel,
            relay: RelayParameters(
                host: plan.relay.host, wireguardPort: plan.relay.wireguardPort,
                registrationPort: plan.relay.registrationPort, tunnelAddress: plan.relay.tunnelAddress,
                publicKey: relayPublicKey),
            uplinkMTU: plan.defaults.uplinkMTU, keepalive: plan.defaults.keepalive,
            vrrpAdvertIntervalCentiseconds: plan.defaults.vrrpAdvertIntervalCentiseconds,
            serverWireguardPorts: "\(ports.lowerBound)-\(ports.upperBound)")
        func parameters(_ router: Router) -> RouterParameters {
            RouterParameters(
                slot: router.slot, priority: router.priority, generation: router.generation,
                uplink: router.uplink.description, lan: router.lan.description,
                tunnelAddress: router.tunnelAddress, lanAddress: router.lanAddress)
        }
        self.site = SiteParameters(
            name: site.name, index: site.index, prefix: site.prefix, vrrpID: site.vrrpID, vip: site.vip,
            linkLocalVIP: site.linkLocalVIP, routers: site.routers.map(parameters))
        self.router = parameters(router)
        self.serial = serial
        self.issuedAt = DocumentCoding.timestamp(issuedAt)
        self.routerSecret = routerSecret.bytes.base64EncodedString()
        self.certificate = certificate
    }

    /// The model as the renderers take it: a one-site plan with every router of that site.
    public func model() throws -> (plan: Plan, site: Site, router: Router) {
        func interface(_ text: String) -> InterfaceMatch {
            text == "auto" ? .auto : text.split(separator: ":").count == 6 ? .mac(text) : .name(text)
        }
        let portParts = plan.serverWireguardPorts.split(separator: "-").compactMap { UInt16($0) }
        guard portParts.count == 2, portParts[0] <= portParts[1] else {
            throw ProfileError.malformedDocument("server_wireguard_ports \"\(plan.serverWireguardPorts)\" is not LOW-HIGH")
        }
        func model(_ parameters: RouterParameters) -> Router {
            Router(
                slot: parameters.slot, priority: parameters.priority, generation: parameters.generation,
                uplink: interface(parameters.uplink), lan: interface(parameters.lan),
                tunnelAddress: parameters.tunnelAddress, lanAddress: parameters.lanAddress)
        }
        let router = model(self.router)
        var routers = self.site.routers.map(model)
        if !routers.contains(where: { $0.slot == router.slot }) { routers.append(router) }
        let site = Site(
            name: self.site.name, index: self.site.index, prefix: self.site.prefix, vrrpID: self.site.vrrpID,
            vip: self.site.vip, linkLocalVIP: self.site.linkLocalVIP, routers: routers.sorted { $0.slot < $1.slot })
        let plan = Plan(
            name: plan.name, ula: plan.ula, tunnel: plan.tunnel,
            relay: Relay(host: plan.relay.host, wireguardPort: plan.relay.wireguardPort,
                         registrationPort: plan.relay.registrationPort, tunnelAddress: plan.relay.tunnelAddress),
            defaults: Defaults(uplinkMTU: plan.uplinkMTU, keepalive: plan.keepalive,
                               vrrpAdvertIntervalCentiseconds: plan.vrrpAdvertIntervalCentiseconds,
                               serverWireGuardPorts: portParts[0]...portParts[1]),
            sites: [site])
        return (plan, site, router)
    }

    /// The router secret as a key, checked for length.
    public func secret() throws -> RouterSecret {
        guard let bytes = Data(base64Encoded: routerSecret), bytes.count == 32 else {
            throw ProfileError.malformedDocument("router_secret is not 32 bytes of base64")
        }
        return try RouterSecret(bytes: bytes)
    }

    /// A copy safe to print: the router secret replaced.
    public func redacted() -> ProfileDocument {
        var copy = self
        copy.routerSecret = "(redacted)"
        return copy
    }
}

/// Canonical JSON for signed documents: sorted keys, no escaped slashes, so the same document always
/// produces the same bytes (signatures are checked over the bytes as received, never re-encoded).
public enum DocumentCoding {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0a)
        return data
    }

    public static func pretty<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw ProfileError.malformedDocument(describe(error))
        } catch {
            throw ProfileError.malformedDocument("not JSON")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(path(context).isEmpty ? "" : path(context) + ".")\(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "wrong type at \(path(context))"
        case .dataCorrupted(let context): return path(context).isEmpty ? "not JSON" : "\(path(context)): \(context.debugDescription)"
        @unknown default: return "unreadable"
        }
    }

    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
