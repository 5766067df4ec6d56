import EdgeBuild
import EdgeCrypto
import EdgeErrors
import EdgeImage
import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import Testing
import TestSupport

/// `edgekit mesh render` / `mesh bundle` without the CLI: keys derived per server, files written
/// 0600 where they hold a key, refusals that write nothing, and routers untouched by servers.
@Suite struct MeshBundleTests {
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")

    static func meshPlan() throws -> Plan { try PlanLoader.parse(try MeshPlanFixture.text()) }

    func mode(_ path: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
    }

    @Test func renderWritesTheNetworkdPairAndAKeyFileOwnerOnly() throws {
        try TemporaryDirectory.with { dir in
            let plan = try Self.meshPlan()
            let written = try MeshBundle.render(plan: plan, keys: Self.keys, server: "sa", format: .networkd, to: dir.path + "/out")
            #expect(written == [
                dir.path + "/out/etc/systemd/network/50-edgekit-mesh.key",
                dir.path + "/out/etc/systemd/network/50-edgekit-mesh.netdev",
                dir.path + "/out/etc/systemd/network/50-edgekit-mesh.network",
            ])
            #expect(try mode(written[0]) == 0o600)
            #expect(try mode(written[1]) == 0o644)
            let key = Self.keys.serverWireGuardKey(server: "sa", generation: 1)
            #expect(try String(contentsOfFile: written[0], encoding: .utf8) == key.privateKeyBase64 + "\n")
            // Every other server's derived public key is a peer; sc is at generation 2.
            let netdev = try String(contentsOfFile: written[1], encoding: .utf8)
            #expect(netdev.contains("PublicKey=\(Self.keys.serverWireGuardKey(server: "sb", generation: 1).publicKeyBase64)\n"))
            #expect(netdev.contains("PublicKey=\(Self.keys.serverWireGuardKey(server: "sc", generation: 2).publicKeyBase64)\n"))
            #expect(!netdev.contains(Self.keys.serverWireGuardKey(server: "sc", generation: 1).publicKeyBase64))
        }
    }

    @Test func renderWritesTheWgQuickFileOwnerOnly() throws {
        try TemporaryDirectory.with { dir in
            let written = try MeshBundle.render(plan: try Self.meshPlan(), keys: Self.keys, server: "sb", format: .wgQuick, to: dir.path)
            #expect(written == [dir.path + "/etc/wireguard/wg-mesh.conf"])
            #expect(try mode(written[0]) == 0o600)
        }
    }

    @Test func bundleWritesEveryServerUnderItsName() throws {
        try TemporaryDirectory.with { dir in
            let written = try MeshBundle.bundle(plan: try Self.meshPlan(), keys: Self.keys, format: .networkd, to: dir.path + "/mesh")
            #expect(written.count == 9)
            for name in ["sa", "sb", "sc"] {
                let key = dir.path + "/mesh/\(name)/etc/systemd/network/50-edgekit-mesh.key"
                #expect(try mode(key) == 0o600)
            }
        }
    }

    @Test func anUnknownServerWritesNothing() throws {
        try TemporaryDirectory.with { dir in
            expectCode("build.no-such-server") {
                _ = try MeshBundle.render(plan: try Self.meshPlan(), keys: Self.keys, server: "sd", format: .networkd, to: dir.path + "/out")
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/out"))
        }
    }

    @Test func aPlanWithoutServersIsRefused() throws {
        try TemporaryDirectory.with { dir in
            let plan = try PlanLoader.load(directory: Products.examplePlan)
            expectCode("build.no-servers") {
                _ = try MeshBundle.bundle(plan: plan, keys: Self.keys, format: .wgQuick, to: dir.path + "/out")
            }
            expectCode("build.no-servers") {
                _ = try MeshBundle.render(plan: plan, keys: Self.keys, server: "sa", format: .wgQuick, to: dir.path + "/out")
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/out"))
        }
    }

    @Test func aGenerationRotatesOnlyThatServersKey() throws {
        let plan = try Self.meshPlan()
        var rotated = plan
        rotated.servers[0].generation = 2
        let sa = MeshBundle.files(plan: plan, keys: Self.keys, server: plan.servers[0], format: .networkd)
        let saRotated = MeshBundle.files(plan: rotated, keys: Self.keys, server: rotated.servers[0], format: .networkd)
        #expect(sa.first { $0.path == ConfigPaths.meshKey } != saRotated.first { $0.path == ConfigPaths.meshKey })
        // sb's files change only where they list sa's public key (and its generation).
        let sb = MeshBundle.files(plan: plan, keys: Self.keys, server: plan.servers[1], format: .networkd)
        let sbRotated = MeshBundle.files(plan: rotated, keys: Self.keys, server: rotated.servers[1], format: .networkd)
        #expect(sb.first { $0.path == ConfigPaths.meshKey } == sbRotated.first { $0.path == ConfigPaths.meshKey })
        let before = sb.first { $0.path == ConfigPaths.meshNetdev }!.contents.split(separator: "\n")
        let after = sbRotated.first { $0.path == ConfigPaths.meshNetdev }!.contents.split(separator: "\n")
        let changed = zip(before, after).filter { $0 != $1 }
        #expect(changed.count == 2 && before.count == after.count, "\(changed)")
    }

    /// The contract of issue 19: a server joins with new files only. Every router's rendered tree
    /// (its key included), its profile document (what the stick seals, byte for byte), its site's
    /// image layer, and the relay's files are the same with and without the servers.
    @Test func addingServersChangesNoRouterStickImageOrRelay() throws {
        let without = try PlanLoader.load(directory: Products.examplePlan)
        let with = try Self.meshPlan()
        #expect(with.servers.count == 3 && without.servers.isEmpty)
        let issued = Date(timeIntervalSince1970: 1_700_000_000)
        for site in without.sites {
            let siteWith = try #require(with.site(named: site.name))
            #expect(try ImageBuilder.SiteLayer(plan: without, site: site, keys: Self.keys).files.map { [$0.path, "\($0.mode)", $0.data.base64EncodedString()] }
                    == ImageBuilder.SiteLayer(plan: with, site: siteWith, keys: Self.keys).files.map { [$0.path, "\($0.mode)", $0.data.base64EncodedString()] })
            for router in site.routers {
                let routerWith = try #require(siteWith.router(slot: router.slot))
                #expect(RenderedTree.files(plan: without, keys: Self.keys, target: .router(site, router))
                        == RenderedTree.files(plan: with, keys: Self.keys, target: .router(siteWith, routerWith)))
                let profile = try Self.keys.profile(plan: without, site: site, router: router, serial: 7, issuedAt: issued)
                let profileWith = try Self.keys.profile(plan: with, site: siteWith, router: routerWith, serial: 7, issuedAt: issued)
                #expect(try DocumentCoding.encode(profile) == DocumentCoding.encode(profileWith))
            }
        }
        #expect(RenderedTree.files(plan: without, keys: Self.keys, target: .relay(without.relay)) == RenderedTree.files(plan: with, keys: Self.keys, target: .relay(with.relay)))
    }
}
