import EdgeErrors
import EdgeSystem
import Foundation
import SystemCrypto

/// A GPT disk: an EFI system partition, the ext4 root (system slot A), an empty second system slot
/// (B, for update bundles; docs/updates.md) and a small site partition, and on boards that boot legacy
/// BIOS with GRUB a BIOS boot partition in front of the ESP (numbered 4, so the others keep their
/// numbers on every board; slot B is listed last, 4 or 5). After the site partition the disk leaves unpartitioned room
/// where systemd-repart makes the data partition at first boot, grown to the end of the card
/// (overlays/etc/repart.d). Offsets and sizes are in 512-byte sectors; every identifier is fixed
/// from a seed.
public struct DiskLayout: Sendable, Equatable {
    public static let sector = 512
    public static let alignment = 2048  // 1 MiB

    public var espSectors: Int
    public var rootSectors: Int
    public var siteSectors: Int
    /// System slot B, as large as slot A, between slot A and the site partition; holes in the image
    /// (the agent writes it when it installs an update). 0 on the MBR board, which has no room for it.
    public var rootBSectors: Int
    /// 0 on boards without GRUB for BIOS, whose disks are as they were before boards existed.
    public var biosBootSectors: Int
    /// The root partition's type: the Discoverable Partitions Specification's root type of the
    /// architecture the root filesystem runs on.
    public var rootType: String
    /// GPT, or MBR for boards whose boot ROM reads only MBR (the Raspberry Pi): there the first
    /// partition, in the ESP's place, is the FAT firmware partition.
    public var table: Table = .gpt

    public enum Table: Sendable, Equatable {
        case gpt
        case mbr
    }

    public init(espBytes: Int, rootBytes: Int, siteBytes: Int, biosBootBytes: Int = 0, architecture: String = "amd64", rootSlots: Int = 2) {
        func sectors(_ bytes: Int) -> Int {
            let raw = (bytes + DiskLayout.sector - 1) / DiskLayout.sector
            return (raw + DiskLayout.alignment - 1) / DiskLayout.alignment * DiskLayout.alignment
        }
        espSectors = sectors(espBytes)
        rootSectors = sectors(rootBytes)
        rootBSectors = rootSlots == 2 ? rootSectors : 0
        siteSectors = sectors(siteBytes)
        biosBootSectors = sectors(biosBootBytes)
        rootType = DiskLayout.rootTypes[architecture] ?? DiskLayout.rootTypes["amd64"]!
    }

    /// The room left after the site partition for the data partition: 32 MiB, the least systemd-repart
    /// formats as ext4, so the image boots with its data partition even on a card of its own size.
    /// Unpartitioned zeros: holes in the image file, not in its block map.
    public static let dataRoomSectors = 32 * DiskLayout.alignment

    public var biosBootStart: Int { DiskLayout.alignment }
    public var espStart: Int { biosBootStart + biosBootSectors }
    public var rootStart: Int { espStart + espSectors }
    public var rootBStart: Int { rootStart + rootSectors }
    public var siteStart: Int { rootBStart + rootBSectors }
    /// The data partition's room, then room for the backup GPT.
    public var totalSectors: Int { siteStart + siteSectors + DiskLayout.dataRoomSectors + DiskLayout.alignment }
    public var totalBytes: Int { totalSectors * DiskLayout.sector }

    /// GPT partition type GUIDs (UAPI Discoverable Partitions Specification).
    static let espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    /// Root partition types by Debian architecture.
    static let rootTypes = [
        "amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",  // root, x86-64
        "arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",  // root, 64-bit ARM (AArch64)
    ]
    static let dataType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  // Linux filesystem data
    static let biosBootType = "21686148-6449-6E6F-744E-656564454649"  // GRUB's BIOS boot partition

    /// The fixed identifiers: the root's PARTUUID is on the kernel command line and in fstab.
    public static let diskID = uuid(seed: "disk")
    public static let espUUID = uuid(seed: "esp")
    public static let rootUUID = uuid(seed: "root")
    /// System slot B's PARTUUID (slot A's is `rootUUID`).
    public static let rootBUUID = uuid(seed: "root-b")
    public static let siteUUID = uuid(seed: "site")
    /// Not in the partition table: systemd-repart gives it to the data partition it creates.
    public static let dataUUID = uuid(seed: "data")
    public static let biosBootUUID = uuid(seed: "bios-boot")
    public static let rootFilesystemUUID = uuid(seed: "root-filesystem")
    public static let siteLabel = "EDGESITE"
    public static let espVolumeID = "EDC0BE01"
    public static let siteVolumeID = "EDC0BE02"

    /// A version-4-shaped UUID from SHA-256("edgekit/v1/uuid/" + seed): stable across builds.
    public static func uuid(seed: String) -> String {
        var bytes = Array(SHA256.hash(data: Data("edgekit/v1/uuid/\(seed)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }

    /// The MBR's disk identifier, fixed like the GPT identifiers (the first 8 hex digits of
    /// `uuid(seed: "mbr-disk")`): with the partition number it makes each partition's PARTUUID
    /// (`mbrPartitionUUID`).
    public static let mbrDiskID = String(uuid(seed: "mbr-disk").prefix(8))

    /// The PARTUUID the kernel and udev give partition `number` of an MBR disk: `DISKID-NN`.
    public static func mbrPartitionUUID(_ number: Int) -> String {
        mbrDiskID + "-" + (number < 10 ? "0" : "") + String(number)
    }

    /// The sfdisk script (sfdisk(8), "Input format").
    public var sfdiskScript: String {
        if table == .mbr {
            // Partition 1, FAT32 with LBA (0x0c), marked active: the firmware partition the Pi's
            // boot ROM reads; then the ext4 root and the site partition (Linux, 0x83).
            return """
                label: dos
                label-id: 0x\(DiskLayout.mbrDiskID)
                unit: sectors
                start=\(espStart), size=\(espSectors), type=c, bootable
                start=\(rootStart), size=\(rootSectors), type=83
                start=\(siteStart), size=\(siteSectors), type=83

                """
        }
        return """
        label: gpt
        label-id: \(DiskLayout.diskID)
        unit: sectors
        first-lba: \(DiskLayout.alignment)
        start=\(espStart), size=\(espSectors), type=\(DiskLayout.espType), uuid=\(DiskLayout.espUUID), name="esp"
        start=\(rootStart), size=\(rootSectors), type=\(rootType), uuid=\(DiskLayout.rootUUID), name="edgekit-root"
        start=\(siteStart), size=\(siteSectors), type=\(DiskLayout.dataType), uuid=\(DiskLayout.siteUUID), name="edgekit-site"

        """ + (biosBootSectors == 0 ? "" : """
        start=\(biosBootStart), size=\(biosBootSectors), type=\(DiskLayout.biosBootType), uuid=\(DiskLayout.biosBootUUID), name="bios-boot"

        """) + (rootBSectors == 0 ? "" : """
        start=\(rootBStart), size=\(rootBSectors), type=\(rootType), uuid=\(DiskLayout.rootBUUID), name="edgekit-root-b"

        """)
    }

    /// Creates the disk file at `path` with its partition table (sparse; no root, no loop device).
    public func createDisk(at path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ImageError("cannot create \(path)")
        }
        guard truncate(path, off_t(totalBytes)) == 0 else {
            throw ImageError("cannot size \(path): \(String(cString: strerror(errno)))")
        }
        try SystemCommand.check("sfdisk", ["--no-reread", "--no-tell-kernel", "--quiet", path],
                                stdin: Data(sfdiskScript.utf8), what: "writing the partition table")
    }
}

/// Copies bytes between files without filling holes: all-zero blocks stay unallocated, so a 1 GiB
/// image with 400 MiB of data costs 400 MiB of I/O.
public enum SparseCopy {
    /// lseek(2) whence values from <unistd.h>; Glibc hides them behind _GNU_SOURCE.
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    /// Copies all of `source` into `destination` at byte `offset` (the destination must exist).
    /// `progress` hears the bytes copied so far.
    public static func copy(_ source: String, into destination: String, at offset: Int, progress: ((Int) -> Void)? = nil) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ImageError("cannot open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CLOEXEC)
        guard output >= 0 else { throw ImageError("cannot open \(destination): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        var info = stat()
        fstat(input, &info)
        let size = Int(info.st_size)
        var position = 0
        var done = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while position < size {
            // Jump over holes in the source without reading them.
            let data = lseek(input, off_t(position), SparseCopy.seekData)
            if data < 0 { break }  // ENXIO: only a hole is left
            let hole = Int(lseek(input, off_t(data), SparseCopy.seekHole))
            // The data run: copied inside the kernel (copy_file_range), never through user space.
            var inputOffset = Int64(data)
            var outputOffset = Int64(offset) + Int64(data)
            var inKernel = true
            while inputOffset < hole {
                if inKernel {
                    // At most 64 MiB per call, so progress moves.
                    let copied = KernelFiles.copyRange(input, &inputOffset, output, &outputOffset, min(64 << 20, hole - Int(inputOffset)))
                    if copied > 0 {
                        done += copied
                        progress?(done)
                        continue
                    }
                    // Across filesystems (EXDEV) or where unsupported, copy through a buffer instead.
                    guard copied < 0, [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) else {
                        throw ImageError("cannot copy \(source) into \(destination): \(copied == 0 ? "unexpected end of file" : String(cString: strerror(errno)))")
                    }
                    inKernel = false
                }
                let count = pread(input, &buffer, min(buffer.count, hole - Int(inputOffset)), off_t(inputOffset))
                guard count > 0 else { throw ImageError("cannot read \(source): \(String(cString: strerror(errno)))") }
                let written = pwrite(output, buffer, count, off_t(outputOffset))
                guard written == count else {
                    throw ImageError("cannot write \(destination): \(String(cString: strerror(errno)))")
                }
                inputOffset += Int64(count)
                outputOffset += Int64(count)
                done += count
                progress?(done)
            }
            position = hole
        }
        // No fsync here: a build publishes its outputs by renaming them at the end, so an
        // interrupted build leaves only temporary names.
    }

    /// A copy of a whole file: a reflink where the filesystem shares blocks (constant time, no
    /// space), otherwise a sparse in-kernel copy.
    public static func duplicate(_ source: String, to destination: String) throws {
        var info = stat()
        guard stat(source, &info) == 0 else { throw ImageError("cannot read \(source)") }
        guard FileManager.default.createFile(atPath: destination, contents: nil),
            truncate(destination, info.st_size) == 0
        else { throw ImageError("cannot create \(destination): \(String(cString: strerror(errno)))") }
        let input = open(source, O_RDONLY | O_CLOEXEC)
        let output = open(destination, O_WRONLY | O_CLOEXEC)
        defer {
            if input >= 0 { close(input) }
            if output >= 0 { close(output) }
        }
        if input >= 0, output >= 0, KernelFiles.reflink(output, from: input) { return }
        try copy(source, into: destination, at: 0)
    }
}

/// A failure while building an image, in one line that names the input.
///
/// Codes: `image.missing-input` (a binary or folder the build needs is absent), `image.tool-failed`
/// (mmdebstrap, mke2fs or the overlay writer failed), `image.bad-setting` (an environment value),
/// and `image.io` for reading and writing files.
public struct ImageError: EdgeError, Equatable {
    public let code: ErrorCode
    public let message: String
    private let underlying: ErrorCause

    public init(_ message: String) { self.init("image.io", message) }

    public init(_ code: ErrorCode, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = ErrorCause(cause)
    }

    public var cause: (any Error)? { underlying.error }
    public var description: String { message }
}
