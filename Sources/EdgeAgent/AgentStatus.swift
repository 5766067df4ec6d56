import EdgeCrypto
import EdgeRender
import EdgeSystem
import Foundation

/// What `run` knows that the disk does not: kept in `/run/edgekit/status.json` while it runs.
public struct RuntimeState: Codable, Sendable, Equatable {
    /// `found`, `none` or `refused`.
    public var stick: String
    public var stickPath: String?
    /// The last apply's result line (or refusal).
    public var lastApply: String?
    public var noStickAtBoot: Bool
    public var registration: String
    public var registeredAt: String?
    public var services: String

    public init(stick: String, stickPath: String?, lastApply: String?, noStickAtBoot: Bool, registration: String,
                registeredAt: String?, services: String) {
        self.stick = stick
        self.stickPath = stickPath
        self.lastApply = lastApply
        self.noStickAtBoot = noStickAtBoot
        self.registration = registration
        self.registeredAt = registeredAt
        self.services = services
    }

    public static func load(paths: AgentPaths) -> RuntimeState? {
        FileManager.default.contents(atPath: paths.statusFile).flatMap { try? JSONDecoder().decode(RuntimeState.self, from: $0) }
    }

    public func save(paths: AgentPaths) {
        try? FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        let temporary = paths.statusFile + ".new"
        guard let data = try? JSONEncoder().encode(self) else { return }
        if (try? data.write(to: URL(fileURLWithPath: temporary))) != nil { rename(temporary, paths.statusFile) }
    }
}

/// `edgekit-agent status`: the applied generation from disk, the running agent's view, keepalived's
/// last VRRP state and the tunnel's last handshake.
public struct AgentStatus: Codable, Sendable, Equatable {
    public var stick: String
    public var stickPath: String?
    public var plan: String?
    public var site: String?
    public var slot: Int?
    public var generation: Int?
    public var previousGeneration: Int?
    public var serial: UInt64?
    /// Services that did not come up with the current generation (and no rollback brought back).
    public var failedServices: [String]?
    public var vrrp: String
    /// Seconds since the tunnel's last handshake; nil when there was none or the tunnel is absent.
    public var handshakeAgeSeconds: Int?
    public var tunnel: String
    public var registration: String
    public var agent: String
    public var note: String?

    enum CodingKeys: String, CodingKey {
        case stick, plan, site, slot, generation, serial, vrrp, tunnel, registration, agent, note
        case stickPath = "stick_path"
        case previousGeneration = "previous_generation"
        case handshakeAgeSeconds = "handshake_age_seconds"
        case failedServices = "failed_services"
    }

    public static func gather(paths: AgentPaths, now: Date = Date()) -> AgentStatus {
        let store = GenerationStore(paths: paths)
        let current = store.current
        let runtime = RuntimeState.load(paths: paths)
        let failed = store.failedServices
        let stamp = try? SiteStamp.load(from: paths.siteStamp)
        let relayKey = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile))
            .flatMap { try? JSONDecoder().decode(ProfileDocument.self, from: $0) }?.plan.relay.publicKey
        let handshake = WireGuardTunnel().latestHandshake(relayPublicKey: relayKey)
        let staleAfter = SupervisorSettings().staleAfter
        var tunnel = "absent"
        var age: Int?
        if let handshake {
            if handshake == 0 {
                tunnel = "up, no handshake yet"
            } else {
                age = max(0, Int(now.timeIntervalSince1970) - handshake)
                tunnel = "handshake \(age!) s ago" + (age! > staleAfter ? " (stale)" : "")
            }
        }
        var note: String?
        if runtime?.noStickAtBoot == true {
            note = current.map { "no stick at boot: running the last applied generation \($0.number)" }
                ?? "no stick at boot: nothing applied yet"
        }
        return AgentStatus(
            stick: runtime?.stick ?? "unknown (agent not running)", stickPath: runtime?.stickPath,
            plan: current?.manifest.plan ?? stamp?.plan, site: current?.manifest.site ?? stamp?.site,
            slot: current?.manifest.slot, generation: current?.number, previousGeneration: store.previous?.number,
            serial: current?.manifest.serial, failedServices: failed?.services.map(\.rawValue), vrrp: VRRPNotify.current(paths: paths)?.rawValue ?? "unknown",
            handshakeAgeSeconds: age, tunnel: tunnel,
            registration: runtime?.registration ?? "not attempted (agent not running)",
            agent: runtime == nil ? "not running" : "running (services: \(runtime!.services))", note: note)
    }

    public var lines: [String] {
        var lines = [
            "stick         \(stick)\(stickPath.map { " (\($0))" } ?? "")",
            "site          \(plan ?? "?")/\(site ?? "?")\(slot.map { " router \($0)" } ?? "")",
            "generation    \(generation.map(String.init) ?? "none")\(previousGeneration.map { " (previous \($0) kept)" } ?? "")",
            "serial        \(serial.map(String.init) ?? "none")",
            "vrrp          \(vrrp)",
            "tunnel        \(tunnel)",
            "registration  \(registration)",
            "agent         \(agent)",
        ]
        if let failedServices {
            lines.insert("services      not up with this generation: \(failedServices.joined(separator: ", ")) (apply its stick again to retry)", at: 4)
        }
        if let note { lines.append(note) }
        return lines
    }
}
