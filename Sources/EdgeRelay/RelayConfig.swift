import EdgeErrors
import EdgeModel
import Foundation

/// Reading `/etc/edgekit/relay.json` (`EdgeModel.RelayConfig`, its one schema) in the daemon: every
/// problem names the file and the key.
extension RelayConfig {
    /// Reads and checks a config file; every problem names the file and the key.
    public static func load(path: String) throws -> RelayConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RelayError.config(path, "cannot be read (pass --config FILE; the default is \(defaultPath))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RelayError.config(path, "is not a JSON object")
        }
        let known = RelayConfig.keys
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw RelayError.config(path, "has unknown key \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let limits = object["rate_limit"] as? [String: Any] {
            let knownLimits = RelayConfig.rateLimitKeys
            if let unknown = limits.keys.sorted().first(where: { !knownLimits.contains($0) }) {
                throw RelayError.config(path, "has unknown key \"rate_limit.\(unknown)\"")
            }
        }
        for client in object["clients"] as? [[String: Any]] ?? [] {
            if let unknown = client.keys.sorted().first(where: { !RelayConfig.clientKeys.contains($0) }) {
                throw RelayError.config(path, "has unknown key \"clients.\(unknown)\"")
            }
        }
        for route in object["dmz_routes"] as? [[String: Any]] ?? [] {
            if let unknown = route.keys.sorted().first(where: { !RelayConfig.dmzRouteKeys.contains($0) }) {
                throw RelayError.config(path, "has unknown key \"dmz_routes.\(unknown)\"")
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
        if let problem = problem() { throw RelayError.config(path, problem) }
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
public enum RelayError: EdgeError, Equatable {
    case config(String, String)
    case key(String, String, cause: ErrorCause = .none)
    case database(String, String, cause: ErrorCause = .none)
    case wireGuard(String)
    /// A bundle being published (its name, or the file or stream that failed).
    case bundle(String, String)

    public var description: String {
        switch self {
        case .config(let path, let why): "\(path): \(why)"
        case .key(let path, let why, _): "\(path): \(why)"
        case .database(let path, let why, _): "state database \(path): \(why)"
        case .wireGuard(let why): why
        case .bundle(let what, let why): "\(what): \(why)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .config: "relay.config"
        case .key: "relay.key"
        case .database: "relay.database"
        case .wireGuard: "relay.wireguard"
        case .bundle: "relay.bundle"
        }
    }

    public var input: String? {
        switch self {
        case .config(let path, _), .key(let path, _, _), .database(let path, _, _), .bundle(let path, _): path
        case .wireGuard: nil
        }
    }

    public var message: String {
        switch self {
        case .config(_, let why), .key(_, let why, _), .database(_, let why, _), .wireGuard(let why), .bundle(_, let why): why
        }
    }

    public var cause: (any Error)? {
        switch self {
        case .key(_, _, let cause), .database(_, _, let cause): cause.error
        case .config, .wireGuard, .bundle: nil
        }
    }
}
