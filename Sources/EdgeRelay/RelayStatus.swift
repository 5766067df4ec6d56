import EdgeModel
import Foundation

extension RouterLiveness {
    /// One row per peer, sites without a live master first, then by site and slot.
    /// `handshakes` maps public key → UNIX time of the last handshake (0: never). A router is up
    /// when the relay heard from it within 3 keepalives: a handshake, or received bytes that grew
    /// (`PeerRecord.lastHeard`, sampled by `serve`). Handshakes alone would not do: WireGuard
    /// rekeys every 2 minutes, so a live router's last one is often older than 3 keepalives.
    public static func rows(_ snapshot: RelaySnapshot, handshakes: [String: Int], keepaliveSeconds: Int, now: Date) -> [RouterLiveness] {
        let owners = Set(snapshot.owners.map { $0.publicKey + " " + $0.sitePrefix })
        let nowSeconds = Int(now.timeIntervalSince1970)
        // One formatter for every row, not one per row (10k rows at 10k routers).
        let formatter = ISO8601DateFormatter()
        let rows = snapshot.peers.map { peer in
            let handshake = handshakes[peer.publicKey].flatMap { $0 > 0 ? $0 : nil }
            let heard = [handshake, peer.lastHeard.map { Int($0) }].compactMap { $0 }.max()
            let heardAge = heard.map { max(0, nowSeconds - $0) }
            let up = heardAge.map { $0 <= 3 * keepaliveSeconds } ?? false
            return RouterLiveness(site: peer.site, slot: peer.slot, publicKey: peer.publicKey, claim: peer.claim,
                                  state: up ? "up" : "down", handshakeAgeSeconds: handshake.map { max(0, nowSeconds - $0) },
                                  heardAgeSeconds: heardAge,
                                  registeredAt: RelayStatus.iso(peer.lastSeen, formatter),
                                  registeredAgeSeconds: max(0, nowSeconds - Int(peer.lastSeen / 1_000_000)),
                                  serial: peer.serial, routesSitePrefix: owners.contains(peer.publicKey + " " + peer.sitePrefix),
                                  generation: peer.generation, agentVersion: peer.agentVersion, health: peer.health,
                                  healthReason: peer.healthReason, tunnelMTU: peer.tunnelMTU,
                                  systemVersion: peer.systemVersion, updateState: peer.updateState, updateVersion: peer.updateVersion)
        }
        let liveMaster = Set(rows.filter { $0.claim == "master" && $0.state == "up" }.map(\.site))
        return rows.sorted {
            let a = liveMaster.contains($0.site), b = liveMaster.contains($1.site)
            if a != b { return !a }
            return ($0.site, $0.slot) < ($1.site, $1.slot)
        }
    }
}

extension RouterLiveness {
    /// "generation 3, agent 0.1.0, healthy", the reason added when not healthy, then ", tunnel MTU
    /// 1392" and ", system version 3, update 4 failed" when it said; "no report" for an agent that
    /// sends none.
    public var reportText: String {
        guard generation != nil || agentVersion != nil || health != nil else { return "no report (an agent from before the report)" }
        let health = health ?? "unknown"
        let reason = health == "healthy" ? "" : healthReason.map { " (\($0))" } ?? ""
        let mtu = tunnelMTU.map { ", tunnel MTU \($0)" } ?? ""
        let system = systemText.map { ", system \($0)" } ?? ""
        return "generation \(generation.map(String.init) ?? "?"), agent \(agentVersion ?? "?"), \(health)\(reason)\(mtu)\(system)"
    }
}

/// `edgekit-relay status`: the database and the interface's handshakes as text or JSON (data for stdout).
public enum RelayStatus {
    /// `bundles`: what the update endpoint serves (`bundles_directory`), nil when it serves none.
    public static func text(_ snapshot: RelaySnapshot, routers: [RouterLiveness], bundles: [ServedBundle]? = nil) -> String {
        var lines: [String] = []
        lines.append("routers: \(routers.count)")
        let tunnels = Dictionary(snapshot.peers.map { ($0.publicKey, $0) }, uniquingKeysWith: { a, _ in a })
        for row in routers {
            let peer = tunnels[row.publicKey]
            let handshake = row.handshakeAgeSeconds.map { "handshake \($0) s ago" } ?? "no handshake"
            // Heard later than its handshake: received bytes grew since (keepalives, traffic).
            let heard = row.heardAgeSeconds.flatMap { $0 != row.handshakeAgeSeconds ? ", heard \($0) s ago" : nil } ?? ""
            let routes = row.routesSitePrefix ? " routes \(peer?.sitePrefix ?? "?")" : ""
            lines.append("  \(row.site) router \(row.slot) \(row.claim) \(row.state), \(handshake)\(heard), \(row.reportText), registered \(row.registeredAgeSeconds) s ago (\(row.registeredAt)) serial \(row.serial) \(row.publicKey) tunnel \(peer?.tunnelAddress ?? "?")\(routes)")
        }
        lines.append("site prefixes: \(snapshot.owners.count)")
        for owner in snapshot.owners {
            let peer = tunnels[owner.publicKey]
            lines.append("  \(owner.sitePrefix) → \(peer.map { "\($0.site) router \($0.slot)" } ?? "?") \(owner.publicKey)")
        }
        lines.append("revocations: \(snapshot.revocations.count)")
        for revocation in snapshot.revocations {
            let slot = revocation.slot.map { " router \($0)" } ?? " (every router)"
            let serial = revocation.beforeSerial.map { " serials below \($0)" } ?? ""
            lines.append("  \(revocation.site)\(slot)\(serial) since \(revocation.createdAt)")
        }
        if let bundles {
            lines.append("update bundles: \(bundles.count)")
            for bundle in bundles {
                lines.append("  \(bundle.name): \(bundle.target) version \(bundle.version), \(bundle.bytes) bytes")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    struct Document: Encodable {
        var routers: [RouterLiveness]
        var peers: [PeerRecord]
        var owners: [PrefixOwner]
        var revocations: [Revocation]
        /// Absent when the relay serves no bundles.
        var bundles: [ServedBundle]?
    }

    public static func json(_ snapshot: RelaySnapshot, routers: [RouterLiveness], bundles: [ServedBundle]? = nil) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let document = Document(routers: routers, peers: snapshot.peers, owners: snapshot.owners, revocations: snapshot.revocations,
                                bundles: bundles)
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }

    static func iso(_ micros: Int64, _ formatter: ISO8601DateFormatter = ISO8601DateFormatter()) -> String {
        formatter.string(from: Date(timeIntervalSince1970: Double(micros) / 1e6))
    }
}
