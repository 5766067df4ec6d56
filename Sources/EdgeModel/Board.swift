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
    /// The kernel modules the image keeps: an edge router never loads most of what Debian's kernel
    /// package ships (docs/image.md, "Kernel modules").
    public var kernelModules: KernelModules = .all
    /// The kernel's consoles (`console=` on its command line), the last one getting the boot
    /// messages and systemd's status: the screen, then the board's first serial port.
    public var consoles: [String] = ["tty0", "ttyS0,115200"]
    /// The Debian archive components the base installs from: `main`, and `non-free-firmware` for
    /// a board whose boot firmware is there (the Raspberry Pi's).
    public var components: [String] = ["main"]

    /// The UEFI architecture's short name in file names: `systemd-boot\(efi).efi` in Debian's
    /// systemd-boot-efi, `EFI/BOOT/BOOT\(EFI).EFI` as the removable-media loader (UEFI 2.10, 3.5.1.1).
    public var efiArchitecture: String {
        switch architecture {
        case "arm64": "aa64"
        case "armhf": "arm"
        case "i386": "ia32"
        default: "x64"
        }
    }

    /// Which of the kernel package's modules stay in the image. The initramfs is made from what
    /// stays, so it holds only kept modules too.
    public enum KernelModules: Sendable, Equatable {
        /// Everything the kernel package ships.
        case all
        /// Only these paths under `/usr/lib/modules/VERSION/kernel/`: a folder ends in `/` and keeps
        /// everything below it; anything else names one module without its `.ko*` ending. The list
        /// must hold every module a kept one depends on: the base build stops and names what is
        /// missing.
        case only([String])
    }

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
        /// How the disk is attached (qemu's `-drive if=`): virtio, or the SD card controller.
        public var driveInterface: String
        /// The vCPUs the machine must have, where it has a fixed number; else the test chooses.
        public var cpus: Int?

        public init(firmware: Firmware, emulator: String, arguments: [String], variables: String? = nil,
                    driveInterface: String = "virtio", cpus: Int? = nil) {
            self.firmware = firmware
            self.emulator = emulator
            self.arguments = arguments
            self.variables = variables
            self.driveInterface = driveInterface
            self.cpus = cpus
        }
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
    /// systemd-boot (bootctl, systemd-bless-boot: the trial boot of an update, docs/updates.md) beside the EFI binaries.
    static let pcPackages = ["linux-image-amd64", "initramfs-tools", "systemd-boot-efi", "systemd-boot"]

    /// What an x86-64 edge router loads, out of the ~4,200 modules of Debian's amd64 kernel: the
    /// disks and NICs of PCs, mini PCs and virtual machines, USB sticks and NICs, WireGuard,
    /// nftables and the network stack's options, the file systems of the root and the sticks.
    /// Putting a module back is adding its path here (docs/image.md, "Kernel modules").
    static let pcModules: KernelModules = .only([
        // Crypto and library code (WireGuard's ChaCha20-Poly1305 and Curve25519, ext4's CRC32C).
        "arch/x86/crypto/", "crypto/", "lib/",
        // Storage: virtual machines, SATA, NVMe, SD/eMMC, USB sticks and disks, loop files.
        "drivers/block/virtio_blk", "drivers/block/loop",
        "drivers/scsi/scsi_mod", "drivers/scsi/scsi_common", "drivers/scsi/sd_mod", "drivers/scsi/virtio_scsi",
        "drivers/ata/libata", "drivers/ata/libahci", "drivers/ata/ahci", "drivers/ata/ata_piix", "drivers/ata/ata_generic",
        "drivers/nvme/host/nvme", "drivers/nvme/host/nvme-core", "drivers/nvme/common/",
        "drivers/mmc/core/", "drivers/mmc/host/sdhci", "drivers/mmc/host/sdhci-pci", "drivers/mmc/host/sdhci-acpi",
        "drivers/mmc/host/cqhci",
        "drivers/usb/common/", "drivers/usb/core/", "drivers/usb/host/", "drivers/usb/storage/", "drivers/usb/class/cdc-wdm",
        "drivers/pcmcia/pcmcia", "drivers/pcmcia/pcmcia_core",
        // NICs: virtio, Intel (e1000 to i40e), Realtek (r8169 and its PHYs), every USB NIC and modem.
        "drivers/net/virtio_net", "drivers/net/net_failover", "net/core/failover",
        "drivers/net/ethernet/intel/e1000/", "drivers/net/ethernet/intel/e1000e/", "drivers/net/ethernet/intel/igb/",
        "drivers/net/ethernet/intel/igc/", "drivers/net/ethernet/intel/ixgbe/", "drivers/net/ethernet/intel/i40e/",
        "drivers/net/ethernet/intel/libie/", "drivers/dca/", "drivers/i2c/algos/i2c-algo-bit",
        "drivers/net/ethernet/realtek/", "drivers/net/phy/", "drivers/net/mdio", "drivers/net/mdio/", "drivers/net/mii",
        "drivers/net/usb/", "net/phonet/", "net/rfkill/", "net/core/selftests",
        // The network stack's modules: WireGuard, nftables, bridges, VLANs, bonds, queueing.
        "drivers/net/wireguard/", "drivers/net/tun", "drivers/net/macvlan", "drivers/net/dummy", "drivers/net/veth",
        "drivers/net/bonding/", "drivers/net/macsec",
        "net/netfilter/", "net/ipv4/", "net/ipv6/", "net/bridge/", "net/802/", "net/llc/", "net/8021q/",
        "net/sched/", "net/ife/", "net/psample/", "net/tls/", "net/xfrm/",
        // A console keyboard, the power button, hardware random numbers, watchdogs (Intel's TCO
        // appears through lpc_ich or i2c-i801), temperatures, panic logs kept in EFI variables
        // (systemd-pstore). The screen stays on the firmware's framebuffer (efifb, vesafb: built in).
        "drivers/hid/hid", "drivers/hid/hid-generic", "drivers/hid/usbhid/", "drivers/input/evdev",
        "drivers/acpi/button", "drivers/char/hw_random/",
        "drivers/watchdog/watchdog", "drivers/watchdog/iTCO_wdt", "drivers/watchdog/iTCO_vendor_support",
        "drivers/mfd/intel_pmc_bxt", "drivers/mfd/lpc_ich", "drivers/i2c/busses/i2c-i801", "drivers/i2c/i2c-smbus",
        "drivers/watchdog/sp5100_tco", "drivers/watchdog/i6300esb",
        "drivers/hwmon/coretemp", "drivers/hwmon/k10temp", "drivers/firmware/efi/efi-pstore",
        // File systems: the ext4 root, FAT sticks and ESP, systemd's autofs, EFI variables.
        "fs/ext4/", "fs/jbd2/", "fs/mbcache", "fs/fat/", "fs/nls/nls_cp437", "fs/nls/nls_iso8859-1",
        "fs/nls/nls_utf8", "fs/nls/nls_ascii", "fs/autofs/", "fs/efivarfs/", "fs/configfs/",
    ])

    public static let pcUEFI = Board(
        name: "pc-uefi", architecture: "amd64", firmware: [.uefi], partitions: .gpt(biosBoot: false),
        bootloaders: [.systemdBoot], packages: pcPackages, emulation: [ovmf], kernelModules: pcModules)

    /// GRUB's i386-pc modules and grub-mkimage (grub-pc-bin), not grub-pc: grub-pc's maintainer
    /// scripts would run grub-install and update-grub against the appliance's disk on upgrades; the
    /// builder installs the boot sector and core image itself.
    public static let pcBIOS = Board(
        name: "pc-bios", architecture: "amd64", firmware: [.bios, .uefi], partitions: .gpt(biosBoot: true),
        bootloaders: [.grubPC, .systemdBoot], packages: pcPackages + ["grub-pc-bin"], emulation: [seaBIOS, ovmf],
        kernelModules: pcModules)

    /// Generic arm64 with UEFI firmware (servers, SBCs whose U-Boot provides EFI, qemu's `virt`):
    /// the pc-uefi layout with the arm64 kernel and systemd-boot. The serial console is the PL011
    /// (ttyAMA0) of `virt` and most Arm boards; every kernel module is kept (no trimmed list yet).
    public static let arm64UEFI = Board(
        name: "arm64-uefi", architecture: "arm64", firmware: [.uefi], partitions: .gpt(biosBoot: false),
        bootloaders: [.systemdBoot], packages: ["linux-image-arm64", "initramfs-tools", "systemd-boot-efi", "systemd-boot"],
        emulation: [Emulation(firmware: .uefi, emulator: "qemu-system-aarch64",
                              arguments: ["-machine", "virt", "-cpu", "cortex-a72",
                                          "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"],
                              variables: "/usr/share/AAVMF/AAVMF_VARS.fd")],
        consoles: ["tty0", "ttyAMA0,115200"])

    /// Raspberry Pi 3B/3B+/4/400 (docs/image.md, "The `rpi` board"): MBR, a FAT firmware partition
    /// with Debian's `raspi-firmware` and device trees, Debian's generic arm64 kernel. The serial
    /// console is the GPIO UART, which on the Pi 3 and 4 is the mini UART (ttyS1; the PL011 serves
    /// Bluetooth). qemu's raspi machines cannot run the GPU firmware: the boot test starts the
    /// image's own kernel, initrd and device tree (`-kernel`, `-initrd`, `-dtb`), the card on the
    /// SD controller, four vCPUs (the machine has no other count) on one host thread, and its
    /// console on the second serial port (the first is the PL011). `fdisk` brings sfdisk, with which
    /// edgekit-grow-data makes the data partition at first boot (repart cannot write an MBR).
    public static let rpi = Board(
        name: "rpi", architecture: "arm64", firmware: [.raspberryPi], partitions: .mbrFirmware,
        bootloaders: [.raspberryPiFirmware], packages: ["linux-image-arm64", "initramfs-tools", "raspi-firmware", "fdisk"],
        emulation: [Emulation(firmware: .raspberryPi, emulator: "qemu-system-aarch64",
                              arguments: ["-machine", "raspi3b", "-accel", "tcg,thread=single", "-serial", "null"],
                              driveInterface: "sd", cpus: 4)],
        consoles: ["tty0", "ttyS1,115200"], components: ["main", "non-free-firmware"])

    /// The board table.
    public static let all: [Board] = [pcUEFI, pcBIOS, arm64UEFI, rpi]

    /// The board called `name`, if the table has it.
    public static func named(_ name: String) -> Board? {
        all.first { $0.name == name }
    }

}
