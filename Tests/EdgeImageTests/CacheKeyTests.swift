@testable import EdgeImage
import EdgeErrors
import EdgeModel
import Foundation
import TestSupport
import Testing

/// What shapes a cached level is in its key: a changed input builds the level again, an unchanged
/// one finds it (docs/image.md, "Three cached levels").
@Suite struct CacheKeyTests {
    @Test func everyInputOfTheBaseRecipeChangesItsKey() {
        let recipe = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime)
        #expect(recipe.cacheKey == BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime).cacheKey, "same inputs, same key")
        var changes: [(String, BaseRecipe)] = []
        // Only the suite changed (same mirror lines): a bookworm base is never found for trixie.
        var suite = recipe; suite.suite = "bookworm"; changes.append(("suite", suite))
        var arch = recipe; arch.architecture = "arm64"; changes.append(("architecture", arch))
        var mirror = recipe; mirror.mirrors[0] = "deb http://mirror.example/debian trixie main"; changes.append(("mirror", mirror))
        var packages = recipe; packages.packages.append("tcpdump"); changes.append(("package list", packages))
        var order = recipe; order.packages.swapAt(0, 1); changes.append(("package order", order))
        var filters = recipe; filters.dpkgOptions.removeLast(); changes.append(("dpkg filters", filters))
        var epoch = recipe; epoch.sourceDateEpoch -= 1; changes.append(("file time", epoch))
        for (what, changed) in changes {
            #expect(changed.cacheKey != recipe.cacheKey, "a changed \(what) must rebuild the base")
        }
        #expect(Set(changes.map(\.1.cacheKey)).count == changes.count)
    }

    /// The base is cached per (suite, architecture, board packages): a board that adds packages or
    /// boot loader hooks gets its own base, and the default board's key is pinned.
    @Test func eachBoardWithOtherPackagesHasItsOwnBase() {
        let uefi = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime, board: .pcUEFI)
        let bios = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime, board: .pcBIOS)
        #expect(uefi == BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime))
        // Pinned: a change to the default board's packages or hooks must be deliberate (it rebuilds
        // every cached base). Last changed by systemd-boot (systemd-bless-boot keeps a new system
        // after its trial boot, docs/updates.md).
        #expect(uefi.cacheKey == "b1f3599727e48cc4", "pc-uefi's base key changed")
        #expect(uefi.packages == ["systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus", "kmod",
                                  "linux-image-amd64", "initramfs-tools", "systemd-boot-efi", "systemd-boot",
                                  "wireguard-tools", "radvd", "keepalived", "nftables", "iproute2", "iputils-ping",
                                  "e2fsprogs", "mtools", "procps", "systemd-repart", "prometheus-node-exporter", "openssh-server",
                                  "libssl3t64"])
        #expect(bios.cacheKey != uefi.cacheKey)
        #expect(bios.packages == uefi.packages.prefix(10) + ["grub-pc-bin"] + uefi.packages.dropFirst(10))
        #expect(bios.mmdebstrapOptions.contains { $0.hasPrefix("--customize-hook=") && $0.contains("grub-mkimage --format=i386-pc") })
        #expect(!uefi.mmdebstrapOptions.contains { $0.hasPrefix("--customize-hook=") && $0.contains("grub-mkimage") })
        let builder = ImageBuilder(cacheDirectory: "/nonexistent", recipe: uefi, overlayDirectory: "/nonexistent", agentBinary: "/nonexistent",
                                   packerExecutable: "/bin/false", progress: .silent)
        #expect(builder.on(.pcBIOS).recipe == bios)
        #expect(builder.on(.pcBIOS).systemKey(baseKey: "base", overlay: []) != builder.systemKey(baseKey: "base", overlay: []))
    }

    /// A board's kept kernel modules are dpkg filters (all modules out, the kept ones back in, in
    /// that order: dpkg's last matching filter wins) and one hook that checks the set; they are part
    /// of the base's key, so a trimmed base is never found for an untrimmed recipe or the reverse.
    @Test func aBoardsKeptKernelModulesAreFiltersAndACheckInTheBaseKey() throws {
        let uefi = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime, board: .pcUEFI)
        let filters = uefi.mmdebstrapOptions.filter { $0.hasPrefix("--dpkgopt=") && $0.contains("/usr/lib/modules/") }
        #expect(filters.first == "--dpkgopt=path-exclude=/usr/lib/modules/*/kernel/*")
        #expect(filters.dropFirst().allSatisfy { $0.hasPrefix("--dpkgopt=path-include=/usr/lib/modules/*/kernel/") })
        #expect(filters.contains("--dpkgopt=path-include=/usr/lib/modules/*/kernel/drivers/net/wireguard/*"), "a folder keeps what is below it")
        #expect(filters.contains("--dpkgopt=path-include=/usr/lib/modules/*/kernel/drivers/net/virtio_net.ko*"), "one module, any compression")
        let hooks = uefi.mmdebstrapOptions.filter { $0.hasPrefix("--customize-hook=") }
        #expect(hooks.count == 1)
        #expect(hooks.first?.contains("modinfo -k") == true && hooks.first?.contains("drivers/net/virtio_net") == true)
        // What the boot test and the lab use: virtio disk and NICs, USB sticks on xHCI, FAT and ext4,
        // WireGuard and nftables.
        guard case .only(let kept) = Board.pcUEFI.kernelModules else { Issue.record("pc-uefi keeps every module"); return }
        for path in ["drivers/block/virtio_blk", "drivers/net/virtio_net", "drivers/usb/host/", "drivers/usb/storage/", "drivers/scsi/sd_mod",
                     "fs/ext4/", "fs/fat/", "fs/nls/nls_cp437", "fs/nls/nls_iso8859-1", "drivers/net/wireguard/", "net/netfilter/"] {
            #expect(kept.contains(path), "pc-uefi keeps \(path)")
        }
        #expect(Board.pcBIOS.kernelModules == Board.pcUEFI.kernelModules)
        var fewer = uefi
        fewer.board.kernelModules = .only(Array(kept.dropLast()))
        #expect(fewer.cacheKey != uefi.cacheKey, "a changed module list must rebuild the base")
        var untrimmed = uefi
        untrimmed.board.kernelModules = .all
        #expect(untrimmed.cacheKey != uefi.cacheKey)
        #expect(!untrimmed.mmdebstrapOptions.contains { $0.contains("/usr/lib/modules/") || $0.hasPrefix("--customize-hook=") })
        #expect(Board.arm64UEFI.kernelModules == .all, "arm64-uefi has no trimmed module list yet")
    }

    /// pc-bios adds GRUB's BIOS boot partition as number 4 in front of the ESP, so partitions 1–3
    /// keep their numbers (grub.cfg's `(,gpt1)`); system slot B, as large as slot A, lies between
    /// slot A and the site partition and is listed last (4, or 5 on pc-bios).
    @Test func biosBootPartitionIsNumberFourInFrontOfTheESP() {
        let uefi = DiskLayout(espBytes: 128 << 20, rootBytes: 680 << 20, siteBytes: 8 << 20)
        let bios = DiskLayout(espBytes: 128 << 20, rootBytes: 680 << 20, siteBytes: 8 << 20, biosBootBytes: 1 << 20)
        #expect(uefi.espStart == 2048 && uefi.biosBootSectors == 0)
        #expect(!uefi.sfdiskScript.contains("bios-boot"))
        #expect(bios.biosBootStart == 2048 && bios.espStart == 4096 && bios.totalSectors == uefi.totalSectors + 2048)
        let lines = bios.sfdiskScript.split(separator: "\n").filter { $0.hasPrefix("start=") }
        #expect(lines.count == 5)
        #expect(lines[3].contains("type=21686148-6449-6E6F-744E-656564454649"))
        #expect(lines.first?.contains("name=\"esp\"") == true)
        #expect(lines.last == "start=\(bios.rootBStart), size=\(bios.rootSectors), type=\(bios.rootType), uuid=\(DiskLayout.rootBUUID), name=\"edgekit-root-b\"")
        #expect(uefi.rootBStart == uefi.rootStart + uefi.rootSectors && uefi.siteStart == uefi.rootBStart + uefi.rootSectors)
        var mbr = DiskLayout(espBytes: 128 << 20, rootBytes: 680 << 20, siteBytes: 8 << 20, rootSlots: 1)
        mbr.table = .mbr
        #expect(mbr.rootBSectors == 0 && !mbr.sfdiskScript.contains("edgekit-root-b") && mbr.siteStart == mbr.rootStart + mbr.rootSectors)
    }

    /// The appliance is Debian 13, and every archive it installs from is that suite's: a mirror
    /// line left on the old suite would mix two releases in one base.
    @Test func theBaseIsTrixieFromTrixieArchivesOnly() {
        let recipe = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime)
        #expect(recipe.suite == "trixie")
        #expect(recipe.mirrors == [
            "deb http://deb.debian.org/debian trixie main",
            "deb http://deb.debian.org/debian trixie-updates main",
            "deb http://deb.debian.org/debian-security trixie-security main",
        ])
        // The Pi's firmware is in non-free-firmware: its base adds that component to every line.
        #expect(BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime, board: .rpi).mirrors == [
            "deb http://deb.debian.org/debian trixie main non-free-firmware",
            "deb http://deb.debian.org/debian trixie-updates main non-free-firmware",
            "deb http://deb.debian.org/debian-security trixie-security main non-free-firmware",
        ])
    }

    @Test func theSystemKeyFollowsOverlayBytesModesPathsAndTheBase() {
        let builder = ImageBuilder(cacheDirectory: "/nonexistent", recipe: BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime),
                                   overlayDirectory: "/nonexistent", agentBinary: "/nonexistent", packerExecutable: "/bin/false",
                                   progress: BuildProgress { _ in })
        let overlay = [
            ImageBuilder.OverlayFile(path: "etc/fstab", kind: .file(Data("root\n".utf8)), mode: 0o644, source: "fstab"),
            ImageBuilder.OverlayFile(path: "usr/local/bin/edgekit-agent", kind: .file(Data("agent v1".utf8)), mode: 0o755, source: "agent"),
        ]
        let key = builder.systemKey(baseKey: "base", overlay: overlay)
        #expect(key == builder.systemKey(baseKey: "base", overlay: overlay))
        var bytes = overlay; bytes[1] = ImageBuilder.OverlayFile(path: bytes[1].path, kind: .file(Data("agent v2".utf8)), mode: 0o755, source: "agent")
        var mode = overlay; mode[0] = ImageBuilder.OverlayFile(path: mode[0].path, kind: mode[0].kind, mode: 0o600, source: "fstab")
        var path = overlay; path[0] = ImageBuilder.OverlayFile(path: "etc/fstab2", kind: path[0].kind, mode: 0o644, source: "fstab")
        var link = overlay; link[0] = ImageBuilder.OverlayFile(path: "etc/fstab", kind: .symlink("root\n"), mode: 0o644, source: "fstab")
        for (what, changed) in [("agent bytes", bytes), ("mode", mode), ("path", path), ("file → link", link)] {
            #expect(builder.systemKey(baseKey: "base", overlay: changed) != key, "a changed \(what) must rebuild the system level")
        }
        #expect(builder.systemKey(baseKey: "other base", overlay: overlay) != key, "a new base must rebuild the system level")
    }

    @Test func imageFileTimeIsSourceDateEpochClampedAndRefusesGarbage() throws {
        #expect(try BaseRecipe.imageFileTime(environment: [:]) == BaseRecipe.latestFileTime)
        #expect(try BaseRecipe.imageFileTime(environment: ["SOURCE_DATE_EPOCH": "1800000000"]) == BaseRecipe.latestFileTime,
                "a commit time after the clamp does not change the images or the base key")
        #expect(try BaseRecipe.imageFileTime(environment: ["SOURCE_DATE_EPOCH": "1000000000"]) == 1_000_000_000)
        for bad in ["", "soon", "-5", "1.5"] {
            expectCode("image.bad-setting", bad) { _ = try BaseRecipe.imageFileTime(environment: ["SOURCE_DATE_EPOCH": bad]) }
        }
    }
}

/// The overlay written into an ext4 root with debugfs, as the system level does it.
@Suite struct OverlayWriteTests {
    /// Folders the root already has are left as they are and new ones made, even when a folder
    /// comes last with nothing after it (debugfs' mkdir of an existing folder takes an inode before
    /// it fails; no later file reused it there, and e2fsck found it unconnected): the root is clean,
    /// every overlay entry is in it, and what the root had survives.
    @Test(.requiresTool("mke2fs", "debugfs", "e2fsck"))
    func existingAndNewFoldersLeaveTheRootClean() throws {
        try withScratch { dir in
            let tree = dir + "/tree"
            try FileManager.default.createDirectory(atPath: tree + "/etc/kept", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: tree + "/usr/local/sbin", withIntermediateDirectories: true)
            try Data("base\n".utf8).write(to: URL(fileURLWithPath: tree + "/etc/kept/file"))
            let root = dir + "/root.ext4"
            let made = try system("mke2fs", ["-q", "-t", "ext4", "-d", tree, root, "16M"])
            try #require(made.status == 0, "mke2fs: \(made.stderr)")
            let builder = ImageBuilder(cacheDirectory: dir, recipe: BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime), overlayDirectory: dir,
                                       agentBinary: "/nonexistent", packerExecutable: "/bin/false", progress: .silent)
            let overlay: [ImageBuilder.OverlayFile] = [
                .init(path: "etc", kind: .directory, mode: 0o755),
                .init(path: "etc/new", kind: .directory, mode: 0o755),
                .init(path: "etc/new/file", kind: .file(Data("overlay\n".utf8)), mode: 0o644),
                .init(path: "usr", kind: .directory, mode: 0o755),
                .init(path: "usr/local", kind: .directory, mode: 0o755),
                .init(path: "usr/local/sbin", kind: .directory, mode: 0o755),
            ]
            try builder.writeOverlay(overlay, into: root)
            let check = try system("e2fsck", ["-fn", root])
            #expect(check.status == 0, "e2fsck: \(check.stdout)")
            #expect(try system("debugfs", ["-R", "cat /etc/new/file", root]).stdout == "overlay\n")
            #expect(try system("debugfs", ["-R", "cat /etc/kept/file", root]).stdout == "base\n")
            #expect(try builder.existingFolders(["/etc", "/etc/new", "/usr/local/sbin", "/etc/kept/file", "/nope"], in: root)
                        == ["/etc", "/etc/new", "/usr/local/sbin"])
            // A file whose folder neither the root nor the overlay has is a build error before
            // anything is written: debugfs' failed `cd` would have put it into the folder of the file
            // before, replacing its namesake there (found when usr/lib/edgekit/system.json came
            // without its folder).
            let stray: [ImageBuilder.OverlayFile] = [
                .init(path: "etc/new/file", kind: .file(Data("second\n".utf8)), mode: 0o644),
                .init(path: "usr/lib/missing/file", kind: .file(Data("stray\n".utf8)), mode: 0o644),
            ]
            #expect(throws: ImageError("image.overlay-folder", "the overlay has files in /usr/lib/missing, a folder neither the root filesystem nor the overlay has")) {
                try builder.writeOverlay(stray, into: root)
            }
            #expect(try system("debugfs", ["-R", "cat /etc/new/file", root]).stdout == "overlay\n", "nothing was written")
        }
    }

    /// A base records what it installed; a base built anew (`--refresh-base`) from a newer archive
    /// has the same key but other packages, and its system levels must not be the old ones. Bases
    /// from before that record keep their system keys.
    @Test func aBaseBuiltAnewGivesItsSystemLevelsNewKeys() throws {
        let builder = ImageBuilder(cacheDirectory: "/nonexistent", recipe: BaseRecipe(sourceDateEpoch: 0), overlayDirectory: "/nonexistent",
                                   agentBinary: "/nonexistent", packerExecutable: "/bin/false", progress: .silent)
        let old = builder.systemKey(baseKey: "base", overlay: [])
        #expect(builder.systemKey(baseKey: "base", baseContents: "", overlay: []) == old)
        let first = builder.systemKey(baseKey: "base", baseContents: "packages " + String(repeating: "a", count: 64), overlay: [])
        let second = builder.systemKey(baseKey: "base", baseContents: "packages " + String(repeating: "b", count: 64), overlay: [])
        #expect(first != old && second != old && first != second)
        try TemporaryDirectory.with { dir in
            try Data("0123456789abcdef".utf8).write(to: dir.file("complete"))
            #expect(builder.baseContents(dir.path) == "")
            try Data("0123456789abcdef\npackages abc\n".utf8).write(to: dir.file("complete"))
            #expect(builder.baseContents(dir.path) == "packages abc")
        }
    }
}
