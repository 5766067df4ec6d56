import EdgeSystem
import Foundation

/// The Raspberry Pi's boot partition (board `rpi`; docs/image.md, "The `rpi` board"): the Pi's boot
/// ROM and GPU firmware read the first FAT partition of an MBR disk, load `config.txt`, the device
/// tree of the board they run on, the kernel and the initrd, and start the kernel with
/// `cmdline.txt`. Debian's `raspi-firmware` provides the firmware, and its kernel hooks copy it,
/// the kernel's Pi device trees and the kernel itself into `/boot/firmware` of the base; edgekit
/// keeps those files and writes `config.txt`, `cmdline.txt` and the kernel under fixed names itself.
enum RaspberryPiFirmware {
    /// The base's copy of the firmware files (next to `vmlinuz` and `initrd.img`).
    static let folder = "raspi-firmware"
    static let label = "RASPIFIRM"
    static let volumeID = "EDC0BE03"

    /// What the firmware reads: 64-bit mode, the GPIO serial console (on the Pi 3 and 4 the mini
    /// UART, ttyS1), the device trees under their upstream names (`bcm2837-rpi-3-b.dtb`, …, as
    /// Debian's kernel ships them), the kernel and the initrd right after it.
    static let configuration = """
        # edgekit, board rpi (docs/image.md, "The rpi board"): the Pi firmware starts Debian's arm64
        # kernel on a Raspberry Pi 3B, 3B+, 3A+, Zero 2 W, 4B or 400 (their device trees are here).
        arm_64bit=1
        # The serial console on the GPIO pins (the mini UART, ttyS1, on the Pi 3 and 4).
        enable_uart=1
        # Device trees under the kernel's own names (bcm2837-rpi-3-b.dtb, bcm2711-rpi-4-b.dtb, ...).
        upstream_kernel=1
        kernel=vmlinuz
        initramfs initrd.img followkernel

        """

    /// The root, site, data and firmware partitions by the MBR's PARTUUIDs. The data partition is
    /// made at first boot by `edgekit-grow-data` (overlays/usr/local/sbin), which this mount pulls
    /// in: systemd-repart, which makes it on GPT boards, works only on GPT disks.
    static var fstab: String {
        """
        # edgekit appliance, board rpi (docs/image.md, "The rpi board"): an MBR disk, whose partitions'
        # PARTUUIDs are its disk identifier and their number. The root filesystem, ext4.
        PARTUUID=\(DiskLayout.mbrPartitionUUID(2))  /                 ext4  errors=remount-ro  0  1
        # The site partition (FAT, label EDGESITE): the site image identity, operator key and site.json,
        # read-only, readable by root only. /etc/edgekit/{site.identity,operator.pub,site.json} link here.
        # The agent starts after it and is nothing without it: up to 5 minutes for the device (the
        # default 90 s ran out in a loaded boot test while udev settled).
        PARTUUID=\(DiskLayout.mbrPartitionUUID(3))  /etc/edgekit/site  vfat  ro,uid=0,gid=0,fmask=0177,dmask=0077,nofail,x-systemd.device-timeout=5min  0  0
        # The data partition (ext4, label edgekit-data): the agent's generations and state. Not in the
        # image: edgekit-grow-data.service, which this mount requires, makes it at first boot from the
        # site partition's end to the card's. nofail: where it cannot be made the state stays on the root.
        PARTUUID=\(DiskLayout.mbrPartitionUUID(4))  /var/lib/edgekit  ext4  nofail,x-systemd.requires=edgekit-grow-data.service,x-systemd.device-timeout=2min  0  2
        # The firmware partition (config.txt, cmdline.txt, kernel, initrd, device trees), only mounted when asked for.
        PARTUUID=\(DiskLayout.mbrPartitionUUID(1))  /boot/firmware    vfat  umask=0077,noauto,nofail  0  0

        """
    }

    /// Overlay files for one kind of partition table only: systemd-repart's definitions on GPT,
    /// the unit and script that make the data partition on MBR.
    static let gptOnly = ["etc/repart.d"]
    static let mbrOnly = ["etc/systemd/system/edgekit-grow-data.service", "usr/local/sbin/edgekit-grow-data"]

    /// Copies what raspi-firmware's hooks put into `source` (the tree's /boot/firmware) to
    /// `destination`, but for the files edgekit writes itself: `config.txt`, `cmdline.txt`, and the
    /// kernel and initrd under their versioned names.
    static func keep(from source: String, in destination: String) throws {
        guard FileManager.default.fileExists(atPath: source + "/bootcode.bin") else {
            throw ImageError("image.missing-input", "the base has no /boot/firmware/bootcode.bin; is raspi-firmware in the board's packages and "
                + "non-free-firmware in its archive components?")
        }
        try? FileManager.default.removeItem(atPath: destination)
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source) where !isWrittenByEdgekit(name) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
        }
    }

    static func isWrittenByEdgekit(_ name: String) -> Bool {
        ["config.txt", "cmdline.txt"].contains(name) || name.hasPrefix("vmlinuz-") || name.hasPrefix("initrd.img-")
    }

    /// Writes the FAT32 firmware partition at `path`: the kept firmware files and folders (in name
    /// order), `vmlinuz`, `initrd.img`, `config.txt` and `cmdline.txt`, every file at `epoch`.
    static func makePartition(_ path: String, base: String, bytes: Int, kernelCommandLine: String, epoch: Int,
                              environment: [String: String]) throws {
        let image = try FATImage.format(path, bytes: bytes, bits: 32, label: label, volumeID: volumeID, environment: environment)
        let kept = base + "/" + folder
        var folders: [String] = []
        var files: [(target: String, contents: Data)] = []
        guard let walker = FileManager.default.enumerator(atPath: kept) else { throw ImageError("cannot read \(kept)") }
        for case let relative as String in walker {
            var isFolder: ObjCBool = false
            FileManager.default.fileExists(atPath: kept + "/" + relative, isDirectory: &isFolder)
            if isFolder.boolValue {
                folders.append("::/" + relative)
            } else {
                files.append(("::/" + relative, try Data(contentsOf: URL(fileURLWithPath: kept + "/" + relative))))
            }
        }
        if !folders.isEmpty { try image.makeFolders(folders.sorted()) }
        files.sort { $0.target < $1.target }
        files += [
            ("::/vmlinuz", try Data(contentsOf: URL(fileURLWithPath: base + "/vmlinuz"))),
            ("::/initrd.img", try Data(contentsOf: URL(fileURLWithPath: base + "/initrd.img"))),
            ("::/config.txt", Data(configuration.utf8)),
            ("::/cmdline.txt", Data((kernelCommandLine + "\n").utf8)),
        ]
        try image.add(files, modified: epoch)
    }
}
