import EdgeRelay
import Testing

/// `SiteRoutes`' decisions and the text it gives `ip` (the lab test, `SiteRouteLabTests`, runs them
/// against the kernel).
@Suite struct SiteRoutesTests {
    @Test("a route only below the interface's MTU; changed, kept or removed as the owners' MTUs say")
    func changes() {
        let a = "fd5e:d9e1:7c2a:1::/64", b = "fd5e:d9e1:7c2a:2::/64", c = "fd5e:d9e1:7c2a:3::/64", d = "fd5e:d9e1:7c2a:4::/64"
        let changes = SiteRoutes.changes(installed: [a: 1392, b: 1360, c: 1360], desired: [a: 1392, b: 1376, d: 1420],
                                         prefixes: [a, b, c, d], interfaceMTU: 1420)
        #expect(changes == [.route(prefix: b, mtu: 1376), .remove(prefix: c)], "a kept, d as big as the interface: none")
        // Only the prefixes asked about are touched.
        #expect(SiteRoutes.changes(installed: [c: 1360], desired: [a: 1360], prefixes: [a], interfaceMTU: 1420)
                == [.route(prefix: a, mtu: 1360)])
    }

    @Test("one ip -batch line per change, marked proto 74")
    func batch() {
        let routes = SiteRoutes(interface: "wg-edgekit")
        #expect(routes.batch([.route(prefix: "fd00:1::/64", mtu: 1360), .remove(prefix: "fd00:2::/64")]) == """
            route replace fd00:1::/64 dev wg-edgekit proto 74 mtu lock 1360
            route del fd00:2::/64 dev wg-edgekit proto 74

            """)
    }
}
