import EdgeCrypto
import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport
@testable import EdgeRelay

/// `edgekit-relay publish` (docs/updates.md, "Publishing"): a bundle reaches the folder whole and
/// checked, or not at all. The end-to-end path (edgekit fleet update → ssh → the relay → a router
/// fetching it) is RelayUpdateLabTests.
@Suite struct BundlePublishTests {
    static let operatorKey = try! Signify.SecretKey(seed: Data(repeating: 3, count: 32), keyNumber: Data(repeating: 4, count: 8))

    /// A relay config whose operator key and bundles folder live in `folder`.
    static func config(in folder: String) throws -> RelayConfig {
        try operatorKey.publicKey.fileText(comment: "test operator").write(toFile: folder + "/operator.pub", atomically: true, encoding: .utf8)
        return RelayConfig(interface: "wg0", privateKeyFile: "/k", operatorPublicKeyFile: folder + "/operator.pub", plan: "example",
                           ula: IPv6Prefix("fd5e:d9e1:7c2a::/48")!, tunnelPrefix: IPv6Prefix("fd3b:4f10:a8c6::/64")!,
                           stateDatabase: "/s", bundlesDirectory: folder + "/bundles", updateAddresses: ["fd3b:4f10:a8c6::1"])
    }

    /// A small bundle for `site` (nil: any site of pc-uefi) at `version`.
    static func bundle(in folder: String, plan: String = "example", site: String?, version: UInt64,
                       key: Signify.SecretKey = operatorKey) throws -> String {
        let root = folder + "/root.img"
        // Random bytes, which zstd cannot shrink: a flipped byte near the end lands in the root member.
        var generator = SystemRandomNumberGenerator()
        try Data((0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: root))
        let path = folder + "/made-\(UUID().uuidString).update"
        _ = try UpdateBundleWriter.write(to: path, plan: plan, site: site, release: SystemRelease(board: "pc-uefi", version: version),
                                         system: "0123456789abcdef", root: (file: root, offset: 0, bytes: 65536), files: [], key: key,
                                         mtime: 0, progress: .silent)
        return path
    }

    /// Publishes the file at `path` as `name`, read through a descriptor as standard input would be.
    static func publish(_ path: String, as name: String, config: RelayConfig) throws -> BundlePublisher.Published {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RelayError.bundle(path, "test input missing") }
        defer { close(fd) }
        return try BundlePublisher(config: config).publish(name: name, from: fd)
    }

    static func folderContents(_ config: RelayConfig) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: config.bundlesDirectory!)) ?? []).sorted()
    }

    @Test func aBundleIsCheckedThenPutInPlaceUnderItsName() throws {
        try TemporaryDirectory.with("edgekit-publish") { dir in
            let config = try Self.config(in: dir.path)
            let made = try Self.bundle(in: dir.path, site: "site-a", version: 5)
            let published = try Self.publish(made, as: "site-a-5.update", config: config)
            let bytes = (try FileManager.default.attributesOfItem(atPath: made)[.size] as? Int) ?? -1
            #expect(published.line == "published site-a-5.update: plan example, site site-a, board pc-uefi, version 5, \(bytes) bytes")
            #expect(Self.folderContents(config) == ["site-a-5.update"])
            #expect(FileManager.default.contents(atPath: config.bundlesDirectory! + "/site-a-5.update") == FileManager.default.contents(atPath: made))
            #expect(ServedBundle.list(config.bundlesDirectory!).map(\.name) == ["site-a-5.update"])
            // Again: the same name is replaced in one rename, and says so.
            #expect(try Self.publish(made, as: "site-a-5.update", config: config).replaced)
            let anySite = try Self.bundle(in: dir.path, site: nil, version: 6)
            #expect(try Self.publish(anySite, as: "example-pc-uefi-6.update", config: config).line.contains("any site, board pc-uefi, version 6"))
            #expect(Self.folderContents(config) == ["example-pc-uefi-6.update", "site-a-5.update"])
        }
    }

    @Test func whatARouterWouldRefuseIsRefusedWithOneLineAndNothingLeft() throws {
        try TemporaryDirectory.with("edgekit-publish") { dir in
            let config = try Self.config(in: dir.path)
            let good = try Self.bundle(in: dir.path, site: "site-a", version: 5)
            let foreign = try Self.bundle(in: dir.path, site: "site-a", version: 5,
                                          key: try Signify.SecretKey(seed: Data(repeating: 9, count: 32), keyNumber: Data(repeating: 9, count: 8)))
            let otherPlan = try Self.bundle(in: dir.path, plan: "lab", site: "site-a", version: 5)
            let flipped = dir.path + "/flipped.update"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: good))
            bytes[bytes.count - 2048] ^= 0xff
            try bytes.write(to: URL(fileURLWithPath: flipped))
            let garbage = dir.path + "/garbage"
            try Data("Welcome to relay!\n".utf8).write(to: URL(fileURLWithPath: garbage))
            let empty = dir.path + "/empty"
            FileManager.default.createFile(atPath: empty, contents: Data())
            let cases: [(String, String, String)] = [
                (good, "site-a-5.tar", "site-a-5.tar: is not a bundle name: SITE-VERSION.update or PLAN-BOARD-VERSION.update"),
                (good, "../site-a-5.update", "../site-a-5.update: is not a bundle name"),
                (good, "site-a-6.update", "site-a-6.update: holds site site-a, board pc-uefi, version 5: publish it as site-a-5.update"),
                (foreign, "site-a-5.update", "site-a-5.update: its signature does not verify with the operator key"),
                (otherPlan, "site-a-5.update", "site-a-5.update: is for plan lab; this relay serves plan example"),
                (flipped, "site-a-5.update", "site-a-5.update: member root.img.zst does not match its SHA-256 in the signed manifest"),
                (garbage, "site-a-5.update", "site-a-5.update: "),
                (empty, "site-a-5.update", "site-a-5.update: nothing came on standard input"),
            ]
            for (input, name, expected) in cases {
                do {
                    _ = try Self.publish(input, as: name, config: config)
                    Issue.record("\(name) from \(input) was published")
                } catch let error as RelayError {
                    #expect(error.description.hasPrefix(expected), "\(error.description)")
                    #expect(!error.description.contains("\n"), "one line: \(error.description)")
                }
                #expect(Self.folderContents(config).isEmpty, "\(name): \(Self.folderContents(config))")
            }
            var without = config
            without.bundlesDirectory = nil
            #expect(throws: RelayError.self) { try Self.publish(good, as: "site-a-5.update", config: without) }
        }
    }

    @Test func aStreamLongerThanTheLimitIsCutOffAndRemoved() throws {
        try TemporaryDirectory.with("edgekit-publish") { dir in
            let config = try Self.config(in: dir.path)
            var publisher = BundlePublisher(config: config)
            publisher.maximumBytes = 1 << 20
            let fd = open("/dev/zero", O_RDONLY)
            defer { close(fd) }
            #expect(throws: RelayError.bundle("standard input", "is longer than 1 MiB; no bundle is that large")) {
                try publisher.publish(name: "site-a-5.update", from: fd)
            }
            #expect(Self.folderContents(config).isEmpty)
        }
    }
}
