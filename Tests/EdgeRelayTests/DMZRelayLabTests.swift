import EdgeModel
import EdgeRelay
import Foundation
import Testing

/// The relay's side of the DMZs (docs/dmz.md), with wireguard-go and the real daemon: a DMZ /64
/// follows its site's master in WireGuard's AllowedIPs, and the public prefix is routed into the
/// tunnel with a blackhole behind it that outlives the interface.
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"))
struct DMZRelayLabTests {
    static let publicPrefix = IPv6Prefix("2001:db8:4200::/48")!
    static let dmz = "2001:db8:4200:1::/64"
    static let siteA = "fd5e:d9e1:7c2a:1::/64"

    @Test func aDMZFollowsItsSitesMasterAndThePrefixIsRoutedWithABlackholeBehind() throws {
        let routes = [RelayConfig.DMZRoute(sitePrefix: IPv6Prefix(Self.siteA)!, prefix: IPv6Prefix(Self.dmz)!)]
        try Lab(publicPrefix: Self.publicPrefix, dmzRoutes: routes).withRelay { lab in
            let r1 = try Fixture.router(site: "site-a", slot: 1)
            let r2 = try Fixture.router(site: "site-a", slot: 2)
            let siteB = try Fixture.router(site: "site-b", slot: 1)
            for router in [r1, siteB] {
                let client = try router.client(relay: lab.relayAddress, port: lab.port)
                _ = try lab.inClient { try client.registerBlocking(claim: .master) }
            }
            var peers = try lab.wireGuardPeers()
            #expect(peers[r1.key.publicKeyBase64].map(Set.init) == [Self.siteA, Self.dmz, "\(r1.tunnel)/128"], "\(peers)")
            #expect(peers[siteB.key.publicKeyBase64]?.contains(where: { $0.hasPrefix("2001:") }) == false,
                    "site B has no DMZ: \(peers)")

            // A small site (its master reports a 1392-byte tunnel): its DMZ /64 is routed with the same
            // `mtu lock` as its site /64, so the internet's big packets get packet-too-big at the relay.
            let small = try r1.client(relay: lab.relayAddress, port: lab.port, report: SiteRouteLabTests.report(1392))
            _ = try lab.inClient { try small.registerBlocking(claim: .master) }
            var siteRoutes = try SiteRouteLabTests.routes(lab)
            #expect(siteRoutes[Self.siteA]?.contains("mtu lock 1392") == true && siteRoutes[Self.dmz]?.contains("mtu lock 1392") == true,
                    "\(siteRoutes)")

            // The other router of the site takes over: the DMZ moves with the site /64, in the same `wg set`.
            let c2 = try r2.client(relay: lab.relayAddress, port: lab.port)
            _ = try lab.inClient { try c2.registerBlocking(claim: .master) }
            peers = try lab.wireGuardPeers()
            #expect(peers[r2.key.publicKeyBase64]?.contains(Self.dmz) == true && peers[r1.key.publicKeyBase64]?.contains(Self.dmz) == false,
                    "\(peers)")
            // Its router reported no MTU (an agent from before the report): both routes go.
            siteRoutes = try SiteRouteLabTests.routes(lab)
            #expect(siteRoutes[Self.siteA] == nil && siteRoutes[Self.dmz] == nil, "\(siteRoutes)")

            // The prefix into the tunnel (proto 74), and the blackhole at the largest metric.
            func routeLines() throws -> [String] {
                try sh("ip", ["-n", lab.relayNamespace, "-6", "route", "show", "\(Self.publicPrefix)"]).out
                    .split(separator: "\n").map(String.init)
            }
            var lines = try routeLines()
            #expect(lines.contains { $0.hasPrefix("\(Self.publicPrefix) dev \(lab.interface) proto 74") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("blackhole \(Self.publicPrefix) ") && $0.contains(" proto 74 metric 4294967295") }, "\(lines)")

            // The interface gone (wireguard-go killed): the blackhole stays, so nothing for the prefix
            // leaves by another route; the daemon's re-synchronisation routes it into the new one.
            try lab.recreateRelayInterface()
            lines = try routeLines()
            #expect(lines.contains { $0.hasPrefix("blackhole") } && !lines.contains { $0.contains(" dev \(lab.interface) ") }, "\(lines)")
            #expect(try lab.stopRelay() == 0)
            try lab.startRelay()
            try lab.waitFor("the prefix routed into the new interface") {
                try routeLines().contains { $0.hasPrefix("\(Self.publicPrefix) dev \(lab.interface) proto 74") }
            }
            #expect(try lab.wireGuardPeers()[r2.key.publicKeyBase64]?.contains(Self.dmz) == true, "restored with the DMZ")
        }
    }
}
