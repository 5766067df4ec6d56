import Foundation

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
}
