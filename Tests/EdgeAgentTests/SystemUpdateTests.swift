import EdgeAgent
import EdgeCrypto
import EdgeImage
import EdgeModel
import EdgeStick
import Foundation
import Testing
import TestSupport

/// `edgekit-agent update --check` on a router's root (docs/updates.md): the agent binary itself (in
/// the suite's second pass the aarch64 one, under qemu-aarch64) accepts a bundle for its plan, site,
/// board and a newer version, and refuses every other with one line, exit 1, nothing written.
@Suite struct SystemUpdateTests {
    /// A small system (1 MiB root) as a bundle signed with the example plan's operator key.
    static func bundle(_ scratch: Scratch, _ name: String, site: String? = "site-a", board: String = "pc-uefi", version: UInt64,
                       key: Signify.SecretKey = BadProfileCorpus.keys.operatorKey) throws -> String {
        let disk = scratch.path(name + ".disk")
        var root = Data("a root filesystem\n".utf8)
        root.append(Data(count: (1 << 20) - root.count))
        try root.write(to: URL(fileURLWithPath: disk))
        try Data("kernel\n".utf8).write(to: URL(fileURLWithPath: scratch.path(name + ".vmlinuz")))
        let path = scratch.path(name + ".update")
        try UpdateBundleWriter.write(to: path, plan: "example", site: site, release: SystemRelease(board: board, version: version),
                                     system: "0123456789abcdef", root: (file: disk, offset: 0, bytes: root.count),
                                     files: [.init(name: "vmlinuz", path: scratch.path(name + ".vmlinuz"))], key: key, mtime: 0, progress: .silent)
        return path
    }

    static func release(_ root: String, board: String = "pc-uefi", version: UInt64) throws {
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/edgekit", withIntermediateDirectories: true)
        try DocumentCoding.encode(SystemRelease(board: board, version: version)).write(to: URL(fileURLWithPath: root + "/usr/lib/edgekit/system.json"))
    }

    @Test("a bundle for this router is ok; another board, site, plan's key, an older version, a flipped byte are refused")
    func theAgentChecksABundle() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            try Self.release(root, version: 5)
            let before = treeIdentity(root)
            let good = try Self.bundle(scratch, "good", version: 6)
            let ok = try runTool("edgekit-agent", ["update", "--check", "--root", root, good])
            let bytes = try Self.memberBytes(good)
            #expect(ok.status == 0 && ok.stdout == "update \(good): ok: plan example, site site-a, board pc-uefi, version 6 (this system: 5), 2 members, \(bytes) bytes verified\n",
                    "\(ok)")
            let anySite = try Self.bundle(scratch, "any", site: nil, version: 7)
            #expect(try runTool("edgekit-agent", ["update", "--check", "--root", root, anySite]).status == 0)

            func refused(_ bundle: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
                let result = try runTool("edgekit-agent", ["update", "--check", "--root", root, bundle])
                #expect(result.status == 1 && result.stdout.isEmpty && result.stderr.split(separator: "\n").count == 1
                        && result.stderr.contains("update bundle \(bundle): ") && result.stderr.contains(words),
                        "\(result)", sourceLocation: sourceLocation)
            }
            try refused(try Self.bundle(scratch, "old", version: 5), "version 5 is not newer than the installed 5")
            try refused(try Self.bundle(scratch, "rpi", board: "rpi", version: 9), "is for board rpi, this router is a pc-uefi")
            try refused(try Self.bundle(scratch, "siteb", site: "site-b", version: 9), "is for site site-b, this router serves site-a")
            let otherOperator = try Signify.SecretKey(seed: Data(repeating: 9, count: 32), keyNumber: Data(repeating: 9, count: 8))
            try refused(try Self.bundle(scratch, "foreign", version: 9, key: otherOperator), "its signature does not verify with the operator key")
            var flipped = try Data(contentsOf: URL(fileURLWithPath: good))
            let key = try Signify.PublicKey(parsing: BadProfileCorpus.keys.operatorKey.publicKey.fileText(comment: "operator"))
            let rootAt = try #require(try UpdateBundle.open(good, operatorKey: key).offsets[UpdateBundle.rootMember])
            flipped[Int(rootAt) + 20] ^= 0x01
            let damaged = scratch.path("damaged.update")
            try flipped.write(to: URL(fileURLWithPath: damaged))
            try refused(damaged, "does not match its SHA-256 in the signed manifest")
            #expect(treeIdentity(root) == before, "checking writes nothing")

            // An image from before versions has no system.json: said so, exit 1.
            try FileManager.default.removeItem(atPath: root + "/usr/lib/edgekit/system.json")
            let noRelease = try runTool("edgekit-agent", ["update", "--check", "--root", root, good])
            #expect(noRelease.status == 1 && noRelease.stderr.contains("usr/lib/edgekit/system.json: missing or unreadable; this image is from before update bundles"),
                    "\(noRelease)")
        }
    }

    @Test("status and the metrics say the running system's board and version; an image without them says nothing", .requiresTool("promtool"))
    func statusAndMetricsNameTheSystem() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            try Self.release(root, version: 1_765_000_000)
            let text = try runTool("edgekit-agent", ["status", "--root", root])
            #expect(text.status == 0 && text.stdout.contains("\nsystem        pc-uefi, version 1765000000\ngeneration    none"), "\(text)")
            let json = try ApplyTests.status(root)
            let system = json["system"] as? [String: Any]
            #expect(system?["board"] as? String == "pc-uefi" && system?["version"] as? Int == 1_765_000_000 && system?.count == 2, "\(json)")
            let directory = root + AgentMetrics.textfileDirectory
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let applied = try scratch.apply(root, try scratch.stickFolder("stick", serial: 1000))
            #expect(applied.status == 0, "\(applied)")
            let metrics = try String(contentsOfFile: directory + "/" + AgentMetrics.fileName, encoding: .utf8)
            #expect(try Promtool.problems(inMetrics: metrics) == nil)
            #expect(metrics.contains("\nedgekit_system_version{board=\"pc-uefi\"} 1765000000\n"), "\(metrics)")

            try FileManager.default.removeItem(atPath: root + "/usr/lib/edgekit/system.json")
            #expect(!(try runTool("edgekit-agent", ["status", "--root", root])).stdout.contains("system "))
            #expect(try ApplyTests.status(root)["system"] is NSNull)
        }
    }

    static func memberBytes(_ bundle: String) throws -> UInt64 {
        let key = try Signify.PublicKey(parsing: BadProfileCorpus.keys.operatorKey.publicKey.fileText(comment: "operator"))
        return try UpdateBundle.open(bundle, operatorKey: key).manifest.members.reduce(0) { $0 + $1.bytes }
    }
}
