import EdgeModel
import Foundation
import Testing

/// The package root, found from this file so tests never depend on the working directory.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
let examplePlan = packageRoot.appendingPathComponent("profiles/example").path

/// Compares `actual` with a golden file; `EDGEKIT_RECORD_GOLDEN=1` rewrites it and fails the test
/// so a re-record is always reviewed before the suite can pass again.
func expectGolden(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = fixtures.appendingPathComponent("golden").appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["EDGEKIT_RECORD_GOLDEN"] == "1" {
        try Data(actual.utf8).write(to: url)
        Issue.record("re-recorded \(name); review the diff and run again without EDGEKIT_RECORD_GOLDEN", sourceLocation: sourceLocation)
        return
    }
    let expected = try String(contentsOf: url, encoding: .utf8)
    #expect(actual == expected, "\(name) differs from its golden file", sourceLocation: sourceLocation)
}

@Suite struct PlanTests {
    @Test func examplePlanResolvesAsDocumented() throws {
        let plan = try PlanLoader.load(directory: examplePlan)
        #expect(plan.name == "example")
        #expect(plan.sites.map(\.name) == ["site-a", "site-b"])
        let siteA = try #require(plan.site(named: "site-a"))
        #expect(siteA.prefix.description == "fd5e:d9e1:7c2a:1::/64")
        #expect(siteA.routers.map(\.slot) == [1, 2])
        #expect(siteA.vip.description == "fd5e:d9e1:7c2a:1::1")
        #expect(siteA.linkLocalVIP.description == "fe80::1")
        #expect(siteA.routers[1].tunnelAddress.description == "fd3b:4f10:a8c6::1:1:2")
        #expect(siteA.routers[1].lanAddress.description == "fd5e:d9e1:7c2a:1::3")
        #expect(plan.relay.tunnelAddress.description == "fd3b:4f10:a8c6::1")
        #expect(plan.defaults.tunnelMTU == 1420)
        #expect(plan.site(named: "site-b")?.routers.count == 1)
    }

    @Test func planShowGoldenText() throws {
        try expectGolden(PlanSummary(try PlanLoader.load(directory: examplePlan)).text(), "plan-show.txt")
    }

    @Test func planShowGoldenJSON() throws {
        try expectGolden(try PlanSummary(try PlanLoader.load(directory: examplePlan)).json(), "plan-show.json")
    }

    static let badPlans: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent("bad-plans").path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }()

    @Test func badPlanCorpusIsLargeEnough() {
        #expect(Self.badPlans.count >= 15, "the bad-plan corpus must keep at least 15 cases")
    }

    /// Each bad plan must produce exactly its expected lines (file:line: message), nothing else.
    @Test(arguments: badPlans)
    func badPlanGivesItsExactErrors(_ name: String) throws {
        let dir = fixtures.appendingPathComponent("bad-plans")
        let text = try String(contentsOf: dir.appendingPathComponent("\(name).yaml"), encoding: .utf8)
        let expected = try String(contentsOf: dir.appendingPathComponent("\(name).expected"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(!expected.isEmpty, "\(name).expected must list at least one error")
        do {
            _ = try PlanLoader.parse(text)
            Issue.record("\(name) was accepted")
        } catch let error as PlanError {
            #expect(error.diagnostics.map(\.description) == expected)
        }
    }

    @Test func initOutputPassesCheckForManySeeds() throws {
        for seed in 0..<200 as Range<UInt64> {
            var generator = SeededGenerator(state: seed)
            let text = PlanTemplate.text(name: "net\(seed)", relayHost: "relay.example.net", relayPort: 51820,
                                         sites: Int(seed % 7) + 1, using: &generator)
            let plan = try PlanLoader.parse(text)
            #expect(plan.sites.count == Int(seed % 7) + 1)
            #expect(IPv6Prefix("fd00::/8")!.contains(plan.ula))
            #expect(!plan.tunnel.overlaps(plan.ula))
        }
    }

    @Test func randomULAIsFd00Slash48WithFortyRandomBits() {
        var generator = SystemRandomNumberGenerator()
        var seen = Set<IPv6Prefix>()
        for _ in 0..<1000 {
            let ula = PlanTemplate.randomULA(using: &generator)
            #expect(ula.length == 48)
            #expect(ula.address.high >> 56 == 0xfd)
            seen.insert(ula)
        }
        #expect(seen.count == 1000, "40 random bits should not repeat in 1000 draws")
    }
}
