import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeSystem
import Foundation
import SystemCrypto

/// Builds appliance images in three cached levels (docs/image.md):
///
/// 1. **Debian base** (`cache/base-KEY/`): mmdebstrap output packed once into a tar layer, an
///    ext4 root filesystem and the boot files. Keyed by `BaseRecipe.cacheKey`.
/// 2. **System** (`cache/system-KEY/`): the base plus `overlays/` and the agent binary, as a second
///    tar layer and written into the disk's copy of the ext4 with debugfs; the ESP; the GPT disk
///    with an empty site partition. Keyed by the base key, overlay contents and agent binary.
/// 3. **Site stamp** (per site, never cached): a third, final tar layer and a small FAT site
///    partition written into a sparse copy of the system disk. Nothing is recompressed and only
///    the site partition is written; what remains is duplicating the cached files (a reflink
///    where the filesystem has them, an in-kernel copy elsewhere).
public struct ImageBuilder: Sendable {
    public var cacheDirectory: String
    public var recipe: BaseRecipe
    public var overlayDirectory: String
    /// The static edgekit-agent to install, per Debian architecture (`amd64`, `arm64`): each board
    /// gets the one built for its architecture.
    public var agentBinaries: [String: String]
    /// The `edgekit` executable, run inside mmdebstrap's user namespace to pack the base when
    /// building without root (`image pack-base`).
    public var packerExecutable: String
    public var progress: BuildProgress
    /// Build the Debian base anew even when it is cached (`debianBase()`; `edgekit build` asks once
    /// per board): the cache key does not follow the archive, so this is how security updates
    /// reach the images (`--refresh-base`, docs/image.md "Security updates").
    public var refreshBase = false
    /// Whether a cached base is checked against the Debian archive's state (`ArchiveState`) and
    /// built anew when the archive changed since. On, unless `EDGEKIT_ARCHIVE_CHECK=off` (the
    /// suite sets it, so a publication during a run does not rebuild its shared base half-way).
    public var archiveCheck = ProcessInfo.processInfo.environment["EDGEKIT_ARCHIVE_CHECK"] != "off"
    /// The system's version, in `/usr/lib/edgekit/system.json` (`SystemRelease`): 0 unless given
    /// (`--system-version`); an update bundle must carry a larger one (docs/updates.md).
    public var systemVersion: UInt64 = 0

    /// `agentBinary` is the agent for `recipe`'s architecture; `agentBinaries` adds those of others.
    public init(cacheDirectory: String, recipe: BaseRecipe, overlayDirectory: String, agentBinary: String,
                agentBinaries: [String: String] = [:], packerExecutable: String, progress: BuildProgress) {
        self.cacheDirectory = cacheDirectory
        self.recipe = recipe
        self.overlayDirectory = overlayDirectory
        self.agentBinaries = agentBinaries.merging([recipe.architecture: agentBinary]) { _, given in given }
        self.packerExecutable = packerExecutable
        self.progress = progress
    }

    /// Sets a cached level's folder time to now, so the time says when a build last used it and a
    /// cache can be pruned by age (`ls -dt CACHE/system-*/`, docs/ci.md). Best effort: a read-only
    /// cache still builds.
    func markUsed(_ directory: String) {
        _ = utimes(directory, nil)
    }

    /// mtools stamps the folders it makes with the build's time unless `SOURCE_DATE_EPOCH` is set
    /// (mtools 4.0.32 honours it), and FAT keeps local times, converted with the time zone: both
    /// fixed, so two builds anywhere give the same ESP and site partition bytes.
    var fatToolEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = String(recipe.sourceDateEpoch)
        environment["TZ"] = "UTC"
        return environment
    }

    static let espBytes = 128 << 20
    /// The Raspberry Pi's FAT firmware partition: about 95 MB today (kernel and initrd 37 MB each,
    /// the GPU firmware, device trees), with room for a larger kernel.
    static let firmwareBytes = 256 << 20
    static let siteBytes = 8 << 20
    /// GRUB's BIOS boot partition (`pc-bios`): core.img is about 100 KiB; 1 MiB keeps the ESP aligned.
    static let biosBootBytes = 1 << 20

    /// The same builder for another board: its own base (recipe) and system level, same cache.
    public func on(_ board: Board) -> ImageBuilder {
        var builder = self
        builder.recipe = BaseRecipe(sourceDateEpoch: recipe.sourceDateEpoch, board: board)
        return builder
    }
    /// `net.ifnames=0`: ports keep the kernel's names (eth0, eth1) until the agent's `.link` files
    /// rename them to `uplink0`/`lan0`. The agent pins `auto` ports by MAC address; only where it
    /// found no port to pin does a `.link` file match `OriginalName=eth0`, which must still match when
    /// the apply re-triggers udev on a running system, as it would not after udev's predictable
    /// renaming (docs/network.md, "Interface names"). The root is partition 2 by PARTUUID (the
    /// fixed GPT UUID, or on an MBR disk `DISKID-02`); the consoles are the board's.
    public static func kernelCommandLine(_ board: Board) -> String {
        let root = board.partitions == .mbrFirmware ? DiskLayout.mbrPartitionUUID(2) : DiskLayout.rootUUID
        return "root=PARTUUID=\(root) " + kernelOptions(board)
    }

    /// The command line after `root=`, the same for both system slots: the initrd mounts the root
    /// read-write (`rw`; fstab has no line for `/`, whose device depends on the slot booted),
    /// interfaces keep the kernel's names, the board's consoles, systemd's status on the last.
    public static func kernelOptions(_ board: Board) -> String {
        "rw rootflags=errors=remount-ro net.ifnames=0 " + board.consoles.map { "console=" + $0 }.joined(separator: " ") + " systemd.show_status=1"
    }

    // MARK: Level 1: the Debian base

    /// The cached Debian base, building it with mmdebstrap when missing.
    ///
    /// mmdebstrap writes the tree straight into the cache entry's `.partial` folder and finishes
    /// completely (its cleanup empties /etc/machine-id, drops apt's lists and caches, logs and
    /// /run, /tmp), then the tree is packed where it lies: no copy of it, nothing mounted in it.
    public func debianBase() throws -> String {
        let key = recipe.cacheKey
        let directory = cacheDirectory + "/base-" + key
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let lock = try CacheLock(for: directory, progress: progress.note)
        defer { lock.release() }
        // The archive's state now (nil: not checked, or it could not be read).
        var archive: String?
        var archiveProblem: String?
        if archiveCheck {
            do { archive = try ArchiveState.current(mirrors: recipe.mirrors) } catch { archiveProblem = "\(error)" }
        }
        if FileManager.default.fileExists(atPath: directory + "/complete") {
            let recorded = baseRecord(directory, "archive")
            if refreshBase {
                progress.note("base \(key): built anew (--refresh-base)")
            } else if let archive, archive != recorded {
                progress.note("base \(key): built anew: the archive changed since it was built (\(recorded ?? "state not recorded") → \(archive))")
            } else {
                if let archiveProblem {
                    progress.note("base \(key): cached, built from the archive of \(recorded ?? "an unrecorded date"); the archive's state now is unknown (\(archiveProblem))")
                } else {
                    progress.note("base \(key): cached")
                }
                markUsed(directory)
                return directory
            }
        }
        let debs = cacheDirectory + "/debs"
        try FileManager.default.createDirectory(atPath: debs, withIntermediateDirectories: true)
        let staging = directory + ".partial"
        let tree = staging + "/tree"
        try removeBuildTree(staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? removeBuildTree(staging) }
        let log = directory + ".mmdebstrap.log"
        var environment = ProcessInfo.processInfo.environment
        environment["SOURCE_DATE_EPOCH"] = String(recipe.sourceDateEpoch)
        let hooks = ImageBuilder.packageCacheOptions(debs) + ["--customize-hook=sync-out /var/cache/apt/archives \(shellQuote(debs))"]
        let arguments = recipe.mmdebstrapOptions + ["--format=directory"] + hooks + [recipe.suite, tree] + recipe.mirrors
        try progress.step("base: mmdebstrap", unit: .percent) { step in
            let outcome = try Mmdebstrap.run(arguments, environment: environment, log: log, step: step)
            guard outcome.status == 0 else {
                throw ImageError("image.tool-failed", "mmdebstrap failed building the base (exit \(outcome.status)): \(outcome.lastError ?? "no error line") (full log: \(log))")
            }
            return ((), "base \(key): mmdebstrap \(recipe.suite), \(recipe.packages.count) packages and their dependencies")
        }
        if geteuid() == 0 {
            try ImageBuilder.packBase(root: tree, output: staging, epoch: recipe.sourceDateEpoch, board: recipe.board, progress: progress)
        } else {
            // Unshare mode: seen from here the tree belongs to subordinate ids; inside mmdebstrap's
            // user namespace they read as root again, which is what the archive and ext4 must record.
            let status = try SystemCommand.runShowingProgress(
                "mmdebstrap", ["--unshare-helper", packerExecutable, "image", "pack-base", tree, staging, "--epoch", String(recipe.sourceDateEpoch),
                               "--board", recipe.board.name])
            guard status == 0 else { throw ImageError("image.tool-failed", "packing the base failed (exit \(status)); its messages are above") }
        }
        // What the base installed, so a base built anew from a newer archive (same key) gives its
        // system levels new keys (`systemKey`).
        guard let status = FileManager.default.contents(atPath: tree + "/var/lib/dpkg/status") else {
            throw ImageError("the base tree \(tree) has no var/lib/dpkg/status")
        }
        let packages = SHA256.hash(data: status).hex
        try progress.step("base: removing the build tree") { _ in
            try removeBuildTree(tree)
            return ((), "base \(key): build tree removed")
        }
        try? FileManager.default.removeItem(atPath: staging + "/mmdebstrap.log")
        try FileManager.default.moveItem(atPath: log, toPath: staging + "/mmdebstrap.log")
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        let record = "\(key)\npackages \(packages)\n" + (archive.map { "archive \($0)\n" } ?? "")
        _ = FileManager.default.createFile(atPath: directory + "/complete", contents: Data(record.utf8))
        return directory
    }

    /// What a cached base says about itself beyond its key: `packages SHA-256` of its dpkg status
    /// (bases from before that record say nothing, and their system levels keep their keys). The
    /// archive's state is not part of it: a new archive that changed none of the base's packages
    /// keeps the system levels.
    func baseContents(_ base: String) -> String {
        baseRecord(base, "packages").map { "packages " + $0 } ?? ""
    }

    /// The value of the `NAME VALUE` line of a base's `complete` file, nil without one.
    func baseRecord(_ base: String, _ name: String) -> String? {
        let lines = (try? String(contentsOfFile: base + "/complete", encoding: .utf8))?.split(separator: "\n") ?? []
        return lines.dropFirst().first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) }
    }

    /// mmdebstrap options that install from the packages in `debs` and keep what it downloads
    /// there for the next base (mmdebstrap(1), "sync-in"); the builder adds "sync-out".
    public static func packageCacheOptions(_ debs: String) -> [String] {
        [
            "--skip=essential/unlink",
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
            "--setup-hook=sync-in \(shellQuote(debs)) /var/cache/apt/archives/",
        ]
    }

    /// Deletes a folder that may hold an mmdebstrap tree; without root its files belong to
    /// subordinate ids, so it is removed from inside mmdebstrap's user namespace.
    func removeBuildTree(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        if geteuid() == 0 {
            try SystemCommand.check("rm", ["-rf", "--one-file-system", path], what: "removing \(path)")
        } else {
            try SystemCommand.check("mmdebstrap", ["--unshare-helper", "rm", "-rf", "--one-file-system", path], what: "removing \(path)")
        }
    }

    /// Packs a finished mmdebstrap tree into `output`: the base tar layer, the ext4 root filesystem
    /// and the boot files. Run where the tree's owners read as they will on the appliance (as root,
    /// or inside mmdebstrap's user namespace).
    public static func packBase(root: String, output: String, epoch: Int, board: Board = .default, progress: BuildProgress) throws {
        // mke2fs -d copies file times: set them to the epoch (reproducible filesystem), and measure
        // what will be packed, in one walk.
        let contentBytes = try prepareTree(root, epoch: epoch)
        let size = ((contentBytes + contentBytes / 4 + (256 << 20)) >> 20) << 20
        let ext4 = output + "/root.ext4"
        _ = FileManager.default.createFile(atPath: ext4, contents: nil)
        guard truncate(ext4, off_t(size)) == 0 else { throw ImageError("cannot size \(ext4): \(String(cString: strerror(errno)))") }

        // Two cores, two jobs: mke2fs (one thread, mostly I/O) runs while zstd compresses the tar layer.
        let ext4Step = "base: ext4 root"
        progress.report(.begin(step: ext4Step, total: contentBytes, unit: .bytes))
        let mke2fs = BackgroundJob {
            let uuid = DiskLayout.rootFilesystemUUID
            var environment = ProcessInfo.processInfo.environment
            environment["E2FSPROGS_FAKE_TIME"] = String(epoch)
            // Allocated bytes include the filesystem's own metadata: shown up to the tree's size.
            let result = try watchingFileGrowth(ext4, { progress.report(.advance(step: ext4Step, completed: min($0, contentBytes), total: nil, detail: nil)) }) {
                try SystemCommand.run(
                    "mke2fs", ["-q", "-F", "-t", "ext4", "-L", "edgekit-root", "-U", uuid, "-E", "hash_seed=\(uuid)", "-d", root, ext4],
                    environment: environment)
            }
            guard result.succeeded else { throw ImageError("image.tool-failed", "mke2fs failed making the base's ext4 root: \(result.errorText)") }
        }
        defer { mke2fs.wait() }
        let tarPath = output + "/base.tar.zst"
        try progress.step("base: tar layer", total: contentBytes) { step in
            _ = FileManager.default.createFile(atPath: tarPath, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: tarPath) else { throw ImageError("cannot write \(tarPath)") }
            defer { try? handle.close() }
            let writer = try TarZstdLayerWriter(output: handle, isLast: false, mtime: epoch)
            try writer.addTree(at: root) { step.advance($0, of: contentBytes) }
            try writer.finish()
            let compressed = try handle.offset()
            return ((), "base: tar layer \(byteCount(writer.uncompressedBytes)) → \(byteCount(Int(compressed))) zstd")
        }
        try mke2fs.result()
        var info = stat()
        stat(ext4, &info)
        progress.report(.end(step: ext4Step, summary: "base: ext4 root \(size >> 20) MiB, \(byteCount(Int(info.st_blocks) * 512)) allocated"))

        // Boot files: the kernel and initrd the base installed, and systemd-boot for the ESP; for
        // GRUB on PCs its boot sector and the core image the hook made (GrubPC); for the Pi the
        // firmware raspi-firmware's hooks put in /boot/firmware.
        var boot = [("vmlinuz", root + "/vmlinuz"), ("initrd.img", root + "/initrd.img")]
        if board.bootloaders.contains(.systemdBoot) {
            boot.append(("systemd-boot\(board.efiArchitecture).efi", root + "/usr/lib/systemd/boot/efi/systemd-boot\(board.efiArchitecture).efi"))
        }
        if board.bootloaders.contains(.raspberryPiFirmware) {
            try RaspberryPiFirmware.keep(from: root + "/boot/firmware", in: output + "/" + RaspberryPiFirmware.folder)
        }
        if board.bootloaders.contains(.grubPC) {
            boot += [("grub-boot.img", root + GrubPC.bootImageInTree), ("grub-core.img", root + GrubPC.coreImageInTree)]
        }
        for (name, source) in boot {
            let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: source)).map {
                $0.hasPrefix("/") ? root + $0 : (source as NSString).deletingLastPathComponent + "/" + $0
            } ?? source
            guard FileManager.default.fileExists(atPath: resolved) else {
                throw ImageError("the base has no \(source.dropFirst(root.count)); is the package list complete?")
            }
            try? FileManager.default.removeItem(atPath: output + "/" + name)
            try FileManager.default.copyItem(atPath: resolved, toPath: output + "/" + name)
        }
    }

    /// Sets every time in the tree to `epoch` and returns the bytes a tar of it holds (headers and
    /// padded contents, hard links once): what sizes the ext4 root and the progress of packing.
    static func prepareTree(_ root: String, epoch: Int) throws -> Int {
        var times = [timespec(tv_sec: epoch, tv_nsec: 0), timespec(tv_sec: epoch, tv_nsec: 0)]
        guard let walker = FileManager.default.enumerator(atPath: root) else { throw ImageError("cannot read the base tree \(root)") }
        var bytes = 512
        var seen = Set<UInt64>()
        var info = stat()
        for case let relative as String in walker {
            let path = root + "/" + relative
            guard lstat(path, &info) == 0 else { throw ImageError("cannot read \(path): \(String(cString: strerror(errno)))") }
            bytes += 512
            if info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1 || seen.insert(UInt64(info.st_ino)).inserted {
                bytes += (Int(info.st_size) + 511) / 512 * 512
            }
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }
        utimensat(AT_FDCWD, root, &times, AT_SYMLINK_NOFOLLOW)
        return bytes
    }

    // MARK: Level 2: overlays and the agent, ESP, disk

    /// One file of the overlay layer.
    struct OverlayFile {
        var path: String  // relative to the rootfs
        var kind: LayerEntry.Kind
        var mode: UInt16
        var source: String?
    }

    /// The agent binary for the board's architecture, checked: given, executable, and (read from its
    /// ELF header) built for the board's processor. `edgekit build` checks every board's before it
    /// builds anything.
    public func agent() throws -> String {
        let architecture = recipe.architecture
        // How `edgekit build` and `edgekit image build` take each architecture's agent.
        let option = architecture == "amd64" ? "--agent" : "--agent-\(architecture)"
        guard let agentBinary = agentBinaries[architecture] else {
            throw ImageError("image.missing-input", "board \(recipe.board.name) needs edgekit-agent built for \(architecture) and none was given "
                + "(\(option) FILE; ./build.sh cross-builds it to .build/appliance-\(architecture)/edgekit-agent)")
        }
        guard FileManager.default.isExecutableFile(atPath: agentBinary) else {
            throw ImageError("image.missing-input", "agent binary \(agentBinary) is missing or not executable (build it with ./build.sh)")
        }
        if let machine = ELFMachine(file: agentBinary), let wanted = ELFMachine(debianArchitecture: architecture), machine != wanted {
            throw ImageError("image.missing-input", "agent binary \(agentBinary) is built for \(machine), but board \(recipe.board.name) runs "
                + "\(wanted); give the \(architecture) agent with \(option) FILE")
        }
        return agentBinary
    }

    /// Reads `overlays/` and adds the agent binary. Modes are normalised: directories 0755, files
    /// 0755 when executable in the checkout, else 0644; symlinks kept; owner root.
    func overlayFiles() throws -> [OverlayFile] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: overlayDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageError("image.missing-input", "overlay folder \(overlayDirectory) does not exist (expected the repository's overlays/)")
        }
        let agentBinary = try agent()
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
        // What this system is, for the agent to judge update bundles by (board, version).
        let release = try DocumentCoding.encode(SystemRelease(board: recipe.board.name, version: systemVersion))
        let releasePath = String(SystemRelease.path.dropFirst())
        files.append(OverlayFile(path: (releasePath as NSString).deletingLastPathComponent, kind: .directory, mode: 0o755))
        files.append(OverlayFile(path: releasePath, kind: .file(release), mode: 0o644))
        // systemd-repart makes the data partition on GPT disks only; on MBR edgekit-grow-data does,
        // and the fstab names the MBR's PARTUUIDs.
        let mbr = recipe.board.partitions == .mbrFirmware
        let otherTable = mbr ? RaspberryPiFirmware.gptOnly + ["etc/fstab"] : RaspberryPiFirmware.mbrOnly
        files.removeAll { file in otherTable.contains { file.path == $0 || file.path.hasPrefix($0 + "/") } }
        if mbr {
            files.append(OverlayFile(path: "etc/fstab", kind: .file(Data(RaspberryPiFirmware.fstab.utf8)), mode: 0o644))
        }
        return files.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }

    /// The system level's key. The version is bumped when the way the level is made changes
    /// (v3: the ESP's folders carry the image file time, not the build's; v4: folders the base
    /// already has are not made again, which changes the root's inode numbers).
    func systemKey(baseKey: String, baseContents: String = "", overlay: [OverlayFile]) -> String {
        var hasher = SHA256()
        // The default board's key is what it was before boards: its cached systems stay valid; so
        // are those of bases that do not record their packages.
        let board = recipe.board == .default ? "" : " board \(recipe.board.name)"
        let contents = baseContents.isEmpty ? "" : " \(baseContents)"
        hasher.update(data: Data("system v5 \(baseKey)\(contents) \(ImageBuilder.kernelCommandLine(recipe.board))\(board)".utf8))
        for file in overlay {
            hasher.update(data: Data("\(file.path)\0\(file.mode)\0".utf8))
            switch file.kind {
            case .file(let data): hasher.update(data: data)
            case .symlink(let target): hasher.update(data: Data("->\(target)".utf8))
            case .directory: hasher.update(data: Data("dir".utf8))
            }
            hasher.update(data: Data([0]))
        }
        return String(hasher.finalize().hex.prefix(16))
    }

    /// The cached system level: `rootfs.tar.zst` (base + overlay layers, no trailer) and `disk.img`.
    public func system() throws -> String {
        let overlay = try overlayFiles()
        let base = try debianBase()
        let key = systemKey(baseKey: recipe.cacheKey, baseContents: baseContents(base), overlay: overlay)
        let directory = cacheDirectory + "/system-" + key
        let lock = try CacheLock(for: directory, progress: progress.note)
        defer { lock.release() }
        if FileManager.default.fileExists(atPath: directory + "/complete") {
            progress.note("system \(key): cached")
            markUsed(directory)
            return directory
        }
        let staging = directory + ".partial"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: staging) }

        try progress.step("system: overlay tar layer") { _ in
            try SparseCopy.duplicate(base + "/base.tar.zst", to: staging + "/rootfs.tar.zst")
            guard let handle = FileHandle(forWritingAtPath: staging + "/rootfs.tar.zst") else { throw ImageError("cannot write the system layer") }
            defer { try? handle.close() }
            try handle.seekToEnd()
            let writer = try TarZstdLayerWriter(output: handle, isLast: false, mtime: recipe.sourceDateEpoch)
            for file in overlay {
                try writer.add(LayerEntry(path: file.path, kind: file.kind, mode: file.mode))
            }
            try writer.finish()
            return ((), "system \(key): overlay tar layer, \(overlay.count) entries, \(byteCount(writer.uncompressedBytes))")
        }

        // The base's ext4 goes into the disk once; the overlay is then written into it in place
        // (debugfs and e2fsck open the filesystem at its offset in the disk file).
        var rootInfo = stat()
        stat(base + "/root.ext4", &rootInfo)
        let grub = recipe.board.bootloaders.contains(.grubPC)
        // On the Pi's MBR disk the FAT firmware partition takes the ESP's place.
        let mbr = recipe.board.partitions == .mbrFirmware
        var layout = DiskLayout(espBytes: mbr ? ImageBuilder.firmwareBytes : ImageBuilder.espBytes, rootBytes: Int(rootInfo.st_size),
                                siteBytes: ImageBuilder.siteBytes,
                                biosBootBytes: recipe.board.partitions.hasBIOSBootPartition ? ImageBuilder.biosBootBytes : 0,
                                architecture: recipe.architecture, rootSlots: mbr ? 1 : 2)
        layout.table = mbr ? .mbr : .gpt
        let disk = staging + "/disk.img"
        try progress.step("system: disk image", total: Int(rootInfo.st_blocks) * 512) { step in
            try layout.createDisk(at: disk)
            try SparseCopy.copy(base + "/root.ext4", into: disk, at: layout.rootStart * DiskLayout.sector) { step.advance($0) }
            step.advance(Int(rootInfo.st_blocks) * 512, of: Int(rootInfo.st_blocks) * 512, detail: "overlay into the ext4 root")
            try writeOverlay(overlay, into: disk, offset: layout.rootStart * DiskLayout.sector)
            step.advance(Int(rootInfo.st_blocks) * 512, of: Int(rootInfo.st_blocks) * 512, detail: "boot partition")
            let esp = staging + "/esp.vfat"
            if recipe.board.bootloaders.contains(.raspberryPiFirmware) {
                try RaspberryPiFirmware.makePartition(esp, base: base, bytes: layout.espSectors * DiskLayout.sector,
                                                      kernelCommandLine: ImageBuilder.kernelCommandLine(recipe.board),
                                                      epoch: recipe.sourceDateEpoch, environment: fatToolEnvironment)
            } else {
                try makeESP(esp, base: base)
            }
            try SparseCopy.copy(esp, into: disk, at: layout.espStart * DiskLayout.sector)
            try? FileManager.default.removeItem(atPath: esp)
            if grub {
                try GrubPC.install(bootImage: base + "/grub-boot.img", coreImage: base + "/grub-core.img", into: disk,
                                   at: layout.biosBootStart, sectors: layout.biosBootSectors)
            }
            var info = stat()
            stat(disk, &info)
            return ((), "system \(key): disk image \(byteCount(layout.totalBytes)), \(byteCount(Int(info.st_blocks) * 512)) allocated")
        }
        var sizes = ["esp": layout.espSectors, "root": layout.rootSectors, "site": layout.siteSectors]
        if layout.biosBootSectors > 0 { sizes["bios-boot"] = layout.biosBootSectors }
        if layout.rootBSectors > 0 { sizes["root-b"] = layout.rootBSectors }
        let encoded = try JSONEncoder().encode(sizes)
        _ = FileManager.default.createFile(atPath: staging + "/layout.json", contents: encoded)

        // Hash once what every site shares, so stamping hashes only the site's own bytes: the
        // tarball's state after the system layers, the disk's state up to the site partition,
        // and the disk's block map with a checksum per run.
        try ImageBuilder.writeSharedChecksums(system: staging, siteStartByte: layout.siteStart * DiskLayout.sector,
                                              progress: progress, step: "system: checksums", summary: "system \(key): checksums")
        try writeSoftwareBill(system: staging, key: key)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.moveItem(atPath: staging, toPath: directory)
        _ = FileManager.default.createFile(atPath: directory + "/complete", contents: Data(key.utf8))
        return directory
    }

    /// The system level's software bill of materials (`sbom.spdx.json`): the packages dpkg lists
    /// installed in its tarball and the agent. Levels cached before it existed get it on first use.
    public func softwareBill(system: String) throws -> String {
        let path = system + "/" + SoftwareBill.fileName
        if !FileManager.default.fileExists(atPath: path) {
            let name = (system as NSString).lastPathComponent
            try writeSoftwareBill(system: system, key: String(name.dropFirst("system-".count)))
        }
        return path
    }

    func writeSoftwareBill(system: String, key: String) throws {
        try progress.step("system: software bill of materials") { _ in
            let packages = DebianPackage.installed(fromStatus: try SoftwareBill.dpkgStatus(inTarball: system + "/rootfs.tar.zst"))
            let document = try SoftwareBill.spdx(name: "edgekit-system-\(recipe.board.name)-\(key)", board: recipe.board.name,
                                                 distribution: recipe.distribution, packages: packages,
                                                 agentSHA256: try sha256(ofFile: try agent()), created: recipe.sourceDateEpoch)
            // Written whole under a temporary name: stamps of several sites may ask for it at once.
            let temporary = system + "/.\(SoftwareBill.fileName).\(getpid())-\(UUID().uuidString)"
            guard FileManager.default.createFile(atPath: temporary, contents: document),
                  rename(temporary, system + "/" + SoftwareBill.fileName) == 0 else {
                unlink(temporary)
                throw ImageError("cannot write \(system)/\(SoftwareBill.fileName)")
            }
            return ((), "system \(key): software bill of materials, \(packages.count) Debian packages")
        }
    }

    /// Writes the overlay into an ext4 image with debugfs (no mount, no root): folders, files with
    /// root owner, normalised mode and time, symlinks. Existing files are replaced.
    /// `offset`: where the filesystem starts in `image` (e2fsprogs' `?offset=` device option).
    func writeOverlay(_ overlay: [OverlayFile], into image: String, offset: Int = 0) throws {
        var script: [String] = []
        var generated: [String] = []
        defer { for copy in generated { try? FileManager.default.removeItem(atPath: copy) } }
        let epoch = recipe.sourceDateEpoch
        let device = offset == 0 ? image : "\(image)?offset=\(offset)"
        // debugfs' mkdir of a folder that exists fails only after it has taken an inode, which
        // e2fsck then finds unconnected (unless a later file happens to reuse it): only new
        // folders are made.
        let folders = overlay.compactMap { file -> String? in
            if case .directory = file.kind { return "/" + file.path }
            return nil
        }
        // Every file's folder must be in the root or made by the overlay: a failed `cd` would have
        // debugfs write the file into the folder of the file before (and remove its namesake there).
        let parents = Set(overlay.map { ("/" + $0.path as NSString).deletingLastPathComponent }).subtracting(folders).subtracting(["/"])
        let existing = try existingFolders(folders + parents.sorted(), in: device)
        if let missing = parents.subtracting(existing).sorted().first {
            throw ImageError("image.overlay-folder", "the overlay has files in \(missing), a folder neither the root filesystem nor the overlay has")
        }
        for file in overlay {
            let path = "/" + file.path
            let parent = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            switch file.kind {
            case .directory:
                if !existing.contains(path) { script.append("mkdir \(debugfsQuote(path))") }
                script += inodeFields(path, mode: 0o040000 | Int(file.mode), epoch: epoch)
            case .file(let data):
                // A file made by the builder (no source in the checkout) is written from a copy.
                var source = file.source
                if source == nil {
                    let copy = image + ".overlay-\(generated.count)"
                    guard FileManager.default.createFile(atPath: copy, contents: data) else { throw ImageError("cannot write \(copy)") }
                    generated.append(copy)
                    source = copy
                }
                script.append("cd \(debugfsQuote(parent))")
                script.append("rm \(debugfsQuote(name))")
                script.append("write \(debugfsQuote(source!)) \(debugfsQuote(name))")
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
        let result = try SystemCommand.run("debugfs", ["-w", "-f", scriptPath, device], environment: environment)
        // debugfs keeps going after a failed command; "rm" of a file that does not exist yet is
        // expected, anything else is a real failure (a `cd` into a folder that is missing would
        // have the next file written into the folder before it).
        let failures = result.errorText.split(separator: "\n").filter { line in
            !line.hasPrefix("debugfs ") && !line.hasPrefix("rm: File not found by ext2_lookup")
        }
        guard result.succeeded, failures.isEmpty else {
            throw ImageError("image.tool-failed", "writing the overlay into the root filesystem failed: \(failures.first.map(String.init) ?? result.errorText)")
        }
        let check = try SystemCommand.run("e2fsck", ["-fn", device])
        guard check.succeeded else {
            throw ImageError("image.tool-failed", "the root filesystem is not clean after the overlay: \(check.output.split(separator: "\n").prefix(3).joined(separator: "; "))")
        }
    }

    /// Which of the absolute `paths` are folders in the ext4 filesystem at `device`: one debugfs
    /// run that stats them all, read from its echo of each command and the "Type:" line after it.
    func existingFolders(_ paths: [String], in device: String) throws -> Set<String> {
        guard !paths.isEmpty else { return [] }
        let scriptPath = device.split(separator: "?").first.map(String.init)! + ".debugfs-stat"
        let commands = paths.map { "stat \(debugfsQuote($0))" }
        // debugfs echoes each command of a script as "debugfs: COMMAND".
        let echoes = Dictionary(zip(commands.map { "debugfs: " + $0 }, paths), uniquingKeysWith: { first, _ in first })
        _ = FileManager.default.createFile(atPath: scriptPath, contents: Data((commands.joined(separator: "\n") + "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: scriptPath) }
        var environment = ProcessInfo.processInfo.environment
        environment["DEBUGFS_PAGER"] = "__none__"
        // debugfs exits non-zero when a stat fails (a new folder); it read the filesystem if it
        // echoed the commands.
        let result = try SystemCommand.run("debugfs", ["-f", scriptPath, device], environment: environment)
        guard result.output.hasPrefix("debugfs: ") else {
            throw ImageError("image.tool-failed", "reading the root filesystem's folders failed: \(result.errorText)")
        }
        var found: Set<String> = []
        var current: String?
        for line in result.output.split(separator: "\n") {
            if line.hasPrefix("debugfs: ") {
                current = echoes[String(line)]
            } else if let path = current, line.hasPrefix("Inode: "), line.contains("Type: directory") {
                found.insert(path)
                current = nil
            }
        }
        return found
    }

    func inodeFields(_ path: String, mode: Int, epoch: Int) -> [String] {
        let quoted = debugfsQuote(path)
        return ["sif \(quoted) mode 0\(String(mode, radix: 8))", "sif \(quoted) uid 0", "sif \(quoted) gid 0",
                "sif \(quoted) mtime @\(epoch)", "sif \(quoted) atime @\(epoch)", "sif \(quoted) ctime @\(epoch)"]
    }

    /// The EFI system partition: systemd-boot as the removable-media loader, one entry, kernel, initrd;
    /// with GRUB for BIOS also its grub.cfg (GrubPC).
    func makeESP(_ path: String, base: String) throws {
        let esp = try FATImage.format(path, bytes: ImageBuilder.espBytes, bits: 32, label: "EFI", volumeID: DiskLayout.espVolumeID,
                                      environment: fatToolEnvironment)
        let entry = SystemSlot.a.bootEntry(version: systemVersion, kernel: "/vmlinuz", initrd: "/initrd.img",
                                           options: ImageBuilder.kernelOptions(recipe.board))
        let efi = recipe.board.efiArchitecture
        try esp.makeFolders(["::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"])
        try esp.add([
            ("::/EFI/BOOT/BOOT\(efi.uppercased()).EFI", try Data(contentsOf: URL(fileURLWithPath: base + "/systemd-boot\(efi).efi"))),
            ("::/loader/loader.conf", Data("timeout 0\n".utf8)),
            ("::/loader/entries/edgekit-a.conf", Data(entry.utf8)),
            ("::/vmlinuz", try Data(contentsOf: URL(fileURLWithPath: base + "/vmlinuz"))),
            ("::/initrd.img", try Data(contentsOf: URL(fileURLWithPath: base + "/initrd.img"))),
        ], modified: Int(recipe.sourceDateEpoch))
        if recipe.board.bootloaders.contains(.grubPC) {
            try esp.makeFolders(["::/grub"])
            try esp.add([("::/grub/grub.cfg", Data(GrubPC.configuration(options: ImageBuilder.kernelOptions(recipe.board)).utf8)),
                         ("::/grub/grubenv", Data(GrubPC.initialEnvironment.encoded!))],
                        modified: Int(recipe.sourceDateEpoch))
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
    /// `SITE.img.bmap` and `SITE.SHA256SUMS` into `outputDirectory`, then (with `mergeChecksums`)
    /// the folder's `SHA256SUMS`. Outputs appear under their final names only when complete.
    /// Safe to run for several sites at once into the same folder when they merge afterwards.
    @discardableResult
    public func stamp(_ layer: SiteLayer, system: String, outputDirectory: String, mergeChecksums: Bool = true) throws -> [String] {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let site = layer.site
        let partial = outputDirectory + "/.\(site).partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: partial) }

        let names = ["\(site).img", "\(site).img.bmap", "\(site).rootfs.tar.zst", "\(site).spdx.json"]
        let bill = try softwareBill(system: system)
        try progress.step("site \(site)", total: 3, unit: .items) { step in
            step.advance(0, of: 3, detail: "tar layer")
            let tar = partial + "/\(site).rootfs.tar.zst"
            try SparseCopy.duplicate(system + "/rootfs.tar.zst", to: tar)
            guard let handle = FileHandle(forWritingAtPath: tar) else { throw ImageError("cannot write \(tar)") }
            defer { try? handle.close() }
            try handle.seekToEnd()
            let writer = try TarZstdLayerWriter(output: handle, isLast: true, mtime: recipe.sourceDateEpoch)
            try writer.add(LayerEntry(path: "etc/edgekit", kind: .directory, mode: 0o755))
            for file in layer.files {
                try writer.add(LayerEntry(path: file.path, kind: .file(file.data), mode: file.mode))
            }
            try writer.finish()
            let tarBytes = Int(try handle.offset())

            step.advance(1, of: 3, detail: "disk image")
            let layout = try ImageBuilder.layout(ofSystem: system)
            let sitePartition = partial + "/site.vfat"
            try makeSitePartition(sitePartition, files: layer.files.filter { $0.path.hasPrefix("etc/edgekit/") }, bytes: layout.siteSectors * DiskLayout.sector)
            let image = partial + "/\(site).img"
            try SparseCopy.duplicate(system + "/disk.img", to: image)
            try SparseCopy.copy(sitePartition, into: image, at: layout.siteStart * DiskLayout.sector)
            try? FileManager.default.removeItem(atPath: sitePartition)

            step.advance(2, of: 3, detail: "bmap and checksums")
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
            try SparseCopy.duplicate(bill, to: partial + "/" + names[3])
            let digests = [diskHash.hex(), try sha256(ofFile: image + ".bmap"), tarHash.hex(), try sha256(ofFile: partial + "/" + names[3])]
            var sums = ""
            for (name, digest) in zip(names, digests) {
                sums += "\(digest)  \(name)\n"
            }
            // SITE.SHA256SUMS covers this site's files; SHA256SUMS merges every site's.
            let sumsName = "\(site).SHA256SUMS"
            guard FileManager.default.createFile(atPath: partial + "/" + sumsName, contents: Data(sums.utf8)) else {
                throw ImageError("cannot write \(partial)/\(sumsName)")
            }
            for name in names + [sumsName] {
                let target = outputDirectory + "/" + name
                guard rename(partial + "/" + name, target) == 0 else {
                    throw ImageError("cannot move \(name) into \(outputDirectory): \(String(cString: strerror(errno)))")
                }
            }
            var imageInfo = stat()
            stat(outputDirectory + "/" + names[0], &imageInfo)
            return ((), "site \(site): \(names[0]) \(byteCount(Int(imageInfo.st_size))) (\(byteCount(Int(imageInfo.st_blocks) * 512)) allocated), "
                + "\(names[2]) \(byteCount(tarBytes)), bmap, \(names[3]), \(sumsName)")
        }
        if mergeChecksums { try ImageBuilder.mergeChecksums(in: outputDirectory) }
        return names.map { outputDirectory + "/" + $0 }
    }

    /// The partitions of a system level's disk, from its `layout.json`.
    static func layout(ofSystem system: String) throws -> DiskLayout {
        let sizes = try JSONDecoder().decode([String: Int].self, from: Data(contentsOf: URL(fileURLWithPath: system + "/layout.json")))
        var layout = DiskLayout(espBytes: 0, rootBytes: 0, siteBytes: 0)
        layout.espSectors = sizes["esp"] ?? 0
        layout.rootSectors = sizes["root"] ?? 0
        layout.siteSectors = sizes["site"] ?? 0
        layout.biosBootSectors = sizes["bios-boot"] ?? 0
        layout.rootBSectors = sizes["root-b"] ?? 0
        return layout
    }

    /// Writes `PREFIX-VERSION.update` into `outputDirectory` from the system level (built or cached
    /// with this builder's `systemVersion`): its root filesystem, the base's kernel and initrd and
    /// the software bill, signed with `key` (docs/updates.md). `site` nil: for any site of the plan.
    public func updateBundle(plan: String, site: String?, key: Signify.SecretKey, outputDirectory: String) throws -> String {
        guard systemVersion > 0 else {
            throw ImageError("image.no-version", "an update bundle needs --system-version N (a number that grows with every release, e.g. the commit time; the images it replaces carry a smaller one)")
        }
        let system = try system()
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let layout = try ImageBuilder.layout(ofSystem: system)
        let base = cacheDirectory + "/base-" + recipe.cacheKey  // system() has just found or built it
        var files: [UpdateBundleWriter.File] = ["vmlinuz", "initrd.img"].compactMap { name in
            FileManager.default.fileExists(atPath: base + "/" + name) ? UpdateBundleWriter.File(name: name, path: base + "/" + name) : nil
        }
        files.append(UpdateBundleWriter.File(name: SoftwareBill.fileName, path: try softwareBill(system: system)))
        let path = outputDirectory + "/" + BundleFileName.name(plan: plan, site: site, board: recipe.board.name, version: systemVersion)
        let key16 = String((system as NSString).lastPathComponent.dropFirst("system-".count))
        try UpdateBundleWriter.write(to: path, plan: plan, site: site, release: SystemRelease(board: recipe.board.name, version: systemVersion),
                                     system: key16, root: (file: system + "/disk.img", offset: layout.rootStart * DiskLayout.sector,
                                                           bytes: layout.rootSectors * DiskLayout.sector),
                                     kernelOptions: ImageBuilder.kernelOptions(recipe.board), files: files, key: key, mtime: recipe.sourceDateEpoch, progress: progress)
        return path
    }

    /// Writes `checksums.json` for a system level: the SHA-256 states of what every site shares and
    /// the disk's block map (see `stamp`). The disk's hash runs on one core while the tarball's
    /// hash and the block map run on another.
    public static func writeSharedChecksums(system: String, siteStartByte: Int, progress: BuildProgress = .silent,
                                            step name: String = "checksums", summary: String = "checksums") throws {
        var tarInfo = stat()
        stat(system + "/rootfs.tar.zst", &tarInfo)
        let dataBytes = try BlockMap.dataRanges(of: system + "/disk.img").reduce(0) { $0 + ($1.count * BlockMap.blockSize) }
        let total = siteStartByte + Int(tarInfo.st_size) + dataBytes
        try progress.step(name, total: total) { step in
            let counter = ByteCounter { step.advance($0, of: total) }
            let disk = BackgroundJob { () throws -> String in
                var hash = ResumableSHA256()
                try hash.update(file: system + "/disk.img", length: siteStartByte, counted: counter)
                return hash.exported
            }
            defer { disk.wait() }
            var tarHash = ResumableSHA256()
            try tarHash.update(file: system + "/rootfs.tar.zst", counted: counter)
            let diskMap = try BlockMap.make(for: system + "/disk.img", counted: counter)
            let shared = SharedChecksums(tarState: tarHash.exported, diskPrefixState: try disk.result(), diskMap: diskMap)
            guard FileManager.default.createFile(atPath: system + "/checksums.json", contents: try JSONEncoder().encode(shared)) else {
                throw ImageError("cannot write \(system)/checksums.json")
            }
            return ((), "\(summary): \(byteCount(total)) hashed")
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
        let temporary = directory + "/.SHA256SUMS.partial-\(getpid())-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8))
        guard rename(temporary, directory + "/SHA256SUMS") == 0 else {
            unlink(temporary)
            throw ImageError("cannot write \(directory)/SHA256SUMS")
        }
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
        var sources: [String] = []
        for file in files {
            let name = (file.path as NSString).lastPathComponent
            guard FileManager.default.createFile(atPath: scratch + "/" + name, contents: file.data, attributes: [.posixPermissions: 0o600]) else {
                throw ImageError("cannot write \(scratch)/\(name): \(String(cString: strerror(errno)))")
            }
            utimensat(AT_FDCWD, scratch + "/" + name, &times, 0)
            sources.append(scratch + "/" + name)
        }
        // One mcopy for all files (mcopy(1): several sources, a folder as target).
        try SystemCommand.check("mcopy", ["-m", "-i", path] + sources + ["::/"], what: "copying the site files to the site partition",
                                environment: fatToolEnvironment)
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
    return hasher.finalize().hex
}

func shellQuote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

func debugfsQuote(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
