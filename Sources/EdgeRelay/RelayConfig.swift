import EdgeModel
import Foundation

/// `/etc/edgekit/relay.json`: everything the relay needs, and nothing per site (docs/relay.md).
///
/// Written by `edgekit render --relay`; keys are snake_case, unknown keys are refused so a typo
/// does not silently fall back to a default.
public struct RelayConfig: Codable, Sendable, Equatable {
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
                endpointSaveMilliseconds: Int = 10_000) {
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
    }

    /// Reads and checks a config file; every problem names the file and the key.
    public static func load(path: String) throws -> RelayConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RelayError.config(path, "cannot be read (pass --config FILE; the default is \(defaultPath))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RelayError.config(path, "is not a JSON object")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw RelayError.config(path, "has unknown key \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let limits = object["rate_limit"] as? [String: Any] {
            let knownLimits = Set(RateLimit.CodingKeys.allCases.map(\.rawValue))
            if let unknown = limits.keys.sorted().first(where: { !knownLimits.contains($0) }) {
                throw RelayError.config(path, "has unknown key \"rate_limit.\(unknown)\"")
            }
        }
        let config: RelayConfig
        do {
            config = try JSONDecoder().decode(RelayConfig.self, from: data)
        } catch let error as DecodingError {
            throw RelayError.config(path, describe(error))
        }
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        guard ula.length == 48 else { throw RelayError.config(path, "ula \(ula) must be a /48") }
        guard !ula.overlaps(tunnelPrefix) else {
            throw RelayError.config(path, "tunnel_prefix \(tunnelPrefix) must lie outside ula \(ula)")
        }
        guard !interface.isEmpty, interface.utf8.count <= 15 else {
            throw RelayError.config(path, "interface \"\(interface)\" must be 1 to 15 characters")
        }
        guard rateLimit.perSourcePerSecond > 0, rateLimit.perSourceBurst >= 1, rateLimit.globalPerSecond > 0,
              (1...1_048_576).contains(rateLimit.buckets) else {
            throw RelayError.config(path, "rate_limit values must be positive (burst ≥ 1, buckets 1…1048576)")
        }
        guard (0...1000).contains(batchWindowMilliseconds) else {
            throw RelayError.config(path, "batch_window_ms \(batchWindowMilliseconds) must be 0…1000")
        }
        guard cookieLifetimeSeconds > 0, cookieLifetimeSeconds <= 300 else {
            throw RelayError.config(path, "cookie_lifetime_seconds must be in (0, 300]")
        }
        guard revocationPollMilliseconds >= 10 else {
            throw RelayError.config(path, "revocation_poll_ms must be at least 10")
        }
        guard endpointSaveMilliseconds >= 100 else {
            throw RelayError.config(path, "endpoint_save_ms must be at least 100")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, _): return "is missing key \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "has the wrong type at \"\(path(context))\""
        case .dataCorrupted(let context): return "has a bad value at \"\(path(context))\": \(context.debugDescription)"
        @unknown default: return "is unreadable"
        }
    }
}

/// Relay failures worded for the operator: what failed, on which input, what to do.
public enum RelayError: Error, Equatable, CustomStringConvertible {
    case config(String, String)
    case key(String, String)
    case database(String, String)
    case wireGuard(String)

    public var description: String {
        switch self {
        case .config(let path, let why): "\(path): \(why)"
        case .key(let path, let why): "\(path): \(why)"
        case .database(let path, let why): "state database \(path): \(why)"
        case .wireGuard(let why): why
        }
    }
}
