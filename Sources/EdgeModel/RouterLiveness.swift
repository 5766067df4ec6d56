#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// How one registered router looks from the relay now: its claim, whether WireGuard still hears
/// from it, when it last registered (issue 17.5) and what it reported (issue 18.2). One element of
/// `routers` in `edgekit-relay status --format json` (docs/relay.md, "Status"): the relay makes the
/// rows (EdgeRelay, `RouterLiveness.rows`) and `edgekit fleet status` reads them, one type for both.
public struct RouterLiveness: Codable, Sendable, Equatable {
    public var site: String
    public var slot: Int
    public var publicKey: String
    /// "master" or "backup", the claim of its last accepted registration.
    public var claim: String
    /// `up`, or `down` when WireGuard has not heard from it for longer than 3 keepalives (or never).
    public var state: String
    /// Seconds since the peer's last handshake (`wg show IF latest-handshakes`); nil: none yet, or unreadable.
    public var handshakeAgeSeconds: Int?
    /// Seconds since the relay last heard from it: its last handshake or the last time its received
    /// bytes grew, whichever is later; what `state` is judged by. nil: never (or a relay from before
    /// the field).
    public var heardAgeSeconds: Int?
    /// When it last registered (relay clock, ISO 8601) and how long ago.
    public var registeredAt: String
    public var registeredAgeSeconds: Int
    public var serial: Int64
    /// Whether the relay routes its site /64 to it.
    public var routesSitePrefix: Bool
    /// What the router reported in its last registration (docs/protocol.md, "Report"): applied
    /// generation, agent version, health verdict and its reason. Absent for an agent that sends no
    /// report (older than the fleet view).
    public var generation: Int64?
    public var agentVersion: String?
    public var health: String?
    public var healthReason: String?
    /// The MTU of its tunnel to this relay, as its last registration reported it; the relay routes
    /// the site with it when it owns the /64 (docs/relay.md, "Site MTU"). Absent: not reported.
    public var tunnelMTU: Int?
    /// The system version it runs and its last update install (state "none", "trial", "blessed" or
    /// "failed", and the version installed), as its last registration reported them
    /// (docs/updates.md, "Watching"). Absent: not reported.
    public var systemVersion: Int64?
    public var updateState: String?
    public var updateVersion: Int64?

    enum CodingKeys: String, CodingKey {
        case site, slot, claim, state, serial, generation, health
        case publicKey = "public_key", handshakeAgeSeconds = "handshake_age_seconds", heardAgeSeconds = "heard_age_seconds"
        case registeredAt = "registered_at", registeredAgeSeconds = "registered_age_seconds"
        case routesSitePrefix = "routes_site_prefix"
        case agentVersion = "agent_version", healthReason = "health_reason", tunnelMTU = "tunnel_mtu"
        case systemVersion = "system_version", updateState = "update_state", updateVersion = "update_version"
    }

    public init(site: String, slot: Int, publicKey: String, claim: String, state: String, handshakeAgeSeconds: Int?,
                heardAgeSeconds: Int? = nil, registeredAt: String, registeredAgeSeconds: Int, serial: Int64, routesSitePrefix: Bool,
                generation: Int64? = nil, agentVersion: String? = nil, health: String? = nil, healthReason: String? = nil,
                tunnelMTU: Int? = nil, systemVersion: Int64? = nil, updateState: String? = nil, updateVersion: Int64? = nil) {
        self.site = site
        self.slot = slot
        self.publicKey = publicKey
        self.claim = claim
        self.state = state
        self.handshakeAgeSeconds = handshakeAgeSeconds
        self.heardAgeSeconds = heardAgeSeconds
        self.registeredAt = registeredAt
        self.registeredAgeSeconds = registeredAgeSeconds
        self.serial = serial
        self.routesSitePrefix = routesSitePrefix
        self.generation = generation
        self.agentVersion = agentVersion
        self.health = health
        self.healthReason = healthReason
        self.tunnelMTU = tunnelMTU
        self.systemVersion = systemVersion
        self.updateState = updateState
        self.updateVersion = updateVersion
    }

    /// "version 3", with the last update when there was one: "version 3, update 4 failed"; nil when
    /// the router did not say.
    public var systemText: String? {
        guard let systemVersion else { return nil }
        guard let updateState, updateState != "none", let updateVersion else { return "version \(systemVersion)" }
        return "version \(systemVersion), update \(updateVersion) \(updateState)"
    }
}
