import EdgeModel
import EdgeRelay
import Foundation
import Registration
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The relay routes a small site's /64 with the tunnel MTU its router reports (docs/relay.md, "Site
/// MTU"): the real `edgekit-relay serve`, wireguard-go and the kernel's routes in a namespace.
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"), .slow)
struct SiteRouteLabTests {
    static func report(_ mtu: Int?) -> RouterReport {
        RouterReport(generation: 1, health: .healthy, agentVersion: "0.1.0", healthReason: "test", tunnelMTU: mtu)
    }

    /// The relay's site routes (`proto 74`) on its interface: /64 → the line `ip` prints.
    static func routes(_ lab: Lab) throws -> [String: String] {
        let out = try sh("ip", ["-n", lab.relayNamespace, "-6", "route", "show", "dev", lab.interface, "proto", "74"]).out
        var result: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let words = line.split(separator: " ")
            if let first = words.first { result[String(first)] = String(line) }
        }
        return result
    }

    @Test("the owner's reported tunnel MTU routes its /64 with mtu lock; ownership, reports, restarts and revocation move the route")
    func theOwnersTunnelMTURoutesItsSite() throws {
        try Lab().withRelay { lab in
            let r1 = try Fixture.router(site: "site-a", slot: 1)
            let r2 = try Fixture.router(site: "site-a", slot: 2)
            let prefix = r1.prefix.description
            func register(_ router: LabRouter, _ claim: Claim, mtu: Int?, withReport: Bool = true) throws {
                let client = try router.client(relay: lab.relayAddress, port: lab.port, report: withReport ? Self.report(mtu) : nil)
                _ = try lab.inClient { try client.registerBlocking(claim: claim) }
            }
            func mtu() throws -> String? {
                try Self.routes(lab)[prefix].flatMap { line in line.range(of: "mtu lock ").map { String(line[$0.upperBound...].prefix { $0.isNumber }) } }
            }
            let interfaceMTU = try sh("ip", ["-n", lab.relayNamespace, "-o", "link", "show", "dev", lab.interface]).out
            #expect(interfaceMTU.contains(" mtu 1420 "), "wireguard-go's default: \(interfaceMTU)")

            try register(r1, .master, mtu: 1392)                 // DS-Lite
            let routesNow = try Self.routes(lab)
            #expect(try mtu() == "1392", "\(routesNow)")
            try register(r2, .backup, mtu: 1360)                 // the backup's tunnel does not count
            #expect(try mtu() == "1392")
            try register(r2, .master, mtu: 1360)                 // the /64 moves to r2, and its MTU with it
            #expect(try mtu() == "1360")
            try register(r2, .master, mtu: 1420)                 // as big as the relay's interface: no route
            #expect(try Self.routes(lab).isEmpty)
            try register(r1, .master, mtu: 1392)
            #expect(try mtu() == "1392")
            try register(r1, .master, mtu: nil, withReport: false) // an agent from before the MTU: nothing known
            #expect(try Self.routes(lab).isEmpty)
            try register(r1, .master, mtu: 1360)
            #expect(try mtu() == "1360")
            // The operator sees it: status (text and JSON) and the metrics' source rows.
            let text = try lab.relayTool(["status", "--config", lab.configPath])
            #expect(text.out.contains("site-a router 1 master down, no handshake, generation 1, agent 0.1.0, healthy, tunnel MTU 1360"), "\(text.out)")
            let json = try lab.relayTool(["status", "--config", lab.configPath, "--format", "json"])
            let rows = (try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])?["routers"] as? [[String: Any]]
            #expect(rows?.first { ($0["slot"] as? Int) == 1 }?["tunnel_mtu"] as? Int == 1360, "\(json.out)")

            // Killed and started again: the route is still there, and the new relay takes it over
            // (a change replaces it; nothing is doubled).
            #expect(try lab.stopRelay(signal: SIGKILL) != 0)
            try lab.startRelay()
            #expect(try mtu() == "1360")
            try register(r1, .master, mtu: 1392)
            #expect(try Self.routes(lab).count == 1 && (try mtu()) == "1392")
            // A route left by an earlier relay for a site nobody owns any more goes at start.
            try sh("ip", ["-n", lab.relayNamespace, "-6", "route", "add", "fd5e:d9e1:7c2a:99::/64", "dev", lab.interface,
                          "proto", "74", "mtu", "lock", "1300"])
            #expect(try lab.stopRelay() == 0)
            try lab.startRelay()
            let left = try Self.routes(lab)
            #expect(left.keys.sorted() == [prefix], "\(left)")

            // Revoked: the route goes with the peer.
            #expect(try lab.relayTool(["revoke", "--site", "site-a", "--config", lab.configPath]).status == 0)
            try lab.waitFor("the revoked site's route to go", timeout: 5) { try Self.routes(lab).isEmpty }
        }
    }

    /// What the route is for: a packet from another site bigger than the small site's tunnel gets
    /// ICMPv6 packet-too-big from the relay, with that tunnel's MTU, instead of being sent on and
    /// fragmented. Site B's router is a real wireguard-go tunnel in the client namespace.
    @Test("a packet bigger than the small site's tunnel gets packet-too-big from the relay, with that MTU")
    func aBigPacketGetsPacketTooBig() throws {
        try Lab().withRelay { lab in
            let small = try Fixture.router(site: "site-a", slot: 1)
            let other = try Fixture.router(site: "site-b", slot: 1)
            for (router, mtu) in [(small, 1360), (other, 1420)] {
                let client = try router.client(relay: lab.relayAddress, port: lab.port, report: Self.report(mtu))
                _ = try lab.inClient { try client.registerBlocking(claim: .master) }
            }
            // The relay as deployed: its tunnel address on the interface, forwarding between peers.
            let relayAddress = Fixture.plan.relay.tunnelAddress
            try sh("ip", ["-n", lab.relayNamespace, "-6", "addr", "add", "\(relayAddress)/\(Fixture.plan.tunnel.length)",
                          "dev", lab.interface, "nodad"])
            try sh("ip", ["netns", "exec", lab.relayNamespace, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
            // Site B's router: its tunnel to the relay carries the plan's /48.
            let tunnel = try lab.startRouterTunnel(other)
            _ = try lab.routerWG(["set", tunnel, "peer", Fixture.keys.relayWireGuardKey().publicKeyBase64,
                                  "allowed-ips", "\(Fixture.plan.tunnel),\(Fixture.plan.ula)"])
            try sh("ip", ["-n", lab.clientNamespace, "-6", "addr", "add", "\(other.tunnel)/128", "dev", tunnel, "nodad"])
            try sh("ip", ["-n", lab.clientNamespace, "link", "set", tunnel, "up"])
            try sh("ip", ["-n", lab.clientNamespace, "-6", "route", "add", "\(Fixture.plan.ula)", "dev", tunnel])
            try sh("ip", ["-n", lab.clientNamespace, "-6", "route", "add", "\(Fixture.plan.tunnel)", "dev", tunnel])
            let target = "fd5e:d9e1:7c2a:1::10"
            func ping(_ size: Int) throws -> (status: Int32, out: String, err: String) {
                try sh("ip", ["netns", "exec", lab.clientNamespace, "ping", "-6", "-n", "-M", "do", "-c", "2", "-i", "0.5", "-W", "2",
                              "-s", "\(size)", "-I", "\(other.tunnel)", target], allowFailure: true)
            }
            // 1372 + 48 = 1420 bytes: what site B's tunnel carries, more than site A's 1360.
            let big = try ping(1372)
            #expect((big.out + big.err).contains("Packet too big: mtu=1360") || (big.out + big.err).contains("mtu = 1360"),
                    "the relay answers with site A's tunnel MTU: \(big)")
            let stats = try sh("ip", ["netns", "exec", lab.relayNamespace, "cat", "/proc/net/snmp6"]).out
            let sent = stats.split(separator: "\n").first { $0.hasPrefix("Icmp6OutPktTooBigs") }
            #expect(sent.map { !$0.hasSuffix(" 0") } == true, "the relay sent packet-too-big: \(sent ?? "no counter")")
        }
    }
}
