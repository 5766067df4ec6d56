import EdgeModel
import EdgeRender
import Foundation
import Testing

/// What the renderers promise beyond the golden bytes: file set, modes, policies, no secrets.
@Suite("Renderers")
struct RenderModelTests {
    @Test("an auto router gets every file, sorted by path, 0644, no private key")
    func routerFileSet() throws {
        let (_, _, _, files) = try Fixtures.router("site-a", slot: 1)
        #expect(files.map(\.path) == [
            "/etc/default/prometheus-node-exporter",
            "/etc/edgekit/wg-relay.conf",
            "/etc/keepalived/keepalived.conf",
            "/etc/nftables.conf",
            "/etc/radvd.conf",
            "/etc/sysctl.d/90-edgekit.conf",
            "/etc/systemd/network/10-edgekit-lan.link",
            "/etc/systemd/network/10-edgekit-uplink.link",
            "/etc/systemd/network/20-edgekit-lan.network",
            "/etc/systemd/network/20-edgekit-uplink.network",
            "/etc/systemd/network/30-edgekit-wg-relay.netdev",
            "/etc/systemd/network/30-edgekit-wg-relay.network",
        ])
        #expect(files.allSatisfy { $0.mode == 0o644 })
        #expect(files.allSatisfy { !$0.contents.contains("PrivateKey =") && !$0.contents.contains("PrivateKey=") })
        #expect(try files.file(ConfigPaths.routerTunnelNetdev).contents.contains("PrivateKeyFile=/etc/edgekit/wireguard.key"))
    }

    @Test("the relay gets every file, sorted by path, 0644")
    func relayFileSet() throws {
        let files = RelayFiles.files(plan: try Fixtures.examplePlan())
        #expect(files.map(\.path) == [
            "/etc/edgekit/relay.json",
            "/etc/nftables.conf",
            "/etc/prometheus/edgekit-routers.json",
            "/etc/prometheus/edgekit-rules.yml",
            "/etc/prometheus/prometheus.yml",
            "/etc/sysctl.d/90-edgekit-relay.conf",
            "/etc/systemd/network/30-edgekit-relay.netdev",
            "/etc/systemd/network/30-edgekit-relay.network",
            "/etc/systemd/system/edgekit-relay.service",
        ])
        #expect(files.allSatisfy { $0.mode == 0o644 })
    }

    @Test("rendering is deterministic")
    func deterministic() throws {
        let first = try Fixtures.allRenderings()
        let second = try Fixtures.allRenderings()
        #expect(first.map(\.files) == second.map(\.files))
    }

    @Test("named interfaces are used as they are; MAC-matched ones get a .link file and a stable name")
    func interfaceNames() throws {
        var (plan, site, router, _) = try Fixtures.router("site-a", slot: 1)
        router.uplink = .name("enp1s0")
        router.lan = .mac("52:54:00:12:34:56")
        let files = EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: [Fixtures.relayPublicKey])
        #expect(!files.contains { $0.path == ConfigPaths.uplinkLink })
        #expect(try files.file(ConfigPaths.uplinkNetwork).contents.contains("Name=enp1s0\n"))
        #expect(try files.file(ConfigPaths.nftables).contents.contains("iifname \"enp1s0\" udp dport 51820 accept"))
        let lanLink = try files.file(ConfigPaths.lanLink).contents
        #expect(lanLink.contains("MACAddress=52:54:00:12:34:56\n"))
        #expect(lanLink.contains("Name=lan0\n"))
        #expect(try files.file(ConfigPaths.radvd).contents.contains("interface lan0\n"))
        #expect(try files.file(ConfigPaths.keepalived).contents.contains("interface lan0\n"))
    }

    @Test("health tracking with distinct priorities, nopreempt with equal ones, neither for one router")
    func preemptPolicy() throws {
        let plan = try Fixtures.examplePlan()
        var siteA = try #require(plan.site(named: "site-a"))
        func keepalived(_ site: Site) -> String {
            EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[0], relayPublicKeys: [Fixtures.relayPublicKey])
                .first { $0.path == ConfigPaths.keepalived }?.contents ?? ""
        }
        // Distinct priorities (200, 100): the agent's health is tracked with a weight that puts an
        // unhealthy 200 (99) below a healthy 100, and no preempt_delay holds the backup back.
        #expect(keepalived(siteA).contains("track_file edgekit_health {\n    file \"/run/edgekit/health\"\n    init_file 1\n}\n"))
        #expect(keepalived(siteA).contains("        edgekit_health weight -101\n"))
        #expect(!keepalived(siteA).contains("    preempt_delay "))
        #expect(!keepalived(siteA).contains("nopreempt"))
        // Three routers 250, 120, 30: the weight spans the whole range (221).
        var three = siteA
        three.routers.append(three.routers[1])
        three.routers[0].priority = 250
        three.routers[1].priority = 120
        three.routers[2].priority = 30
        three.routers[2].slot = 3
        #expect(keepalived(three).contains("        edgekit_health weight -221\n"))
        // Equal priorities: nopreempt, and nothing to track (a lower priority would not be preempted).
        siteA.routers[1].priority = siteA.routers[0].priority
        #expect(keepalived(siteA).contains("    nopreempt\n"))
        #expect(!keepalived(siteA).contains("track_file"))
        // One router: none of them; it keeps its VIPs whatever its health.
        let siteB = try #require(plan.site(named: "site-b"))
        #expect(!keepalived(siteB).contains("preempt_delay"))
        #expect(!keepalived(siteB).contains("nopreempt"))
        #expect(!keepalived(siteB).contains("track_file"))
    }

    @Test("advert_int is seconds with two decimals", arguments: [(100, "1.00"), (5, "0.05"), (150, "1.50"), (4095, "40.95")])
    func advertInterval(centiseconds: Int, text: String) throws {
        var plan = try Fixtures.examplePlan()
        plan.defaults.vrrpAdvertIntervalCentiseconds = centiseconds
        let site = plan.sites[0]
        let files = EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[0], relayPublicKeys: [Fixtures.relayPublicKey])
        #expect(try files.file(ConfigPaths.keepalived).contents.contains("    advert_int \(text)\n"))
    }

    @Test("tunnel MTU is uplink MTU - 80 and follows the plan")
    func tunnelMTU() throws {
        var plan = try Fixtures.examplePlan()
        plan.defaults.uplinkMTU = 1492
        let site = plan.sites[0]
        let files = EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[0], relayPublicKeys: [Fixtures.relayPublicKey])
        #expect(try files.file(ConfigPaths.routerTunnelNetdev).contents.contains("MTUBytes=1412\n"))
    }

    @Test("a router's uplink_mtu override renders its tunnel, the mesh takes the smallest uplink, DHCP's MTU is used")
    func uplinkMTUOverride() throws {
        var plan = try Fixtures.examplePlan()
        plan.sites[0].routers[1].uplinkMTU = 1428
        let site = plan.sites[0]
        let files = EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[1], relayPublicKeys: [Fixtures.relayPublicKey])
        // 1428 - 80 = 1348, down to a multiple of 16 below the relay's 1420 (WireGuard's padding).
        #expect(try files.file(ConfigPaths.routerTunnelNetdev).contents.contains("MTUBytes=1344\n"))
        #expect(try files.file(ConfigPaths.routerTunnelNetdev).contents.contains("(40 IPv6 + 8 UDP + 32 WireGuard), down to a multiple of 16"))
        #expect(try files.file(ConfigPaths.routerTunnelSetconf).contents.contains("MTU 1344 (uplink 1428 - 80, down to a multiple of 16"))
        // DHCP option 26 sets the uplink's MTU, which the agent sizes the tunnel from.
        #expect(try files.file(ConfigPaths.uplinkNetwork).contents.contains("[DHCPv4]\n") == true)
        #expect(try files.file(ConfigPaths.uplinkNetwork).contents.contains("\nUseMTU=yes\n"))
        let other = EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[0], relayPublicKeys: [Fixtures.relayPublicKey])
        #expect(try other.file(ConfigPaths.routerTunnelNetdev).contents.contains("MTUBytes=1420\n"))
        // 1428 - 160 = 1268 < 1280: the mesh stays at IPv6's minimum (that router's tunnel must run over IPv4).
        #expect(plan.smallestUplinkMTU == 1428)
        #expect(plan.meshMTU == 1280)
        plan.sites[0].routers[1].uplinkMTU = 1492
        #expect(plan.meshMTU == 1328)
    }

    @Test("every comment line of every rendered file explains itself (no bare or empty comments)")
    func commentsSayWhy() throws {
        for (name, files) in try Fixtures.allRenderings() {
            for file in files {
                for line in file.contents.split(separator: "\n") {
                    let trimmed = line.drop { $0 == " " }
                    guard trimmed.hasPrefix("#"), !trimmed.hasPrefix("#!") else { continue }
                    #expect(trimmed.count > 12, "\(name)\(file.path): comment says nothing: \(line)")
                }
            }
        }
    }

    @Test("the relay daemon config round-trips and holds the plan's public parameters")
    func relayDaemonConfig() throws {
        let plan = try Fixtures.examplePlan()
        let file = try RelayFiles.files(plan: plan).file(ConfigPaths.relayDaemonConfig)
        let config = try RelayConfig.decode(file.contents)
        #expect(config == RelayConfig(plan: plan))
        #expect(config.listenPort == 51821)
        #expect(config.interface == "wg-edgekit")
        #expect(config.operatorPublicKeyFile == "/etc/edgekit/operator.pub")
        #expect(config.privateKeyFile == "/etc/edgekit/relay-wireguard.key")
        #expect(config.stateDatabase == "/var/lib/edgekit-relay/relay.sqlite")
        #expect(config.plan == "example")
        #expect(config.ula == plan.ula)
        #expect(config.tunnelPrefix == plan.tunnel)
        #expect(file.contents.hasSuffix("}\n"))
    }
}
