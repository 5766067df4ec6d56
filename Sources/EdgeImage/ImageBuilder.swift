import Crypto
import EdgeSystem
import Foundation

/// Builds appliance images in three cached levels (docs/image.md):
///
/// 1. **Debian base** (`cache/base-KEY/`): mmdebstrap output packed once into a tar layer, an
///    ext4 root filesystem and the boot files. Keyed by `BaseRecipe.cacheKey`.
/// 2. **System** (`cache/system-KEY/`): the base plus `overlays/` and the agent binary, as a second
///    tar layer and written into a copy of the ext4 with debugfs; then the ESP and the GPT disk with
///    an empty site partition. Keyed by the base key, overlay contents and agent binary.
/// 3. **Site stamp** (per site, never cached): a third, final tar layer and a small FAT site
///    partition written into a sparse copy of the system disk. Its cost does not depend on the
///    size of the base: nothing is recompressed and only the site partition is written.
public struct ImageBuilder: Sendable {
    public var cacheDirectory: String
    public var recipe: BaseRecipe
    public var overlayDirectory: String
    public var agentBinary: String
    /// The `edgekit` executable, run by mmdebstrap's hook to pack the base (`image pack-base`).
    public var packerExecutable: String
    public var progress: @Sendable (String) -> Void

    public init(cacheDirectory: String, recipe: BaseRecipe, overlayDirectory: String, agentBinary: String,
                packerExecutable: String, progress: @escaping @Sendable (String) -> Void) {
        self.cacheDirectory = cacheDirectory
        self.recipe = recipe
        self.overlayDirectory = overlayDirectory
        self.agentBinary = agentBinary
        self.packerExecutable = packerExecutable
        self.progress = progress
    }

    static let espBytes = 128 << 20
    static let siteBytes = 8 << 20
    /// `net.ifnames=0`: ports keep the kernel's names (eth0, eth1) until the agent's `.link` files
    /// rename them; their `OriginalName=eth0` must still match when the first apply re-triggers udev
    /// on a running system, which it would not after udev's predictable renaming (docs/network.md).
    public static let kernelCommandLine = "root=PARTUUID=\(DiskLayout.rootUUID) ro net.ifnames=0 console=tty0 console=ttyS0,115200 systemd.show_status=1"

    // MARK: Level 1: the Debian base

    /// The cached Debian base, building it with mmdebstrap when missing.
    public func debianBase() throws -> String {
        let directory = cacheDirectory + "/base-" + recipe.cacheKey
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let lock = try CacheLock(for: directory, progress: progress)
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: directory + "/complete") {
            progress("base \(recipe.cacheKey): cached")
            return directory
        }
        try FileManager.default.createDirectory(atPath: cacheDirectory + "/debs", withIntermediateDirectories: true)
        let staging = directory + ".partial"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        progress("base \(recipe.cacheKey): running mmdebstrap (\(recipe.suite), \(recipe.packages.count) packages); this takes minutes once")
        let debs = cacheDirectory + "/debs"
        let hooks = [
            // Reuse downloaded packages between base builds (mmdebstrap(1), "sync-in/sync-out").
            "--skip=essential/unlink",
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
            "--setup-hook=sync-in \(shellQuote(debs)) /var/cache/apt/archives/",
            "--customize-hook=sync-out /var/cache/apt/archives \(shellQuote(debs))",
            "--customize-hook=\(shellQuote(packerExecutable)) image pack-base \"$1\" \(shellQuote(staging)) --epoch \(recipe.sourceDateEpoch)",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = String(recipe.sourceDateEpoch)
        let status = try SystemCommand.runShowingProgress(
            "mmdebstrap", recipe.mmdebstrapOptions + hooks + [recipe.suite, "/dev/null"] + recipe.mirrors,
            environment: environment)
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: staging)
            throw ImageError("mmdebstrap failed building the base (exit \(status)); its messages are above")
        }
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        _ = FileManager.default.createFile(atPath: directory + "/complete", contents: Data(recipe.cacheKey.utf8))
        return directory
    }

    /// Runs inside mmdebstrap's customize hook, where `root` has its real owners: writes the base
    /// tar layer, the ext4 root filesystem and the boot files into `output`.
    public static func packBase(root chroot: String, output: String, epoch: Int, progress: (String) -> Void) throws {
        // During hooks mmdebstrap has /proc, /sys and /dev mounted in the chroot: copy the tree
        // without crossing into them (cp -x keeps owners, modes, links and hard links), and pack
        // the copy.
        progress("copying the base tree (one filesystem)")
        let root = output + "/tree"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try SystemCommand.check("cp", ["-a", "-x", chroot + "/.", root + "/"], what: "copying the base tree")
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Nothing of the build host or of apt's caches belongs in an appliance.
        for junk in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let path = root + "/" + junk
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where name != "partial" && name != "lock" {
                try? FileManager.default.removeItem(atPath: path + "/" + name)
            }
        }
        progress("packing the base tar layer")
        let tarPath = output + "/base.tar.zst"
        _ = FileManager.default.createFile(atPath: tarPath, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: tarPath) else { throw ImageError("cannot write \(tarPath)") }
        let writer = try TarZstdLayerWriter(output: handle, isLast: false, mtime: epoch)
        try writer.addTree(at: root)
        try writer.finish()
        try handle.close()

        // mke2fs -d copies file times: make them the epoch so the filesystem is reproducible.
        try normaliseTimes(root, epoch: epoch)
        let used = writer.uncompressedBytes
        let size = ((used + used / 4 + (256 << 20)) >> 20) << 20
        progress("making the ext4 root (\(size >> 20) MiB)")
        let ext4 = output + "/root.ext4"
        _ = FileManager.default.createFile(atPath: ext4, contents: nil)
        guard truncate(ext4, off_t(size)) == 0 else { throw ImageError("cannot size \(ext4)") }
        let uuid = DiskLayout.rootFilesystemUUID
        var environment = ProcessInfo.processInfo.environment
        environment["E2FSPROGS_FAKE_TIME"] = String(epoch)
        let mke2fs = try SystemCommand.run(
            "mke2fs", ["-q", "-F", "-t", "ext4", "-L", "edgekit-root", "-U", uuid, "-E", "hash_seed=\(uuid)", "-d", root, ext4],
            environment: environment)
        guard mke2fs.succeeded else { throw ImageError("mke2fs failed: \(mke2fs.errorText)") }

        // Boot files for the ESP: the kernel and initrd the base installed, and systemd-boot.
        let boot = [
            ("vmlinuz", root + "/vmlinuz"),
            ("initrd.img", root + "/initrd.img"),
            ("systemd-bootx64.efi", root + "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
        ]
        for (name, source) in boot {
            let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: source)).map {
                $0.hasPrefix("/") ? root + $0 : (source as NSString).deletingLastPathComponent + "/" + $0
            } ?? source
            guard FileManager.default.fileExists(atPath: resolved) else {
                throw ImageError("the base has no \(source.dropFirst(root.count)); is the package list complete?")
            }
            try FileManager.default.copyItem(atPath: resolved, toPath: output + "/" + name)
        }
    }

    static func normaliseTimes(_ root: String, epoch: Int) throws {
        var times = [timespec(tv_sec: epoch, tv_nsec: 0), timespec(tv_sec: epoch, tv_nsec: 0)]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return }
        for case let path as String in walker {
            utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW)
        }
        utimensat(AT_FDCWD, root, &times, AT_SYMLINK_NOFOLLOW)
    }

    // MARK: Level 2: overlays and the agent, ESP, disk

    /// One file of the overlay layer.
    struct OverlayFile {
        var path: String  // relative to the rootfs
        var kind: LayerEntry.Kind
        var mode: UInt16
        var source: String?
    }

    /// Reads `overlays/` and adds the agent binary. Modes are normalised: directories 0755, files
    /// 0755 when executable in the checkout, else 0644; symlinks kept; owner root.
    func overlayFiles() throws -> [OverlayFile] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: overlayDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageError("overlay folder \(overlayDirectory) does not exist (expected the repository's overlays/)")
        }
        guard FileManager.default.isExecutableFile(atPath: agentBinary) else {
            throw ImageError("agent binary \(agentBinary) is missing or not executable (build it with ./build.sh)")
        }
        var files: [OverlayFile] = []
        guard let walker = FileManager.default.enumerator(atPath: overlayDirectory) else { return files }
        for case let relative as String in walker {
            let full = overlayDirectory + "/" + relative
            var info = stat()
            guard lstat(full, &info) == 0 else { throw ImageError("cannot read overlay file \(full)") }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                files.append(OverlayFile(path: relative, kind: .directory, mode: 0o755))
            case S_IFLNK:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: full)
                files.append(OverlayFile(path: relative, kind: .symlink(target), mode: 0o777))
            case S_IFREG:
                let executable = info.st_mode & 0o100 != 0
                guard let data = FileManager.default.contents(atPath: full) else { throw ImageError("cannot read overlay file \(full)") }
                files.append(OverlayFile(path: relative, kind: .file(data), mode: executable ? 0o755 : 0o644, source: full))
            default:
                throw ImageError("overlay \(full) is neither a file, a folder nor a symlink")
            }
        }
        guard let agent = FileManager.default.contents(atPath: agentBinary) else {
            throw ImageError("cannot read agent binary \(agentBinary)")
        }
        files.append(OverlayFile(path: "usr/local/bin/edgekit-agent", kind: .file(agent), mode: 0o755, source: agentBinary))
        return files.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }

    func systemKey(baseKey: String, overlay: [OverlayFile]) -> String {
        var hasher = SHA256()
        hasher.update(data: Data("system v2 \(baseKey) \(ImageBuilder.kernelCommandLine)".utf8))
        for file in overlay {
            hasher.update(data: Data("\(file.path)\0\(file.mode)\0".utf8))
            switch file.kind {
            case .file(let data): hasher.update(data: data)
            case .symlink(let target): hasher.update(data: Data("->\(target)".utf8))
            case .directory: hasher.update(data: Data("dir".utf8))
            }
            hasher.update(data: Data([0]))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined().prefix(16).description
    }

    /// The cached system level: `rootfs.tar.zst` (base + overlay layers, no trailer) and `disk.img`.
    public func system() throws -> String {
        let overlay = try overlayFiles()
        let base = try debianBase()
        let key = systemKey(baseKey: recipe.cacheKey, overlay: overlay)
        let directory = cacheDirectory + "/system-" + key
        let lock = try CacheLock(for: directory, progress: progress)
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: directory + "/complete") {
            progress("system \(key): cached")
            return directory
        }
        let staging = directory + ".partial"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: staging) }

        progress("system \(key): overlay layer (\(overlay.count) entries)")
        try SparseCopy.duplicate(base + "/base.tar.zst", to: staging + "/rootfs.tar.zst")
        guard let handle = FileHandle(forWritingAtPath: staging + "/rootfs.tar.zst") else { throw ImageError("cannot write the system layer") }
        try handle.seekToEnd()
        let writer = try TarZstdLayerWriter(output: handle, isLast: false, mtime: recipe.sourceDateEpoch)
        for file in overlay {
            try writer.add(LayerEntry(path: file.path, kind: file.kind, mode: file.mode))
        }
        try writer.finish()
        try handle.close()

        progress("system \(key): writing the overlay into the ext4 root")
        let root = staging + "/root.ext4"
        try SparseCopy.duplicate(base + "/root.ext4", to: root)
        try writeOverlay(overlay, into: root)

        progress("system \(key): EFI system partition and disk")
        let esp = staging + "/esp.vfat"
        try makeESP(esp, base: base)
        var rootInfo = stat()
        stat(root, &rootInfo)
        let layout = DiskLayout(espBytes: ImageBuilder.espBytes, rootBytes: Int(rootInfo.st_size), siteBytes: ImageBuilder.siteBytes)
        try layout.createDisk(at: staging + "/disk.img")
        try SparseCopy.copy(esp, into: staging + "/disk.img", at: layout.espStart * DiskLayout.sector)
        try SparseCopy.copy(root, into: staging + "/disk.img", at: layout.rootStart * DiskLayout.sector)
        let encoded = try JSONEncoder().encode(["esp": layout.espSectors, "root": layout.rootSectors, "site": layout.siteSectors])
        _ = FileManager.default.createFile(atPath: staging + "/layout.json", contents: encoded)

        // Hash once what every site shares, so stamping hashes only the site's own bytes: the
        // tarball's state after the system layers, the disk's state up to the site partition,
        // and the disk's block map with a checksum per run.
        progress("system \(key): checksums of the shared parts")
        try ImageBuilder.writeSharedChecksums(system: staging, siteStartByte: layout.siteStart * DiskLayout.sector)
        for name in ["esp.vfat", "root.ext4"] { try? FileManager.default.removeItem(atPath: staging + "/" + name) }
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        _ = FileManager.default.createFile(atPath: directory + "/complete", contents: Data(key.utf8))
        return directory
    }

    /// Writes the overlay into an ext4 image with debugfs (no mount, no root): folders, files with
    /// root owner, normalised mode and time, symlinks. Existing files are replaced.
    func writeOverlay(_ overlay: [OverlayFile], into image: String) throws {
        var script: [String] = []
        let epoch = recipe.sourceDateEpoch
        for file in overlay {
            let path = "/" + file.path
            let parent = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            switch file.kind {
            case .directory:
                script.append("mkdir \(debugfsQuote(path))")
                script += inodeFields(path, mode: 0o040000 | Int(file.mode), epoch: epoch)
            case .file:
                script.append("cd \(debugfsQuote(parent))")
                script.append("rm \(debugfsQuote(name))")
                script.append("write \(debugfsQuote(file.source!)) \(debugfsQuote(name))")
                script += inodeFields(path, mode: 0o100000 | Int(file.mode), epoch: epoch)
            case .symlink(let target):
                script.append("cd \(debugfsQuote(parent))")
                script.append("rm \(debugfsQuote(name))")
                script.append("symlink \(debugfsQuote(name)) \(debugfsQuote(target))")
            }
        }
        let scriptPath = image + ".debugfs"
        _ = FileManager.default.createFile(atPath: scriptPath, contents: Data((script.joined(separator: "\n") + "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: scriptPath) }
        var environment = ProcessInfo.processInfo.environment
        environment["E2FSPROGS_FAKE_TIME"] = String(epoch)
        let result = try SystemCommand.run("debugfs", ["-w", "-f", scriptPath, image], environment: environment)
        // debugfs keeps going after a failed command; "rm" of a file that does not exist yet and
        // "mkdir" of an existing folder are expected, anything else is a real failure.
        let failures = result.errorText.split(separator: "\n").filter { line in
            !line.hasPrefix("debugfs ") && !line.contains("File not found by ext2_lookup") && !line.contains("Ext2 directory already exists")
                && !line.contains("ext2fs_mkdir: Ext2 directory already exists")
        }
        guard result.succeeded, failures.isEmpty else {
            throw ImageError("writing the overlay into the root filesystem failed: \(failures.first.map(String.init) ?? result.errorText)")
        }
        let check = try SystemCommand.run("e2fsck", ["-fn", image])
        guard check.succeeded else {
            throw ImageError("the root filesystem is not clean after the overlay: \(check.output.split(separator: "\n").prefix(3).joined(separator: "; "))")
        }
    }

    func inodeFields(_ path: String, mode: Int, epoch: Int) -> [String] {
        let quoted = debugfsQuote(path)
        return ["sif \(quoted) mode 0\(String(mode, radix: 8))", "sif \(quoted) uid 0", "sif \(quoted) gid 0",
                "sif \(quoted) mtime @\(epoch)", "sif \(quoted) atime @\(epoch)", "sif \(quoted) ctime @\(epoch)"]
    }

    /// The EFI system partition: systemd-boot as the removable-media loader, one entry, kernel, initrd.
    func makeESP(_ path: String, base: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(ImageBuilder.espBytes)) == 0 else {
            throw ImageError("cannot create \(path)")
        }
        try SystemCommand.check("mkfs.vfat", ["--invariant", "-F", "32", "-n", "EFI", "-i", DiskLayout.espVolumeID, path], what: "formatting the ESP")
        let scratch = path + ".files"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let entry = "title edgekit\nlinux /vmlinuz\ninitrd /initrd.img\noptions \(ImageBuilder.kernelCommandLine)\n"
        let files: [(String, Data)] = [
            ("BOOTX64.EFI", try Data(contentsOf: URL(fileURLWithPath: base + "/systemd-bootx64.efi"))),
            ("loader.conf", Data("default edgekit.conf\ntimeout 0\n".utf8)),
            ("edgekit.conf", Data(entry.utf8)),
            ("vmlinuz", try Data(contentsOf: URL(fileURLWithPath: base + "/vmlinuz"))),
            ("initrd.img", try Data(contentsOf: URL(fileURLWithPath: base + "/initrd.img"))),
        ]
        var times = [timespec(tv_sec: recipe.sourceDateEpoch, tv_nsec: 0), timespec(tv_sec: recipe.sourceDateEpoch, tv_nsec: 0)]
        for (name, data) in files {
            _ = FileManager.default.createFile(atPath: scratch + "/" + name, contents: data)
            utimensat(AT_FDCWD, scratch + "/" + name, &times, 0)
        }
        try SystemCommand.check("mmd", ["-i", path, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"], what: "making ESP folders")
        let copies = [("BOOTX64.EFI", "::/EFI/BOOT/BOOTX64.EFI"), ("loader.conf", "::/loader/loader.conf"),
                      ("edgekit.conf", "::/loader/entries/edgekit.conf"), ("vmlinuz", "::/vmlinuz"), ("initrd.img", "::/initrd.img")]
        for (name, target) in copies {
            try SystemCommand.check("mcopy", ["-m", "-i", path, scratch + "/" + name, target], what: "copying \(name) to the ESP")
        }
    }

    // MARK: Level 3: site stamp

    /// What a site adds: the files under /etc/edgekit (and the hostname), as (path, mode, bytes).
    public struct SiteLayer: Sendable {
        public var site: String
        public var files: [(path: String, mode: UInt16, data: Data)]

        public init(site: String, files: [(path: String, mode: UInt16, data: Data)]) {
            self.site = site
            self.files = files
        }
    }

    /// Stamps `layer` onto the system level and writes `SITE.rootfs.tar.zst`, `SITE.img`,
    /// `SITE.img.bmap` and `SHA256SUMS` into `outputDirectory`. Outputs appear under their final
    /// names only when complete.
    @discardableResult
    public func stamp(_ layer: SiteLayer, system: String, outputDirectory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let site = layer.site
        let partial = outputDirectory + "/.\(site).partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: partial) }

        progress("site \(site): tar layer")
        let tar = partial + "/\(site).rootfs.tar.zst"
        try SparseCopy.duplicate(system + "/rootfs.tar.zst", to: tar)
        guard let handle = FileHandle(forWritingAtPath: tar) else { throw ImageError("cannot write \(tar)") }
        try handle.seekToEnd()
        let writer = try TarZstdLayerWriter(output: handle, isLast: true, mtime: recipe.sourceDateEpoch)
        try writer.add(LayerEntry(path: "etc/edgekit", kind: .directory, mode: 0o755))
        for file in layer.files {
            try writer.add(LayerEntry(path: file.path, kind: .file(file.data), mode: file.mode))
        }
        try writer.finish()
        try handle.synchronize()
        try handle.close()

        progress("site \(site): disk image")
        let layoutData = try Data(contentsOf: URL(fileURLWithPath: system + "/layout.json"))
        let sizes = try JSONDecoder().decode([String: Int].self, from: layoutData)
        var layout = DiskLayout(espBytes: 0, rootBytes: 0, siteBytes: 0)
        layout.espSectors = sizes["esp"] ?? 0
        layout.rootSectors = sizes["root"] ?? 0
        layout.siteSectors = sizes["site"] ?? 0
        let sitePartition = partial + "/site.vfat"
        try makeSitePartition(sitePartition, files: layer.files.filter { $0.path.hasPrefix("etc/edgekit/") }, bytes: layout.siteSectors * DiskLayout.sector)
        let image = partial + "/\(site).img"
        try SparseCopy.duplicate(system + "/disk.img", to: image)
        try SparseCopy.copy(sitePartition, into: image, at: layout.siteStart * DiskLayout.sector)
        try? FileManager.default.removeItem(atPath: sitePartition)

        progress("site \(site): bmap and checksums")
        let shared = try JSONDecoder().decode(SharedChecksums.self, from: Data(contentsOf: URL(fileURLWithPath: system + "/checksums.json")))
        let bmap = try BlockMap.make(for: image, reusing: shared.diskMap).xml
        guard FileManager.default.createFile(atPath: image + ".bmap", contents: Data(bmap.utf8)) else {
            throw ImageError("cannot write \(image).bmap")
        }
        // Resume the cached states with only this site's bytes: the site tar layer, and the site
        // partition plus the disk's tail (alignment gap and backup GPT).
        guard var tarHash = ResumableSHA256(exported: shared.tarState), var diskHash = ResumableSHA256(exported: shared.diskPrefixState) else {
            throw ImageError("the checksum cache in \(system) is unreadable; delete it to rebuild")
        }
        var systemTar = stat()
        stat(system + "/rootfs.tar.zst", &systemTar)
        try tarHash.update(file: tar, offset: Int(systemTar.st_size))
        try diskHash.update(file: image, offset: layout.siteStart * DiskLayout.sector)
        let names = ["\(site).img", "\(site).img.bmap", "\(site).rootfs.tar.zst"]
        let digests = [diskHash.hex(), try sha256(ofFile: image + ".bmap"), tarHash.hex()]
        var sums = ""
        for (name, digest) in zip(names, digests) {
            sums += "\(digest)  \(name)\n"
        }
        _ = FileManager.default.createFile(atPath: partial + "/SHA256SUMS", contents: Data(sums.utf8))
        // SHA256SUMS covers this site's files; with several sites, each has its own section file.
        let sumsName = "\(site).SHA256SUMS"
        try FileManager.default.moveItem(atPath: partial + "/SHA256SUMS", toPath: partial + "/" + sumsName)
        for name in names + [sumsName] {
            let target = outputDirectory + "/" + name
            guard rename(partial + "/" + name, target) == 0 else {
                throw ImageError("cannot move \(name) into \(outputDirectory): \(String(cString: strerror(errno)))")
            }
        }
        try ImageBuilder.mergeChecksums(in: outputDirectory)
        return names.map { outputDirectory + "/" + $0 }
    }

    /// Writes `checksums.json` for a system level: the SHA-256 states of what every site shares and
    /// the disk's block map (see `stamp`).
    public static func writeSharedChecksums(system: String, siteStartByte: Int) throws {
        var tarHash = ResumableSHA256()
        try tarHash.update(file: system + "/rootfs.tar.zst")
        var diskHash = ResumableSHA256()
        try diskHash.update(file: system + "/disk.img", length: siteStartByte)
        let shared = SharedChecksums(tarState: tarHash.exported, diskPrefixState: diskHash.exported,
                                     diskMap: try BlockMap.make(for: system + "/disk.img"))
        guard FileManager.default.createFile(atPath: system + "/checksums.json", contents: try JSONEncoder().encode(shared)) else {
            throw ImageError("cannot write \(system)/checksums.json")
        }
    }

    /// `SHA256SUMS` lists every file of every `*.SHA256SUMS` in the folder, sorted (sha256sum -c works).
    public static func mergeChecksums(in directory: String) throws {
        let parts = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".SHA256SUMS") }.sorted()
        var lines: [String] = []
        for part in parts {
            let text = try String(contentsOfFile: directory + "/" + part, encoding: .utf8)
            lines += text.split(separator: "\n").map(String.init)
        }
        let text = lines.sorted { $0.dropFirst(66) < $1.dropFirst(66) }.joined(separator: "\n") + "\n"
        let temporary = directory + "/.SHA256SUMS.partial"
        _ = FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8))
        guard rename(temporary, directory + "/SHA256SUMS") == 0 else { throw ImageError("cannot write \(directory)/SHA256SUMS") }
    }

    func makeSitePartition(_ path: String, files: [(path: String, mode: UInt16, data: Data)], bytes: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(bytes)) == 0 else {
            throw ImageError("cannot create the site partition")
        }
        try SystemCommand.check("mkfs.vfat", ["--invariant", "-F", "12", "-n", DiskLayout.siteLabel, "-i", DiskLayout.siteVolumeID, path],
                                what: "formatting the site partition")
        let scratch = path + ".files"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var times = [timespec(tv_sec: recipe.sourceDateEpoch, tv_nsec: 0), timespec(tv_sec: recipe.sourceDateEpoch, tv_nsec: 0)]
        for file in files {
            let name = (file.path as NSString).lastPathComponent
            _ = FileManager.default.createFile(atPath: scratch + "/" + name, contents: file.data, attributes: [.posixPermissions: 0o600])
            utimensat(AT_FDCWD, scratch + "/" + name, &times, 0)
            try SystemCommand.check("mcopy", ["-m", "-i", path, scratch + "/" + name, "::/" + name], what: "copying \(name) to the site partition")
        }
    }
}

/// What the system level hashes once for every site (see `stamp`).
struct SharedChecksums: Codable {
    var tarState: String
    var diskPrefixState: String
    var diskMap: BlockMap
}

/// SHA-256 of a file, streamed.
public func sha256(ofFile path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError("cannot read \(path)") }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
        let chunk = handle.readData(ofLength: 4 << 20)
        if chunk.isEmpty { break }
        hasher.update(data: chunk)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

func shellQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

func debugfsQuote(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
