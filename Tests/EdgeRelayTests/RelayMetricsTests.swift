import EdgeModel
import Foundation
import TestSupport
import Testing
@testable import EdgeRelay

/// The relay's exposition: what `status` says, in Prometheus' text format, checked by promtool.
@Suite struct RelayMetricsTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func peer(_ site: String, _ slot: Int, key: String, claim: String, tunnel: String, prefix: String) -> PeerRecord {
        PeerRecord(publicKey: key, plan: "example", site: site, slot: slot, serial: 1000, tunnelAddress: tunnel,
                   sitePrefix: prefix, claim: claim, lastSeen: Int64(now.timeIntervalSince1970 - 40) * 1_000_000,
                   lastCookieTime: 1, endpoint: nil)
    }

    /// A router's report (docs/protocol.md, "Report"); site-b and site-c send none.
    static func reported(_ peer: PeerRecord, generation: Int64, version: String, health: String) -> PeerRecord {
        var peer = peer
        peer.generation = generation
        peer.agentVersion = version
        peer.health = health
        peer.healthReason = "a reason"
        peer.tunnelMTU = health == "healthy" ? 1392 : nil
        // The healthy one runs 4, blessed; the other came back to 3 from a failed 4.
        peer.systemVersion = health == "healthy" ? 4 : 3
        peer.updateState = health == "healthy" ? "blessed" : "failed"
        peer.updateVersion = 4
        return peer
    }

    /// site-a: router 1 master (owns the /64) and up, router 2 backup and up; site-b: its only
    /// router claims master but has been silent for 100 s (down after 3 × 25 s); site-c: a master
    /// that never handshook. Quotes and backslashes in a site name would break the format unescaped.
    static let snapshot = RelaySnapshot(
        peers: [
            reported(peer("site-a", 1, key: "A1=", claim: "master", tunnel: "fd3b::1:1:1", prefix: "fd5e::1:0:0:0/64"),
                     generation: 3, version: "0.1.0", health: "healthy"),
            reported(peer("site-a", 2, key: "A2=", claim: "backup", tunnel: "fd3b::1:1:2", prefix: "fd5e::1:0:0:0/64"),
                     generation: 2, version: "0.1.0\"x", health: "unhealthy"),
            peer("site-b", 1, key: "B1=", claim: "master", tunnel: "fd3b::1:2:1", prefix: "fd5e::2:0:0:0/64"),
            peer("site-\"c\\", 1, key: "C1=", claim: "master", tunnel: "fd3b::1:3:1", prefix: "fd5e::3:0:0:0/64"),
        ],
        owners: [PrefixOwner(sitePrefix: "fd5e::1:0:0:0/64", publicKey: "A1="),
                 PrefixOwner(sitePrefix: "fd5e::2:0:0:0/64", publicKey: "B1="),
                 PrefixOwner(sitePrefix: "fd5e::3:0:0:0/64", publicKey: "C1=")],
        revocations: [])

    static func exposition(readable: Bool = true) -> String {
        let seconds = Int(now.timeIntervalSince1970)
        let handshakes = readable ? ["A1=": seconds - 12, "A2=": seconds - 4, "B1=": seconds - 100, "C1=": 0] : [:]
        let routers = RouterLiveness.rows(snapshot, handshakes: handshakes, keepaliveSeconds: 25, now: now)
        let counters = RelayCounters()
        for _ in 0..<3 { counters.count(.accepted) }
        counters.count(.revoked)
        for _ in 0..<7 { counters.count(.rateLimited) }
        counters.count(.unauthenticated)
        let transfers = readable ? ["A1=": RelayMetrics.Transfer(receiveBytes: 123_456, transmitBytes: 654_321),
                                    "A2=": .init(receiveBytes: 1, transmitBytes: 2)] : [:]
        return RelayMetrics.exposition(snapshot: snapshot, routers: routers, transfers: transfers,
                                       counters: counters.values, interfaceReadable: readable)
    }

    @Test("the exposition passes promtool check metrics", .requiresTool("promtool"))
    func promtoolAcceptsTheExposition() throws {
        for readable in [true, false] {
            #expect(try Promtool.problems(inMetrics: Self.exposition(readable: readable)) == nil)
        }
    }

    @Test func samplesSayWhatStatusSays() throws {
        let lines = Set(Self.exposition().split(separator: "\n").map(String.init))
        let expected = [
            "edgekit_relay_up 1",
            "edgekit_relay_interface_readable 1",
            "edgekit_relay_peers 4",
            "edgekit_relay_registrations_total{result=\"accepted\"} 3",
            "edgekit_relay_registrations_total{result=\"revoked\"} 1",
            "edgekit_relay_registrations_total{result=\"superseded\"} 0",
            "edgekit_relay_datagrams_dropped_total{reason=\"rate_limited\"} 7",
            "edgekit_relay_datagrams_dropped_total{reason=\"unauthenticated\"} 1",
            "edgekit_relay_datagrams_dropped_total{reason=\"queue_full\"} 0",
            "edgekit_relay_site_master_slot{site=\"site-a\"} 1",
            "edgekit_relay_site_master_up{site=\"site-a\"} 1",
            // Claims master, owns the /64, but silent for 100 s: no live master.
            "edgekit_relay_site_master_slot{site=\"site-b\"} 1",
            "edgekit_relay_site_master_up{site=\"site-b\"} 0",
            "edgekit_relay_site_master_up{site=\"site-\\\"c\\\\\"} 0",
            "edgekit_relay_router_up{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 1",
            "edgekit_relay_router_up{site=\"site-b\",slot=\"1\",tunnel=\"fd3b::1:2:1\"} 0",
            "edgekit_relay_router_master{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\"} 0",
            "edgekit_relay_router_handshake_age_seconds{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 12",
            "edgekit_relay_router_handshake_age_seconds{site=\"site-b\",slot=\"1\",tunnel=\"fd3b::1:2:1\"} 100",
            "edgekit_relay_router_registered_age_seconds{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 40",
            "edgekit_relay_router_receive_bytes_total{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 123456",
            "edgekit_relay_router_transmit_bytes_total{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 654321",
            "edgekit_relay_router_generation{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 3",
            "edgekit_relay_router_generation{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\"} 2",
            "edgekit_relay_router_healthy{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 1",
            "edgekit_relay_router_healthy{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\"} 0",
            "edgekit_relay_router_agent_info{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\",version=\"0.1.0\"} 1",
            "edgekit_relay_router_agent_info{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\",version=\"0.1.0\\\"x\"} 1",
            "edgekit_relay_router_tunnel_mtu_bytes{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 1392",
            "edgekit_relay_router_system_version{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 4",
            "edgekit_relay_router_system_version{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\"} 3",
            "edgekit_relay_router_update{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\",version=\"4\",state=\"blessed\"} 1",
            "edgekit_relay_router_update{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\",version=\"4\",state=\"failed\"} 0",
            "edgekit_relay_router_update{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\",version=\"4\",state=\"failed\"} 1",
            "edgekit_relay_router_update{site=\"site-a\",slot=\"2\",tunnel=\"fd3b::1:1:2\",version=\"4\",state=\"trial\"} 0",
        ]
        for line in expected { #expect(lines.contains(line), "missing: \(line)") }
        #expect(!lines.contains { $0.hasPrefix("edgekit_relay_router_generation{site=\"site-b\"") || $0.hasPrefix("edgekit_relay_router_healthy{site=\"site-b\"") },
                "a router without a report has no report samples")
        #expect(!lines.contains { $0.hasPrefix("edgekit_relay_router_tunnel_mtu_bytes{site=\"site-a\",slot=\"2\"") }, "no MTU reported: no sample")
        #expect(!lines.contains { $0.hasPrefix("edgekit_relay_router_system_version{site=\"site-b\"") || $0.hasPrefix("edgekit_relay_router_update{site=\"site-b\"") },
                "no system reported: no sample")
        // No handshake yet: no age sample rather than a made-up one.
        #expect(!lines.contains { $0.hasPrefix("edgekit_relay_router_handshake_age_seconds{site=\"site-\\\"c") })
    }

    @Test func unreadableInterfaceShowsEveryRouterDown() {
        let text = Self.exposition(readable: false)
        #expect(text.contains("edgekit_relay_interface_readable 0\n"))
        #expect(!text.contains("edgekit_relay_router_up{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 1"))
        #expect(text.contains("edgekit_relay_router_up{site=\"site-a\",slot=\"1\",tunnel=\"fd3b::1:1:1\"} 0"))
        #expect(!text.contains("edgekit_relay_router_receive_bytes_total{"))
    }

    @Test func dumpCarriesHandshakeAndTransfer() {
        let dump = "priv\tpub\t51820\toff\nK1=\t(none)\t10.0.0.2:51820\tfd3b::1/128\t1800000000\t1024\t2048\t25\n"
        #expect(WireGuardControl.parseDump(dump) == [.init(publicKey: "K1=", endpoint: "10.0.0.2:51820", allowedIPs: ["fd3b::1/128"], latestHandshake: 1_800_000_000,
                                                           receiveBytes: 1024, transmitBytes: 2048)])
    }

    @Test func metricsAddressesAreChecked() {
        var config = RelayConfig(interface: "wg0", privateKeyFile: "/k", operatorPublicKeyFile: "/o", plan: "example",
                                 ula: IPv6Prefix("fd5e:d9e1:7c2a::/48")!, tunnelPrefix: IPv6Prefix("fd3b:4f10:a8c6::/64")!,
                                 stateDatabase: "/s", metricsAddresses: ["::1", "127.0.0.1", "fd3b:4f10:a8c6::1"])
        #expect(config.problem() == nil)
        config.metricsAddresses = ["::1", "relay.example.net"]
        #expect(config.problem() == "metrics_addresses entry \"relay.example.net\" is not an IP address (e.g. \"::1\" or the relay's tunnel address)")
        config.metricsAddresses = ["256.1.1.1"]
        #expect(config.problem() != nil)
    }
}
