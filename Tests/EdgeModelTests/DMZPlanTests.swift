import EdgeModel
import Foundation
import PlanYAML
import TestSupport
import Testing

/// A relay's `public_prefix` and a site's `dmz:` (docs/dmz.md): which /64 a DMZ takes, which relay
/// routes it, the profile's wire form, and every bad value refused by line.
@Suite struct DMZPlanTests {
    /// The example plan, its relay with `publicPrefix` (when given) and site-a with `dmz` (when given).
    static func text(publicPrefix: String? = "2001:db8:4200::/48", dmz: String? = "    dmz:\n      vlan: 100\n") throws -> String {
        var text = try MeshPlanFixture.exampleText()
        if let publicPrefix {
            text = text.replacingOccurrences(of: "  registration_port: 51821\n", with: "  registration_port: 51821\n  public_prefix: \(publicPrefix)\n")
        }
        if let dmz { text = text.replacingOccurrences(of: "    vrrp_id: 51\n", with: "    vrrp_id: 51\n" + dmz) }
        return text
    }

    @Test func aDMZTakesThePublicPrefixsSubnetNumberedLikeItsSite() throws {
        let plan = try PlanLoader.parse(try Self.text())
        #expect(plan.relay.publicPrefix?.description == "2001:db8:4200::/48")
        #expect(plan.sites[0].dmz == DMZ(link: .vlan(100), prefix: IPv6Prefix("2001:db8:4200:1::/64")!, relay: "relay"))
        #expect(plan.sites[1].dmz == nil)
        #expect(plan.dmzSites(of: plan.relay).map(\.name) == ["site-a"])
    }

    @Test func aSetPrefixAndTheRelayWhosePrefixHoldsIt() throws {
        let text = try MeshPlanFixture.twoRelaysText()
            .replacingOccurrences(of: "    registration_port: 51831\n", with: "    registration_port: 51831\n    public_prefix: 2001:db8:77::/56\n")
            .replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    dmz:\n      vlan: 7\n      prefix: 2001:db8:77:42::/64\n")
        let plan = try PlanLoader.parse(text)
        #expect(plan.sites[1].dmz == DMZ(link: .vlan(7), prefix: IPv6Prefix("2001:db8:77:42::/64")!, relay: "us"))
        #expect(plan.relays.map { plan.dmzSites(of: $0).map(\.name) } == [[], ["site-b"]])
    }

    @Test func aDMZOnAPortOfItsOwn() throws {
        let plan = try PlanLoader.parse(try Self.text(dmz: "    dmz:\n      port: eth2\n"))
        #expect(plan.sites[0].dmz == DMZ(link: .port("eth2"), prefix: IPv6Prefix("2001:db8:4200:1::/64")!, relay: "relay"))
        #expect(plan.sites[0].dmz?.interface == "eth2" && plan.sites[0].dmz?.vlan == nil)
        let site = plan.sites[0]
        #expect(try JSONDecoder().decode(Site.self, from: JSONEncoder().encode(site)).dmz == site.dmz)
        #expect(PlanSummary(plan).text().contains("site-a  port eth2  2001:db8:4200:1::/64  relay"))
    }

    @Test func theProfilesSiteCarriesItAndReadsItBack() throws {
        let site = try PlanLoader.parse(try Self.text()).sites[0]
        let data = try JSONEncoder().encode(site)
        #expect(String(decoding: data, as: UTF8.self).contains("\"dmz\":{\"prefix\":\"2001:db8:4200:1::\\/64\",\"relay\":\"relay\",\"vlan\":100}")
                || String(decoding: data, as: UTF8.self).contains("\"dmz\":{"))
        #expect(try JSONDecoder().decode(Site.self, from: data).dmz == site.dmz)
        let plain = try PlanLoader.parse(try Self.text(dmz: nil)).sites[0]
        #expect(!String(decoding: try JSONEncoder().encode(plain), as: UTF8.self).contains("dmz"), "a site without a DMZ reads as before")
    }

    @Test("bad DMZ settings: one line each, naming the line and the problem")
    func badSettingsAreRefusedByLine() throws {
        #expect(planProblems(try Self.text(publicPrefix: nil))
                == ["plan.yaml:36: site \"site-a\" dmz needs a relay with public_prefix (the public prefix your provider routes to the relay)"])
        #expect(planProblems(try Self.text(publicPrefix: "fd00:1::/48"))
                == ["plan.yaml:17: relay.public_prefix fd00:1::/48 is not a public (global unicast, 2000::/3) prefix; use the one your provider routes to the relay"])
        #expect(planProblems(try Self.text(publicPrefix: "2001:db8::/96"))
                == ["plan.yaml:17: relay.public_prefix must be a /32 to /64 (each DMZ takes a /64), found /96"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      vlan: 4095\n"))
                == ["plan.yaml:37: site \"site-a\" dmz vlan is 4095, outside 1–4094"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      vlan: 5\n      prefix: 2001:db8:99::/64\n"))
                == ["plan.yaml:38: site \"site-a\" dmz prefix 2001:db8:99::/64 is inside no relay's public_prefix (2001:db8:4200::/48)"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      vlan: 5\n      prefix: 2001:db8:4200::/56\n"))
                == ["plan.yaml:38: site \"site-a\" dmz prefix must be a /64 (hosts configure themselves by SLAAC), found /56"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      prefix: 2001:db8:4200:5::/64\n"))
                == ["plan.yaml:37: site \"site-a\" dmz needs vlan (an 802.1Q VLAN on the LAN port) or port (a port of its own)"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      vlan: 5\n      port: eth2\n"))
                == ["plan.yaml:38: site \"site-a\" dmz has both vlan and port; keep one"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      port: auto\n"))
                == ["plan.yaml:37: site \"site-a\" dmz port \"auto\" must be an interface name (the same on every router of the site), e.g. eth2"])
        #expect(planProblems(try Self.text(dmz: "    dmz:\n      vlan: 5\n      vlans: 6\n")).first?.contains("unknown key \"vlans\" in site \"site-a\" dmz") == true)
        let twice = try Self.text().replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    dmz:\n      vlan: 9\n      prefix: 2001:db8:4200:1::/64\n")
        #expect(planProblems(twice).first?.contains("dmz prefix 2001:db8:4200:1::/64 is already the DMZ of site \"site-a\"") == true)
    }
}
