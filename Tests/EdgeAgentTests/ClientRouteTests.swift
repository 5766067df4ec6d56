import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import Testing
import TestSupport

/// With several relays, clients connect through the first only, so every router routes the client
/// prefix through its tunnel to it (docs/clients.md, "Several relays"). The device renders from its
/// profile, which carries no clients: the route must come from what the profile does carry.
@Suite struct ClientRouteTests {
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")

    /// site-a router 1's rendered files, as the device renders them from its profile's JSON.
    static func deviceFiles(_ plan: Plan) throws -> (json: String, files: [RenderedFile]) {
        let site = try #require(plan.site(named: "site-a")), router = try #require(site.router(slot: 1))
        let profile = try keys.profile(plan: plan, site: site, router: router, serial: 1000, issuedAt: Date(timeIntervalSince1970: 1000))
        let json = try DocumentCoding.encode(profile)
        let model = try DocumentCoding.decode(ProfileDocument.self, from: json).model()
        return (String(decoding: json, as: UTF8.self),
                EdgeRouterConfig.files(plan: model.plan, site: model.site, router: model.router, relayPublicKeys: keys.relayPublicKeys(of: plan)))
    }

    @Test("the device routes a set client_prefix through the first relay; the default one is not even carried")
    func theDeviceRoutesTheClientPrefix() throws {
        let two = try MeshPlanFixture.twoRelaysText()
        let explicit = try PlanLoader.parse(two + "\nclient_prefix: fd5e:d9e1:7c2a:ff00::/64\nclients:\n  - name: alice-phone\n")
        let (json, files) = try Self.deviceFiles(explicit)
        #expect(json.contains("\"client_prefix\":\"fd5e:d9e1:7c2a:ff00::/64\"") || json.contains("\"client_prefix\" : \"fd5e:d9e1:7c2a:ff00::/64\""), "\(json)")
        let first = try #require(files.first { $0.path.hasSuffix("/30-edgekit-wg-relay.network") })
        let second = try #require(files.first { $0.path.hasSuffix("/30-edgekit-wg-relay1.network") })
        #expect(first.contents.contains("\nDestination=fd5e:d9e1:7c2a:ff00::/64\n"), "\(first.contents)")
        #expect(!second.contents.contains("ff00::/64"))
        // What `edgekit render` writes on the operator's side is the same file.
        let site = try #require(explicit.site(named: "site-a"))
        let rendered = EdgeRouterConfig.files(plan: explicit, site: site, router: site.routers[0], relayPublicKeys: Self.keys.relayPublicKeys(of: explicit))
        #expect(rendered.first { $0.path == first.path }?.contents == first.contents)

        // The default prefix is not carried (profiles of plans without client_prefix are as before)
        // and still routed.
        let plain = try PlanLoader.parse(two)
        let (plainJSON, plainFiles) = try Self.deviceFiles(plain)
        #expect(!plainJSON.contains("client_prefix"))
        #expect(plainFiles.first { $0.path.hasSuffix("/30-edgekit-wg-relay.network") }?.contents.contains("\nDestination=fd5e:d9e1:7c2a:ffff::/64\n") == true)
        // One relay: its /48 route covers the clients; no route of their own.
        let one = try PlanLoader.load(directory: Products.examplePlan)
        #expect(try Self.deviceFiles(one).files.allSatisfy { !$0.contents.contains("ffff::/64") })
    }

    /// NAT64 (docs/nat64.md): the profile carries the site's `nat64` and a set prefix, so the device
    /// announces the relay's DNS64 resolver and, with several relays, routes the NAT64 /64 through
    /// the first, as `edgekit render` does.
    @Test("the device announces the DNS64 resolver of a set NAT64 prefix and routes it through the first relay")
    func theDeviceAnnouncesTheResolver() throws {
        let two = try MeshPlanFixture.twoRelaysText().replacingOccurrences(of: "    vrrp_id: 51\n", with: "    vrrp_id: 51\n    nat64: true\n")
        let plan = try PlanLoader.parse(two + "\nnat64:\n  prefix: fd5e:d9e1:7c2a:6464::/96\n")
        let (json, files) = try Self.deviceFiles(plan)
        #expect(json.contains("\"nat64\":true") || json.contains("\"nat64\" : true"), "\(json)")
        let radvd = try #require(files.first { $0.path == ConfigPaths.radvd })
        #expect(radvd.contents.contains("RDNSS fd5e:d9e1:7c2a:6464:0:1:0:53\n"), "\(radvd.contents)")
        let first = try #require(files.first { $0.path.hasSuffix("/30-edgekit-wg-relay.network") })
        #expect(first.contents.contains("\nDestination=fd5e:d9e1:7c2a:6464::/64\n"), "\(first.contents)")
        let site = try #require(plan.site(named: "site-a"))
        let rendered = EdgeRouterConfig.files(plan: plan, site: site, router: site.routers[0], relayPublicKeys: Self.keys.relayPublicKeys(of: plan))
        #expect(rendered.first { $0.path == ConfigPaths.radvd }?.contents == radvd.contents)
        // A site without NAT64 announces no resolver, and its profile has no nat64 field.
        let plain = try Self.deviceFiles(try PlanLoader.parse(try MeshPlanFixture.twoRelaysText()))
        #expect(!plain.json.contains("nat64") && plain.files.allSatisfy { !$0.contents.contains("RDNSS") })
    }
}
