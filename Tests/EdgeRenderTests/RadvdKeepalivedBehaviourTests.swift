import EdgeModel
import EdgeRender
import Foundation
import Testing

extension RealTools {
    @Suite("radvd and keepalived behaviour")
    struct LANBehaviour {
        /// radvd on the router namespace, a server namespace on the LAN configured the way
        /// docs/network.md tells server owners (accept_ra_rt_info_max_plen = 48).
        @Test("radvd: only with the VIP does a LAN host get a SLAAC address and the /48 route, no default route")
        func radvdAdvertises() throws {
            _ = try Lab.tool("radvd")
            let lab = try Lab()
            defer { lab.tearDown() }
            let (plan, site, router, files) = try Fixtures.router("site-a", slot: 1)
            let lan = InterfaceNames.lan(of: router)
            let r = try lab.namespace("r"), server = try lab.namespace("s")
            try lab.sysctl(server, "net.ipv6.conf.default.accept_ra_rt_info_max_plen", "48")
            try lab.veth(r, lan, server, "eth0")
            try lab.sysctl(r, "net.ipv6.conf.all.forwarding", "1")
            try lab.ip(r, "addr", "add", "\(router.lanAddress)/64", "dev", lan)
            // With the router's own firewall, so router solicitations are shown to get through it.
            let ruleset = try lab.write("nftables.conf", files.file(ConfigPaths.nftables).contents)
            try lab.mustRun(["ip", "netns", "exec", r, "nft", "-f", ruleset])
            let config = try lab.write("radvd.conf", files.file(ConfigPaths.radvd).contents)
            let radvd = try lab.start(["ip", "netns", "exec", r, "radvd", "-n", "-m", "stderr", "-C", config,
                                       "-p", lab.directory.appendingPathComponent("radvd.pid").path], log: "radvd.log")

            func slaacAddress() throws -> Bool {
                let addresses = try lab.exec(server, ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]).stdout
                return addresses.split(separator: "\n").contains { line in
                    line.split(separator: " ").contains { word in
                        word.split(separator: "/").first.flatMap { IPv6Address($0) }.map(site.prefix.contains) ?? false
                    }
                }
            }
            func planRoute() throws -> String {
                try lab.exec(server, ["ip", "-6", "route", "show", "\(plan.ula)"]).stdout
            }

            // As a backup (no VIP): radvd must stay silent, or hosts would use the backup as next hop.
            let early = try lab.waitFor(.seconds(4)) { try slaacAddress() }
            #expect(early == nil, "radvd advertised without the VIP")
            #expect(radvd.isRunning, "radvd exited: \(lab.log("radvd.log"))")

            // Becoming master: keepalived adds the link-local VIP (no DAD, like keepalived).
            try lab.ip(r, "addr", "add", "\(site.linkLocalVIP)/64", "dev", lan, "nodad")
            let configured = try lab.waitFor(.seconds(20)) { try slaacAddress() && planRoute().contains("via \(site.linkLocalVIP)") }
            let routeNow = try planRoute()
            #expect(configured != nil, "no SLAAC address or /48 route: \(routeNow)\n\(lab.log("radvd.log"))")
            let route = try planRoute()
            #expect(route.contains("via \(site.linkLocalVIP) dev eth0"), "\(route)")
            #expect(route.contains("pref high"), "\(route)")
            let defaultRoute = try lab.exec(server, ["ip", "-6", "route", "show", "default"]).stdout
            #expect(defaultRoute.isEmpty, "AdvDefaultLifetime 0 must not install a default route: \(defaultRoute)")
        }

        /// The two routers of site-a, their LAN ports joined by a veth pair, each with its firewall.
        @Test("keepalived: the VIPs sit on the master and move to the backup when it is killed")
        func keepalivedFailover() throws {
            _ = try Lab.tool("keepalived")
            let lab = try Lab()
            defer { lab.tearDown() }
            let plan = try Fixtures.examplePlan()
            let site = try #require(plan.site(named: "site-a"))
            let first = try #require(site.router(slot: 1)), second = try #require(site.router(slot: 2))
            #expect(first.priority > second.priority)
            let lan = InterfaceNames.lan(of: first)
            let k1 = try lab.namespace("k"), k2 = try lab.namespace("k")
            try lab.veth(k1, lan, k2, lan)

            var pidFiles: [String: String] = [:]
            func startKeepalived(_ ns: String, _ router: Router) throws -> Process {
                try lab.ip(ns, "addr", "add", "\(router.lanAddress)/64", "dev", lan)
                let files = EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: [Fixtures.relayPublicKey])
                let config = try lab.write("keepalived-\(router.slot).conf", files.file(ConfigPaths.keepalived).contents)
                // With the router's own firewall: were VRRP dropped, both routers would hold the VIPs.
                let ruleset = try lab.write("nftables-\(router.slot).conf", files.file(ConfigPaths.nftables).contents)
                try lab.mustRun(["ip", "netns", "exec", ns, "nft", "-f", ruleset])
                let pid = { (name: String) in lab.directory.appendingPathComponent("\(name)-\(router.slot).pid").path }
                pidFiles[ns] = pid("vrrp")
                // Own pid files, so it never meets the host's keepalived or another test's.
                return try lab.start(["ip", "netns", "exec", ns, "keepalived", "--dont-fork", "--log-console",
                                      "--vrrp", "-f", config, "-p", pid("keepalived"), "-r", pid("vrrp"),
                                      "-c", pid("checkers")], log: "keepalived-\(router.slot).log")
            }
            func holdsVIPs(_ ns: String) throws -> Bool {
                let addresses = try lab.exec(ns, ["ip", "-6", "addr", "show", "dev", lan]).stdout
                return addresses.contains("inet6 \(site.vip)/64") && addresses.contains("inet6 \(site.linkLocalVIP)/64")
            }
            func vrrpChild(_ ns: String) -> pid_t? {
                pidFiles[ns].flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                    .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            defer {
                // The VRRP child outlives a killed parent for a moment; never leave one behind.
                for ns in [k1, k2] { if let child = vrrpChild(ns) { kill(child, SIGKILL) } }
            }

            let master = try startKeepalived(k1, first)
            let elected = try lab.waitFor(.seconds(10)) { try holdsVIPs(k1) }
            #expect(elected != nil, "router 1 never became master:\n\(lab.log("keepalived-1.log"))")
            _ = try startKeepalived(k2, second)
            // Router 2 hears router 1's adverts and stays backup.
            let stolen = try lab.waitFor(.seconds(5)) { try holdsVIPs(k2) }
            #expect(stolen == nil,
                    "router 2 took the VIPs from a live master:\n\(lab.log("keepalived-2.log"))")
            #expect(try holdsVIPs(k1))

            // A crash, not a shutdown: freeze both processes of router 1 (so the parent cannot
            // respawn its child or send a priority-0 advert), then SIGKILL them.
            let child = try #require(vrrpChild(k1), "no VRRP child pid for router 1")
            kill(master.processIdentifier, SIGSTOP)
            kill(child, SIGSTOP)
            kill(child, SIGKILL)
            kill(master.processIdentifier, SIGKILL)
            master.waitUntilExit()

            // Master_Down_Interval = 3 × advert_int + skew (RFC 5798 section 6.1): about 3.6 s here.
            let advert = Double(plan.defaults.vrrpAdvertIntervalCentiseconds) / 100
            let bound = Duration.seconds(3 * advert + 3)
            let failover = try lab.waitFor(bound) { try holdsVIPs(k2) }
            #expect(failover != nil, "VIPs did not move to router 2 within \(bound):\n\(lab.log("keepalived-2.log"))")
            if let failover { print("keepalived failover took \(failover)") }
        }
    }
}
