import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import TestSupport
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

    /// `board:` picks a row of the board table per site; a site without one is `pc-uefi`.
    /// `relay:` is a list of one relay named `relay`; `relays:` names each, numbers their tunnel
    /// addresses `<tunnel>::1`, `::2`, … and each site prefers relay `index mod N`.
    @Test func relaysAreAListAndSitesSpreadOverThem() throws {
        let single = try PlanLoader.load(directory: examplePlan)
        #expect(single.relays.map(\.name) == ["relay"])
        let plan = try PlanLoader.parse(try MeshPlanFixture.twoRelaysText())
        #expect(plan.relays.map(\.name) == ["eu", "us"])
        #expect(plan.relays.map(\.tunnelAddress.description) == ["fd3b:4f10:a8c6::1", "fd3b:4f10:a8c6::2"])
        #expect(plan.relays.map(\.wireguardPort) == [51820, 51830])
        #expect(plan.relays.map(\.registrationPort) == [51821, 51831])
        let siteA = try #require(plan.site(named: "site-a")), siteB = try #require(plan.site(named: "site-b"))
        #expect(siteA.index == 1 && siteB.index == 2)
        #expect(plan.relays(preferredBy: siteA).map(\.name) == ["us", "eu"])
        #expect(plan.relays(preferredBy: siteB).map(\.name) == ["eu", "us"])
        #expect(plan.relays(preferredBy: siteB) == plan.relays)
    }

    @Test func boardIsPerSiteAndDefaultsToPCUEFI() throws {
        let example = try PlanLoader.load(directory: examplePlan)
        #expect(example.sites.map(\.board) == [.pcUEFI, .pcUEFI])
        let text = try String(contentsOfFile: examplePlan + "/plan.yaml", encoding: .utf8)
            .replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    board: pc-bios\n")
        let mixed = try PlanLoader.parse(text)
        #expect(mixed.sites.map(\.board.name) == ["pc-uefi", "pc-bios"])
        #expect(mixed.site(named: "site-b")?.board.firmware == [.bios, .uefi])
        // A build input only: the profile's wire form of the site is the same on every board.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let wire = try encoder.encode(try #require(mixed.site(named: "site-b")))
        #expect(wire == (try encoder.encode(try #require(example.site(named: "site-b")))))
        #expect(!String(decoding: wire, as: UTF8.self).contains("board"))
    }

    /// The board table: unique names, every board says how to boot it under qemu with each
    /// firmware it claims, and a BIOS boot partition goes with GRUB.
    @Test func boardTableIsConsistent() {
        #expect(Set(Board.all.map(\.name)).count == Board.all.count)
        #expect(Board.all.map(\.name) == ["pc-uefi", "pc-bios", "arm64-uefi", "rpi"])
        #expect(Board.named("pc-uefi") == Board.default)
        for board in Board.all {
            #expect(board.emulation.map(\.firmware) == board.firmware, "\(board)")
            #expect(board.partitions.hasBIOSBootPartition == board.bootloaders.contains(.grubPC), "\(board)")
            #expect(board.packages.contains { $0.hasPrefix("linux-image-") }, "\(board)")
        }
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

/// Plans written to hurt: they must be refused in one line each, quickly, whatever the file is.
@Suite struct HostilePlanTests {
    /// Issue 16 item 2: nine levels of ten aliases used as a mapping key made the duplicate-key
    /// check hash ten to the ninth nodes (minutes of CPU for half a kilobyte).
    @Test func aliasBombIsRefusedBeforeAnyExpansion() throws {
        let text = try String(contentsOf: fixtures.appendingPathComponent("bad-plans/31-alias-as-mapping-key.yaml"), encoding: .utf8)
        #expect(text.utf8.count < 600)
        let clock = ContinuousClock()
        var lines: [String] = []
        let elapsed = clock.measure {
            do { _ = try PlanLoader.parse(text) } catch let error as PlanError {
                lines = error.diagnostics.map(\.description)
            } catch { lines = ["\(error)"] }
        }
        #expect(lines == ["plan.yaml:1: YAML anchor \"&a0\": anchors and aliases are not allowed in a plan; write each value out"])
        #expect(elapsed < .milliseconds(100), "refusing the alias plan took \(elapsed)")
    }

    /// A deeply nested list must not exhaust the stack of the YAML composer.
    @Test func deepNestingIsRefusedWithoutRecursion() throws {
        let text = "name: " + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "\n"
        expectCode("plan.too-deep") { _ = try PlanLoader.parse(text) }
    }

    @Test func overLargePlanTextIsRefused() {
        let text = "name: net\n" + String(repeating: "# padding\n", count: 110_000)
        expectCode("plan.too-large") { _ = try PlanLoader.parse(text) }
    }

    @Test func controlCharactersAreEscapedInDiagnostics() {
        let diagnostic = PlanDiagnostic(file: "plan.yaml", line: 3, message: "site name \"a\nb\0c\u{1b}[2J\u{2028}\" is bad")
        #expect(diagnostic.description == "plan.yaml:3: site name \"a\\nb\\0c\\u{1b}[2J\\u{2028}\" is bad")
    }

    /// `plan.yaml` that is not a text file is named as what it is, at once (a FIFO is never waited on).
    @Test func planFileThatIsNotAFileIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-hostile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/plan.yaml"
        func refusal() -> [String] {
            do {
                _ = try PlanLoader.load(directory: dir)
                return ["accepted"]
            } catch let error as PlanError {
                return error.diagnostics.map(\.description)
            } catch {
                return ["\(error)"]
            }
        }
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/zero")
        #expect(refusal() == ["\(path): not a file but a character device (a link to /dev/zero); plan.yaml must be a text file"])
        try FileManager.default.removeItem(atPath: path)

        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: dir + "/gone.yaml")
        #expect(refusal() == ["\(path): a link to \(dir)/gone.yaml, which does not exist"])
        try FileManager.default.removeItem(atPath: path)

        #expect(mkfifo(path, 0o600) == 0)
        #expect(refusal() == ["\(path): not a file but a named pipe (FIFO); plan.yaml must be a text file"])
        try FileManager.default.removeItem(atPath: path)

        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(refusal() == ["\(path): not a file but a folder; plan.yaml must be a text file"])
        try FileManager.default.removeItem(atPath: path)

        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: (1 << 20) + 1)))
        #expect(refusal() == ["\(path): the plan is 1048577 bytes, more than the 1048576 (1 MiB) a plan may hold; is this the right file?"])
    }
}
