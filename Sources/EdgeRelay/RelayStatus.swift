import Foundation

/// `edgekit-relay status`: the database as text or JSON (data for stdout).
public enum RelayStatus {
    public static func text(_ snapshot: RelaySnapshot) -> String {
        var lines: [String] = []
        lines.append("peers: \(snapshot.peers.count)")
        let owners = Dictionary(uniqueKeysWithValues: snapshot.owners.map { ($0.publicKey + $0.sitePrefix, true) })
        for peer in snapshot.peers {
            let owns = owners[peer.publicKey + peer.sitePrefix] != nil
            lines.append("  \(peer.site) router \(peer.slot) \(peer.claim) \(peer.publicKey) tunnel \(peer.tunnelAddress)\(owns ? " routes \(peer.sitePrefix)" : "") serial \(peer.serial) last seen \(iso(peer.lastSeen))")
        }
        lines.append("site prefixes: \(snapshot.owners.count)")
        let bySite = Dictionary(snapshot.peers.map { ($0.publicKey, $0) }, uniquingKeysWith: { a, _ in a })
        for owner in snapshot.owners {
            let peer = bySite[owner.publicKey]
            lines.append("  \(owner.sitePrefix) → \(peer.map { "\($0.site) router \($0.slot)" } ?? "?") \(owner.publicKey)")
        }
        lines.append("revocations: \(snapshot.revocations.count)")
        for revocation in snapshot.revocations {
            let slot = revocation.slot.map { " router \($0)" } ?? " (every router)"
            let serial = revocation.beforeSerial.map { " serials below \($0)" } ?? ""
            lines.append("  \(revocation.site)\(slot)\(serial) since \(revocation.createdAt)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func json(_ snapshot: RelaySnapshot) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(snapshot), as: UTF8.self) + "\n"
    }

    static func iso(_ micros: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(micros) / 1e6))
    }
}
