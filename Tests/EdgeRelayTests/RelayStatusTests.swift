@testable import EdgeRelay
import EdgeModel
import Foundation
import GRDB
import Registration
import Testing

/// `edgekit-relay status` liveness (issue 17.5): handshake age, claim, last registration, and `down`
/// after 3 keepalives of silence; sites without a live master first, one line per router.
@Suite struct RelayStatusTests {
    static func peer(_ site: String, _ slot: Int, _ key: String, _ claim: String, registered: Int64) -> PeerRecord {
        PeerRecord(publicKey: key, plan: "example", site: site, slot: slot, serial: 1000, tunnelAddress: "fd3b:4f10:a8c6::\(slot)",
                   sitePrefix: "fd5e:d9e1:7c2a:\(site == "site-a" ? 1 : 2)::/64", claim: claim,
                   lastSeen: registered * 1_000_000, lastCookieTime: 0)
    }

    @Test("a router silent for more than 3 keepalives is down; sites without a live master come first")
    func liveness() throws {
        let now = Date(timeIntervalSince1970: 10_000)
        let snapshot = RelaySnapshot(
            peers: [Self.peer("site-a", 1, "A1=", "master", registered: 9_000), Self.peer("site-a", 2, "A2=", "backup", registered: 9_500),
                    Self.peer("site-b", 1, "B1=", "master", registered: 9_900)],
            owners: [PrefixOwner(sitePrefix: "fd5e:d9e1:7c2a:1::/64", publicKey: "A1="), PrefixOwner(sitePrefix: "fd5e:d9e1:7c2a:2::/64", publicKey: "B1=")],
            revocations: [])
        // A1 last heard 76 s ago (> 3 × 25 s): down. A2 75 s ago: still up. B1 never.
        let rows = RouterLiveness.rows(snapshot, handshakes: ["A1=": 9_924, "A2=": 9_925, "B1=": 0], keepaliveSeconds: 25, now: now)
        #expect(rows.map { "\($0.site)/\($0.slot) \($0.claim) \($0.state)" } == ["site-a/1 master down", "site-a/2 backup up", "site-b/1 master down"])
        #expect(rows.map(\.handshakeAgeSeconds) == [76, 75, nil])
        #expect(rows.map(\.registeredAgeSeconds) == [1_000, 500, 100])
        #expect(rows.map(\.routesSitePrefix) == [true, false, true])

        // B1 handshakes: site-b has a live master, so site-a (whose master is down) comes first still,
        // and site-b moves after it.
        let live = RouterLiveness.rows(snapshot, handshakes: ["A1=": 9_999, "B1": 0, "B1=": 9_990], keepaliveSeconds: 25, now: now)
        #expect(live.map { "\($0.site)/\($0.slot) \($0.state)" } == ["site-a/1 up", "site-a/2 down", "site-b/1 up"])
        let liveB = RouterLiveness.rows(snapshot, handshakes: ["B1=": 9_990], keepaliveSeconds: 25, now: now)
        #expect(liveB.first?.site == "site-a" && liveB.last?.site == "site-b")

        let text = RelayStatus.text(snapshot, routers: rows)
        let lines = text.split(separator: "\n")
        #expect(lines.first == "routers: 3")
        #expect(lines[1].hasPrefix("  site-a router 1 master down, handshake 76 s ago, no report (an agent from before the report), registered 1000 s ago ("), "\(text)")
        #expect(lines[1].hasSuffix("routes fd5e:d9e1:7c2a:1::/64"), "\(text)")
        #expect(lines[3].contains("site-b router 1 master down, no handshake,"), "\(text)")
        let json = try JSONSerialization.jsonObject(with: Data(RelayStatus.json(snapshot, routers: rows).utf8)) as? [String: Any]
        let first = (json?["routers"] as? [[String: Any]])?.first
        #expect(first?["state"] as? String == "down" && first?["handshake_age_seconds"] as? Int == 76 && first?["claim"] as? String == "master")
        #expect((json?["peers"] as? [Any])?.count == 3)
        #expect(!text.contains("update bundles") && json?["bundles"] == nil, "no bundles_directory: no bundles section")

        // With a bundles folder: what its update endpoint serves, by name (docs/relay.md, "Status").
        let bundles = [ServedBundle(name: "example-pc-uefi-6.update", bytes: 80)!, ServedBundle(name: "site-a-5.update", bytes: 131_072_000)!]
        let served = RelayStatus.text(snapshot, routers: rows, bundles: bundles)
        #expect(served.hasSuffix("update bundles: 2\n  example-pc-uefi-6.update: example-pc-uefi version 6, 80 bytes\n"
                                 + "  site-a-5.update: site-a version 5, 131072000 bytes\n"), "\(served)")
        let servedJSON = try JSONSerialization.jsonObject(with: Data(RelayStatus.json(snapshot, routers: rows, bundles: bundles).utf8)) as? [String: Any]
        #expect((servedJSON?["bundles"] as? [[String: Any]])?.last?["version"] as? Int == 5)
        #expect(RelayStatus.text(snapshot, routers: rows, bundles: []).hasSuffix("update bundles: 0\n"))
    }

    /// The fleet view (issue 18.2): a database as the previous release left it (v3, no report
    /// columns) migrates in place keeping its peers; a registration with a report stores it, one
    /// without clears it (the router said nothing), and status shows both in text and JSON.
    /// WireGuard rekeys every 2 minutes, so a live router's handshake is often older than 3
    /// keepalives: what the relay heard since (its received bytes grew, `lastHeard`) keeps it up.
    @Test("a router heard from since its last handshake is up; silent past 3 keepalives it is down")
    func heardSinceTheHandshake() throws {
        let now = Date(timeIntervalSince1970: 10_000)
        var heard = Self.peer("site-a", 1, "A1=", "master", registered: 9_000)
        heard.lastHeard = 9_995
        var silent = Self.peer("site-a", 2, "A2=", "backup", registered: 9_000)
        silent.lastHeard = 9_920
        let snapshot = RelaySnapshot(peers: [heard, silent], owners: [], revocations: [])
        let rows = RouterLiveness.rows(snapshot, handshakes: ["A1=": 9_904, "A2=": 9_904], keepaliveSeconds: 25, now: now)
        #expect(rows.map { "\($0.slot) \($0.state) \($0.handshakeAgeSeconds ?? -1) \($0.heardAgeSeconds ?? -1)" } == ["1 up 96 5", "2 down 96 80"])
        let text = RelayStatus.text(snapshot, routers: rows)
        #expect(text.contains("site-a router 1 master up, handshake 96 s ago, heard 5 s ago, no report"), "\(text)")
        let json = try JSONSerialization.jsonObject(with: Data(RelayStatus.json(snapshot, routers: rows).utf8)) as? [String: Any]
        #expect((json?["routers"] as? [[String: Any]])?.first?["heard_age_seconds"] as? Int == 5)
    }

    @Test("received bytes that grew are recorded as heard, in the database, for the peers it holds")
    func heardIsStored() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-heard-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try RelayStore(path: path)
        try store.queue.write { db in try Self.peer("site-a", 1, "A1=", "master", registered: 9_000).insert(db) }
        try store.saveHeard(["A1=", "unknown="], at: 9_999)
        #expect(try store.snapshot().peers.map(\.lastHeard) == [9_999])
    }

    @Test("a v3 database migrates; generation, agent version, health and system reach status")
    func reportColumnsMigrateAndShow() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("state.sqlite").path
        do {
            let old = try DatabaseQueue(path: path)
            try RelayStore.migrator.migrate(old, upTo: "v3: prefix owner by key")
            try old.write { db in
                try db.execute(sql: """
                    INSERT INTO peer (public_key, plan, site, slot, serial, tunnel_address, site_prefix, claim, last_seen, last_cookie_time, endpoint)
                    VALUES ('A1=', 'example', 'site-a', 1, 1000, 'fd3b:4f10:a8c6::1', 'fd5e:d9e1:7c2a:1::/64', 'master', 9000000000, 10, '198.51.100.2:4000')
                    """)
                try db.execute(sql: "INSERT INTO prefix_owner (site_prefix, public_key) VALUES ('fd5e:d9e1:7c2a:1::/64', 'A1=')")
            }
        }
        let store = try RelayStore(path: path)
        let migrated = try store.snapshot()
        #expect(migrated.peers.count == 1 && migrated.owners.count == 1, "the migration keeps every row")
        #expect(migrated.peers[0].endpoint == "198.51.100.2:4000" && migrated.peers[0].generation == nil && migrated.peers[0].health == nil)
        let columns = try DatabaseQueue(path: path).read { db in try db.columns(in: "peer").map(\.name) }
        #expect(columns.suffix(9) == ["generation", "agent_version", "health", "health_reason", "last_heard", "tunnel_mtu",
                                      "system_version", "update_state", "update_version"])
        #expect(migrated.peers[0].lastHeard == nil && migrated.peers[0].tunnelMTU == nil && migrated.peers[0].systemVersion == nil)
        // Opening it again is a no-op (the migration is recorded).
        _ = try RelayStore(path: path)

        let fields = SiteCertificateFields(plan: "example", site: "site-a", slot: 2, serial: 1000,
                                           tunnelAddress: "fd3b:4f10:a8c6::2", sitePrefix: "fd5e:d9e1:7c2a:1::/64")
        let report = RouterReport(generation: 4, health: .unhealthy, agentVersion: "0.1.0", healthReason: "uplink eth0 has no carrier (link down)",
                                  system: RouterReport.System(version: 3, update: .failed, updateVersion: 4))
        _ = try store.register(publicKey: "A2=", certificate: fields, claim: "backup", cookieTime: 11, now: 9_500_000_000, report: report)
        var a1 = SiteCertificateFields(plan: "example", site: "site-a", slot: 1, serial: 1000,
                                       tunnelAddress: "fd3b:4f10:a8c6::1", sitePrefix: "fd5e:d9e1:7c2a:1::/64")
        _ = try store.register(publicKey: "A1=", certificate: a1, claim: "master", cookieTime: 12, now: 9_600_000_000,
                               report: RouterReport(generation: 3, health: .healthy, agentVersion: "0.1.0", healthReason: "uplink up"))
        #expect(try store.snapshot().peers.first { $0.publicKey == "A1=" }?.generation == 3)
        // The same router registering from an agent without a report: the columns are cleared, not kept stale.
        a1.serial = 1000
        _ = try store.register(publicKey: "A1=", certificate: a1, claim: "master", cookieTime: 13, now: 9_700_000_000)
        let snapshot = try store.snapshot()
        let peer = try #require(snapshot.peers.first { $0.publicKey == "A1=" })
        #expect(peer.generation == nil && peer.agentVersion == nil && peer.health == nil && peer.healthReason == nil)

        let rows = RouterLiveness.rows(snapshot, handshakes: ["A1=": 9_990, "A2=": 9_995], keepaliveSeconds: 25, now: Date(timeIntervalSince1970: 10_000))
        #expect(rows.map { "\($0.slot) \($0.generation.map(String.init) ?? "-") \($0.agentVersion ?? "-") \($0.health ?? "-")" } == ["1 - - -", "2 4 0.1.0 unhealthy"])
        let text = RelayStatus.text(snapshot, routers: rows)
        #expect(text.contains("site-a router 1 master up, handshake 10 s ago, no report (an agent from before the report), registered"), "\(text)")
        #expect(text.contains("site-a router 2 backup up, handshake 5 s ago, generation 4, agent 0.1.0, unhealthy (uplink eth0 has no carrier (link down)), system version 3, update 4 failed, registered"), "\(text)")
        let json = try JSONSerialization.jsonObject(with: Data(RelayStatus.json(snapshot, routers: rows).utf8)) as? [String: Any]
        let routers = try #require(json?["routers"] as? [[String: Any]])
        #expect(routers[0]["generation"] == nil && routers[0]["health"] == nil, "no report: the keys are absent")
        #expect(routers[1]["generation"] as? Int == 4 && routers[1]["agent_version"] as? String == "0.1.0")
        #expect(routers[1]["health"] as? String == "unhealthy" && routers[1]["health_reason"] as? String == "uplink eth0 has no carrier (link down)")
        #expect(routers[1]["system_version"] as? Int == 3 && routers[1]["update_state"] as? String == "failed" && routers[1]["update_version"] as? Int == 4)
        #expect(routers[0]["system_version"] == nil && routers[0]["update_state"] == nil)
    }
}
