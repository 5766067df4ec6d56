import EdgeModel
import Foundation
import PlanYAML
import TestSupport
import Testing

/// `clients:` and `client_prefix:` (docs/plan.md, "Clients"): laptops and phones get a /128 from a
/// /64 of the plan's /48; a plan without them is read as before.
@Suite struct ClientPlanTests {
    static func plan(_ extra: String) throws -> Plan {
        let text = try String(contentsOfFile: Products.examplePlan + "/plan.yaml", encoding: .utf8)
        return try PlanLoader.parse(text + "\n" + extra)
    }

    /// The one line per problem a bad plan gives.
    static func problems(_ extra: String) -> [String] {
        do {
            _ = try plan(extra)
            return []
        } catch {
            return "\(error)".split(separator: "\n").map(String.init)
        }
    }

    @Test func clientsGetAddressesFromTheLastSlashSixtyFourByDefault() throws {
        let plan = try Self.plan("""
            clients:
              - name: alice-phone
              - name: bob-laptop
                address: fd5e:d9e1:7c2a:ffff::b0b
                generation: 3
            """)
        #expect(plan.clientPrefix.description == "fd5e:d9e1:7c2a:ffff::/64")
        #expect(plan.clients.map(\.name) == ["alice-phone", "bob-laptop"])
        // Default address: the prefix with FNV-1a-64("alice-phone") as host part (as servers' tokens).
        let alice = try #require(plan.client(named: "alice-phone"))
        #expect(alice.address == plan.clientPrefix.host(Plan.Addressing.serverInterfaceID(name: "alice-phone")))
        #expect(alice.address.description == "fd5e:d9e1:7c2a:ffff:1ed8:981a:824f:39ce" && alice.generation == 1)
        #expect(plan.client(named: "bob-laptop")?.address.description == "fd5e:d9e1:7c2a:ffff::b0b")
        #expect(plan.client(named: "bob-laptop")?.generation == 3)
        #expect(plan.clientRelay == plan.relay)
        let summary = PlanSummary(plan)
        #expect(summary.text().contains("clients fd5e:d9e1:7c2a:ffff::/64  through relay relay.example.net\n"), "\(summary.text())")
        #expect(try summary.json().contains("\"clients\" : {"))
    }

    @Test func anExplicitClientPrefixIsUsed() throws {
        let plan = try Self.plan("client_prefix: fd5e:d9e1:7c2a:ff00::/64\nclients:\n  - name: c\n    address: fd5e:d9e1:7c2a:ff00::c\n")
        #expect(plan.clientPrefix.description == "fd5e:d9e1:7c2a:ff00::/64")
        #expect(plan.clients.first?.address.description == "fd5e:d9e1:7c2a:ff00::c")
    }

    @Test func aPlanWithoutClientsIsReadAsBefore() throws {
        let plan = try PlanLoader.load(directory: Products.examplePlan)
        #expect(plan.clients.isEmpty)
        #expect(!(try PlanSummary(plan).json()).contains("\"clients\""))
        #expect(!PlanSummary(plan).text().contains("\nclients "))
    }

    @Test("bad clients: one line each, naming the line and the problem")
    func badClientsAreRefusedByLine() {
        #expect(Self.problems("clients:\n  - name: a\n  - name: a\n")
                == ["plan.yaml:61: client name \"a\" is already used on line 60; client names must be unique"])
        #expect(Self.problems("clients:\n  - name: a\n    address: fd00::1\n")
                == ["plan.yaml:61: client \"a\" address fd00::1 is outside client_prefix fd5e:d9e1:7c2a:ffff::/64"])
        #expect(Self.problems("clients:\n  - name: a\n    address: \"fd5e:d9e1:7c2a:ffff::\"\n").first?
                    .contains("is client_prefix's first address") == true)
        #expect(Self.problems("clients:\n  - name: a\n    address: fd5e:d9e1:7c2a:ffff::9\n  - name: b\n    address: fd5e:d9e1:7c2a:ffff::9\n")
                == ["plan.yaml:63: client \"b\" address fd5e:d9e1:7c2a:ffff::9 is already client \"a\"'s (line 61); set \"address\" for one of them"])
        #expect(Self.problems("clients:\n  - name: a\n    colour: red\n")
                == ["plan.yaml:61: unknown key \"colour\" in client \"a\" (allowed: name, address, generation)"])
        #expect(Self.problems("clients:\n  - name: Not_A_Name\n").first?.contains("client name") == true)
        #expect(Self.problems("client_prefix: fd5e:d9e1:7c2a:1::/64\n")
                == ["plan.yaml:59: client_prefix fd5e:d9e1:7c2a:1::/64 is site \"site-a\"'s /64; pick a /64 no site uses"])
        #expect(Self.problems("client_prefix: fd00::/64\n").first?.contains("must be a /64 inside the plan's ula") == true)
        #expect(Self.problems("client_prefix: fd5e:d9e1:7c2a:ff00::/56\n").first?.contains("must be a /64 inside the plan's ula") == true)
    }

    @Test("with clients, a site on the default client prefix (index 65535) is refused unless client_prefix moves them")
    func aSiteOnTheDefaultClientPrefix() throws {
        let text = try String(contentsOfFile: Products.examplePlan + "/plan.yaml", encoding: .utf8)
            .replacingOccurrences(of: "    index: 2\n", with: "    index: 65535\n")
        #expect((try? PlanLoader.parse(text)) != nil, "no clients: index 65535 is a site like any other")
        #expect(throws: (any Error).self) { try PlanLoader.parse(text + "\nclients:\n  - name: c\n") }
        let moved = try PlanLoader.parse(text + "\nclient_prefix: fd5e:d9e1:7c2a:fffe::/64\nclients:\n  - name: c\n")
        #expect(moved.clientPrefix.description == "fd5e:d9e1:7c2a:fffe::/64")
    }
}
