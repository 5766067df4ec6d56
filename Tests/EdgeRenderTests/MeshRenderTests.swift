import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import Testing
import TestSupport

/// The servers' mesh files (docs/mesh.md) beyond their golden bytes: file sets and modes, peers,
/// endpoints, the MTU, and that routers and relay do not see servers at all.
@Suite("Mesh renderers")
struct MeshRenderTests {
    @Test("networkd: a .netdev/.network pair (0644) and the key file (0600); the key is never inline")
    func networkdFileSet() throws {
        let (_, _, files) = try Fixtures.mesh("sa", format: .networkd)
        #expect(files.map(\.path) == [
            "/etc/systemd/network/50-edgekit-mesh.key",
            "/etc/systemd/network/50-edgekit-mesh.netdev",
            "/etc/systemd/network/50-edgekit-mesh.network",
        ])
        #expect(files.map(\.mode) == [0o600, 0o644, 0o644])
        #expect(try files.file(ConfigPaths.meshKey).contents == Fixtures.meshKeys["sa"]!.privateKey + "\n")
        let netdev = try files.file(ConfigPaths.meshNetdev).contents
        #expect(!netdev.contains(Fixtures.meshKeys["sa"]!.privateKey))
        #expect(netdev.contains("PrivateKeyFile=/etc/systemd/network/50-edgekit-mesh.key\n"))
        #expect(netdev.contains("Name=wg-mesh\nKind=wireguard\n"))
    }

    @Test("wg-quick: one file, 0600, with the key, the /128, the port and the MTU")
    func wgQuickFile() throws {
        let (plan, server, files) = try Fixtures.mesh("sa", format: .wgQuick)
        #expect(files.map(\.path) == ["/etc/wireguard/wg-mesh.conf"])
        #expect(files.map(\.mode) == [0o600])
        let text = files[0].contents
        #expect(text.contains("PrivateKey = \(Fixtures.meshKeys["sa"]!.privateKey)\n"))
        #expect(text.contains("Address = \(server.meshAddress)/64\n"), "the /128 with the mesh range's length")
        #expect(text.contains("ListenPort = 58001\n"))
        #expect(text.contains("MTU = \(plan.meshMTU)\n"))
    }

    @Test("peers are every other server: its public key, [site address]:port, its mesh /128", arguments: MeshFormat.allCases)
    func peers(format: MeshFormat) throws {
        let (plan, _, files) = try Fixtures.mesh("sb", format: format)
        let text = try files.file(format == .networkd ? ConfigPaths.meshNetdev : ConfigPaths.meshWgQuick).contents
        let sep = format == .networkd ? "=" : " = "
        let section = format == .networkd ? "[WireGuardPeer]" : "[Peer]"
        #expect(text.components(separatedBy: section).count - 1 == 2, "\(text)")
        #expect(!text.contains("PublicKey\(sep)\(Fixtures.meshKeys["sb"]!.publicKey)"), "a server is not its own peer")
        for name in ["sa", "sc"] {
            let peer = try #require(plan.server(named: name))
            #expect(text.contains("""
                PublicKey\(sep)\(Fixtures.meshKeys[name]!.publicKey)
                Endpoint\(sep)[\(peer.siteAddress)]:58001
                AllowedIPs\(sep)\(peer.meshAddress)/128

                """), "\(text)")
        }
    }

    @Test("the .network holds the server's /128 and a route to the whole mesh range")
    func network() throws {
        let (plan, server, files) = try Fixtures.mesh("sc", format: .networkd)
        let text = try files.file(ConfigPaths.meshNetwork).contents
        #expect(text.contains("Address=\(server.meshAddress)/128\n"))
        #expect(text.contains("Destination=\(plan.mesh!.prefix)\n"))
    }

    @Test("the mesh MTU is the uplink MTU minus two WireGuard layers of 80 bytes, at least 1280",
          arguments: [(1500, 1340), (1492, 1332), (1440, 1280), (1428, 1280), (1420, 1280)])
    func mtu(uplink: Int, mesh: Int) throws {
        let text = try MeshPlanFixture.text().replacingOccurrences(of: "uplink_mtu: 1500", with: "uplink_mtu: \(uplink)")
        let plan = try PlanLoader.parse(text)
        let netdev = try Fixtures.mesh("sa", format: .networkd, plan: plan).files.file(ConfigPaths.meshNetdev).contents
        #expect(netdev.contains("MTUBytes=\(mesh)\n"), "\(netdev)")
        let wgQuick = try Fixtures.mesh("sa", format: .wgQuick, plan: plan).files[0].contents
        #expect(wgQuick.contains("MTU = \(mesh)\n"))
        if uplink < 1440 {
            #expect(netdev.contains("= \(uplink - 160), raised to IPv6's 1280 (that tunnel must run over IPv4, 60 bytes)."), "\(netdev)")
        }
    }

    @Test("one router's smaller uplink_mtu sets the whole mesh's MTU")
    func smallestUplinkSetsTheMesh() throws {
        var plan = try Fixtures.meshPlan()
        plan.sites[1].routers[0].uplinkMTU = 1492
        let netdev = try Fixtures.mesh("sa", format: .networkd, plan: plan).files.file(ConfigPaths.meshNetdev).contents
        // 1492 - 80 = 1412, down to 1408: the relay's 1420 pads to 16 bytes (docs/network.md, "MTU").
        #expect(netdev.contains("MTUBytes=1328\n"), "\(netdev)")
        #expect(netdev.contains("smallest uplink 1492 - 80 = 1408 (router <-> relay), down to a multiple of 16 (WireGuard pads to 16 bytes, up to the sender's MTU); - 80 (this mesh) = 1328."), "\(netdev)")
    }

    @Test("adding servers changes no router's or relay's file")
    func routersAndRelayIgnoreServers() throws {
        let without = try Fixtures.examplePlan()
        let with = try Fixtures.meshPlan()
        #expect(!with.servers.isEmpty)
        for (site, siteWith) in zip(without.sites, with.sites) {
            for (router, routerWith) in zip(site.routers, siteWith.routers) {
                #expect(EdgeRouterConfig.files(plan: without, site: site, router: router, relayPublicKeys: [Fixtures.relayPublicKey])
                        == EdgeRouterConfig.files(plan: with, site: siteWith, router: routerWith, relayPublicKeys: [Fixtures.relayPublicKey]))
            }
        }
        #expect(RelayFiles.files(plan: without) == RelayFiles.files(plan: with))
    }

    @Test("a plan without a mesh renders no mesh files")
    func noMesh() throws {
        let plan = try Fixtures.meshPlan()
        var withoutMesh = plan
        withoutMesh.mesh = nil
        #expect(MeshFiles.files(plan: withoutMesh, server: plan.servers[0], privateKey: "k", publicKeys: [:], format: .networkd).isEmpty)
    }
}
