import EdgeErrors
import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

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

    /// Every field read with its kind's rule (`FieldRules`); the relay trusts nothing else per site.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.field(.schema, as: Int.self)
        plan = try c.field(.plan, as: String.self, FieldRules.name)
        site = try c.field(.site, as: String.self, FieldRules.name)
        slot = try c.field(.slot, as: Int.self) { FieldRules.integer($0, in: FieldRules.slots) }
        wireguardPublicKey = try c.field(.wireguardPublicKey, as: String.self, ProfileDocument.RelayParameters.wireGuardKey)
        tunnelAddress = try c.field(.tunnelAddress, as: String.self, FieldRules.address)
        sitePrefix = try c.field(.sitePrefix, as: String.self, FieldRules.prefix)
        serial = try c.field(.serial, as: UInt64.self)
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
///
/// `site` and `router` are the model's own types in their wire form (EdgeModel's `ModelCoding`);
/// decoding reads every field with the rule `plan check` uses, and `open` then checks the rules
/// between fields (`SiteRules`), so a device renders only what `plan check` would have accepted.
public struct ProfileDocument: Codable, Sendable, Equatable {
    public static let currentSchema = 1

    public var schema: Int
    public var plan: PlanParameters
    public var site: Site
    public var router: Router
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

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.field(.schema, as: Int.self)
        plan = try c.field(.plan, as: PlanParameters.self)
        // The router this device becomes is read (and named in a refusal) before the site's list.
        router = try c.field(.router, as: Router.self)
        site = try c.field(.site, as: Site.self)
        serial = try c.field(.serial, as: UInt64.self)
        issuedAt = try c.field(.issuedAt, as: String.self)
        routerSecret = try c.field(.routerSecret, as: String.self)
        certificate = try c.field(.certificate, as: String.self)
    }

    /// The plan's public parameters (no sites, no secrets) and each relay's public key. On the wire
    /// the defaults sit flat beside `name`, `ula`, `tunnel` and `relay` (schema 1); their wire form and
    /// rules are `Defaults`' own (EdgeModel's `ModelCoding`). A plan with several relays carries
    /// `relays` (a list, each with its `name`) instead of `relay`.
    public struct PlanParameters: Codable, Sendable, Equatable {
        public var name: String
        public var ula: IPv6Prefix
        public var tunnel: IPv6Prefix
        /// In the plan's order; never empty.
        public var relays: [RelayParameters]
        public var defaults: Defaults
        /// Who may log in over SSH; a new stick rotates them. Absent on the wire when there are none,
        /// so a profile of a plan without operators is byte for byte what it was before the field.
        public var operators: [Operator]
        /// The plan's `client_prefix` when it is not the default (`Plan.Addressing.defaultClientPrefix`):
        /// with several relays the routers route it through the first (docs/clients.md). Absent on
        /// the wire for the default, so profiles of plans that do not set it are as before.
        public var clientPrefix: IPv6Prefix?
        /// The plan's NAT64 /96 when it is not the default (`Plan.Addressing.defaultNAT64Prefix`):
        /// a site with `nat64` announces the resolver inside it, and with several relays the routers
        /// route its /64 through the first (docs/nat64.md). Absent on the wire for the default.
        public var nat64Prefix: IPv6Prefix?

        enum CodingKeys: String, CodingKey {
            case name, ula, tunnel, relay, relays, operators
            case clientPrefix = "client_prefix"
            case nat64Prefix = "nat64_prefix"
        }

        /// `relayPublicKeys` are the relays' WireGuard public keys in the order of `plan.relays`.
        public init(plan: Plan, relayPublicKeys: [String]) {
            precondition(relayPublicKeys.count == plan.relays.count, "one public key per relay")
            name = plan.name
            ula = plan.ula
            tunnel = plan.tunnel
            relays = zip(plan.relays, relayPublicKeys).map { RelayParameters(relay: $0, publicKey: $1) }
            defaults = plan.defaults
            operators = plan.operators
            clientPrefix = plan.clientPrefix == Plan.Addressing.defaultClientPrefix(in: plan.ula) ? nil : plan.clientPrefix
            nat64Prefix = plan.nat64.prefix == Plan.Addressing.defaultNAT64Prefix(in: plan.ula) ? nil : plan.nat64.prefix
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.field(.name, as: String.self, FieldRules.name)
            ula = try c.field(.ula, as: String.self, FieldRules.prefix)
            tunnel = try c.field(.tunnel, as: String.self, FieldRules.prefix)
            switch (c.contains(.relay), c.contains(.relays)) {
            case (true, false):
                relays = [try c.field(.relay, as: RelayParameters.self)]
            case (false, true):
                relays = try c.field(.relays, as: [RelayParameters].self) { list in
                    list.isEmpty ? .failure(FieldProblem("is empty; a plan has at least one relay")) : .success(list)
                }
            case (true, true):
                throw DocumentError(field: "plan.relays", problem: "appears beside plan.relay; a profile carries one of them")
            case (false, false):
                throw DocumentError(field: "plan.relay", problem: "is missing")
            }
            defaults = try Defaults(from: decoder)
            operators = c.contains(.operators) ? try c.field(.operators, as: [Operator].self) { list in
                list.isEmpty ? .failure(FieldProblem("is empty; a plan without operators leaves the field out")) : .success(list)
            } : []
            clientPrefix = c.contains(.clientPrefix) ? try c.field(.clientPrefix, as: String.self, FieldRules.prefix) : nil
            nat64Prefix = c.contains(.nat64Prefix) ? try c.field(.nat64Prefix, as: String.self, FieldRules.prefix) : nil
            var seen = Set<String>()
            for (index, person) in operators.enumerated() where !seen.insert(person.name).inserted {
                throw DocumentError(field: "plan.operators[\(index)].name", problem: "\(FieldRules.quoted(person.name)) appears twice; operator names are unique")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(ula, forKey: .ula)
            try c.encode(tunnel, forKey: .tunnel)
            if relays.count == 1, relays[0].relay.name == Relay.singleName {
                try c.encode(relays[0], forKey: .relay)
            } else {
                try c.encode(relays, forKey: .relays)
            }
            if !operators.isEmpty { try c.encode(operators, forKey: .operators) }
            try c.encodeIfPresent(clientPrefix, forKey: .clientPrefix)
            try c.encodeIfPresent(nat64Prefix, forKey: .nat64Prefix)
            try defaults.encode(to: encoder)
        }

        /// WireGuard PersistentKeepalive towards the relay, in seconds.
        public var keepalive: Int { defaults.keepalive }

        /// The first relay: the only one of a plan with one.
        public var relay: RelayParameters { relays[0] }
    }

    /// The plan's relay (EdgeModel's `Relay`, flat on the wire) and its WireGuard public key (base64),
    /// which also authenticates its registration answers.
    public struct RelayParameters: Codable, Sendable, Equatable {
        public var relay: Relay
        public var publicKey: String

        enum CodingKeys: String, CodingKey {
            case publicKey = "public_key"
        }

        public init(relay: Relay, publicKey: String) {
            self.relay = relay
            self.publicKey = publicKey
        }

        public init(from decoder: any Decoder) throws {
            relay = try Relay(from: decoder)
            publicKey = try decoder.container(keyedBy: CodingKeys.self).field(.publicKey, as: String.self, Self.wireGuardKey)
        }

        public func encode(to encoder: any Encoder) throws {
            try relay.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(publicKey, forKey: .publicKey)
        }

        /// A WireGuard public key: 32 bytes in standard base64, as `wg pubkey` prints it.
        static func wireGuardKey(_ text: String) -> Result<String, FieldProblem> {
            text.utf8.count == 44 && Data(base64Encoded: text)?.count == 32 ? .success(text)
                : .failure(FieldProblem("\(FieldRules.quoted(text)) is not a WireGuard public key (32 bytes of base64, as `wg pubkey` prints)"))
        }

        public var name: String { relay.name }
        public var host: String { relay.host }
        public var wireguardPort: UInt16 { relay.wireguardPort }
        public var registrationPort: UInt16 { relay.registrationPort }
        public var tunnelAddress: IPv6Address { relay.tunnelAddress }
    }

    /// The document for router `router` of `site`, with the public parts of `plan`.
    public init(plan: Plan, site: Site, router: Router, relayPublicKeys: [String], serial: UInt64,
                issuedAt: Date, routerSecret: RouterSecret, certificate: String) {
        schema = ProfileDocument.currentSchema
        self.plan = PlanParameters(plan: plan, relayPublicKeys: relayPublicKeys)
        self.site = site
        self.router = router
        self.serial = serial
        self.issuedAt = DocumentCoding.timestamp(issuedAt)
        self.routerSecret = routerSecret.bytes.base64EncodedString()
        self.certificate = certificate
    }

    /// The first rule between fields this document breaks (`SiteRules`, the rules of `plan check`),
    /// or nil: the router must be one of the site's routers, exactly as listed there.
    public func problem() -> DocumentError? {
        if let problem = SiteRules.planProblem(ula: plan.ula, tunnel: plan.tunnel, relays: plan.relays.map(\.relay)) { return problem }
        if let prefix = plan.clientPrefix, prefix.length != 64 || !plan.ula.contains(prefix) || prefix == site.prefix {
            return DocumentError(field: "plan.client_prefix", problem: "\(prefix) is not a /64 of the plan's ula \(plan.ula) apart from the site's")
        }
        if let prefix = plan.nat64Prefix, prefix.length != 96 || !plan.ula.contains(prefix) || site.prefix.contains(prefix) {
            return DocumentError(field: "plan.nat64_prefix", problem: "\(prefix) is not a /96 of the plan's ula \(plan.ula) outside the site's /64")
        }
        // The router this device becomes first, so its own field is the one named.
        if let problem = SiteRules.routerProblem(router, field: "router", site: site, ula: plan.ula, tunnel: plan.tunnel) {
            return problem
        }
        if let problem = SiteRules.siteProblem(site, ula: plan.ula, tunnel: plan.tunnel,
                                               relayTunnelAddresses: plan.relays.map(\.tunnelAddress)) { return problem }
        guard let listed = site.router(slot: router.slot) else {
            return DocumentError(field: "router.slot", problem: "\(router.slot) is not one of site.routers")
        }
        guard listed == router else {
            return DocumentError(field: "router", problem: "differs from slot \(router.slot) in site.routers")
        }
        return nil
    }

    /// The model as the renderers take it: a one-site plan with every router of that site. Throws
    /// the first broken rule (`problem()`), so nothing is rendered from a document `open` would refuse.
    public func model() throws -> (plan: Plan, site: Site, router: Router) {
        if let problem = problem() { throw ProfileError.malformedDocument(problem.description, cause: ErrorCause(problem)) }
        var site = site
        site.routers.sort { $0.slot < $1.slot }
        let plan = Plan(name: plan.name, ula: plan.ula, tunnel: plan.tunnel, relays: plan.relays.map(\.relay),
                        defaults: plan.defaults, sites: [site], operators: plan.operators, clientPrefix: plan.clientPrefix,
                        nat64: plan.nat64Prefix.map { NAT64(prefix: $0) })
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
