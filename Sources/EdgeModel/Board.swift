/// A kind of device a site image boots on: one row of the board table (docs/image.md, "Boards").
/// A site's `board:` in the plan picks a row; the image builder reads everything it needs from it
/// (Debian architecture, boot packages, disk layout, boot loaders), and the boot tests read how to
/// start the image under qemu. Adding a board is adding a row to `Board.all`.
public struct Board: Sendable, Equatable, CustomStringConvertible {
    /// The name in plan.yaml (`board: pc-bios`).
    public var name: String
    /// Debian's architecture name (`mmdebstrap --arch`).
    public var architecture: String
    /// The firmware kinds the image boots from, the first being the board's own.
    public var firmware: [Firmware]
    /// The disk's partition table and partitions.
    public var partitions: PartitionScheme
    /// The boot loaders the builder installs, one per firmware kind.
    public var bootloaders: [Bootloader]
    /// The Debian packages the board adds to the base: kernel, initramfs and boot loaders.
    public var packages: [String]
    /// How the boot tests start the image under emulation, one way per firmware.
    public var emulation: [Emulation]
    /// Whether this version of edgekit builds images for the board.
    public var status: Status

    public enum Firmware: String, Sendable, Equatable {
        case uefi = "UEFI"
        case bios = "legacy BIOS"
        /// The Raspberry Pi's boot ROM and GPU firmware, which read `config.txt` from a FAT partition.
        case raspberryPi = "Raspberry Pi firmware"
    }

    public enum Bootloader: String, Sendable, Equatable {
        /// systemd-boot as the ESP's removable-media loader (`EFI/BOOT/BOOTX64.EFI`), one loader entry.
        case systemdBoot = "systemd-boot"
        /// GRUB for PCs: boot.img in the MBR's code area, core.img in the BIOS boot partition, its
        /// grub.cfg on the ESP next to the kernel systemd-boot starts.
        case grubPC = "GRUB (i386-pc)"
        /// The Pi firmware's own loader: `config.txt` and `cmdline.txt` on the FAT firmware partition.
        case raspberryPiFirmware = "Pi firmware (config.txt)"
    }

    /// The partition table. Every GPT board has the EFI system partition (1), the ext4 root (2) and
    /// the site partition (3); `biosBoot` adds GRUB's BIOS boot partition (4) in front of the ESP.
    public enum PartitionScheme: Sendable, Equatable {
        case gpt(biosBoot: Bool)
        /// MBR with a FAT firmware partition (the Raspberry Pi's boot ROM reads only MBR).
        case mbrFirmware

        public var hasBIOSBootPartition: Bool {
            if case .gpt(biosBoot: true) = self { return true }
            return false
        }
    }

    /// One way to boot the image under qemu: the emulator, its machine and firmware arguments.
    public struct Emulation: Sendable, Equatable {
        public var firmware: Firmware
        public var emulator: String
        /// Machine and firmware options; an empty list boots qemu's default firmware (SeaBIOS on x86).
        public var arguments: [String]
        /// A firmware variable store to copy for each boot (UEFI), if the firmware needs one.
        public var variables: String?

        public init(firmware: Firmware, emulator: String, arguments: [String], variables: String? = nil) {
            self.firmware = firmware
            self.emulator = emulator
            self.arguments = arguments
            self.variables = variables
        }
    }

    public enum Status: Sendable, Equatable {
        case built
        /// Known (a plan may name it) but not built by this version: planned in issue 15.
        case planned
    }

    public var description: String { name }

    /// The board of a site that names none: today's x86-64 UEFI image.
    public static let `default` = pcUEFI

    static let ovmf = Emulation(
        firmware: .uefi, emulator: "qemu-system-x86_64",
        arguments: ["-machine", "q35", "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"],
        variables: "/usr/share/OVMF/OVMF_VARS_4M.fd")
    /// No -bios: qemu's default x86 firmware is SeaBIOS.
    static let seaBIOS = Emulation(firmware: .bios, emulator: "qemu-system-x86_64", arguments: ["-machine", "q35"])

    /// The kernel, initramfs and systemd-boot every x86-64 UEFI image carries.
    static let pcPackages = ["linux-image-amd64", "initramfs-tools", "systemd-boot-efi"]

    public static let pcUEFI = Board(
        name: "pc-uefi", architecture: "amd64", firmware: [.uefi], partitions: .gpt(biosBoot: false),
        bootloaders: [.systemdBoot], packages: pcPackages, emulation: [ovmf], status: .built)

    /// GRUB's i386-pc modules and grub-mkimage (grub-pc-bin), not grub-pc: grub-pc's maintainer
    /// scripts would run grub-install and update-grub against the appliance's disk on upgrades; the
    /// builder installs the boot sector and core image itself.
    public static let pcBIOS = Board(
        name: "pc-bios", architecture: "amd64", firmware: [.bios, .uefi], partitions: .gpt(biosBoot: true),
        bootloaders: [.grubPC, .systemdBoot], packages: pcPackages + ["grub-pc-bin"], emulation: [seaBIOS, ovmf], status: .built)

    public static let arm64UEFI = Board(
        name: "arm64-uefi", architecture: "arm64", firmware: [.uefi], partitions: .gpt(biosBoot: false),
        bootloaders: [.systemdBoot], packages: ["linux-image-arm64", "initramfs-tools", "systemd-boot-efi"],
        emulation: [Emulation(firmware: .uefi, emulator: "qemu-system-aarch64",
                              arguments: ["-machine", "virt", "-cpu", "cortex-a72",
                                          "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"],
                              variables: "/usr/share/AAVMF/AAVMF_VARS.fd")],
        status: .planned)

    public static let rpi = Board(
        name: "rpi", architecture: "arm64", firmware: [.raspberryPi], partitions: .mbrFirmware,
        bootloaders: [.raspberryPiFirmware], packages: ["linux-image-arm64", "initramfs-tools", "raspi-firmware"],
        // qemu's raspi machines cannot run the Pi's GPU firmware: the kernel is started directly.
        emulation: [Emulation(firmware: .raspberryPi, emulator: "qemu-system-aarch64", arguments: ["-machine", "raspi3b"])],
        status: .planned)

    /// The board table.
    public static let all: [Board] = [pcUEFI, pcBIOS, arm64UEFI, rpi]

    /// The board called `name`, if the table has it.
    public static func named(_ name: String) -> Board? {
        all.first { $0.name == name }
    }

    /// The names this version builds, for messages.
    public static var builtNames: [String] { all.filter { $0.status == .built }.map(\.name) }
}
