import EdgeModel
import Foundation
import PlanYAML
import TestSupport
import Testing

/// `nat64: true` on a site and the plan's `nat64:` (docs/nat64.md): where the relay's NAT64 and
/// DNS64 sit; a plan without them is read as before.
@Suite struct NAT64PlanTests {
    static func text(siteB: Bool = true, _ extra: String = "") throws -> String {
        var text = try String(contentsOfFile: Products.examplePlan + "/plan.yaml", encoding: .utf8)
        if siteB { text = text.replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    nat64: true\n") }
        return text + "\n" + extra
    }

    @Test func aSiteTurnsItOnWithTheDefaults() throws {
        let plan = try PlanLoader.parse(try Self.text())
        #expect(plan.nat64Enabled && plan.nat64Sites.map(\.name) == ["site-b"])
        #expect(plan.nat64.prefix.description == "fd5e:d9e1:7c2a:fffe::/96")
        #expect(plan.nat64.network.description == "fd5e:d9e1:7c2a:fffe::/64")
        #expect(plan.nat64.resolver.description == "fd5e:d9e1:7c2a:fffe:0:1:0:53")
        #expect(plan.nat64.translator.description == "fd5e:d9e1:7c2a:fffe:0:1:0:64")
        #expect(!plan.nat64.prefix.contains(plan.nat64.resolver) && !plan.nat64.prefix.contains(plan.nat64.translator),
                "the resolver and tayga sit outside the /96 of translated addresses")
        #expect(plan.nat64.dnsForward.isEmpty)
        #expect(PlanSummary(plan).text().contains("nat64 fd5e:d9e1:7c2a:fffe::/96  on relay relay.example.net  dns64 fd5e:d9e1:7c2a:fffe:0:1:0:53  for site-b\n"))
    }

    @Test func aSetPrefixAndForwarders() throws {
        let plan = try PlanLoader.parse(try Self.text("nat64:\n  prefix: fd5e:d9e1:7c2a:6464::/96\n  dns_forward: [9.9.9.9, \"2620:fe::fe\"]\n"))
        #expect(plan.nat64.prefix.description == "fd5e:d9e1:7c2a:6464::/96")
        #expect(plan.nat64.resolver.description == "fd5e:d9e1:7c2a:6464:0:1:0:53")
        #expect(plan.nat64.dnsForward == ["9.9.9.9", "2620:fe::fe"])
    }

    @Test func aPlanWithoutItIsReadAsBefore() throws {
        let plan = try PlanLoader.load(directory: Products.examplePlan)
        #expect(!plan.nat64Enabled && plan.sites.allSatisfy { !$0.nat64 })
        #expect(!(try PlanSummary(plan).json()).contains("\"nat64\""))
    }

    @Test("bad NAT64 settings: one line each, naming the line and the problem")
    func badSettingsAreRefusedByLine() throws {
        #expect(planProblems(try Self.text(siteB: false).replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    nat64: yes\n"))
                == ["plan.yaml:52: site \"site-b\" nat64 \"yes\" is neither true nor false"])
        #expect(planProblems(try Self.text("nat64:\n  prefix: fd5e:d9e1:7c2a:6464::/64\n")).first?.contains("must be a /96 inside the plan's ula") == true)
        #expect(planProblems(try Self.text("nat64:\n  prefix: 64:ff9b::/96\n")).first?.contains("must be a /96 inside the plan's ula") == true)
        #expect(planProblems(try Self.text("nat64:\n  prefix: fd5e:d9e1:7c2a:1::/96\n"))
                == ["plan.yaml:61: nat64.prefix fd5e:d9e1:7c2a:1::/96 is inside site \"site-a\"'s /64; pick a /96 of a /64 no site uses"])
        #expect(planProblems(try Self.text("nat64:\n  dns_forward: [resolver.example]\n"))
                == ["plan.yaml:61: nat64.dns_forward \"resolver.example\" is not an IP address (e.g. 9.9.9.9 or 2620:fe::fe)"])
        #expect(planProblems(try Self.text("nat64:\n  colour: red\n")).first?.contains("unknown key \"colour\" in nat64") == true)
        #expect(planProblems(try Self.text("client_prefix: fd5e:d9e1:7c2a:fffe::/64\nclients:\n  - name: c\n")).first?
                    .contains("is inside client_prefix") == true)
    }
}
