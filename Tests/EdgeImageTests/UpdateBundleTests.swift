import EdgeCrypto
@testable import EdgeImage
import EdgeModel
import EdgeStick
import Foundation
import Testing
import TestSupport

/// Update bundles as the builder writes them and a router reads them (docs/updates.md): standard
/// tools read them, and every way a bundle can be wrong for a router is refused before anything is
/// written, with one line naming the bundle.
@Suite(.requiresTool("signify-openbsd", "zstd", "tar", "sha256sum")) struct UpdateBundleTests {
    static let operatorKey = try! Signify.SecretKey(seed: Data(repeating: 3, count: 32), keyNumber: Data(repeating: 4, count: 8))
    static let otherKey = try! Signify.SecretKey(seed: Data(repeating: 5, count: 32), keyNumber: Data(repeating: 6, count: 8))
    static let release = SystemRelease(board: "pc-uefi", version: 100)

    /// A fake system: a "disk" whose root range is 3 MiB (some text, then zeros, as an ext4 with
    /// holes reads), a kernel and an initrd; the bundle written from it.
    func makeBundle(in dir: String, site: String? = "site-b", release: SystemRelease = release,
                    key: Signify.SecretKey = operatorKey) throws -> (bundle: String, root: Data) {
        var disk = Data(repeating: 0xee, count: 4096)
        var root = Data("edgekit root filesystem\n".utf8)
        for line in 0..<5000 { root.append(Data("line \(line) of the system\n".utf8)) }
        root.append(Data(count: 3 << 20 - root.count))
        disk.append(root)
        disk.append(Data(repeating: 0xdd, count: 4096))
        try disk.write(to: URL(fileURLWithPath: dir + "/disk.img"))
        try Data("kernel".utf8).write(to: URL(fileURLWithPath: dir + "/vmlinuz"))
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: dir + "/initrd.img"))
        let bundle = dir + "/\(site ?? "any")-\(release.version).update"
        try UpdateBundleWriter.write(to: bundle, plan: "example", site: site, release: release, system: "0123456789abcdef",
                                     root: (file: dir + "/disk.img", offset: 4096, bytes: root.count),
                                     files: [.init(name: "vmlinuz", path: dir + "/vmlinuz"), .init(name: "initrd.img", path: dir + "/initrd.img")],
                                     key: key, mtime: 1_735_689_600, progress: .silent)
        return (bundle, root)
    }

    func publicKey(_ key: Signify.SecretKey = operatorKey) throws -> Signify.PublicKey {
        try Signify.PublicKey(parsing: key.publicKey.fileText(comment: "test operator"))
    }

    @Test("a bundle is a plain tar that tar, signify, zstd and sha256sum read as the manifest says")
    func standardToolsReadTheBundle() throws {
        try TemporaryDirectory.with("edgekit-update") { dir in
            let (bundle, root) = try makeBundle(in: dir.path)
            let list = try system("tar", ["-tvf", bundle])
            #expect(list.status == 0, "\(list.stderr)")
            let names = list.stdout.split(separator: "\n").map { String($0.split(separator: " ").last ?? "") }
            #expect(names == ["manifest.sig", "root.img.zst", "vmlinuz", "initrd.img"])
            let unpack = try system("tar", ["-xf", bundle, "-C", dir.path])
            #expect(unpack.status == 0, "\(unpack.stderr)")
            try Data(Self.operatorKey.publicKey.fileText(comment: "test operator").utf8).write(to: dir.file("operator.pub"))
            let verify = try system("signify-openbsd", ["-V", "-e", "-p", dir.path + "/operator.pub", "-x", dir.path + "/manifest.sig",
                                                        "-m", dir.path + "/manifest.json"])
            #expect(verify.status == 0 && verify.stdout.contains("Signature Verified"), "\(verify.stdout)\(verify.stderr)")
            let manifest = try DocumentCoding.decode(UpdateManifest.self, from: Data(contentsOf: dir.file("manifest.json")))
            #expect(manifest.plan == "example" && manifest.site == "site-b" && manifest.board == "pc-uefi" && manifest.version == 100)
            #expect(manifest.rootBytes == UInt64(root.count))
            let decompressed = try system("sh", ["-c", "zstd -dcq '\(dir.path)/root.img.zst' | sha256sum"])
            #expect(decompressed.stdout.hasPrefix(manifest.rootSHA256 + " "), "the root filesystem decompresses to the hash the manifest signs")
            try root.write(to: dir.file("root.expected"))
            #expect(manifest.rootSHA256 == (try sha256(ofFile: dir.path + "/root.expected")), "and that is the root's own hash")
            for member in manifest.members {
                let sum = try system("sha256sum", [dir.path + "/" + member.name])
                #expect(sum.stdout.hasPrefix(member.sha256 + " "), "\(member.name)")
            }
            // Compressed: the 3 MiB root is mostly zeros and repeated lines.
            #expect(manifest.members[0].bytes < 200_000, "\(manifest.members[0].bytes)")
        }
    }

    @Test("the router accepts a bundle for its plan, board and site with a newer version, and one for any site")
    func aBundleForThisRouterIsAccepted() throws {
        try TemporaryDirectory.with("edgekit-update") { dir in
            let (bundle, _) = try makeBundle(in: dir.path)
            let opened = try UpdateBundle.open(bundle, operatorKey: try publicKey())
            try opened.check(plan: "example", site: "site-b", release: SystemRelease(board: "pc-uefi", version: 99))
            var seen: UInt64 = 0
            try opened.verifyMembers { seen = $0 }
            #expect(seen == opened.manifest.members.reduce(0) { $0 + $1.bytes })
            let (anySite, _) = try makeBundle(in: dir.path, site: nil)
            try UpdateBundle.open(anySite, operatorKey: try publicKey()).check(plan: "example", site: "site-a", release: SystemRelease(board: "pc-uefi", version: 0))
        }
    }

    /// Each refusal: the code, one line, the bundle's path in it.
    func expectRefused(_ code: String, _ bundle: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("\(bundle) was accepted, expected \(code)", sourceLocation: sourceLocation)
        } catch let error as UpdateBundleError {
            #expect(error.code.rawValue == code, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix("update bundle \(bundle): ") && !error.description.contains("\n"), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("another plan, board or site, an older or equal version, another operator, a flipped byte, a cut or foreign file: refused")
    func everyWrongBundleIsRefused() throws {
        try TemporaryDirectory.with("edgekit-update") { dir in
            let (bundle, _) = try makeBundle(in: dir.path)
            let key = try publicKey()
            let opened = try UpdateBundle.open(bundle, operatorKey: key)
            expectRefused("update.wrong-plan", bundle) { try opened.check(plan: "other", site: "site-b", release: SystemRelease(board: "pc-uefi", version: 1)) }
            expectRefused("update.wrong-board", bundle) { try opened.check(plan: "example", site: "site-b", release: SystemRelease(board: "rpi", version: 1)) }
            expectRefused("update.wrong-site", bundle) { try opened.check(plan: "example", site: "site-a", release: SystemRelease(board: "pc-uefi", version: 1)) }
            expectRefused("update.not-newer", bundle) { try opened.check(plan: "example", site: "site-b", release: SystemRelease(board: "pc-uefi", version: 100)) }
            expectRefused("update.not-newer", bundle) { try opened.check(plan: "example", site: "site-b", release: SystemRelease(board: "pc-uefi", version: 101)) }
            expectRefused("update.bad-signature", bundle) { _ = try UpdateBundle.open(bundle, operatorKey: try publicKey(Self.otherKey)) }
            let original = try Data(contentsOf: URL(fileURLWithPath: bundle))
            let manifestEnd = Int(TarFormat.blockSize) + 200
            let rootStart = try #require(opened.offsets["root.img.zst"])
            func variant(_ name: String, _ change: (inout Data) -> Void) throws -> String {
                var data = original
                change(&data)
                let path = dir.path + "/" + name
                try data.write(to: URL(fileURLWithPath: path))
                return path
            }
            // A flipped byte in the signed manifest, in the root filesystem, in the last member.
            let manifestFlip = try variant("manifest-flip.update") { $0[manifestEnd] ^= 0x01 }
            expectRefused("update.bad-signature", manifestFlip) { _ = try UpdateBundle.open(manifestFlip, operatorKey: key) }
            let rootFlip = try variant("root-flip.update") { $0[Int(rootStart) + 1000] ^= 0x01 }
            let rootFlipped = try UpdateBundle.open(rootFlip, operatorKey: key)
            expectRefused("update.damaged", rootFlip) { try rootFlipped.verifyMembers() }
            let initrdStart = try #require(opened.offsets["initrd.img"])
            let lastFlip = try variant("last-flip.update") { $0[Int(initrdStart) + 999] ^= 0x80 }
            expectRefused("update.damaged", lastFlip) { try UpdateBundle.open(lastFlip, operatorKey: key).verifyMembers() }
            // Cut short: in the root member, and right after the manifest.
            let cut = try variant("cut.update") { $0 = $0.prefix(Int(rootStart) + 5000) }
            expectRefused("update.malformed", cut) { _ = try UpdateBundle.open(cut, operatorKey: key) }
            let onlyManifest = try variant("manifest-only.update") { $0 = $0.prefix(Int(rootStart) - Int(TarFormat.blockSize)) }
            expectRefused("update.malformed", onlyManifest) { _ = try UpdateBundle.open(onlyManifest, operatorKey: key) }
            // Not a bundle at all: empty, text, a tar whose first member is something else or huge.
            let empty = try variant("empty.update") { $0 = Data() }
            expectRefused("update.malformed", empty) { _ = try UpdateBundle.open(empty, operatorKey: key) }
            let text = try variant("text.update") { $0 = Data(String(repeating: "not a tar archive\n", count: 100).utf8) }
            expectRefused("update.malformed", text) { _ = try UpdateBundle.open(text, operatorKey: key) }
            let other = try variant("other.update") { data in
                data = Data(TarFormat.header(name: "README", size: 5, mtime: 0)) + Data("hello".utf8) + Data(count: 507 + 1024)
            }
            expectRefused("update.malformed", other) { _ = try UpdateBundle.open(other, operatorKey: key) }
            let huge = try variant("huge.update") { data in
                data = Data(TarFormat.header(name: "manifest.sig", size: 1 << 33, mtime: 0)) + Data(count: 1024)
            }
            expectRefused("update.malformed", huge) { _ = try UpdateBundle.open(huge, operatorKey: key) }
            expectRefused("update.unreadable", dir.path) { _ = try UpdateBundle.open(dir.path, operatorKey: key) }
            expectRefused("update.unreadable", dir.path + "/missing.update") { _ = try UpdateBundle.open(dir.path + "/missing.update", operatorKey: key) }
            // A manifest naming a member twice (signed, but not a bundle this builder writes).
            let twice = dir.path + "/twice.update"
            try UpdateBundleWriter.write(to: twice, plan: "example", site: "site-b", release: Self.release, system: "0123456789abcdef",
                                         root: (file: dir.path + "/disk.img", offset: 4096, bytes: 4096),
                                         files: [.init(name: "vmlinuz", path: dir.path + "/vmlinuz"), .init(name: "vmlinuz", path: dir.path + "/vmlinuz")],
                                         key: Self.operatorKey, mtime: 0, progress: .silent)
            expectRefused("update.malformed", twice) { _ = try UpdateBundle.open(twice, operatorKey: key) }
            // A bundle signed by another plan's operator is refused with this plan's key.
            let (foreign, _) = try makeBundle(in: dir.path, site: "site-c", key: Self.otherKey)
            expectRefused("update.bad-signature", foreign) { _ = try UpdateBundle.open(foreign, operatorKey: key) }
        }
    }
}
