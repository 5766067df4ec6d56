import EdgeImage
import EdgeModel
import Foundation
import TestSupport
import Testing

/// Runs a system tool and returns (status, stdout, stderr).
func system(_ tool: String, _ arguments: [String], stdin: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let candidates = tool.hasPrefix("/") ? [tool] : ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].map { $0 + tool }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("\(tool) is not installed; run ./build.sh to install it")
        throw CocoaError(.fileNoSuchFile)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
    }
    let errData = LockedBox()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.get(), as: UTF8.self))
}

final class LockedBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

func withScratch<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-image-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

@Suite struct ArchiveTests {
    /// Three layers written separately concatenate into one tar that GNU tar and bsdtar both read,
    /// with normalised owners, modes and times, and later layers overriding earlier ones.
    func writeLayers(to path: String, tree: String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        let base = try TarZstdLayerWriter(output: handle, isLast: false, mtime: 1_000_000_000)
        try base.addTree(at: tree)
        try base.finish()
        let overlay = try TarZstdLayerWriter(output: handle, isLast: false, mtime: 1_000_000_000)
        try overlay.add(LayerEntry(path: "etc/motd", kind: .file(Data("overlay\n".utf8)), mode: 0o644))
        try overlay.add(LayerEntry(path: "usr/local/bin/tool", kind: .file(Data("#!/bin/sh\n".utf8)), mode: 0o755))
        try overlay.finish()
        let site = try TarZstdLayerWriter(output: handle, isLast: true, mtime: 1_000_000_000)
        try site.add(LayerEntry(path: "etc/edgekit", kind: .directory, mode: 0o755))
        try site.add(LayerEntry(path: "etc/edgekit/site.identity", kind: .file(Data("AGE-SECRET-KEY-1X\n".utf8)), mode: 0o600))
        try site.add(LayerEntry(path: "etc/edgekit/link", kind: .symlink("site.identity"), mode: 0o777))
        try site.finish()
        try handle.close()
    }

    func makeTree(_ dir: String) throws -> String {
        let tree = dir + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/usr/local/bin", withIntermediateDirectories: true)
        try Data("base\n".utf8).write(to: URL(fileURLWithPath: tree + "/etc/motd"))
        try Data(repeating: 7, count: 300_000).write(to: URL(fileURLWithPath: tree + "/usr/big"))
        link(tree + "/usr/big", tree + "/usr/big-hardlink")
        symlink("../usr/big", tree + "/etc/big-symlink")
        chown(tree + "/etc/motd", 101, 102)
        return tree
    }

    @Test func layersConcatenateIntoOneTarReadableByGNUTarAndBsdtar() throws {
        try withScratch { dir in
            let tree = try makeTree(dir)
            let archive = dir + "/rootfs.tar.zst"
            try writeLayers(to: archive, tree: tree)
            // Three zstd frames: zstd -l counts them.
            let frames = try system("zstd", ["-lv", archive])
            #expect(frames.stdout.contains("# Zstandard Frames: 3"), "\(frames.stdout)")
            let gnu = try system("tar", ["--zstd", "-tvf", archive, "--numeric-owner"])
            #expect(gnu.status == 0, "tar: \(gnu.stderr)")
            let names = gnu.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(5).joined(separator: " ") }
            #expect(names.first == "./")
            #expect(names.contains("./etc/edgekit/site.identity"))
            #expect(names.contains("./usr/big-hardlink link to ./usr/big"))
            #expect(names.contains("./etc/big-symlink -> ../usr/big"))
            #expect(gnu.stdout.contains("-rw------- 0/0"), "site identity is 0600 root")
            #expect(gnu.stdout.contains("101/102"), "base owners are kept numerically")
            #expect(gnu.stdout.split(separator: "\n").allSatisfy { $0.contains("2001-09-09") }, "every time is SOURCE_DATE_EPOCH")
            let bsd = try system("bsdtar", ["-tvf", archive])
            #expect(bsd.status == 0, "bsdtar: \(bsd.stderr)")
            #expect(bsd.stdout.contains("etc/edgekit/site.identity"))
            // Extraction: the overlay's motd replaces the base one (later members win).
            let out = dir + "/x"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let extract = try system("tar", ["--zstd", "-xpf", archive, "-C", out])
            #expect(extract.status == 0, "\(extract.stderr)")
            #expect(try String(contentsOfFile: out + "/etc/motd", encoding: .utf8) == "overlay\n")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/usr/big")).count == 300_000)
        }
    }

    @Test func sameInputGivesSameBytes() throws {
        try withScratch { dir in
            let tree = try makeTree(dir)
            try writeLayers(to: dir + "/a.tar.zst", tree: tree)
            try writeLayers(to: dir + "/b.tar.zst", tree: tree)
            #expect(try sha256(ofFile: dir + "/a.tar.zst") == sha256(ofFile: dir + "/b.tar.zst"))
        }
    }

    @Test func aNonFinalLayerAloneHasNoEndOfArchive() throws {
        try withScratch { dir in
            let path = dir + "/layer.tar.zst"
            FileManager.default.createFile(atPath: path, contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: path))
            let writer = try TarZstdLayerWriter(output: handle, isLast: false, mtime: 0)
            try writer.add(LayerEntry(path: "a", kind: .file(Data("x".utf8)), mode: 0o644))
            try writer.finish()
            try handle.close()
            let bytes = try system("sh", ["-c", "zstd -dc '\(path)' | wc -c"])
            #expect(bytes.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1024", "512 header + 512 data, no trailer")
        }
    }
}

/// A GPT as `sfdisk --json` reads it: each partition's start and size in sectors, UUID and name.
enum PartitionTable {
    /// One partition as `sfdisk --json` lists it; GPT partitions have a UUID and a name, MBR ones a
    /// boot flag.
    struct Partition: Decodable { var node: String, start: Int, size: Int, type: String, uuid: String?, name: String?, bootable: Bool? }

    struct Table: Decodable {
        /// `gpt` or `dos`.
        var label: String
        /// The GPT disk GUID, or the MBR's disk identifier (`0x…`).
        var id: String
        var partitions: [Partition]
    }

    static func read(_ disk: String) throws -> [Partition] {
        try table(disk).partitions
    }

    /// Copies `partition` of `disk` out to the file `path`, at the offsets sfdisk reports (holes stay holes).
    static func copy(_ partition: Partition, of disk: String, to path: String) throws {
        let copied = try system("dd", ["if=\(disk)", "of=\(path)", "bs=512", "skip=\(partition.start)", "count=\(partition.size)",
                                       "conv=sparse", "status=none"])
        try #require(copied.status == 0, "dd: \(copied.stderr)")
    }

    static func table(_ disk: String) throws -> Table {
        struct Dump: Decodable { var partitiontable: Table }
        let dump = try system("sfdisk", ["--json", disk])
        return try JSONDecoder().decode(Dump.self, from: Data(dump.stdout.utf8)).partitiontable
    }
}

@Suite struct DiskLayoutTests {
    @Test func partitionTableVerifiesWithFixedIdentifiers() throws {
        try withScratch { dir in
            let layout = DiskLayout(espBytes: 16 << 20, rootBytes: 40 << 20, siteBytes: 1 << 20)
            try layout.createDisk(at: dir + "/disk.img")
            let verify = try system("sfdisk", ["--verify", dir + "/disk.img"])
            #expect(verify.status == 0, "sfdisk --verify: \(verify.stdout)\(verify.stderr)")
            let dump = try system("sfdisk", ["--dump", dir + "/disk.img"])
            #expect(dump.stdout.contains("label-id: \(DiskLayout.diskID.uppercased())"))
            #expect(dump.stdout.contains("uuid=\(DiskLayout.rootUUID.uppercased())"))
            #expect(dump.stdout.contains("name=\"edgekit-site\""))
            let siteLine = dump.stdout.split(separator: "\n").first { $0.contains("edgekit-site") }.map(String.init) ?? ""
            #expect(siteLine.replacingOccurrences(of: " ", with: "").contains("start=\(layout.siteStart),size=\(layout.siteSectors)"))
        }
    }

    /// The Raspberry Pi's MBR disk: the firmware partition first (FAT32 with LBA, active), root and
    /// site partitions at the same offsets a GPT disk of the same sizes has, the fixed disk
    /// identifier whose PARTUUIDs the kernel command line and fstab name.
    @Test func mbrDiskHasTheFirmwarePartitionFirstAndFixedIdentifiers() throws {
        try withScratch { dir in
            var layout = DiskLayout(espBytes: 16 << 20, rootBytes: 40 << 20, siteBytes: 1 << 20, architecture: "arm64")
            layout.table = .mbr
            try layout.createDisk(at: dir + "/disk.img")
            let verify = try system("sfdisk", ["--verify", dir + "/disk.img"])
            #expect(verify.status == 0, "sfdisk --verify: \(verify.stdout)\(verify.stderr)")
            let table = try PartitionTable.table(dir + "/disk.img")
            #expect(table.label == "dos" && table.id == "0x\(DiskLayout.mbrDiskID)")
            #expect(table.partitions.map(\.type) == ["c", "83", "83"])
            #expect(table.partitions.map(\.bootable) == [true, nil, nil])
            #expect(table.partitions.map(\.start) == [layout.espStart, layout.rootStart, layout.siteStart])
            #expect(DiskLayout.mbrPartitionUUID(2) == DiskLayout.mbrDiskID + "-02")
        }
    }

    /// The image's repart.d definitions, read by systemd-repart itself (the host's) on both boards'
    /// layouts, as on a card larger than the image: the data partition is made after the site
    /// partition with its fixed UUID, formatted ext4, and reaches the end of the disk; the site
    /// partition keeps its size; a second run changes nothing. The boot test does the same with the
    /// image's own systemd-repart (`ImageBuildTests.imageBootsWithoutAStickAndAppliesOnePluggedInLater`).
    @Test(.requiresRoot(andTools: "systemd-repart", "sfdisk", "blkid"), arguments: [false, true])
    func repartMakesTheDataPartitionToTheEndOfTheCard(biosBoot: Bool) throws {
        let definitions = Products.packageRoot.appendingPathComponent("overlays/etc/repart.d").path
        try withScratch { dir in
            let disk = dir + "/card.img"
            let layout = DiskLayout(espBytes: 16 << 20, rootBytes: 40 << 20, siteBytes: 8 << 20, biosBootBytes: biosBoot ? 1 << 20 : 0)
            try layout.createDisk(at: disk)
            let card = 8 << 30
            #expect(truncate(disk, off_t(card)) == 0)
            let first = try system("systemd-repart", ["--dry-run=no", "--definitions=" + definitions, disk])
            try #require(first.status == 0, "systemd-repart: \(first.stderr)")
            let partitions = try PartitionTable.read(disk)
            let site = try #require(partitions.first { $0.name == "edgekit-site" })
            let data = try #require(partitions.first { $0.name == "edgekit-data" }, "\(partitions)")
            #expect(site.start == layout.siteStart && site.size == layout.siteSectors, "the site partition is left as it was")
            #expect(data.uuid == DiskLayout.dataUUID.uppercased())
            #expect(data.start == layout.siteStart + layout.siteSectors)
            // To the end of the card but for the backup GPT (33 sectors) and 4 KiB alignment.
            #expect(card / DiskLayout.sector - (data.start + data.size) < 2048, "\(data)")
            let probe = try system("blkid", ["--probe", "--offset", String(data.start * DiskLayout.sector), "--output", "export", disk])
            #expect(probe.stdout.contains("TYPE=ext4") && probe.stdout.contains("LABEL=edgekit-data"), "\(probe.stdout)\(probe.stderr)")
            let again = try system("systemd-repart", ["--dry-run=no", "--definitions=" + definitions, disk])
            #expect(again.status == 0 && (again.stdout + again.stderr).contains("No changes"), "\(again.stdout)\(again.stderr)")
        }
    }

    /// The rpi board's `edgekit-grow-data` (overlays/usr/local/sbin) on cards that are not its
    /// own, run here on loop devices: a GPT card, and an MBR one whose partition 3 is not readable as
    /// edgekit's site partition, are left alone; a device without a partition table, a
    /// path that is no block device and two cards are each one line and status 1; `--help` says how
    /// to call it. What it does on an edgekit card
    /// (and after a power cut) needs the card's partitions as block devices, which this machine's
    /// kernel does not make for loop devices: the rpi boot test shows it in the guest
    /// (`RaspberryPiImageTests.rpiImageBootsOnRaspi3bToTheAgent`).
    @Test(.requiresRoot(andTools: "sfdisk", "losetup", "blkid", "blockdev", "findmnt", "lsblk"))
    func growDataLeavesOtherCardsAlone() throws {
        let script = Products.packageRoot.appendingPathComponent("overlays/usr/local/sbin/edgekit-grow-data").path
        try withScratch { dir in
            // Each card a loop device of its own, detached at the end.
            var attached: [String] = []
            defer { for device in attached { _ = try? system("losetup", ["--detach", device]) } }
            func attach(_ file: String, bytes: Int) throws -> String {
                try #require(truncate(file, off_t(bytes)) == 0)
                let loop = try system("losetup", ["--find", "--show", file])
                let device = loop.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                try #require(loop.status == 0 && device.hasPrefix("/dev/loop"), "losetup: \(loop.stderr)")
                attached.append(device)
                return device
            }
            var layout = DiskLayout(espBytes: 16 << 20, rootBytes: 40 << 20, siteBytes: 8 << 20, architecture: "arm64")
            try layout.createDisk(at: dir + "/gpt.img")
            let gptDevice = try attach(dir + "/gpt.img", bytes: 1 << 30)
            let before = try system("sfdisk", ["--dump", gptDevice]).stdout
            let gpt = try system(script, [gptDevice])
            #expect(gpt.status == 0 && gpt.stderr == "edgekit-grow-data: \(gptDevice) has no MBR (label: gpt); nothing to do\n", "\(gpt.stderr)")
            #expect(try system("sfdisk", ["--dump", gptDevice]).stdout == before)
            // edgekit's MBR layout whose partition 3 cannot be read as the site partition (here: no
            // partition devices at all): nothing is written.
            layout.table = .mbr
            try layout.createDisk(at: dir + "/mbr.img")
            let mbrDevice = try attach(dir + "/mbr.img", bytes: 1 << 30)
            let mbrBefore = try system("sfdisk", ["--dump", mbrDevice]).stdout
            let unknown = try system(script, [mbrDevice])
            #expect(unknown.status == 0 && unknown.stderr.hasPrefix("edgekit-grow-data: partition 3 of \(mbrDevice) is not edgekit's site partition"),
                    "\(unknown.stderr)")
            #expect(try system("sfdisk", ["--dump", mbrDevice]).stdout == mbrBefore)
            // A device without any partition table: one line, status 1, nothing written.
            let blank = dir + "/blank.img"
            try #require(FileManager.default.createFile(atPath: blank, contents: nil))
            let blankDevice = try attach(blank, bytes: 64 << 20)
            let none = try system(script, [blankDevice])
            #expect(none.status == 1 && none.stderr.hasPrefix("edgekit-grow-data: cannot read the partition table of \(blankDevice): ")
                        && none.stderr.split(separator: "\n").count == 1, "\(none.stderr)")
            #expect(try bytes(of: blank, at: 0, count: 1 << 20).allSatisfy { $0 == 0 }, "nothing written to the blank device")
        }
        let notADisk = try system(script, ["/etc/hostname"])
        #expect(notADisk.status == 1 && notADisk.stderr == "edgekit-grow-data: /etc/hostname is not a block device\n", "\(notADisk.stderr)")
        let help = try system(script, ["--help"])
        #expect(help.status == 0 && help.stdout.hasPrefix("usage: edgekit-grow-data [DISK]"), "\(help.stdout)")
        let two = try system(script, ["/dev/null", "/dev/null"])
        #expect(two.status == 1 && two.stderr.hasPrefix("edgekit-grow-data: one card at most; usage:"), "\(two.stderr)")
    }

    @Test func fstabInOverlaysNamesTheFixedPartitions() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fstab = try String(contentsOf: root.appendingPathComponent("overlays/etc/fstab"), encoding: .utf8)
        #expect(!fstab.contains(DiskLayout.rootUUID) && !fstab.contains(DiskLayout.rootBUUID), "the root is the slot the boot entry names")
        #expect(DiskLayout.rootUUID == SystemSlot.a.partitionUUID && DiskLayout.rootBUUID == SystemSlot.b.partitionUUID,
                "the agent tells its slot by these")
        #expect(fstab.contains("PARTUUID=\(DiskLayout.siteUUID)  /etc/edgekit/site"))
        #expect(fstab.contains("PARTUUID=\(DiskLayout.espUUID)  /boot/efi"))
        #expect(fstab.contains("PARTUUID=\(DiskLayout.dataUUID)  /var/lib/edgekit"))
        let repart = try String(contentsOf: root.appendingPathComponent("overlays/etc/repart.d/40-edgekit-data.conf"), encoding: .utf8)
        #expect(repart.contains("UUID=\(DiskLayout.dataUUID)"))
    }

    @Test func sparseCopyKeepsHolesAndBytes() throws {
        try withScratch { dir in
            let source = dir + "/sparse"
            FileManager.default.createFile(atPath: source, contents: nil)
            truncate(source, 64 << 20)
            let handle = try #require(FileHandle(forWritingAtPath: source))
            try handle.seek(toOffset: 10 << 20)
            try handle.write(contentsOf: Data(repeating: 1, count: 4096))
            try handle.seek(toOffset: 50 << 20)
            try handle.write(contentsOf: Data(repeating: 2, count: 8192))
            try handle.close()
            try SparseCopy.duplicate(source, to: dir + "/copy")
            #expect(try sha256(ofFile: source) == sha256(ofFile: dir + "/copy"))
            var info = stat()
            stat(dir + "/copy", &info)
            #expect(info.st_size == 64 << 20)
            #expect(Int(info.st_blocks) * 512 < 1 << 20, "holes stay holes")
        }
    }
}

@Suite struct ResumableSHA256Tests {
    @Test func matchesSHA256AcrossSplitsAndExportedStates() throws {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 100_003] {
            let data = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let expected = try system("sha256sum", [], stdin: data).stdout.prefix(64)
            var whole = ResumableSHA256()
            whole.update(data)
            #expect(whole.hex() == expected, "size \(size)")
            // Split anywhere, export, resume in a "new process": same digest.
            let cut = size / 3
            var first = ResumableSHA256()
            first.update(data.prefix(cut))
            var resumed = try #require(ResumableSHA256(exported: first.exported))
            resumed.update(data.dropFirst(cut))
            #expect(resumed.hex() == expected, "size \(size) split at \(cut)")
        }
        #expect(ResumableSHA256(exported: "sha256-state:zz") == nil)
    }
}
