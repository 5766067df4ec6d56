import EdgeCrypto
import EdgeModel
import EdgeRender
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The router's health (docs/network.md, "Health"): healthy while its uplink has a carrier and a
/// default route and the relay answers the probe through the tunnel. keepalived tracks it
/// (`track_file`): an unhealthy router's priority drops below every healthy peer's, so a master whose
/// uplink is pulled or black-holed yields the VIPs, and the relay claim moves with them.
///
/// Hysteresis: one look at a dead uplink, or `misses` unanswered probes in a row, make the router
/// unhealthy; it is healthy again only after `rise` answered probes in a row with the uplink up, so
/// a lossy path does not move the VIPs back and forth. A router starts unhealthy (keepalived's
/// `init_file 1`), so one that just booted never takes the site over before its tunnel works.
public struct HealthTracker: Sendable, Equatable {
    public enum Verdict: String, Sendable, Codable {
        case healthy, unhealthy
    }

    /// One look: what is wrong with the uplink (nil: carrier and default route are there), and
    /// whether the relay answered the probe.
    public struct Sample: Sendable, Equatable {
        public var uplinkProblem: String?
        public var relayAnswered: Bool

        public init(uplinkProblem: String?, relayAnswered: Bool) {
            self.uplinkProblem = uplinkProblem
            self.relayAnswered = relayAnswered
        }
    }

    public let misses: Int
    public let rise: Int
    public private(set) var verdict = Verdict.unhealthy
    public private(set) var reason = "starting: the relay has not answered a probe yet"
    var missedInARow = 0
    var answeredInARow = 0

    /// `healthy`: an agent restarted on a router that was healthy (its track file says so) goes on
    /// from there, so restarting the agent never lowers a master's priority for `rise` probes.
    public init(misses: Int = 3, rise: Int = 3, healthy: Bool = false) {
        self.misses = max(1, misses)
        self.rise = max(1, rise)
        if healthy {
            verdict = .healthy
            reason = "healthy before this agent started (track file); probing the relay again"
        }
    }

    /// Takes one sample of the one relay at `relay` (its tunnel address); true when the verdict changed.
    @discardableResult
    public mutating func record(_ sample: Sample, relay: String) -> Bool {
        record(sample, relays: "the relay \(relay)")
    }

    /// Takes one sample, `relays` naming what was probed in words ("the relay fd00::1", "any of the
    /// relays a, b": with several, an answer from any of them counts); true when the verdict changed.
    @discardableResult
    public mutating func record(_ sample: Sample, relays: String) -> Bool {
        if sample.relayAnswered {
            answeredInARow += 1
            missedInARow = 0
        } else {
            missedInARow += 1
            answeredInARow = 0
        }
        let before = verdict
        if let problem = sample.uplinkProblem {
            verdict = .unhealthy
            reason = problem
        } else if verdict == .healthy, missedInARow >= misses {
            verdict = .unhealthy
            reason = "\(relays) did not answer \(missedInARow) probes in a row"
        } else if verdict == .unhealthy, answeredInARow >= rise {
            verdict = .healthy
            reason = "uplink up; \(relays) answered \(answeredInARow) probes in a row"
        } else if verdict == .unhealthy {
            reason = sample.relayAnswered
                ? "uplink up; \(relays) answered \(answeredInARow) of the \(rise) probes in a row needed"
                : "uplink up; \(relays) did not answer \(missedInARow) probes in a row"
        }
        return verdict != before
    }
}

/// What the agent knows of its health, for `status`, the metrics and keepalived.
public struct HealthReport: Codable, Sendable, Equatable {
    public var verdict: HealthTracker.Verdict
    public var reason: String
    /// When the verdict last changed (ISO 8601).
    public var since: String
    /// The relay the site's traffic goes through (its tunnel address), its last probe's result and
    /// round trip. With one relay, the relay.
    public var relay: String
    public var probeAnswered: Bool
    public var roundTripSeconds: Double?
    /// Every relay's probe, in the site's order of preference; nil in a health.json written before
    /// plans could hold several relays.
    public var relays: [RelayPath]?

    /// One relay as the path choice sees it.
    public struct RelayPath: Codable, Sendable, Equatable {
        public var name: String
        public var address: String
        public var interface: String
        /// Up after 3 answered probes in a row, down after 3 missed (`PathChoice`).
        public var up: Bool
        public var chosen: Bool
        public var probeAnswered: Bool
        public var roundTripSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case name, address, interface, up, chosen
            case probeAnswered = "probe_answered"
            case roundTripSeconds = "round_trip_seconds"
        }
    }

    enum CodingKeys: String, CodingKey {
        case verdict, reason, since, relay, relays
        case probeAnswered = "probe_answered"
        case roundTripSeconds = "round_trip_seconds"
    }

    /// keepalived's `track_file`: `0` healthy, `1` unhealthy (multiplied by the negative weight the
    /// rendered keepalived.conf gives it).
    public static let trackFile = ConfigPaths.healthTrackFile
    public static func file(paths: AgentPaths) -> String { paths.runtime + "/health.json" }

    public static func load(paths: AgentPaths) -> HealthReport? {
        guard let data = FileManager.default.contents(atPath: file(paths: paths)) else { return nil }
        return try? JSONDecoder().decode(HealthReport.self, from: data)
    }

    /// The verdict in keepalived's track file, if there is one (nil at boot: /run is empty).
    static func tracked(paths: AgentPaths) -> HealthTracker.Verdict? {
        guard let text = try? String(contentsOfFile: paths.live(trackFile), encoding: .utf8) else { return nil }
        switch text.trimmingWhitespace() {
        case "0": return .healthy
        case "1": return .unhealthy
        default: return nil
        }
    }

    /// Writes health.json, and the track file when it does not say this verdict yet, each by rename.
    func save(paths: AgentPaths) throws {
        try FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Self.replace(paths.runtime + "/health.json", with: try encoder.encode(self))
        if Self.tracked(paths: paths) != verdict {
            try Self.replace(paths.live(Self.trackFile), with: Data((verdict == .healthy ? "0\n" : "1\n").utf8))
        }
    }

    static func replace(_ path: String, with data: Data) throws {
        let temporary = path + ".\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw AgentError.cannotRecord(path, "cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let why = DurableFiles.errorText()
            unlink(temporary)
            throw AgentError.cannotRecord(path, why)
        }
    }
}

/// What the applied generation says health is about: the uplink port and every relay's tunnel
/// address, in the order the site prefers the relays, each with the tunnel that reaches it.
struct HealthTarget: Equatable {
    struct Relay: Equatable {
        var name: String
        var tunnelAddress: IPv6Address
        var interface: String
    }

    var uplink: String
    /// In the site's order of preference (`Plan.relays(preferredBy:)`).
    var relays: [Relay]
    /// The plan /48, which the path choice routes through the chosen relay's tunnel.
    var ula: IPv6Prefix

    static func applied(paths: AgentPaths) -> HealthTarget? {
        guard let (_, model) = Agent.appliedModel(paths: paths) else { return nil }
        let tunnels = RouterTunnel.all(of: model.plan)
        let relays = model.plan.relays(preferredBy: model.site).compactMap { relay in
            tunnels.first { $0.relay == relay }.map { Relay(name: relay.name, tunnelAddress: relay.tunnelAddress, interface: $0.interface) }
        }
        return HealthTarget(uplink: InterfaceNames.uplink(of: model.router), relays: relays, ula: model.plan.ula)
    }
}

/// The uplink as the kernel has it: a carrier and a default route (IPv4 or IPv6) through it.
enum UplinkState {
    /// Nil when the uplink is usable, else what is missing, in words.
    static func problem(interface: String, sysfs: String = "/sys/class/net", proc: String = "/proc/net") -> String? {
        guard let carrier = try? String(contentsOfFile: "\(sysfs)/\(interface)/carrier", encoding: .utf8) else {
            return "uplink \(interface) is not there"
        }
        guard carrier.trimmingWhitespace() == "1" else {
            return "uplink \(interface) has no carrier (link down)"
        }
        guard hasDefaultRoute(interface: interface, proc: proc) else {
            return "uplink \(interface) has no default route (no DHCP lease or router advertisement)"
        }
        return nil
    }

    /// /proc/net/route: `Iface Destination Gateway Flags … Mask …`, hex; /proc/net/ipv6_route:
    /// `dest plen src plen nexthop metric refcnt use flags iface`.
    static func hasDefaultRoute(interface: String, proc: String) -> Bool {
        if let routes = try? String(contentsOfFile: "\(proc)/route", encoding: .utf8) {
            for line in routes.split(separator: "\n").dropFirst() {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if fields.count > 7, fields[0] == interface, fields[1] == "00000000", fields[7] == "00000000" { return true }
            }
        }
        if let routes = try? String(contentsOfFile: "\(proc)/ipv6_route", encoding: .utf8) {
            let zero = String(repeating: "0", count: 32)
            for line in routes.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count > 9, fields[9] == interface, fields[0] == zero, fields[1] == "00" { return true }
            }
        }
        return false
    }
}
