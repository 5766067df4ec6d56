#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// `/etc/edgekit/relay.json`: everything the relay daemon needs, and nothing per site (docs/relay.md).
/// The one schema of the file: `edgekit render --relay` writes it (EdgeRender fills it from the plan),
/// `edgekit-relay serve --config` reads it (EdgeRelay's `load(path:)`). Keys are snake_case; unknown
/// keys are refused so a typo does not silently fall back to a default. The tuning keys (rate limits,
/// timers) are written only when they differ from their defaults, so a rendered file carries the
/// plan-derived keys alone.
public struct RelayConfig: Codable, Sendable, Equatable {
    /// Where the daemon looks by default (`edgekit-relay serve --config`).
    public static let defaultPath = "/etc/edgekit/relay.json"

    /// Address the registration socket binds to; `::` takes IPv4 and IPv6.
    public var listenAddress: String
    /// The plan's `registration_port`.
    public var listenPort: UInt16
    /// The relay's WireGuard interface (e.g. `wg0`), created beforehand (systemd-networkd, wg-quick, wireguard-go).
    public var interface: String
    /// When set, the relay also sets the interface's WireGuard listen port (the plan's `wireguard_port`).
    public var wireguardPort: UInt16?
    /// The relay's WireGuard private key, base64 as `wg genkey` prints it; file mode 0600.
    public var privateKeyFile: String
    /// The operator public key in signify form.
    public var operatorPublicKeyFile: String
    /// The plan name every certificate must carry.
    public var plan: String
    /// The plan's ULA /48: every site prefix must be a /64 inside it.
    public var ula: IPv6Prefix
    /// Where router tunnel /128s come from.
    public var tunnelPrefix: IPv6Prefix
    /// The SQLite state database (WAL mode; its folder must exist and be writable).
    public var stateDatabase: String
    public var rateLimit: RateLimit
    /// How long accepted registrations are collected before one `wg set` applies them.
    public var batchWindowMilliseconds: Int
    /// How long a CHALLENGE cookie stays valid.
    public var cookieLifetimeSeconds: Double
    /// How often the daemon looks for new revocations.
    public var revocationPollMilliseconds: Int
    /// How often the daemon saves the peers' WireGuard endpoints (restored with the peers).
    public var endpointSaveMilliseconds: Int
    /// The routers' `PersistentKeepalive` (the plan's keepalive, 25 s by default): `status` shows a
    /// router silent for longer than 3 of these as down (docs/relay.md, "Status").
    public var keepaliveSeconds: Int
    /// Addresses the Prometheus endpoint (`GET /metrics`) listens on, each on `metricsPort`; empty:
    /// no endpoint. The rendered file has `::1` and the relay's tunnel address (docs/relay.md, "Metrics").
    public var metricsAddresses: [String]
    /// TCP port of the Prometheus endpoint.
    public var metricsPort: UInt16
    /// The default `metrics_port`.
    public static let defaultMetricsPort: UInt16 = 9821
    /// The folder of update bundles the relay serves to its routers (docs/updates.md, "From the
    /// relay"); nil: none served.
    public var bundlesDirectory: String?
    /// Addresses the update endpoint (`GET /update`, `GET /bundles/NAME`) listens on, each on
    /// `updatePort`: the relay's tunnel address in the rendered file, so only routers (through
    /// their tunnels) reach it.
    public var updateAddresses: [String]
    public var updatePort: UInt16
    public static let defaultUpdatePort: UInt16 = 9822
    /// The plan's clients (laptops, phones) that connect through this relay: WireGuard peers the
    /// daemon keeps beside the routers, each with its /128 (docs/clients.md). Empty on other relays.
    public var clients: [Client]
    /// The public prefix the provider routes to this relay (the plan's `public_prefix`), nil when it
    /// has none: the daemon routes it into the tunnel, with a blackhole behind (docs/dmz.md).
    public var publicPrefix: IPv6Prefix?
    /// Which site /64's master gets which DMZ /64 of `publicPrefix`: the relay routes a DMZ to
    /// whichever router holds its site's prefix.
    public var dmzRoutes: [DMZRoute]

    /// One site's DMZ as the relay routes it.
    public struct DMZRoute: Codable, Sendable, Equatable {
        public var sitePrefix: IPv6Prefix
        public var prefix: IPv6Prefix

        public init(sitePrefix: IPv6Prefix, prefix: IPv6Prefix) {
            self.sitePrefix = sitePrefix
            self.prefix = prefix
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case sitePrefix = "site_prefix"
            case prefix
        }
    }

    /// One client as the relay holds it: no secret, only its public key and address.
    public struct Client: Codable, Sendable, Equatable {
        public var name: String
        /// Base64 WireGuard public key.
        public var publicKey: String
        /// Its /128 (the peer's only AllowedIPs).
        public var address: IPv6Address

        public init(name: String, publicKey: String, address: IPv6Address) {
            self.name = name
            self.publicKey = publicKey
            self.address = address
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name
            case publicKey = "public_key"
            case address
        }
    }

    public struct RateLimit: Codable, Sendable, Equatable {
        public var perSourcePerSecond: Double
        public var perSourceBurst: Double
        public var globalPerSecond: Double
        /// Number of per-source buckets (fixed memory; sources hash onto them).
        public var buckets: Int

        public init(perSourcePerSecond: Double = 20, perSourceBurst: Double = 40, globalPerSecond: Double = 5000,
                    buckets: Int = 4096) {
            self.perSourcePerSecond = perSourcePerSecond
            self.perSourceBurst = perSourceBurst
            self.globalPerSecond = globalPerSecond
            self.buckets = buckets
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case perSourcePerSecond = "per_source_per_second"
            case perSourceBurst = "per_source_burst"
            case globalPerSecond = "global_per_second"
            case buckets
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = RateLimit()
            perSourcePerSecond = try c.decodeIfPresent(Double.self, forKey: .perSourcePerSecond) ?? d.perSourcePerSecond
            perSourceBurst = try c.decodeIfPresent(Double.self, forKey: .perSourceBurst) ?? d.perSourceBurst
            globalPerSecond = try c.decodeIfPresent(Double.self, forKey: .globalPerSecond) ?? d.globalPerSecond
            buckets = try c.decodeIfPresent(Int.self, forKey: .buckets) ?? d.buckets
        }
    }

    public init(listenAddress: String = "::", listenPort: UInt16 = Relay.defaultRegistrationPort, interface: String,
                wireguardPort: UInt16? = nil, privateKeyFile: String, operatorPublicKeyFile: String, plan: String,
                ula: IPv6Prefix, tunnelPrefix: IPv6Prefix, stateDatabase: String, rateLimit: RateLimit = RateLimit(),
                batchWindowMilliseconds: Int = 5, cookieLifetimeSeconds: Double = 30, revocationPollMilliseconds: Int = 1000,
                endpointSaveMilliseconds: Int = 10_000, keepaliveSeconds: Int = 25, metricsAddresses: [String] = [],
                metricsPort: UInt16 = RelayConfig.defaultMetricsPort, bundlesDirectory: String? = nil, updateAddresses: [String] = [],
                updatePort: UInt16 = RelayConfig.defaultUpdatePort, clients: [Client] = [],
                publicPrefix: IPv6Prefix? = nil, dmzRoutes: [DMZRoute] = []) {
        self.clients = clients
        self.publicPrefix = publicPrefix
        self.dmzRoutes = dmzRoutes
        self.listenAddress = listenAddress
        self.listenPort = listenPort
        self.interface = interface
        self.wireguardPort = wireguardPort
        self.privateKeyFile = privateKeyFile
        self.operatorPublicKeyFile = operatorPublicKeyFile
        self.plan = plan
        self.ula = ula
        self.tunnelPrefix = tunnelPrefix
        self.stateDatabase = stateDatabase
        self.rateLimit = rateLimit
        self.batchWindowMilliseconds = batchWindowMilliseconds
        self.cookieLifetimeSeconds = cookieLifetimeSeconds
        self.revocationPollMilliseconds = revocationPollMilliseconds
        self.endpointSaveMilliseconds = endpointSaveMilliseconds
        self.keepaliveSeconds = keepaliveSeconds
        self.metricsAddresses = metricsAddresses
        self.metricsPort = metricsPort
        self.bundlesDirectory = bundlesDirectory
        self.updateAddresses = updateAddresses
        self.updatePort = updatePort
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case listenAddress = "listen_address"
        case listenPort = "listen_port"
        case interface
        case wireguardPort = "wireguard_port"
        case privateKeyFile = "private_key_file"
        case operatorPublicKeyFile = "operator_public_key_file"
        case plan, ula
        case tunnelPrefix = "tunnel_prefix"
        case stateDatabase = "state_database"
        case rateLimit = "rate_limit"
        case batchWindowMilliseconds = "batch_window_ms"
        case cookieLifetimeSeconds = "cookie_lifetime_seconds"
        case revocationPollMilliseconds = "revocation_poll_ms"
        case endpointSaveMilliseconds = "endpoint_save_ms"
        case keepaliveSeconds = "keepalive_seconds"
        case metricsAddresses = "metrics_addresses"
        case metricsPort = "metrics_port"
        case bundlesDirectory = "bundles_directory"
        case updateAddresses = "update_addresses"
        case updatePort = "update_port"
        case clients
        case publicPrefix = "public_prefix"
        case dmzRoutes = "dmz_routes"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listenAddress = try c.decodeIfPresent(String.self, forKey: .listenAddress) ?? "::"
        listenPort = try c.decodeIfPresent(UInt16.self, forKey: .listenPort) ?? Relay.defaultRegistrationPort
        interface = try c.decode(String.self, forKey: .interface)
        wireguardPort = try c.decodeIfPresent(UInt16.self, forKey: .wireguardPort)
        privateKeyFile = try c.decode(String.self, forKey: .privateKeyFile)
        operatorPublicKeyFile = try c.decode(String.self, forKey: .operatorPublicKeyFile)
        plan = try c.decode(String.self, forKey: .plan)
        ula = try c.decode(IPv6Prefix.self, forKey: .ula)
        tunnelPrefix = try c.decode(IPv6Prefix.self, forKey: .tunnelPrefix)
        stateDatabase = try c.decode(String.self, forKey: .stateDatabase)
        rateLimit = try c.decodeIfPresent(RateLimit.self, forKey: .rateLimit) ?? RateLimit()
        batchWindowMilliseconds = try c.decodeIfPresent(Int.self, forKey: .batchWindowMilliseconds) ?? 5
        cookieLifetimeSeconds = try c.decodeIfPresent(Double.self, forKey: .cookieLifetimeSeconds) ?? 30
        revocationPollMilliseconds = try c.decodeIfPresent(Int.self, forKey: .revocationPollMilliseconds) ?? 1000
        endpointSaveMilliseconds = try c.decodeIfPresent(Int.self, forKey: .endpointSaveMilliseconds) ?? 10_000
        keepaliveSeconds = try c.decodeIfPresent(Int.self, forKey: .keepaliveSeconds) ?? 25
        metricsAddresses = try c.decodeIfPresent([String].self, forKey: .metricsAddresses) ?? []
        metricsPort = try c.decodeIfPresent(UInt16.self, forKey: .metricsPort) ?? RelayConfig.defaultMetricsPort
        bundlesDirectory = try c.decodeIfPresent(String.self, forKey: .bundlesDirectory)
        updateAddresses = try c.decodeIfPresent([String].self, forKey: .updateAddresses) ?? []
        updatePort = try c.decodeIfPresent(UInt16.self, forKey: .updatePort) ?? RelayConfig.defaultUpdatePort
        clients = try c.decodeIfPresent([Client].self, forKey: .clients) ?? []
        publicPrefix = try c.decodeIfPresent(IPv6Prefix.self, forKey: .publicPrefix)
        dmzRoutes = try c.decodeIfPresent([DMZRoute].self, forKey: .dmzRoutes) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let defaults = RelayConfig(interface: interface, privateKeyFile: privateKeyFile, operatorPublicKeyFile: operatorPublicKeyFile,
                                   plan: plan, ula: ula, tunnelPrefix: tunnelPrefix, stateDatabase: stateDatabase)
        try c.encode(listenAddress, forKey: .listenAddress)
        try c.encode(listenPort, forKey: .listenPort)
        try c.encode(interface, forKey: .interface)
        try c.encodeIfPresent(wireguardPort, forKey: .wireguardPort)
        try c.encode(privateKeyFile, forKey: .privateKeyFile)
        try c.encode(operatorPublicKeyFile, forKey: .operatorPublicKeyFile)
        try c.encode(plan, forKey: .plan)
        try c.encode(ula, forKey: .ula)
        try c.encode(tunnelPrefix, forKey: .tunnelPrefix)
        try c.encode(stateDatabase, forKey: .stateDatabase)
        if rateLimit != defaults.rateLimit { try c.encode(rateLimit, forKey: .rateLimit) }
        if batchWindowMilliseconds != defaults.batchWindowMilliseconds { try c.encode(batchWindowMilliseconds, forKey: .batchWindowMilliseconds) }
        if cookieLifetimeSeconds != defaults.cookieLifetimeSeconds { try c.encode(cookieLifetimeSeconds, forKey: .cookieLifetimeSeconds) }
        if revocationPollMilliseconds != defaults.revocationPollMilliseconds { try c.encode(revocationPollMilliseconds, forKey: .revocationPollMilliseconds) }
        if endpointSaveMilliseconds != defaults.endpointSaveMilliseconds { try c.encode(endpointSaveMilliseconds, forKey: .endpointSaveMilliseconds) }
        if keepaliveSeconds != defaults.keepaliveSeconds { try c.encode(keepaliveSeconds, forKey: .keepaliveSeconds) }
        if !metricsAddresses.isEmpty { try c.encode(metricsAddresses, forKey: .metricsAddresses) }
        if metricsPort != defaults.metricsPort { try c.encode(metricsPort, forKey: .metricsPort) }
        try c.encodeIfPresent(bundlesDirectory, forKey: .bundlesDirectory)
        if !updateAddresses.isEmpty { try c.encode(updateAddresses, forKey: .updateAddresses) }
        if updatePort != defaults.updatePort { try c.encode(updatePort, forKey: .updatePort) }
        if !clients.isEmpty { try c.encode(clients, forKey: .clients) }
        try c.encodeIfPresent(publicPrefix, forKey: .publicPrefix)
        if !dmzRoutes.isEmpty { try c.encode(dmzRoutes, forKey: .dmzRoutes) }
    }

    /// The first rule the values break, worded after the key (`ula … must be a /48`), or nil.
    public func problem() -> String? {
        if case .failure(let problem) = FieldRules.name(plan) { return "plan \(problem)" }
        guard ula.length == 48 else { return "ula \(ula) must be a /48" }
        guard !ula.overlaps(tunnelPrefix) else { return "tunnel_prefix \(tunnelPrefix) must lie outside ula \(ula)" }
        guard !interface.isEmpty, interface.utf8.count <= 15 else {
            return "interface \(FieldRules.quoted(interface)) must be 1 to 15 characters"
        }
        guard case .success(.name) = FieldRules.interface(interface) else {
            return "interface \(FieldRules.quoted(interface)) is not an interface name (no '/', ':' or spaces)"
        }
        guard rateLimit.perSourcePerSecond > 0, rateLimit.perSourceBurst >= 1, rateLimit.globalPerSecond > 0,
              (1...1_048_576).contains(rateLimit.buckets) else {
            return "rate_limit values must be positive (burst ≥ 1, buckets 1…1048576)"
        }
        guard (0...1000).contains(batchWindowMilliseconds) else { return "batch_window_ms \(batchWindowMilliseconds) must be 0…1000" }
        guard cookieLifetimeSeconds > 0, cookieLifetimeSeconds <= 300 else { return "cookie_lifetime_seconds must be in (0, 300]" }
        guard revocationPollMilliseconds >= 10 else { return "revocation_poll_ms must be at least 10" }
        guard endpointSaveMilliseconds >= 100 else { return "endpoint_save_ms must be at least 100" }
        guard (1...65535).contains(keepaliveSeconds) else { return "keepalive_seconds must be 1…65535" }
        if let bad = metricsAddresses.first(where: { IPv6Address($0) == nil && !RelayConfig.isIPv4($0) }) {
            return "metrics_addresses entry \(FieldRules.quoted(bad)) is not an IP address (e.g. \"::1\" or the relay's tunnel address)"
        }
        guard metricsPort != 0 else { return "metrics_port must be 1…65535" }
        if let bundlesDirectory, !bundlesDirectory.hasPrefix("/") {
            return "bundles_directory \(FieldRules.quoted(bundlesDirectory)) must be an absolute path"
        }
        if let bad = updateAddresses.first(where: { IPv6Address($0) == nil && !RelayConfig.isIPv4($0) }) {
            return "update_addresses entry \(FieldRules.quoted(bad)) is not an IP address (the relay's tunnel address)"
        }
        guard updatePort != 0 else { return "update_port must be 1…65535" }
        guard updateAddresses.isEmpty || updatePort != metricsPort else { return "update_port must differ from metrics_port" }
        var names = Set<String>(), keys = Set<String>(), addresses = Set<IPv6Address>()
        for client in clients {
            if case .failure(let problem) = FieldRules.name(client.name) { return "clients: name \(problem)" }
            guard Data(base64Encoded: client.publicKey)?.count == 32 else {
                return "clients: \(client.name)'s public_key is not a base64 WireGuard key (32 bytes)"
            }
            guard ula.contains(client.address) else { return "clients: \(client.name)'s address \(client.address) is outside ula \(ula)" }
            guard names.insert(client.name).inserted, keys.insert(client.publicKey).inserted,
                  addresses.insert(client.address).inserted else {
                return "clients: \(client.name) repeats another client's name, key or address"
            }
        }
        if !dmzRoutes.isEmpty, publicPrefix == nil { return "dmz_routes need public_prefix" }
        var dmzPrefixes = Set<IPv6Prefix>(), dmzSites = Set<IPv6Prefix>()
        for route in dmzRoutes {
            guard route.sitePrefix.length == 64, ula.contains(route.sitePrefix) else {
                return "dmz_routes: site_prefix \(route.sitePrefix) is not a /64 inside ula \(ula)"
            }
            guard route.prefix.length == 64, let publicPrefix, publicPrefix.contains(route.prefix) else {
                return "dmz_routes: prefix \(route.prefix) is not a /64 inside public_prefix \(publicPrefix.map { "\($0)" } ?? "(none)")"
            }
            guard dmzPrefixes.insert(route.prefix).inserted, dmzSites.insert(route.sitePrefix).inserted else {
                return "dmz_routes: \(route.prefix) or \(route.sitePrefix) appears twice"
            }
        }
        return nil
    }

    /// A dotted IPv4 address (`127.0.0.1`).
    public static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { $0.count <= 3 && UInt8($0) != nil }
    }

    /// The keys the file may hold, for the loader's unknown-key check.
    public static let keys = Set(CodingKeys.allCases.map(\.rawValue))
    public static let rateLimitKeys = Set(RateLimit.CodingKeys.allCases.map(\.rawValue))
    public static let clientKeys = Set(Client.CodingKeys.allCases.map(\.rawValue))
    public static let dmzRouteKeys = Set(DMZRoute.CodingKeys.allCases.map(\.rawValue))
}
