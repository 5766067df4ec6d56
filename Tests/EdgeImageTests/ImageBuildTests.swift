import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

let repositoryRoot = Products.packageRoot.path

/// The executables next to the test bundle (TestSupport's one locator).
let binaryDirectory = Products.binDirectory.path

/// The image tests share one Debian base cache across runs (it is keyed by content, so sharing is
/// safe): the first run builds it with mmdebstrap, later runs stamp in seconds.
let imageCache = ProcessInfo.processInfo.environment["EDGEKIT_TEST_CACHE"] ?? "/var/tmp/edgekit-test-cache"

/// The agent that goes into the image must run on the appliance: build.sh builds it in release mode
/// with the static Swift stdlib and names it here.
func staticAgent() throws -> String {
    guard let path = Products.applianceAgent else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "EDGEKIT_AGENT_BINARY is not set"])
    }
    return path
}

/// The image builder hashes and copies hundreds of megabytes: build.sh runs these tests with the
/// release `edgekit` (EDGEKIT_RELEASE_BIN_DIR); a plain `swift test` falls back to the debug one.
func edgekit(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let directory = ProcessInfo.processInfo.environment["EDGEKIT_RELEASE_BIN_DIR"] ?? binaryDirectory
    return try system(directory + "/edgekit", arguments)
}

/// A secrets folder with the fixed test master (0x00…0x1f).
func makeSecrets(in dir: String) throws -> String {
    let secrets = dir + "/secrets"
    try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    _ = FileManager.default.createFile(atPath: secrets + "/master.key", contents: Data((Data(0..<32).base64EncodedString() + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
    return secrets
}

/// Builds site-b of the example plan into `out` and returns (status, stderr).
func buildSiteB(out: String, secrets: String, overlays: String = repositoryRoot + "/overlays", site: String = "site-b") throws -> (status: Int32, stdout: String, stderr: String) {
    try edgekit(["image", "build", "--plan", repositoryRoot + "/profiles/example", "--secrets", secrets, "--site", site,
                 "--out", out, "--cache", imageCache, "--agent", try staticAgent(), "--overlays", overlays])
}

/// Runs a program of an unpacked image tree with the tree's own dynamic loader and libraries, so
/// the image's version of a tool answers without root, chroot or /proc (ld.so(8), `--library-path`).
func imageProgram(_ tree: String, _ program: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let libraries = [tree + "/usr/lib/x86_64-linux-gnu", tree + "/usr/lib/x86_64-linux-gnu/systemd"].joined(separator: ":")
    return try system(tree + "/usr/lib64/ld-linux-x86-64.so.2", ["--library-path", libraries, tree + "/" + program] + arguments)
}

/// Folders of `BuiltOnce` builds, removed when the test process exits (a 1.2 GB image per run
/// otherwise stays in the temporary folder).
nonisolated(unsafe) private var builtOnceFolders: [String] = []

/// A folder built once per test process and shared by the checks that read it (the build is the
/// expensive part): `TMP/edgekit-NAME-PID`, made by `make`, removed at exit.
final class BuiltOnce: @unchecked Sendable {
    private let name: String
    private let make: (String) throws -> Void
    private let lock = NSLock()
    private var directory: String?

    init(_ name: String, make: @escaping (String) throws -> Void) {
        self.name = name
        self.make = make
    }

    func build() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let directory { return directory }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if builtOnceFolders.isEmpty {
            atexit {
                for folder in builtOnceFolders { try? FileManager.default.removeItem(atPath: folder) }
            }
        }
        builtOnceFolders.append(dir)
        try make(dir)
        directory = dir
        return dir
    }
}

/// One image shared by the checks below.
enum SharedImage {
    static let shared = BuiltOnce("image") { dir in
        let result = try buildSiteB(out: dir + "/out", secrets: try makeSecrets(in: dir))
        guard result.status == 0 else {
            Issue.record("image build failed: \(result.stderr.suffix(2000))")
            throw CocoaError(.fileWriteUnknown)
        }
    }
}

@Suite(.serialized, .requiresApplianceAgent, .requiresTool("mmdebstrap", "mcopy", "mkfs.vfat", "mke2fs", "sfdisk"), .slow)
struct ImageBuildTests {
    @Test func siteImageIsAcceptedByTheStandardTools() throws {
        let dir = try SharedImage.shared.build()
        let out = dir + "/out"
        let tarList = try system("tar", ["--zstd", "-tvf", out + "/site-b.rootfs.tar.zst", "--numeric-owner"])
        #expect(tarList.status == 0, "tar --zstd: \(tarList.stderr)")
        // The overlay layer has links at the site files' paths (into the site partition); the site
        // layer comes last, so its regular files are the last members with those paths.
        let members = tarList.stdout.split(separator: "\n").map(String.init)
        func lastMember(_ path: String) -> String? { members.last { $0.hasSuffix(" ./" + path) } }
        #expect(lastMember("etc/edgekit/site.identity")?.hasPrefix("-rw------- 0/0 ") == true, "\(lastMember("etc/edgekit/site.identity") ?? "none")")
        #expect(lastMember("etc/edgekit/site.json")?.hasPrefix("-rw-r--r-- 0/0 ") == true, "\(lastMember("etc/edgekit/site.json") ?? "none")")
        #expect(lastMember("etc/hostname")?.hasPrefix("-rw-r--r-- 0/0 ") == true, "\(lastMember("etc/hostname") ?? "none")")
        #expect(lastMember("usr/local/bin/edgekit-agent")?.hasPrefix("-rwxr-xr-x 0/0 ") == true)
        #expect(lastMember("usr/sbin/radvd") != nil)
        // Both tar implementations unpack the whole archive, and the later layer wins.
        for tool in [("tar", ["--zstd", "-xpf"]), ("bsdtar", ["-xpf"])] {
            let tree = dir + "/unpacked-" + tool.0
            try? FileManager.default.removeItem(atPath: tree)
            try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: tree) }
            let unpack = try system(tool.0, tool.1 + [out + "/site-b.rootfs.tar.zst", "-C", tree])
            #expect(unpack.status == 0, "\(tool.0): \(unpack.stderr.suffix(1000))")
            var info = stat()
            #expect(lstat(tree + "/etc/edgekit/site.identity", &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o777 == 0o600,
                    "\(tool.0): site.identity is a 0600 file, not the overlay's link")
            let identity = (try? String(contentsOfFile: tree + "/etc/edgekit/site.identity", encoding: .utf8)) ?? ""
            #expect(identity.contains("AGE-SECRET-KEY-1"), "\(tool.0): the identity's text")
            #expect((try? String(contentsOfFile: tree + "/etc/hostname", encoding: .utf8)) == "site-b\n", "\(tool.0): the site's hostname")
            #expect(FileManager.default.isExecutableFile(atPath: tree + "/usr/local/bin/edgekit-agent"))
            #expect(FileManager.default.isExecutableFile(atPath: tree + "/usr/sbin/radvd"))
            // The image's own systemd accepts the agent's unit and the drop-ins that restart a
            // crashed keepalived or radvd, as they lie in the image's tree. Its own systemd-analyze
            // (trixie's 257), run through the image's loader and libraries: the host's (252 on
            // Debian 12) warns about every newer key in the image's units (ImportCredential=, …).
            let verify = try imageProgram(tree, "usr/bin/systemd-analyze", ["verify", "--man=no", "--root=" + tree,
                                                                              "edgekit-agent.service", "keepalived.service", "radvd.service"])
            #expect(verify.status == 0 && verify.stderr.isEmpty, "\(tool.0): systemd-analyze verify: \(verify.stderr)")
            for unit in ["keepalived", "radvd"] {
                let dropIn = (try? String(contentsOfFile: tree + "/etc/systemd/system/\(unit).service.d/edgekit.conf", encoding: .utf8)) ?? ""
                #expect(dropIn.contains("\nRestart=on-failure\n"), "\(tool.0): \(unit) is restarted when it dies")
            }
            // A keepalived that stays dead (start limit, kill -9 between restarts) must not leave its VIPs (issue 17.3).
            let keepalivedDropIn = (try? String(contentsOfFile: tree + "/etc/systemd/system/keepalived.service.d/edgekit.conf", encoding: .utf8)) ?? ""
            #expect(keepalivedDropIn.contains("\nExecStopPost=-/usr/local/bin/edgekit-agent notify stopped\n"), "\(tool.0): keepalived's end releases the VIPs")
        }
        let verify = try system("sfdisk", ["--verify", out + "/site-b.img"])
        #expect(verify.status == 0 && verify.stdout.contains("No errors detected"), "sfdisk --verify: \(verify.stdout)")
        // Each partition checked by its own fsck, read out with dd at the offsets sfdisk reports.
        let dump = try system("sfdisk", ["--json", out + "/site-b.img"])
        let json = try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any]
        let partitions = ((json?["partitiontable"] as? [String: Any])?["partitions"] as? [[String: Any]]) ?? []
        #expect(partitions.map { $0["name"] as? String } == ["esp", "edgekit-root", "edgekit-site", "edgekit-root-b"])
        for (index, partition) in partitions.enumerated() {
            let start = partition["start"] as? Int ?? 0, size = partition["size"] as? Int ?? 0
            let part = dir + "/part\(index)"
            defer { try? FileManager.default.removeItem(atPath: part) }
            let copy = try system("dd", ["if=\(out)/site-b.img", "of=\(part)", "bs=512", "skip=\(start)", "count=\(size)", "conv=sparse", "status=none"])
            #expect(copy.status == 0)
            if index == 3 {
                // System slot B: as large as slot A, empty until an update fills it; holes in the image.
                var info = stat()
                stat(part, &info)
                #expect(info.st_blocks == 0 && size == (partitions[1]["size"] as? Int ?? -1), "slot b: \(partition)")
                continue
            }
            let check = index == 1 ? try system("fsck.ext4", ["-fn", part]) : try system("fsck.vfat", ["-n", part])
            #expect(check.status == 0, "fsck of partition \(index + 1): \(check.stdout)\(check.stderr)")
            if index == 2 {
                let files = try system("mdir", ["-b", "-i", part, "::/"])
                #expect(files.stdout.split(separator: "\n").sorted() == ["::/operator.pub", "::/site.identity", "::/site.json"])
            }
        }
        let sums = try system("sh", ["-c", "cd '\(out)' && sha256sum -c SHA256SUMS"])
        #expect(sums.status == 0, "sha256sum -c: \(sums.stdout)")
        // The bmap really describes the image: bmaptool copies it to an identical file.
        let copy = try system("bmaptool", ["copy", "--bmap", out + "/site-b.img.bmap", out + "/site-b.img", dir + "/flashed.img"])
        defer { try? FileManager.default.removeItem(atPath: dir + "/flashed.img") }
        #expect(copy.status == 0, "bmaptool copy: \(copy.stderr)")
        #expect(try sha256(ofFile: dir + "/flashed.img") == sha256(ofFile: out + "/site-b.img"))
    }

    /// The image's software bill of materials lists what dpkg in the image says is installed, with
    /// package URLs a scanner matches, is valid SPDX and is covered by the checksums (issue 21.5).
    @Test(.requiresTool("pyspdxtools")) func siteImageComesWithItsSoftwareBill() throws {
        let dir = try SharedImage.shared.build()
        let out = dir + "/out"
        let bill = out + "/site-b.spdx.json"
        let check = try system(try #require(SystemTools.path("pyspdxtools")), ["-i", bill])
        #expect(check.status == 0 && check.stderr.isEmpty, "pyspdxtools: \(check.stdout)\(check.stderr)")
        let sums = try String(contentsOfFile: out + "/site-b.SHA256SUMS", encoding: .utf8)
        #expect(sums.contains("\(try sha256(ofFile: bill))  site-b.spdx.json\n"))
        // The image's own dpkg database, from its tarball.
        let status = try system("tar", ["--zstd", "-xOf", out + "/site-b.rootfs.tar.zst", "./var/lib/dpkg/status"])
        let installed = DebianPackage.installed(fromStatus: status.stdout)
        let document = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bill))) as? [String: Any])
        let packages = (document["packages"] as? [[String: Any]]) ?? []
        let listed = Dictionary(packages.compactMap { entry -> (String, String)? in
            guard let name = entry["name"] as? String, let version = entry["versionInfo"] as? String else { return nil }
            return (name, version)
        }, uniquingKeysWith: { first, _ in first })
        #expect(installed.count > 100 && packages.count == installed.count + 2, "every package, the image and the agent")
        for name in ["keepalived", "radvd", "nftables", "libssl3t64", "systemd", "linux-image-amd64"] {
            let package = try #require(installed.first { $0.name == name }, "\(name) is in the image")
            #expect(listed[name] == package.version, "\(name): the bill says \(listed[name] ?? "nothing"), dpkg \(package.version)")
        }
        let locators = packages.flatMap { ($0["externalRefs"] as? [[String: Any]]) ?? [] }.compactMap { $0["referenceLocator"] as? String }
        #expect(locators.contains { $0.hasPrefix("pkg:deb/debian/keepalived@") && $0.hasSuffix("?arch=amd64&distro=debian-13") }, "\(locators.prefix(3))")
        let agent = try #require(packages.first { $0["name"] as? String == "edgekit-agent" })
        let agentSum = ((agent["checksums"] as? [[String: Any]])?.first?["checksumValue"] as? String) ?? ""
        #expect(agentSum == (try sha256(ofFile: try staticAgent())), "the agent's checksum is that of the agent the image carries")
    }

    /// `--refresh-base` builds the base anew from the archive although it is cached, once for a
    /// build of two sites on one board, and the system level built on it gets a new key because
    /// the base records what it installed (issue 21.5).
    @Test(.requiresRoot) func refreshBaseBuildsTheCachedBaseAnewOncePerBuild() throws {
        let dir = try SharedImage.shared.build()
        let cache = try scratchCacheWithBase(in: dir, name: "cache-refresh")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        // The packages the shared cache downloaded already: nothing is downloaded twice.
        try FileManager.default.createSymbolicLink(atPath: cache + "/debs", withDestinationPath: imageCache + "/debs")
        let key = BaseRecipe(sourceDateEpoch: try BaseRecipe.imageFileTime()).cacheKey
        let sharedComplete = try String(contentsOfFile: imageCache + "/base-\(key)/complete", encoding: .utf8)
        let out = dir + "/refresh-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try edgekit(["build", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets",
                                  "--out", out, "--cache", cache, "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays",
                                  "--serial", "42", "--relay-binary", binaryDirectory + "/edgekit-relay", "--refresh-base"])
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0 == "base \(key): built anew (--refresh-base)" }.count == 1, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("base \(key): mmdebstrap trixie") }.count == 1, "one mmdebstrap run for both sites: \(lines)")
        let complete = try String(contentsOfFile: cache + "/base-\(key)/complete", encoding: .utf8)
        #expect(complete.range(of: "^\(key)\npackages [0-9a-f]{64}\n$", options: .regularExpression) != nil, "\(complete)")
        // The system level follows what the new base installed: base key, overlay and agent are the
        // shared cache's, so its key is the shared one's exactly when the archive gave the same
        // packages (a shared base built the same day), and a new one when any package changed.
        let systems = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasPrefix("system-") && !$0.hasSuffix(".lock") }
        let samePackages = complete.split(separator: "\n").first { $0.hasPrefix("packages ") }
            == sharedComplete.split(separator: "\n").first { $0.hasPrefix("packages ") }
        #expect(systems.count == 1 && FileManager.default.fileExists(atPath: imageCache + "/" + systems[0]) == samePackages,
                "\(systems), the same packages as the shared base: \(samePackages)")
        // The shared cache's base (hard links of the scratch one's old files) is as it was.
        #expect(try String(contentsOfFile: imageCache + "/base-\(key)/complete", encoding: .utf8) == sharedComplete)
        let sums = try system("sh", ["-c", "cd '\(out)' && sha256sum -c SHA256SUMS"])
        #expect(sums.status == 0, "\(sums.stdout)")
    }

    /// `edgekit image update` writes the site's system as a bundle the agent on that site's image
    /// accepts with `update --check`, and refuses when it is not newer or not for its site (issue 21.2).
    /// A cached base built from an older state of the archive than Debian's now is built anew by a
    /// plain build (no --refresh-base), records the state it was built from, and the next build
    /// finds it cached (issue 21.5). The suite turns the check off for every other test.
    @Test(.requiresRoot) func aNewerArchiveBuildsTheCachedBaseAnew() throws {
        let dir = try SharedImage.shared.build()
        let cache = try scratchCacheWithBase(in: dir, name: "cache-archive")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        try FileManager.default.createSymbolicLink(atPath: cache + "/debs", withDestinationPath: imageCache + "/debs")
        let key = BaseRecipe(sourceDateEpoch: try BaseRecipe.imageFileTime()).cacheKey
        // A new file (the scratch base's files are hard links of the shared cache's).
        let complete = cache + "/base-\(key)/complete"
        let old = "archive trixie=Mon, 01 Jan 2024 00:00:00 UTC; trixie-updates=Mon, 01 Jan 2024 00:00:00 UTC; trixie-security=Mon, 01 Jan 2024 00:00:00 UTC"
        let shared = try String(contentsOfFile: complete, encoding: .utf8)
        try FileManager.default.removeItem(atPath: complete)
        try Data((shared.split(separator: "\n").filter { !$0.hasPrefix("archive ") }.joined(separator: "\n") + "\n" + old + "\n").utf8)
            .write(to: URL(fileURLWithPath: complete))
        let out = dir + "/archive-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let arguments = try imageBuildArguments(cache: cache, out: out, secrets: dir + "/secrets")
        let release = ProcessInfo.processInfo.environment["EDGEKIT_RELEASE_BIN_DIR"] ?? binaryDirectory
        let result = try system("env", ["EDGEKIT_ARCHIVE_CHECK=on", release + "/edgekit"] + arguments)
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        let anew = lines.filter { $0.hasPrefix("base \(key): built anew: the archive changed since it was built (trixie=Mon, 01 Jan 2024") }
        #expect(anew.count == 1, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("base \(key): mmdebstrap trixie") }.count == 1, "\(lines)")
        let recorded = try String(contentsOfFile: complete, encoding: .utf8)
        #expect(recorded.range(of: "^\(key)\npackages [0-9a-f]{64}\narchive trixie=[^;]+ UTC; trixie-updates=[^;]+ UTC; trixie-security=[^;]+ UTC\n$",
                               options: .regularExpression) != nil, "\(recorded)")
        #expect(!recorded.contains("2024"))
        // The next build finds the archive as the base records it.
        let again = try system("env", ["EDGEKIT_ARCHIVE_CHECK=on", release + "/edgekit"] + arguments)
        #expect(again.status == 0 && again.stderr.contains("base \(key): cached\n"), "\(again.stderr.suffix(2000))")
        #expect(try String(contentsOfFile: imageCache + "/base-\(key)/complete", encoding: .utf8) == shared, "the shared cache's base untouched")
    }

    @Test func updateBundleOfTheSystemIsCheckedByTheImagesAgent() throws {
        let dir = try SharedImage.shared.build()
        let out = dir + "/update-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let made = try edgekit(["image", "update", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets",
                                "--site", "site-b", "--system-version", "7", "--out", out, "--cache", imageCache,
                                "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays"])
        #expect(made.status == 0, "\(made.stderr.suffix(2000))")
        let bundle = out + "/site-b-7.update"
        #expect(made.stdout == bundle + "\n")
        // The root in the bundle is the system's ext4 root, clean, saying version 7.
        let root = out + "/root.img"
        let unpack = try system("sh", ["-c", "tar -xOf '\(bundle)' root.img.zst | zstd -dcq > '\(root)'"])
        #expect(unpack.status == 0, "\(unpack.stderr)")
        let fsck = try system("fsck.ext4", ["-fn", root])
        #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
        let release = try system("debugfs", ["-R", "cat /usr/lib/edgekit/system.json", root])
        #expect(release.stdout == "{\"board\":\"pc-uefi\",\"version\":7}\n", "\(release.stdout)\(release.stderr)")
        // The image (version 0) as a router's root: the stamp and the keys from the site layer.
        let tree = dir + "/update-tree"
        try? FileManager.default.removeItem(atPath: tree)
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let files = try system("tar", ["--zstd", "-xf", dir + "/out/site-b.rootfs.tar.zst", "-C", tree,
                                       "./etc/edgekit/site.json", "./etc/edgekit/site.identity", "./etc/edgekit/operator.pub", "./usr/lib/edgekit/system.json"])
        #expect(files.status == 0, "\(files.stderr)")
        #expect((try? String(contentsOfFile: tree + "/usr/lib/edgekit/system.json", encoding: .utf8)) == "{\"board\":\"pc-uefi\",\"version\":0}\n")
        let agent = binaryDirectory + "/edgekit-agent"
        let checked = try system(agent, ["update", "--check", "--root", tree, bundle])
        #expect(checked.status == 0 && checked.stdout.hasPrefix("update \(bundle): ok: plan example, site site-b, board pc-uefi, version 7 (this system: 0), 4 members,"),
                "\(checked.stdout)\(checked.stderr)")
        // Installing on a root that was not booted from a system slot (no kernel command line here):
        // refused after the checks, nothing done (UpdateBootTests installs on the booted image).
        let install = try system(agent, ["update", "--root", tree, bundle])
        #expect(install.status == 1 && install.stderr.contains("this system was not booted from a system slot"), "\(install.stderr)")
        // The same router once it runs version 7: an equal version is refused, one line, exit 1.
        try Data("{\"board\":\"pc-uefi\",\"version\":7}\n".utf8).write(to: URL(fileURLWithPath: tree + "/usr/lib/edgekit/system.json"))
        let again = try system(agent, ["update", "--check", "--root", tree, bundle])
        #expect(again.status == 1 && again.stdout.isEmpty && again.stderr.split(separator: "\n").count == 1
                && again.stderr.contains("update bundle \(bundle): version 7 is not newer than the installed 7"), "\(again.stderr)")
        // A router of another site.
        try Data("{\"board\":\"pc-uefi\",\"version\":0}\n".utf8).write(to: URL(fileURLWithPath: tree + "/usr/lib/edgekit/system.json"))
        let stamp = try String(contentsOfFile: tree + "/etc/edgekit/site.json", encoding: .utf8)
        try Data(stamp.replacingOccurrences(of: "\"site\":\"site-b\"", with: "\"site\":\"site-a\"").utf8)
            .write(to: URL(fileURLWithPath: tree + "/etc/edgekit/site.json"))
        let otherSite = try system(agent, ["update", "--check", "--root", tree, bundle])
        #expect(otherSite.status == 1 && otherSite.stderr.contains("is for site site-b, this router serves site-a"), "\(otherSite.stderr)")
        // No version, no bundle: one line before anything is built.
        let unversioned = try edgekit(["image", "update", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets",
                                       "--site", "site-b", "--out", out + "/none", "--cache", imageCache,
                                       "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays"])
        #expect(unversioned.status == 1 && unversioned.stderr.hasSuffix("needs --system-version N (a number that grows with every release, e.g. the commit time; the images it replaces carry a smaller one)\n"),
                "\(unversioned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/none"), "nothing written")
    }

    /// The boot policy overlays/ sets, as systemd itself reads it from the image's tree: the firewall
    /// and the agent start at boot (Debian installs nftables disabled), apt's timers never run.
    @Test func bootPolicyIsWhatSystemdSees() throws {
        let dir = try SharedImage.shared.build()
        let root = dir + "/units-root"
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let unpack = try system("tar", ["--zstd", "-xf", dir + "/out/site-b.rootfs.tar.zst", "-C", root, "--wildcards",
                                        "./etc/systemd/*", "./usr/lib/systemd/*", "./lib"])
        #expect(unpack.status == 0, "tar: \(unpack.stderr)")
        let expected = ["nftables.service": "enabled", "edgekit-agent.service": "enabled", "systemd-networkd.service": "enabled",
                        "apt-daily.timer": "masked", "apt-daily-upgrade.timer": "masked"]
        for (unit, state) in expected.sorted(by: { $0.key < $1.key }) {
            let answer = try system("systemctl", ["--root=" + root, "is-enabled", unit])
            #expect(answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == state,
                    "systemctl is-enabled \(unit): \(answer.stdout)\(answer.stderr)")
        }
    }

    @Test func twoBuildsOfTheSameInputsAreIdentical() throws {
        let dir = try SharedImage.shared.build()
        let again = dir + "/again"
        defer { try? FileManager.default.removeItem(atPath: again) }
        let result = try buildSiteB(out: again, secrets: dir + "/secrets")
        #expect(result.status == 0, "\(result.stderr)")
        let first = try String(contentsOfFile: dir + "/out/SHA256SUMS", encoding: .utf8)
        let second = try String(contentsOfFile: again + "/SHA256SUMS", encoding: .utf8)
        #expect(first == second)
        #expect(first.split(separator: "\n").count == 4, "image, bmap, tarball, software bill")
    }

    /// `edgekit build` for one site (one CI job): the image, a stick per router, the relay bundle,
    /// and checksums over all of them.
    @Test func buildCommandMakesSticksRelayBundleAndChecksums() throws {
        let dir = try SharedImage.shared.build()
        let out = dir + "/build-site-a"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try edgekit(["build", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets", "--site", "site-a",
                                  "--out", out, "--cache", imageCache, "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays",
                                  "--serial", "42", "--relay-binary", binaryDirectory + "/edgekit-relay"])
        #expect(result.status == 0, "\(result.stderr)")
        // Not a terminal: one plain line per step (both levels cached, the site, the sticks, the
        // relay bundle) and the closing line.
        let lines = result.stderr.split(separator: "\n").map(String.init)
        let expected = [
            #"^base [0-9a-f]{16}: cached$"#, #"^system [0-9a-f]{16}: cached$"#,
            #"^site site-a: site-a\.img .* \([0-9]+\.[0-9] s\)$"#,
            #"^sticks: 2 for 1 site\(s\), serial 42 \([0-9]+\.[0-9] s\)$"#,
            #"^relay bundle: relay\.tar\.zst \([0-9]+\.[0-9] s\)$"#,
            #"^done: 1 site image\(s\), 2 stick\(s\) and the relay bundle in .* \([0-9]+\.[0-9] s\)$"#,
        ]
        #expect(lines.count == expected.count, "\(lines)")
        for (line, pattern) in zip(lines, expected) {
            #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line) !~ \(pattern)")
        }
        #expect(!result.stderr.utf8.contains { $0 < 0x20 && $0 != 0x0a }, "no control characters")
        for name in ["site-a.img", "site-a.img.bmap", "site-a.rootfs.tar.zst", "site-a.spdx.json", "site-a-r1.stick.img", "site-a-r2.stick.img", "relay.tar.zst"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + name), "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: out + "/site-b.img"), "only the site asked for")
        let sums = try system("sh", ["-c", "cd '\(out)' && sha256sum -c SHA256SUMS"])
        #expect(sums.status == 0 && sums.stdout.split(separator: "\n").count == 7, "sha256sum -c: \(sums.stdout)")
        let relay = try system("tar", ["--zstd", "-tvf", out + "/relay.tar.zst", "--numeric-owner"])
        #expect(relay.status == 0)
        #expect(relay.stdout.contains("-rw------- 0/0") && relay.stdout.contains("./etc/edgekit/relay-wireguard.key"))
        #expect(relay.stdout.contains("./usr/local/bin/edgekit-relay"))
        #expect(relay.stdout.contains("./etc/edgekit/relay.json"))
        let stick = try edgekit(["profile", "inspect", out + "/site-a-r2.stick.img", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets"])
        #expect(stick.status == 0 && stick.stdout.contains("serial           42"), "\(stick.stderr)")

        // The same plan with two relays: one bundle per relay, each in the checksums.
        let plan2 = dir + "/plan-two-relays", out2 = dir + "/build-two-relays"
        defer { try? FileManager.default.removeItem(atPath: out2) }
        try FileManager.default.createDirectory(atPath: plan2, withIntermediateDirectories: true)
        try MeshPlanFixture.twoRelaysText().write(toFile: plan2 + "/plan.yaml", atomically: true, encoding: .utf8)
        // With its update bundle (version 7: the system level updateBundleOfTheSystemIsCheckedByTheImagesAgent uses too).
        let two = try edgekit(["build", "--plan", plan2, "--secrets", dir + "/secrets", "--site", "site-a", "--out", out2, "--cache", imageCache,
                               "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays", "--serial", "43",
                               "--relay-binary", binaryDirectory + "/edgekit-relay", "--system-version", "7", "--update-bundles"])
        #expect(two.status == 0, "\(two.stderr)")
        #expect(two.stderr.contains("relay bundles: relay-eu.tar.zst, relay-us.tar.zst ("), "\(two.stderr)")
        #expect(two.stderr.contains("2 stick(s) and 2 relay bundles, 1 update bundle(s) in"), "\(two.stderr)")
        let sums2 = try system("sh", ["-c", "cd '\(out2)' && sha256sum -c SHA256SUMS"])
        #expect(sums2.status == 0 && sums2.stdout.contains("relay-eu.tar.zst: OK") && sums2.stdout.contains("relay-us.tar.zst: OK")
                && sums2.stdout.contains("site-a-7.update: OK"), "\(sums2.stdout)")
        let members = try system("tar", ["-tf", out2 + "/site-a-7.update"])
        #expect(members.stdout == "manifest.sig\nroot.img.zst\nvmlinuz\ninitrd.img\nsbom.spdx.json\n", "\(members)")
        // Without a version: one line before anything is built.
        let unversioned = try edgekit(["build", "--plan", plan2, "--secrets", dir + "/secrets", "--out", out2 + "-none", "--update-bundles"])
        #expect(unversioned.status != 0 && unversioned.stderr.contains("--update-bundles needs --system-version N"), "\(unversioned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out2 + "-none"))
        #expect(!FileManager.default.fileExists(atPath: out2 + "/relay.tar.zst"))
    }

    @Test func badInputGivesOneLineAndNoOutputUnderItsFinalName() throws {
        let dir = try SharedImage.shared.build()
        let out = dir + "/bad"
        defer { try? FileManager.default.removeItem(atPath: out) }
        // Each: exactly one line on stderr, naming the input and what to do.
        let unknown = try buildSiteB(out: out, secrets: dir + "/secrets", site: "site-z")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.split(separator: "\n") == ["--site site-z: no such site in plan example (sites: site-a, site-b)"])
        let noSecrets = try buildSiteB(out: out, secrets: dir + "/no-such-secrets")
        #expect(noSecrets.status == 1)
        #expect(noSecrets.stderr.split(separator: "\n") == ["\(dir)/no-such-secrets/master.key does not exist; create it with `edgekit keys init --plan DIR --secrets \(dir)/no-such-secrets` or restore it from your secret store"])
        let noOverlay = try buildSiteB(out: out, secrets: dir + "/secrets", overlays: dir + "/missing-overlays")
        #expect(noOverlay.status == 1)
        #expect(noOverlay.stderr.split(separator: "\n") == ["overlay folder \(dir)/missing-overlays does not exist (expected the repository's overlays/)"])
        // A broken entry inside overlays/ (here a FIFO, which no image can carry) names the entry.
        let brokenOverlays = dir + "/broken-overlays"
        try? FileManager.default.removeItem(atPath: brokenOverlays)
        #expect(try system("cp", ["-a", repositoryRoot + "/overlays", brokenOverlays]).status == 0)
        defer { try? FileManager.default.removeItem(atPath: brokenOverlays) }
        #expect(mkfifo(brokenOverlays + "/etc/edgekit/pipe", 0o644) == 0)
        let broken = try buildSiteB(out: out, secrets: dir + "/secrets", overlays: brokenOverlays)
        #expect(broken.status == 1)
        #expect(broken.stderr.split(separator: "\n") == ["overlay \(brokenOverlays)/etc/edgekit/pipe is neither a file, a folder nor a symlink"])
        // A SOURCE_DATE_EPOCH that is not a time is refused before anything is built.
        let badEpoch = try system("env", ["SOURCE_DATE_EPOCH=yesterday", (ProcessInfo.processInfo.environment["EDGEKIT_RELEASE_BIN_DIR"] ?? binaryDirectory) + "/edgekit",
                                          "image", "build", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets", "--site", "site-b",
                                          "--out", out, "--cache", imageCache, "--agent", try staticAgent()])
        #expect(badEpoch.status == 1)
        #expect(badEpoch.stderr.split(separator: "\n").count == 1 && badEpoch.stderr.hasPrefix("SOURCE_DATE_EPOCH \"yesterday\" is not a whole number"), "\(badEpoch.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/site-b.img"))
        // edgekit build checks the relay binary before building anything.
        let noRelay = try edgekit(["build", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets", "--out", out,
                                   "--cache", imageCache, "--agent", try staticAgent(), "--relay-binary", dir + "/no-relay"])
        #expect(noRelay.status == 1)
        #expect(noRelay.stderr.split(separator: "\n") == ["relay binary \(dir)/no-relay is missing (build it with ./build.sh, or pass --relay-binary)"])
        #expect((try? FileManager.default.contentsOfDirectory(atPath: out))?.isEmpty ?? true, "nothing written")
    }

    /// The daemons in the image (trixie's keepalived, radvd, nftables) accept the files the agent
    /// renders for every router of the example plan, and refuse a broken copy. RealTools'
    /// validators run the host's versions (Debian 12), which are older; here each runs chrooted in
    /// the image's tree (keepalived -t needs its own /proc/self/exe, so not through ld.so).
    @Test(.requiresRoot)
    func theImagesOwnDaemonsAcceptTheRenderedConfigs() throws {
        let dir = try SharedImage.shared.build()
        let tree = dir + "/daemons-root"
        try? FileManager.default.removeItem(atPath: tree)
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tree) }
        let unpack = try system("tar", ["--zstd", "-xpf", dir + "/out/site-b.rootfs.tar.zst", "-C", tree])
        #expect(unpack.status == 0, "tar: \(unpack.stderr.suffix(1000))")
        /// Runs `command` inside the tree, in a network namespace of its own holding the LAN port
        /// the files name (keepalived -t refuses an instance on a missing interface), with a private
        /// /proc mount and a /run holding /run/edgekit (trixie's keepalived -t resolves the track
        /// files' folder; on the appliance the unit's RuntimeDirectory=edgekit makes it); all end
        /// with the command.
        func inImage(_ command: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try system("unshare", ["--mount", "--net", "--propagation", "private", "--", "sh", "-c",
                                   #"ip link add lan0 type veth peer name lan0-peer && ip link set lan0 up && "#
                                   + #"mount -t proc proc "$0/proc" && mount -t tmpfs tmpfs "$0/run" && mkdir "$0/run/edgekit" && "#
                                   + #"exec chroot "$0" "$@""#, tree] + command)
        }
        let checks: [(tool: String, command: (String) -> [String], file: String, broken: (String) -> String)] = [
            ("keepalived", { ["keepalived", "-t", "-f", $0] }, "etc/keepalived/keepalived.conf",
             { $0.replacingOccurrences(of: "virtual_router_id", with: "virtual_router_idd") }),
            ("radvd", { ["radvd", "--configtest", "-C", $0] }, "etc/radvd.conf",
             { $0.replacingOccurrences(of: "AdvSendAdvert on;", with: "AdvSendAdvert maybe;") }),
            ("nft", { ["nft", "-c", "-f", $0] }, "etc/nftables.conf", { $0 + "\nnot a rule\n" }),
        ]
        for (site, router) in [("site-a", 1), ("site-a", 2), ("site-b", 1)] {
            let out = "/tmp/rendered-\(site)-r\(router)"
            let render = try edgekit(["render", "--plan", repositoryRoot + "/profiles/example", "--secrets", dir + "/secrets",
                                      "--site", site, "--router", String(router), "--out", tree + out])
            #expect(render.status == 0, "render \(site) r\(router): \(render.stderr)")
            for check in checks {
                let result = try inImage(check.command(out + "/" + check.file))
                #expect(result.status == 0, "\(check.tool), \(site) r\(router): \(result)")
                if check.tool == "keepalived" { #expect(result.stdout.isEmpty && result.stderr.isEmpty, "keepalived warned: \(result)") }
                if check.tool == "radvd" { #expect(result.stderr.contains("syntax ok"), "\(result)") }
            }
        }
        // The checks can fail: a broken copy of each file is refused by the image's tool.
        for check in checks {
            let good = try String(contentsOfFile: tree + "/tmp/rendered-site-a-r1/" + check.file, encoding: .utf8)
            try check.broken(good).write(toFile: tree + "/tmp/broken", atomically: true, encoding: .utf8)
            let result = try inImage(check.command("/tmp/broken"))
            #expect(result.status != 0, "\(check.tool) accepted a broken file: \(result)")
        }
    }

    @Test(.requiresRoot)
    func aFullDiskFailsCleanly() throws {
        let dir = try SharedImage.shared.build()
        let small = dir + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let mounted = try system("mount", ["-t", "tmpfs", "-o", "size=64m", "edgekit-test-full", small])
        #expect(mounted.status == 0, "mount: \(mounted.stderr)")
        defer { _ = try? system("umount", [small]) }
        let result = try buildSiteB(out: small + "/out", secrets: dir + "/secrets")
        #expect(result.status == 1)
        let last = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("No space left on device") || last.contains("cannot write"), "\(last)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: small + "/out")) ?? []
        #expect(left.isEmpty, "nothing left behind: \(left)")
    }

    /// The disk image boots under qemu (software emulation) with OVMF, and the agent says on the
    /// serial console that there is no stick.
    /// The image written to an 8 GiB card grows a data partition to the card's end at first boot,
    /// through a power cut: the first boot is cut (qemu killed) once systemd-repart has started,
    /// while it formats. The second boot, three checks: the agent says "no stick" at boot; a stick
    /// plugged in afterwards (qemu monitor: a USB disk hot-plugged on an xHCI controller) is applied
    /// without a reboot; the data partition reaches the card's end and holds the applied generation.
    @Test(.timeLimit(.minutes(15))) func imageBootsWithoutAStickAndAppliesOnePluggedInLater() throws {
        let dir = try SharedImage.shared.build()
        // Router 1's stick of site B, sealed to this image's identity (the same test secrets), from
        // the example plan with an operator added: the apply then starts sshd under the image's own
        // systemd, and a unit that does not come up would roll the generation back.
        let plan = dir + "/plan-with-operator"
        try? FileManager.default.removeItem(atPath: plan)
        try FileManager.default.createDirectory(atPath: plan, withIntermediateDirectories: true)
        let example = try String(contentsOfFile: repositoryRoot + "/profiles/example/plan.yaml", encoding: .utf8)
        try Data((example + "\noperators:\n  - name: alice\n    ssh_keys:\n      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH12wi39GXd7gq6X7QV6xQ+xv9DHIgI/8bkkI8CZahk2 alice@laptop\n").utf8)
            .write(to: URL(fileURLWithPath: plan + "/plan.yaml"))
        let plug = try LateStick.make(plan: plan, in: dir)
        let prompt = LateStick.prompt, applied = LateStick.applied
        // Written to an 8 GiB card: systemd-repart makes the data partition at first boot, to the card's end.
        let cardBytes = 8 << 30
        let card = try writeSiteBImage(in: dir, toCard: "card.img", bytes: cardBytes)
        defer { try? FileManager.default.removeItem(atPath: card) }
        // systemd's status line as repart starts: "Starting \e[0;1;39msystemd-repart.service\e[0m - …".
        let repart = "systemd-repart.service"
        let cut = try EmulatedBoot.run(card, Board.pcUEFI.emulation[0], scratch: dir, name: "cut", writable: true, waitingFor: [repart])
        try #require(cut.console.contains(repart), "the first boot reached systemd-repart; console tail: \(cut.console.suffix(3000))")
        // Where the cut fell: repart formats the new partition before it writes the table naming it.
        let cutTable = try PartitionTable.read(card).contains { $0.name == "edgekit-data" } ? "the table already named the data partition"
                                                                                             : "before repart wrote the table"
        print("boot, cut: systemd-repart started after \(cut.seconds(repart)) s under emulation; qemu killed then, \(cutTable)")
        // The services' restart line comes after the applied line and its file list: wait for it too
        // (CI16 stopped at the applied line, before it was printed).
        let restartedLine = "restarted (systemd): "
        let boot = try EmulatedBoot.run(card, Board.pcUEFI.emulation[0], scratch: dir, extra: LateStick.devices,
                                        after: (prompt, plug), writable: true, waitingFor: [EmulatedBoot.noStickLine, prompt, applied, restartedLine])
        print("boot: agent line after \(boot.seconds(EmulatedBoot.noStickLine)) s, \"\(prompt)\" after \(boot.seconds(prompt)) s, "
              + "stick plugged in then, applied after \(boot.seconds(applied)) s under emulation")
        let tail = "console tail: \(boot.console.suffix(3000))\nmonitor: \(boot.monitor.joined(separator: "\n"))"
        #expect(boot.console.contains("Linux version"), "the kernel started")
        #expect(boot.console.contains(EmulatedBoot.noStickLine), "\(tail)")
        #expect(boot.console.contains(prompt) && LateStick.named(boot.console), "a login prompt, the machine named after the site; \(tail)")
        #expect(boot.console.contains("appeared (new block devices:"), "the agent noticed the stick; \(tail)")
        #expect(boot.console.contains(applied), "the stick plugged in after boot was applied; \(tail)")
        #expect(!boot.console.contains("did not come up with generation"), "every service came up, sshd included; \(tail)")
        let restarted = boot.console.split(separator: "\n").first { $0.contains(restartedLine) }
        #expect(restarted?.contains("ssh") == true, "sshd started for the operator: \(restarted.map(String.init) ?? "no restart line"); \(tail)")
        // systemd's status line, coloured: "[  OK  ] Mounted \e[0;1;39mvar-lib-edgekit.mount\e[0m - …".
        let mounted = boot.console.split(separator: "\n").contains { $0.contains("Mounted ") && $0.contains("var-lib-edgekit.mount") }
        #expect(mounted, "the data partition was mounted; \(tail)")
        try expectDataPartitionFills(card, bytes: cardBytes, holding: "generations/1")
    }
}

/// site-b's image (`dir/out/site-b.img`) written to a card of `bytes` at `dir/name`: a sparse copy
/// grown to the card's size, the rest of the card unpartitioned. The caller removes it.
func writeSiteBImage(in dir: String, toCard name: String, bytes: Int) throws -> String {
    let card = dir + "/" + name
    try? FileManager.default.removeItem(atPath: card)
    try SparseCopy.duplicate(dir + "/out/site-b.img", to: card)
    try #require(truncate(card, off_t(bytes)) == 0)
    return card
}

/// The card after a boot (qemu stopped): a data partition from the site partition's end to the
/// card's, ext4 with label edgekit-data, holding what the agent wrote under /var/lib/edgekit
/// (`path`, after e2fsck replays the journal of a guest that was never shut down). On GPT it is
/// the partition named edgekit-data, on an MBR card (rpi) partition 4, which has no name.
func expectDataPartitionFills(_ card: String, bytes: Int, holding path: String?) throws {
    let partitions = try PartitionTable.read(card)
    let mbrData = partitions.count == 4 && partitions[3].name == nil && partitions[3].type == "83" ? partitions[3] : nil
    let data = try #require(partitions.first { $0.name == "edgekit-data" } ?? mbrData, "no data partition: \(partitions)")
    let start = data.start, size = data.size
    #expect(bytes / DiskLayout.sector - (start + size) < 2048, "grown to the card's end: \(data)")
    let loop = try system("losetup", ["--find", "--show", "--offset", String(start * DiskLayout.sector),
                                      "--sizelimit", String(size * DiskLayout.sector), card])
    let device = loop.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    try #require(loop.status == 0 && device.hasPrefix("/dev/loop"), "losetup: \(loop.stderr)")
    defer { _ = try? system("losetup", ["--detach", device]) }
    let check = try system("e2fsck", ["-fy", device])
    #expect(check.status <= 1, "e2fsck: \(check.stdout)\(check.stderr)")
    let probe = try system("blkid", ["--probe", "--output", "export", device])
    #expect(probe.stdout.contains("TYPE=ext4") && probe.stdout.contains("LABEL=edgekit-data"), "\(probe.stdout)\(probe.stderr)")
    if let path {
        let listing = try system("debugfs", ["-R", "stat /\(path)", device])
        #expect(listing.stdout.contains("Type: directory"), "\(path) on the data partition: \(listing.stdout)\(listing.stderr)")
    }
}

/// Router 1's stick of site-b, attached to a booted guest through the qemu monitor (a USB disk
/// hot-plugged on an xHCI controller), and the console lines that show it was applied.
enum LateStick {
    /// The serial console's login prompt ("HOSTNAME login:"), awaited whatever it says; `named`
    /// then checks what it said.
    static let prompt = " login:"
    /// Whether `console` greets with the site's name, and only with it. The root filesystem is every
    /// site's (its /etc/hostname says edgekit); edgekit-hostname.service names the machine after the
    /// site stamp before the login prompts, so even a first boot's prompt says site-b. (Before that
    /// unit, getty could print "edgekit login:" ahead of the agent.)
    static func named(_ console: String) -> Bool {
        console.contains("site-b" + prompt) && !console.contains("edgekit" + prompt)
    }
    static let applied = "applied generation 1 (site site-b router 1"
    /// Two NICs (uplink and LAN, user-mode networking: no relay answers) so the apply has its
    /// ports, and the controller the stick is plugged into.
    static let devices = ["-nic", "user,model=virtio-net-pci", "-nic", "user,model=virtio-net-pci", "-device", "qemu-xhci,id=xhci"]

    /// Seals the stick from `plan` with the secrets in `dir` (sealed to the image the same secrets
    /// built) into `dir`, and returns the monitor commands that plug it in.
    static func make(plan: String, in dir: String, bus: String? = "xhci.0") throws -> [String] {
        let stick = dir + "/late.stick.img"
        try? FileManager.default.removeItem(atPath: stick)
        let built = try edgekit(["stick", "build", "--plan", plan, "--secrets", dir + "/secrets",
                                 "--site", "site-b", "--router", "1", "--serial", "1000", "--out", stick])
        try #require(built.status == 0, "\(built.stderr)")
        return ["drive_add 0 if=none,id=stick,file=\(stick),format=raw,readonly=on",
                "device_add usb-storage,\(bus.map { "bus=\($0)," } ?? "")drive=stick,id=stickdisk,removable=on"]
    }
}

/// A disk image booted under qemu (software emulation) the way a board's table row says, its serial
/// console watched until every awaited line has appeared, qemu stopped or the time is up.
struct EmulatedBoot {
    /// What the agent says at boot with no stick attached: the appliance got as far as the agent.
    static let noStickLine = "edgekit-agent: no profile stick found (label EDGEPROFILE); nothing applied yet"

    var console: String
    /// Seconds from qemu's start until each awaited line first appeared.
    var seen: [String: Int]
    /// What the monitor answered to the `after` commands.
    var monitor: [String] = []

    func seconds(_ line: String) -> String { seen[line].map(String.init) ?? "-" }

    /// Boots `image` (a snapshot: the file is not changed, unless `writable`) with `emulation`'s firmware; `name`
    /// keeps the console logs and firmware variables of boots running side by side apart. One vCPU:
    /// with two, multi-threaded TCG lets trixie's kernel (6.12) run code another vCPU is patching
    /// with int3 and it panics at boot now and then ("Oops: int3" in sched_clock_idle_wakeup_event).
    /// `extra`: more qemu arguments (devices); `after`: once its line has appeared on the console,
    /// its commands go to the qemu monitor (e.g. hot-plugging a USB stick), in order.
    static func run(_ image: String, _ emulation: Board.Emulation, scratch: String, name: String = "boot", cpus: Int = 1,
                    limit: TimeInterval = 420, extra: [String] = ["-nic", "none"], after: (line: String, monitor: [String])? = nil,
                    writable: Bool = false, waitingFor lines: [String]) throws -> EmulatedBoot {
        let session = try Session(image, emulation, scratch: scratch, name: name, cpus: cpus, limit: limit, extra: extra,
                                  after: after, writable: writable, lines: lines)
        defer { session.stop() }
        while try session.poll() { Thread.sleep(forTimeInterval: 2) }
        return session.boot
    }

    /// The same, sleeping between looks without holding a thread of Swift's cooperative pool: a
    /// boot test that runs for minutes would otherwise starve the suite's async tests (two threads
    /// on a 2-core machine), whose deadlines then run out for the machine, not for what they test.
    static func running(_ image: String, _ emulation: Board.Emulation, scratch: String, name: String = "boot", limit: TimeInterval = 420,
                        extra: [String] = ["-nic", "none"], writable: Bool = false, waitingFor lines: [String]) async throws -> EmulatedBoot {
        let session = try Session(image, emulation, scratch: scratch, name: name, cpus: 1, limit: limit, extra: extra,
                                  after: nil, writable: writable, lines: lines)
        defer { session.stop() }
        while try session.poll() { try await Task.sleep(for: .seconds(2)) }
        return session.boot
    }

    /// One qemu run: started by `init`, its console read by `poll`, killed by `stop`.
    final class Session {
        let process = Process()
        let console: String
        let monitor: String
        let lines: [String]
        let after: (line: String, monitor: [String])?
        let started = Date()
        let limit: TimeInterval
        var boot = EmulatedBoot(console: "", seen: [:], monitor: [])
        var acted: Bool

        init(_ image: String, _ emulation: Board.Emulation, scratch: String, name: String, cpus: Int, limit: TimeInterval,
             extra: [String], after: (line: String, monitor: [String])?, writable: Bool, lines: [String]) throws {
            var arguments = emulation.arguments
            if let variables = emulation.variables {
                let copy = scratch + "/\(name).vars.fd"
                try? FileManager.default.removeItem(atPath: copy)
                try FileManager.default.copyItem(atPath: variables, toPath: copy)
                arguments += ["-drive", "if=pflash,format=raw,file=\(copy)"]
            }
            console = scratch + "/\(name).console.log"
            try? FileManager.default.removeItem(atPath: console)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/" + emulation.emulator)
            monitor = scratch + "/\(name).monitor"
            try? FileManager.default.removeItem(atPath: monitor)
            process.arguments = arguments + extra + [
                "-m", "1024", "-smp", String(emulation.cpus ?? cpus), "-nographic", "-no-reboot",
                "-drive", "file=\(image),if=\(emulation.driveInterface),format=raw,snapshot=\(writable ? "off" : "on")",
                "-serial", "file:\(console)", "-monitor", "unix:\(monitor),server=on,wait=off",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            self.lines = lines
            self.after = after
            self.limit = limit
            acted = after == nil
            try process.run()
        }

        /// Reads the console; false once every awaited line has appeared, qemu has ended or the time is up.
        func poll() throws -> Bool {
            guard Date().timeIntervalSince(started) < limit else { return false }
            boot.console = String(decoding: FileManager.default.contents(atPath: console) ?? Data(), as: UTF8.self)
            for line in lines where boot.seen[line] == nil && boot.console.contains(line) {
                boot.seen[line] = Int(Date().timeIntervalSince(started))
            }
            if !acted, let after, boot.console.contains(after.line) {
                acted = true
                for command in after.monitor {
                    let sent = try system("sh", ["-c", "printf '%s\\n' \"$1\" | socat - UNIX-CONNECT:\"$2\"", "monitor", command, monitor])
                    boot.monitor.append("(qemu) \(command)\n\(sent.stdout)\(sent.stderr)")
                }
                boot.monitor.append("(sent \(Int(Date().timeIntervalSince(started))) s after qemu started)")
            }
            return boot.seen.count < lines.count && process.isRunning
        }

        /// SIGKILL: a child started from a test thread inherits its blocked signals, so qemu may
        /// never see SIGTERM.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

final class RecordedEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [BuildProgress.Event] = []
    func add(_ event: BuildProgress.Event) { lock.lock(); events.append(event); lock.unlock() }
    var all: [BuildProgress.Event] { lock.lock(); defer { lock.unlock() }; return events }
}

@Suite(.slow) struct BaseFailureTests {
    /// mmdebstrap failing (here: a mirror nobody answers on) is one error naming mmdebstrap's own
    /// error line and its log, and leaves no base (complete or partial) in the cache.
    @Test(.requiresRoot(andTools: "mmdebstrap"))
    func aFailingMmdebstrapLeavesNoBaseAndNamesItsLog() throws {
        try withScratch { dir in
            var recipe = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime)
            recipe.mirrors = ["deb http://127.0.0.1:9/debian trixie main"]
            let events = RecordedEvents()
            let builder = ImageBuilder(cacheDirectory: dir + "/cache", recipe: recipe, overlayDirectory: dir, agentBinary: "/bin/true",
                                       packerExecutable: "/bin/false", progress: BuildProgress { events.add($0) })
            var message = ""
            do {
                _ = try builder.debianBase()
                Issue.record("a base was built from a mirror that does not exist")
            } catch let error as ImageError {
                message = error.message
            }
            let log = dir + "/cache/base-\(recipe.cacheKey).mmdebstrap.log"
            #expect(message.hasPrefix("mmdebstrap failed building the base (exit "), "\(message)")
            #expect(message.contains("E: ") && message.hasSuffix("(full log: \(log))"), "\(message)")
            #expect(!message.contains("\n"))
            let logText = try String(contentsOfFile: log, encoding: .utf8)
            #expect(logText.contains("E: "))
            let left = try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").filter { $0.hasPrefix("base-") && !$0.hasSuffix(".log") && !$0.hasSuffix(".lock") }
            #expect(left.isEmpty, "no base left: \(left)")
            // The step began and never claimed to end.
            #expect(events.all.contains(.begin(step: "base: mmdebstrap", total: nil, unit: .percent)))
            #expect(!events.all.contains { if case .end = $0 { true } else { false } })
        }
    }
}
