import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import TestSupport
import Testing

/// `servers:` and `mesh:` (docs/plan.md, "The servers' mesh"): resolved addresses, defaults, and a
/// plan without them read exactly as before.
@Suite struct MeshPlanTests {
    @Test func serversGetTheirSiteAndMeshAddresses() throws {
        let plan = try PlanLoader.parse(try MeshPlanFixture.text())
        let mesh = try #require(plan.mesh)
        #expect(mesh.prefix.description == "fd9a:61c4:b7e:1::/64")
        #expect(mesh.port == 58001)
        #expect(plan.servers.map(\.name) == ["sa", "sb", "sc"])
        let sa = try #require(plan.server(named: "sa"))
        #expect(sa.site == "site-a" && sa.generation == 1)
        #expect(sa.siteAddress.description == "fd5e:d9e1:7c2a:1::10")
        // Default mesh address: the mesh prefix with FNV-1a-64("sa") = 0x08d92f07b57922d9 (computed in Python).
        #expect(sa.meshAddress.description == "fd9a:61c4:b7e:1:8d9:2f07:b579:22d9")
        let sb = try #require(plan.server(named: "sb"))
        #expect(sb.siteAddress.description == "fd5e:d9e1:7c2a:2::10")
        #expect(sb.meshAddress.description == "fd9a:61c4:b7e:1::b")
        // Default token: FNV-1a-64("sc") = 0x08d92d07b5791f73.
        let sc = try #require(plan.server(named: "sc"))
        #expect(sc.token.description == "::8d9:2d07:b579:1f73")
        #expect(sc.siteAddress.description == "fd5e:d9e1:7c2a:1:8d9:2d07:b579:1f73")
        #expect(sc.generation == 2)
    }

    @Test func theMeshPortDefaultsToTheLowEndOfTheServersRange() throws {
        let section = MeshPlanFixture.meshSection.replacingOccurrences(of: "  port: 58001\n", with: "")
        let plan = try PlanLoader.parse(try MeshPlanFixture.text(section: section))
        #expect(plan.mesh?.port == 58000)
    }

    @Test func aSmallerMeshTakesTheLowBitsOfTheName() throws {
        let section = MeshPlanFixture.meshSection.replacingOccurrences(of: "fd9a:61c4:0b7e:1::/64", with: "fd9a:61c4:0b7e:1::/96")
            .replacingOccurrences(of: "fd9a:61c4:0b7e:1::b", with: "fd9a:61c4:b7e:1::b")
        let plan = try PlanLoader.parse(try MeshPlanFixture.text(section: section))
        #expect(plan.server(named: "sa")?.meshAddress.description == "fd9a:61c4:b7e:1::b579:22d9")
    }

    @Test func aPlanWithoutServersIsReadAsBefore() throws {
        let plan = try PlanLoader.load(directory: Products.examplePlan)
        #expect(plan.mesh == nil && plan.servers.isEmpty)
        let json = try PlanSummary(plan).json()
        #expect(!json.contains("\"mesh\"") && !json.contains("\"servers\""))
        #expect(!PlanSummary(plan).text().contains("\nmesh "))
    }

    @Test func aMeshWithoutServersIsValid() throws {
        let plan = try PlanLoader.parse(try MeshPlanFixture.text(section: "\nmesh:\n  prefix: fd9a:61c4:b7e:1::/64\n"))
        #expect(plan.mesh != nil && plan.servers.isEmpty)
    }

    @Test func planShowListsTheServers() throws {
        let summary = PlanSummary(try PlanLoader.parse(try MeshPlanFixture.text()))
        let text = summary.text()
        #expect(text.contains("mesh fd9a:61c4:b7e:1::/64  udp 58001  mtu 1340\n"), "\(text)")
        #expect(text.contains("sb      site-b  1    fd5e:d9e1:7c2a:2::10"), "\(text)")
        let json = try summary.json()
        #expect(json.contains("\"mesh_address\" : \"fd9a:61c4:b7e:1::b\""), "\(json)")
        #expect(json.contains("\"site_address\" : \"fd5e:d9e1:7c2a:1::10\""), "\(json)")
    }
}
