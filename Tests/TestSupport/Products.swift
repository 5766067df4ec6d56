import Foundation
import Testing

/// Where the package's own programs and files are, for tests that run them.
public enum Products {
    /// The checkout the tests were built from.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The example plan every suite builds on (`profiles/example`).
    public static var examplePlan: String { packageRoot.appendingPathComponent("profiles/example").path }

    /// Where `swift build` put the executables: `$EDGEKIT_BIN_DIR`, else the folder of the test
    /// bundle that runs us (`.build/debug/edgekitPackageTests.xctest` sits next to them).
    public static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["EDGEKIT_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("edgekit").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    /// The path of a built executable of this package (`edgekit`, `edgekit-agent`, `edgekit-relay`).
    public static func executable(_ name: String) -> String {
        binDirectory.appendingPathComponent(name).path
    }

    /// The release executables build.sh makes for the image tests (`$EDGEKIT_RELEASE_BIN_DIR`), else
    /// the debug ones: the image builder hashes and copies hundreds of megabytes.
    public static var releaseBinDirectory: String {
        ProcessInfo.processInfo.environment["EDGEKIT_RELEASE_BIN_DIR"] ?? binDirectory.path
    }

    /// The static, stripped agent that goes into images (`$EDGEKIT_AGENT_BINARY`, set by build.sh),
    /// or nil when the suite runs without it (plain `swift test`).
    public static var applianceAgent: String? {
        guard let path = ProcessInfo.processInfo.environment["EDGEKIT_AGENT_BINARY"],
              FileManager.default.isExecutableFile(atPath: path) else { return nil }
        return path
    }

    /// The agent cross-built for aarch64 that goes into arm64 images (`$EDGEKIT_ARM64_AGENT_BINARY`,
    /// set by build.sh from scripts/aarch64-agent.sh), or nil without it.
    public static var arm64ApplianceAgent: String? {
        guard let path = ProcessInfo.processInfo.environment["EDGEKIT_ARM64_AGENT_BINARY"],
              FileManager.default.isExecutableFile(atPath: path) else { return nil }
        return path
    }
}

/// The example plan with the servers' mesh added (docs/plan.md, "The servers' mesh"): three servers
/// on two sites, one with the default token. Routers, relay and sites are those of
/// `profiles/example`, so tests can show that adding servers changes none of their files.
public enum MeshPlanFixture {
    /// `mesh:` and `servers:` as an operator appends them to the example plan.
    public static let meshSection = """

        mesh:
          prefix: fd9a:61c4:0b7e:1::/64
          port: 58001

        servers:
          - name: sa
            site: site-a
            token: "::10"
          - name: sb
            site: site-b
            token: "::10"
            address: fd9a:61c4:0b7e:1::b
          - name: sc
            site: site-a
            generation: 2

        """

    /// The example plan's `relay:` as two relays, for replacing it in `exampleText()`.
    public static let twoRelaysSection = """
        relays:
          - name: eu
            host: relay.example.net
          - name: us
            host: relay-us.example.net
            wireguard_port: 51830
            registration_port: 51831

        """

    /// The example plan with two relays (`twoRelaysSection` instead of its `relay:`).
    public static func twoRelaysText() throws -> String {
        let text = try exampleText()
        let start = try #require(text.range(of: "relay:\n"), "the example plan has a relay: block")
        let end = try #require(text.range(of: "defaults:", range: start.upperBound..<text.endIndex), "defaults: follows relay:")
        return text.replacingCharacters(in: start.lowerBound..<end.lowerBound, with: twoRelaysSection)
    }

    /// The example plan's text (`profiles/example/plan.yaml`).
    public static func exampleText() throws -> String {
        try String(contentsOfFile: Products.examplePlan + "/plan.yaml", encoding: .utf8)
    }

    /// The example plan's text with `meshSection` (or `section`) appended.
    public static func text(section: String = meshSection) throws -> String {
        try exampleText() + section
    }
}
