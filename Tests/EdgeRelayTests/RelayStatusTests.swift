@testable import EdgeRelay
import Foundation
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
        #expect(lines[1].hasPrefix("  site-a router 1 master down, handshake 76 s ago, registered 1000 s ago ("), "\(text)")
        #expect(lines[1].hasSuffix("routes fd5e:d9e1:7c2a:1::/64"), "\(text)")
        #expect(lines[3].contains("site-b router 1 master down, no handshake,"), "\(text)")
        let json = try JSONSerialization.jsonObject(with: Data(RelayStatus.json(snapshot, routers: rows).utf8)) as? [String: Any]
        let first = (json?["routers"] as? [[String: Any]])?.first
        #expect(first?["state"] as? String == "down" && first?["handshake_age_seconds"] as? Int == 76 && first?["claim"] as? String == "master")
        #expect((json?["peers"] as? [Any])?.count == 3)
    }
}
