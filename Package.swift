// swift-tools-version:6.0
// edgekit: network plan → per-site edge-router images, sealed profile sticks, relay.
// Layering (docs/architecture.md): EdgeSystem, EdgeModel → EdgeCrypto → EdgeRender, EdgeStick,
// Registration → EdgeImage / EdgeAgent / EdgeRelay → EdgeBuild → executables.
//
// Two toolchains read this manifest (docs/cross-build.md): the host's Swift 6.3 builds everything;
// Debian 13's Swift 6.0.3 cross-builds only the agent for aarch64, and cannot even resolve the
// packages the rest needs (swift-nio, swift-log, swift-service-lifecycle and GRDB declare tools
// 6.1 or later). So the agent and what it links come first, with only ArgumentParser, and
// everything else is added under `#if compiler(>=6.1)`.
//
// The agent and the libraries it links import FoundationEssentials, not Foundation: full Foundation
// drags ICU's 30 MB of data into a static binary (docs/agent.md, "Weight"). Yams needs full
// Foundation, so plan.yaml is read in PlanYAML, which only the builder links.
import PackageDescription

let package = Package(
    name: "edgekit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "edgekit-agent", targets: ["edgekit-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The one error shape (code, input, message, cause) every library's errors share.
        .target(name: "EdgeErrors"),
        // Plan, prefix math, validation, wire documents; plans are read from a parsed YAML tree
        // (PlanNode) that PlanYAML builds.
        .target(name: "EdgeModel", dependencies: ["EdgeErrors"]),
        // libcrypto (OpenSSL 3) through a few static inline shims; only SystemCrypto uses it.
        .systemLibrary(name: "COpenSSL", providers: [.apt(["libssl-dev"])]),
        // Hashes, HMAC, HKDF, ChaCha20-Poly1305, X25519 and Ed25519 in CryptoKit's API shapes, over
        // the system's libcrypto: Debian's security updates reach it, and it builds with Swift 6.0.
        .target(name: "SystemCrypto", dependencies: ["COpenSSL"]),
        // Key derivation, age v1, signify, profiles and site certificates.
        .target(name: "EdgeCrypto", dependencies: [
            "EdgeErrors",
            "EdgeModel",
            "EdgeSystem",
            "SystemCrypto",
        ]),
        // Syscall shims Swift cannot reach (copy_file_range, FICLONE, a pty); only EdgeSystem calls them.
        .target(name: "CEdgeSystem"),
        // Running the system's tools (mtools, blkid, wg, nft, …) with captured output and clear errors.
        .target(name: "EdgeSystem", dependencies: ["EdgeErrors", "CEdgeSystem"]),
        // Profile inputs: what a path is, sealing, stick images (FATImage), read back bounded, never mounted.
        .target(name: "EdgeStick", dependencies: ["EdgeErrors", "EdgeModel", "EdgeCrypto", "EdgeSystem", "SystemCrypto"]),
        // Every config file as a pure function of the model.
        .target(name: "EdgeRender", dependencies: ["EdgeErrors", "EdgeModel"]),
        // The registration protocol, shared by agent (client) and relay (server).
        .target(name: "Registration", dependencies: [
            "EdgeErrors", "EdgeModel", "EdgeCrypto",
            "SystemCrypto",
        ]),
        // Device side: find, unseal, verify, render, apply, supervise.
        .target(name: "EdgeAgent", dependencies: [
            "EdgeErrors", "EdgeModel", "EdgeCrypto", "EdgeRender", "EdgeStick", "EdgeSystem", "Registration",
            "SystemCrypto",
        ]),
        // Shared by the three executables: error → exit code mapping, output helpers.
        .target(name: "CLISupport", dependencies: [
            "EdgeErrors",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "edgekit-agent", dependencies: [
            "CLISupport",
            "EdgeAgent",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

#if compiler(>=6.1)
package.products += [
    .executable(name: "edgekit", targets: ["edgekit"]),
    .executable(name: "edgekit-relay", targets: ["edgekit-relay"]),
]
package.dependencies += [
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
]
package.targets += [
    // plan.yaml → Plan: Yams composes the text (and EdgeModel checks it); libyaml's events are also
    // read directly through Yams' CYaml module, which Yams does not export as a product.
    .target(name: "PlanYAML", dependencies: ["EdgeErrors", "EdgeModel", .product(name: "Yams", package: "Yams")]),
    // libarchive and libzstd through pkg-config; only EdgeImage's Archive.swift uses it.
    .systemLibrary(
        name: "CArchive", pkgConfig: "libarchive",
        providers: [.apt(["libarchive-dev", "libzstd-dev"])]),
    // Rootfs, overlays, archives, disk images, the relay bundle.
    .target(name: "EdgeImage", dependencies: [
        "EdgeErrors", "EdgeModel", "EdgeCrypto", "EdgeRender", "EdgeStick", "EdgeSystem", "CArchive",
        "SystemCrypto",
    ]),
    // Registration server and WireGuard control.
    .target(name: "EdgeRelay", dependencies: [
        "EdgeErrors", "EdgeModel", "EdgeCrypto", "EdgeStick", "EdgeSystem", "Registration",
        "SystemCrypto",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "GRDB", package: "GRDB.swift"),
    ]),
    // The operator CLI's work: `edgekit build` (sites in parallel, sticks, relay bundle), plan
    // creation, rendered trees, profile reports, output files. The edgekit executable only
    // parses arguments and calls it.
    .target(name: "EdgeBuild", dependencies: [
        "EdgeErrors", "EdgeModel", "EdgeCrypto", "EdgeRender", "EdgeImage", "EdgeStick", "EdgeSystem", "PlanYAML",
    ]),
    .executableTarget(name: "edgekit", dependencies: [
        "CLISupport", "EdgeBuild",
        "EdgeModel", "EdgeCrypto", "EdgeImage", "EdgeStick", "EdgeRender", "PlanYAML",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ]),
    .executableTarget(name: "edgekit-relay", dependencies: [
        "CLISupport",
        "EdgeModel", "EdgeRelay",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ]),
    // Benchmarks behind bench/*.sh: print measured figures next to their targets.
    .executableTarget(name: "edgekit-bench", dependencies: ["EdgeModel", "EdgeCrypto", "EdgeImage", "PlanYAML"]),
    // Shared by the test targets: the built products, system tools, scratch folders, unique
    // names and the traits that skip with a reason (.requiresRoot, .requiresTool, .slow).
    .target(name: "TestSupport", dependencies: ["EdgeErrors"], path: "Tests/TestSupport"),
    .testTarget(name: "EdgeModelTests", dependencies: ["TestSupport", "EdgeErrors", "EdgeModel", "PlanYAML"], resources: [.copy("Fixtures")]),
    .testTarget(name: "EdgeCryptoTests", dependencies: [
        "TestSupport", "EdgeErrors", "EdgeCrypto", "EdgeModel", "PlanYAML", "SystemCrypto",
    ], resources: [.copy("Fixtures")]),
    // Published vectors (RFC 4231, 5869, 7748, 8032, 8439) against SystemCrypto.
    .testTarget(name: "SystemCryptoTests", dependencies: ["SystemCrypto"]),
    .testTarget(name: "EdgeRenderTests", dependencies: ["TestSupport", "EdgeModel", "EdgeRender", "PlanYAML"]),
    // bench/render.sh: times rendering the whole example plan.
    .executableTarget(name: "edgekit-bench-render", dependencies: ["EdgeModel", "EdgeRender", "PlanYAML"],
                      path: "bench/edgekit-bench-render"),
    .testTarget(name: "EdgeImageTests", dependencies: ["TestSupport", "EdgeErrors", "EdgeImage", "EdgeModel", "EdgeCrypto", "EdgeStick"]),
    .testTarget(name: "EdgeStickTests", dependencies: ["TestSupport", "EdgeErrors", "EdgeStick", "EdgeSystem"]),
    .testTarget(name: "EdgeSystemTests", dependencies: ["TestSupport", "EdgeSystem"]),
    .testTarget(name: "EdgeBuildTests", dependencies: ["TestSupport", "EdgeErrors", "EdgeBuild", "EdgeModel", "EdgeCrypto", "EdgeRender", "EdgeImage", "PlanYAML"]),
    .testTarget(name: "CLITests", dependencies: ["TestSupport", "EdgeErrors", "EdgeModel", "EdgeCrypto", "PlanYAML"]),
    .testTarget(name: "RegistrationTests", dependencies: [
        "Registration", "EdgeCrypto", "SystemCrypto",
    ]),
    .testTarget(name: "EdgeRelayTests", dependencies: ["TestSupport", "EdgeErrors",
        "EdgeRelay", "EdgeRender", "Registration", "EdgeCrypto", "EdgeModel", "PlanYAML",
        "SystemCrypto",
        // Small signed update bundles for the relay to serve (FleetMetricsLabTests).
        "EdgeImage",
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        // To lay down a database as an older release left it (migration tests).
        .product(name: "GRDB", package: "GRDB.swift"),
    ]),
    // Runs the built edgekit-agent against scratch roots, sticks and namespaces.
    .testTarget(name: "EdgeAgentTests", dependencies: ["TestSupport", "EdgeErrors",
        "EdgeModel", "EdgeCrypto", "EdgeRender", "EdgeAgent", "EdgeStick", "EdgeImage", "Registration", "PlanYAML",
    ]),
    // Runs the end-to-end namespace lab (lab/lab.sh) with the built binaries; root only, minutes.
    .testTarget(name: "LabTests", dependencies: ["TestSupport"]),
]
#endif
