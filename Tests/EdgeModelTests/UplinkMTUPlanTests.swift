import EdgeModel
import Foundation
import PlanYAML
import Testing

/// `uplink_mtu` per site and per router beside `defaults.uplink_mtu` (docs/plan.md), and the floor
/// the servers' mesh needs (docs/network.md, "MTU").
@Suite struct UplinkMTUPlanTests {
    static func plan(site: String = "", routerOne: String = "", routerTwo: String = "", defaults: String = "") throws -> Plan {
        try PlanLoader.parse("""
            name: net
            ula: fd00:1:2::/48
            tunnel: fd00:9:9::/64
            relay:
              host: relay.example.net
            \(defaults.isEmpty ? "" : "defaults:\n  uplink_mtu: \(defaults)")
            sites:
              - name: a
                index: 1
                vrrp_id: 1
                \(site.isEmpty ? "" : "uplink_mtu: \(site)")
                routers:
                  - slot: 1
                    priority: 200
                    \(routerOne.isEmpty ? "" : "uplink_mtu: \(routerOne)")
                  - slot: 2
                    priority: 100
                    \(routerTwo.isEmpty ? "" : "uplink_mtu: \(routerTwo)")
              - name: b
                index: 2
                vrrp_id: 2
                routers:
                  - slot: 1
                    priority: 100

            """)
    }

    @Test("a router's own uplink_mtu wins over its site's, which wins over defaults")
    func overridesResolve() throws {
        let plan = try Self.plan(site: "1460", routerTwo: "1428", defaults: "1492")
        let a = try #require(plan.site(named: "a")), b = try #require(plan.site(named: "b"))
        #expect(a.routers.map(\.uplinkMTU) == [1460, 1428])
        #expect(b.routers.map(\.uplinkMTU) == [nil])
        #expect(a.routers.map(plan.uplinkMTU(of:)) == [1460, 1428])
        #expect(plan.uplinkMTU(of: b.routers[0]) == 1492)
        // 1380 and 1348, each down to a multiple of 16 below the relay's 1412 (WireGuard's padding).
        #expect(a.routers.map(plan.tunnelMTU(of:)) == [1376, 1344])
        #expect(plan.smallestUplinkMTU == 1428)
        #expect(plan.meshMTU == 1280)
        // Without overrides, nothing changes: the mesh is uplink - 160, the routers carry no override.
        let plain = try Self.plan()
        #expect(plain.sites.flatMap(\.routers).allSatisfy { $0.uplinkMTU == nil })
        #expect(plain.meshMTU == 1340 && plain.defaults.tunnelMTU == 1420)
    }

    @Test("the floor is 1420: IPv6's 1280 inside the mesh (80) inside the tunnel over IPv4 (60)")
    func floor() throws {
        #expect(throws: Never.self) { try Self.plan(routerOne: "1420") }
        #expect(throws: Never.self) { try Self.plan(defaults: "1420") }
        #expect(FieldRules.uplinkMTU(1420) == .success(1420))
        guard case .failure(let problem) = FieldRules.uplinkMTU(1419) else {
            Issue.record("1419 was accepted")
            return
        }
        #expect(problem.message.contains("leaves 1279 bytes") && problem.message.contains("use 1420 or more"))
        do {
            _ = try Self.plan(routerTwo: "1419")
            Issue.record("a router uplink_mtu of 1419 was accepted")
        } catch let error as PlanError {
            #expect(error.diagnostics.count == 1)
            #expect(error.diagnostics.first?.description.hasPrefix("plan.yaml:") == true)
            #expect(error.diagnostics.first?.message.hasPrefix("site \"a\" router 2 uplink_mtu 1419 is too small") == true,
                    "\(error.diagnostics)")
        }
    }

    @Test("the router's override travels in its wire form and is read back with the plan's rule")
    func wireForm() throws {
        let plan = try Self.plan(site: "1460", routerTwo: "1428")
        let site = try #require(plan.site(named: "a"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(site)
        #expect(String(decoding: data, as: UTF8.self).contains("\"uplink_mtu\":1428"))
        #expect(try JSONDecoder().decode(Site.self, from: data) == site)
        // No override, no field: a plan without overrides encodes as before.
        let plain = try #require(try Self.plan().site(named: "a"))
        #expect(!String(decoding: try encoder.encode(plain), as: UTF8.self).contains("uplink_mtu"))
        let bad = String(decoding: try encoder.encode(site.routers[1]), as: UTF8.self)
            .replacingOccurrences(of: "\"uplink_mtu\":1428", with: "\"uplink_mtu\":1400")
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Router.self, from: Data(bad.utf8)) }
    }

    @Test("plan show lists a router's override")
    func planShow() throws {
        let plan = try Self.plan(routerTwo: "1428")
        let summary = PlanSummary(plan)
        #expect(summary.text().contains("auto (mtu 1428)"))
        #expect(try summary.json().contains("\"uplink_mtu\" : 1428"))
        #expect(summary.text().components(separatedBy: "(mtu ").count == 2)
    }
}
