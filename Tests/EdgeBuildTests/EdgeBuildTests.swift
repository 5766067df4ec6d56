import EdgeBuild
import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import Synchronization
import Testing
import TestSupport

/// The operator CLI's logic without the CLI: plan creation, locating sites and routers, serials,
/// the rendered tree and the concurrency helper `edgekit build` runs sites and sticks with.
@Suite struct EdgeBuildTests {
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "corp")

    func planFolder(_ dir: TemporaryDirectory, sites: Int = 2) throws -> Plan {
        let path = try PlanCreation.write(directory: dir.path + "/plan", name: "corp", relay: "relay.corp.example:4500", sites: sites)
        #expect(path == dir.path + "/plan/plan.yaml")
        return try PlanLoader.load(directory: dir.path + "/plan")
    }

    @Test func aNewPlanLoadsAndKeepsTheRelayPort() throws {
        try TemporaryDirectory.with { dir in
            let plan = try planFolder(dir, sites: 3)
            #expect(plan.sites.count == 3 && plan.relay.wireguardPort == 4500)
            expectCode("build.output-exists") {
                _ = try PlanCreation.write(directory: dir.path + "/plan", name: "corp", relay: "r.example", sites: 1)
            }
        }
    }

    @Test(arguments: ["r.example:0", ":51820", "a:1:2", "r.example:65536"])
    func aBadRelayWritesNothing(relay: String) throws {
        try TemporaryDirectory.with { dir in
            expectCode("build.bad-flag") {
                _ = try PlanCreation.write(directory: dir.path + "/plan", name: "corp", relay: relay, sites: 1)
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/plan"))
        }
    }

    @Test func sitesAndRoutersAreLocatedOrListed() throws {
        try TemporaryDirectory.with { dir in
            let plan = try planFolder(dir)
            let (site, router) = try plan.locate(site: "site2", router: 1)
            #expect(site.name == "site2" && router?.slot == 1)
            expectCode("build.no-such-site") {
                _ = try plan.locate(site: "nowhere", router: nil)
            }
            expectCode("build.no-such-router") {
                _ = try plan.locate(site: "site1", router: 7)
            }
        }
    }

    @Test func serialsComeFromTheFlagThenSourceDateEpoch() throws {
        #expect(try ProfileSerial.resolve(42, environment: ["SOURCE_DATE_EPOCH": "7"]).serial == 42)
        #expect(try ProfileSerial.resolve(nil, environment: ["SOURCE_DATE_EPOCH": "7"]).serial == 7)
        expectCode("build.bad-serial") {
            _ = try ProfileSerial.resolve(nil, environment: ["SOURCE_DATE_EPOCH": "soon"])
        }
        let now = UInt64(Date().timeIntervalSince1970)
        #expect(try ProfileSerial.resolve(nil, environment: [:]).serial >= now)
    }

    @Test func theRenderedTreeHoldsTheKeyOwnerOnly() throws {
        try TemporaryDirectory.with { dir in
            let plan = try planFolder(dir)
            let (site, router) = try plan.locate(site: "site1", router: 2)
            let files = RenderedTree.files(plan: plan, keys: Self.keys, target: .router(site, router!))
            let written = try RenderedTree.write(files, under: dir.path + "/out")
            #expect(written.count == files.count && written.last == dir.path + "/out/etc/edgekit/wireguard.key")
            let key = try FileManager.default.attributesOfItem(atPath: written.last!)[.posixPermissions] as? Int
            #expect(key == 0o600)
            let relay = RenderedTree.files(plan: plan, keys: Self.keys, target: .relay(plan.relay))
            #expect(relay.last?.mode == 0o600)
            #expect(relay.last?.contents == Self.keys.relayWireGuardKey().privateKeyBase64 + "\n")
        }
    }

    @Test func aMissingRelayBinaryFailsBeforeAnyWork() throws {
        try TemporaryDirectory.with { dir in
            let plan = try planFolder(dir)
            expectCode("build.missing-input") {
                _ = try FleetBuild(plan: plan, sites: plan.sites, keys: Self.keys, serial: 1, issuedAt: Date(),
                                   relayBinary: "/nonexistent/edgekit-relay", outputDirectory: dir.path + "/out")
            }
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/out"))
        }
    }

    struct Refused: Error, Equatable { var item: Int }

    @Test func everyItemRunsAndTheFirstErrorIsRethrown() throws {
        let seen = Mutex<Set<Int>>([])
        try forEachConcurrently(Array(0..<100)) { item in
            seen.withLock { _ = $0.insert(item) }
        }
        #expect(seen.withLock { $0 } == Set(0..<100))
        #expect(throws: Refused(item: 3)) {
            try forEachConcurrently([3]) { throw Refused(item: $0) }
        }
        #expect(throws: Refused.self) {
            try forEachConcurrently(Array(0..<50)) { item in if item % 10 == 3 { throw Refused(item: item) } }
        }
    }
}
