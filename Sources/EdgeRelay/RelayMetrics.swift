import EdgeModel
import Foundation
import NIOConcurrencyHelpers

/// What the daemon counts while it runs: registrations by result and datagrams it dropped before
/// deciding anything. Counted in the process (they are events, not state); everything else the
/// metrics show comes from the state database and `wg show`, as for `edgekit-relay status`.
public final class RelayCounters: Sendable {
    /// How a REGISTER that reached a decision ended (the RESULT status, or silence for a replay).
    public enum Registration: String, CaseIterable, Sendable {
        case accepted, revoked, superseded, replay
        case certificateInvalid = "certificate_invalid"
        case certificateForeign = "certificate_foreign"
        case keyMismatch = "key_mismatch"
        case temporaryFailure = "temporary_failure"
    }

    /// Why the receive loop dropped a datagram unanswered (docs/protocol.md, "Flood defence").
    public enum Drop: String, CaseIterable, Sendable {
        /// Not a HELLO or REGISTER of this protocol.
        case malformed
        /// A cookie or MAC that does not verify.
        case unauthenticated
        /// Its source's bucket or the global key-agreement budget was empty.
        case rateLimited = "rate_limited"
        /// The queue of datagrams waiting for the engine (or its key-agreement share) was full.
        case queueFull = "queue_full"
    }

    public struct Values: Sendable, Equatable {
        public var registrations: [Registration: UInt64] = [:]
        public var drops: [Drop: UInt64] = [:]
        public init() {}
    }

    private let box = NIOLockedValueBox(Values())

    public init() {}

    public func count(_ result: Registration) { box.withLockedValue { $0.registrations[result, default: 0] += 1 } }
    public func count(_ drop: Drop) { box.withLockedValue { $0.drops[drop, default: 0] += 1 } }
    public var values: Values { box.withLockedValue { $0 } }
}

/// The relay's Prometheus text exposition (format 0.0.4,
/// https://prometheus.io/docs/instrumenting/exposition_formats/): a pure function of the same
/// rows `edgekit-relay status` prints, the interface's transfer counters and the daemon's counters.
public enum RelayMetrics {
    /// Bytes received from and sent to one peer (`wg show IF dump`).
    public struct Transfer: Sendable, Equatable {
        public var receiveBytes: UInt64
        public var transmitBytes: UInt64
        public init(receiveBytes: UInt64, transmitBytes: UInt64) {
            self.receiveBytes = receiveBytes
            self.transmitBytes = transmitBytes
        }
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// - Parameters:
    ///   - routers: `RouterLiveness.rows` (the status rows).
    ///   - transfers: public key → transfer counters; empty when the interface could not be read.
    ///   - interfaceReadable: whether `wg show` answered (without it every router shows down).
    public static func exposition(snapshot: RelaySnapshot, routers: [RouterLiveness], transfers: [String: Transfer],
                                  counters: RelayCounters.Values, interfaceReadable: Bool) -> String {
        var out = Exposition()
        out.family("edgekit_relay_up", .gauge, "1 while the relay daemon serves (Prometheus' own up says whether it answered).")
        out.sample("edgekit_relay_up", [], 1)
        out.family("edgekit_relay_interface_readable", .gauge, "1 when `wg show` of the relay's WireGuard interface answered; 0: every router shows down.")
        out.sample("edgekit_relay_interface_readable", [], interfaceReadable ? 1 : 0)
        out.family("edgekit_relay_registrations_total", .counter, "REGISTER messages decided since the daemon started, by result.")
        for result in RelayCounters.Registration.allCases {
            out.sample("edgekit_relay_registrations_total", [("result", result.rawValue)], Double(counters.registrations[result] ?? 0))
        }
        out.family("edgekit_relay_datagrams_dropped_total", .counter, "Datagrams dropped unanswered since the daemon started, by reason.")
        for reason in RelayCounters.Drop.allCases {
            out.sample("edgekit_relay_datagrams_dropped_total", [("reason", reason.rawValue)], Double(counters.drops[reason] ?? 0))
        }
        out.family("edgekit_relay_peers", .gauge, "Registered routers (WireGuard peers in the state database).")
        out.sample("edgekit_relay_peers", [], Double(snapshot.peers.count))
        out.family("edgekit_relay_revocations", .gauge, "Revocations in the state database.")
        out.sample("edgekit_relay_revocations", [], Double(snapshot.revocations.count))

        // Per site: the router the site /64 is routed to, and whether a router claiming master is up
        // (the same test that puts a site first in `status`).
        let sites = Set(routers.map(\.site)).sorted()
        out.family("edgekit_relay_site_master_slot", .gauge, "Slot of the router the relay routes the site /64 to (the latest master claim); absent when none.")
        for site in sites {
            if let owner = routers.first(where: { $0.site == site && $0.routesSitePrefix }) {
                out.sample("edgekit_relay_site_master_slot", [("site", site)], Double(owner.slot))
            }
        }
        out.family("edgekit_relay_site_master_up", .gauge, "1 when a router of the site claims master and WireGuard hears from it; 0: the site has no live master.")
        for site in sites {
            let live = routers.contains { $0.site == site && $0.claim == "master" && $0.state == "up" }
            out.sample("edgekit_relay_site_master_up", [("site", site)], live ? 1 : 0)
        }

        let tunnels = Dictionary(snapshot.peers.map { ($0.publicKey, $0.tunnelAddress) }, uniquingKeysWith: { a, _ in a })
        let ordered = routers.sorted { ($0.site, $0.slot, $0.publicKey) < ($1.site, $1.slot, $1.publicKey) }
        func labels(_ row: RouterLiveness) -> [(String, String)] {
            [("site", row.site), ("slot", String(row.slot)), ("tunnel", tunnels[row.publicKey] ?? "")]
        }
        out.family("edgekit_relay_router_up", .gauge, "1 when WireGuard heard from the router within 3 keepalives (status: up).")
        for row in ordered { out.sample("edgekit_relay_router_up", labels(row), row.state == "up" ? 1 : 0) }
        out.family("edgekit_relay_router_master", .gauge, "1 when the router's last accepted registration claimed master.")
        for row in ordered { out.sample("edgekit_relay_router_master", labels(row), row.claim == "master" ? 1 : 0) }
        out.family("edgekit_relay_router_handshake_age_seconds", .gauge, "Seconds since the router's last WireGuard handshake; absent when there was none.")
        for row in ordered {
            if let age = row.handshakeAgeSeconds { out.sample("edgekit_relay_router_handshake_age_seconds", labels(row), Double(age)) }
        }
        out.family("edgekit_relay_router_registered_age_seconds", .gauge, "Seconds since the router's last accepted registration (relay clock).")
        for row in ordered { out.sample("edgekit_relay_router_registered_age_seconds", labels(row), Double(row.registeredAgeSeconds)) }
        out.family("edgekit_relay_router_receive_bytes_total", .counter, "Bytes WireGuard received from the router (resets when the interface is re-created).")
        for row in ordered {
            if let transfer = transfers[row.publicKey] { out.sample("edgekit_relay_router_receive_bytes_total", labels(row), Double(transfer.receiveBytes)) }
        }
        out.family("edgekit_relay_router_transmit_bytes_total", .counter, "Bytes WireGuard sent to the router (resets when the interface is re-created).")
        for row in ordered {
            if let transfer = transfers[row.publicKey] { out.sample("edgekit_relay_router_transmit_bytes_total", labels(row), Double(transfer.transmitBytes)) }
        }
        // What each router reported in its last registration (docs/protocol.md, "Report"); absent
        // for a router whose agent sends no report.
        out.family("edgekit_relay_router_generation", .gauge, "The generation the router reported applied in its last registration.")
        for row in ordered {
            if let generation = row.generation { out.sample("edgekit_relay_router_generation", labels(row), Double(generation)) }
        }
        out.family("edgekit_relay_router_healthy", .gauge, "1 when the router reported itself healthy in its last registration, 0 unhealthy; absent when it had no verdict.")
        for row in ordered where row.health == "healthy" || row.health == "unhealthy" {
            out.sample("edgekit_relay_router_healthy", labels(row), row.health == "healthy" ? 1 : 0)
        }
        out.family("edgekit_relay_router_agent_info", .gauge, "Always 1; the version label is the agent version the router reported.")
        for row in ordered {
            if let version = row.agentVersion { out.sample("edgekit_relay_router_agent_info", labels(row) + [("version", version)], 1) }
        }
        out.family("edgekit_relay_router_tunnel_mtu_bytes", .gauge, "The MTU of the router's tunnel to this relay, as its last registration reported it.")
        for row in ordered {
            if let mtu = row.tunnelMTU { out.sample("edgekit_relay_router_tunnel_mtu_bytes", labels(row), Double(mtu)) }
        }
        // The rollout (docs/updates.md, "Watching"): the same series as the agent's
        // edgekit_system_version and edgekit_system_update, from what the router last told the relay.
        out.family("edgekit_relay_router_system_version", .gauge, "The system version the router reported running in its last registration.")
        for row in ordered {
            if let version = row.systemVersion { out.sample("edgekit_relay_router_system_version", labels(row), Double(version)) }
        }
        out.family("edgekit_relay_router_update", .gauge, "1 for the state of the router's last update install (trial, blessed, failed), by the version it installed, as its last registration reported it; absent when none was.")
        for row in ordered {
            guard let state = row.updateState, state != "none", let version = row.updateVersion else { continue }
            for candidate in ["trial", "blessed", "failed"] {
                out.sample("edgekit_relay_router_update", labels(row) + [("version", String(version)), ("state", candidate)], candidate == state ? 1 : 0)
            }
        }
        return out.text
    }
}

/// Builds text exposition lines: HELP and TYPE once per family, escaped label values.
struct Exposition {
    enum Kind: String { case gauge, counter }
    private(set) var text = ""

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
        text += "# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Exposition.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Exposition.number(value) + "\n"
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Integers without a fraction (counters stay exact up to 2^53), others as Swift prints them.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == value.rounded(), abs(value) < 9.0e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
