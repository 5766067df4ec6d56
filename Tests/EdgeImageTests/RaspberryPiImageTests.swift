import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// The example plan with site-b on `rpi` (site-a stays on `pc-uefi`), built once with `edgekit
/// build` and shared by the checks below.
enum RaspberryPiBuild {
    static let shared = BuiltOnce("rpi") { dir in
        try buildExamplePlan(siteBOn: "rpi", in: dir, agents: ["--agent", try staticAgent(), "--agent-arm64", try arm64Agent()])
    }

    /// The firmware partition (partition 1) of site-b's image, copied out to `dir/firmware.vfat`.
    static func firmwarePartition(_ dir: String) throws -> String {
        let firmware = dir + "/firmware.vfat"
        try PartitionTable.copy(try PartitionTable.read(dir + "/out/site-b.img")[0], of: dir + "/out/site-b.img", to: firmware)
        return firmware
    }
}

@Suite(.serialized, .requiresApplianceAgent, .requiresArm64ApplianceAgent,
       .requiresTool("mmdebstrap", "mcopy", "mkfs.vfat", "mke2fs", "sfdisk", "file", "qemu-system-aarch64", "qemu-aarch64-static"), .slow)
struct RaspberryPiImageTests {
    /// site-b's image is the Pi's: an MBR (the Pi 3's boot ROM reads nothing else) with the FAT
    /// firmware partition first and active, the GPU firmware for the Pi 3 and 4, the device tree of
    /// every listed Pi, Debian's kernel and initrd, edgekit's `config.txt`, a `cmdline.txt` whose
    /// root PARTUUID is the disk's own, an fstab by the same identifiers, and the aarch64 agent.
    /// A second build is identical.
    @Test func rpiImageHasItsFirmwarePartitionAndBootFiles() throws {
        let dir = try RaspberryPiBuild.shared.build()
        let image = dir + "/out/site-b.img"
        let verify = try system("sfdisk", ["--verify", image])
        #expect(verify.status == 0, "sfdisk --verify: \(verify.stdout)\(verify.stderr)")
        let table = try PartitionTable.table(image)
        #expect(table.label == "dos", "an MBR: \(table.label)")
        #expect(table.id == "0x\(DiskLayout.mbrDiskID)")
        #expect(table.partitions.map(\.type) == ["c", "83", "83"], "\(table.partitions)")
        #expect(table.partitions[0].bootable == true && table.partitions[1].bootable != true, "the firmware partition is the active one")

        let firmware = try RaspberryPiBuild.firmwarePartition(dir)
        defer { try? FileManager.default.removeItem(atPath: firmware) }
        let label = try system("fatlabel", [firmware])
        #expect(label.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "RASPIFIRM", "\(label.stdout)\(label.stderr)")
        let listing = try system("mdir", ["-b", "-i", firmware, "::/"]).stdout
        // `mdir -b` lines: "::/bootcode.bin", folders with a trailing slash ("::/overlays/").
        let names = Set(listing.split(separator: "\n").map { String($0.split(separator: "/").last ?? "") })
        // The GPU firmware: bootcode.bin for the Pi 3, start4/fixup4 for the Pi 4; device trees by upstream name.
        for file in ["bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat",
                     "bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2837-rpi-3-a-plus.dtb", "bcm2837-rpi-zero-2-w.dtb",
                     "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "vmlinuz", "initrd.img", "config.txt", "cmdline.txt", "overlays"] {
            #expect(names.contains(file), "\(file) on the firmware partition: \(names.sorted())")
        }
        #expect(!names.contains { $0.hasPrefix("vmlinuz-") || $0.hasPrefix("initrd.img-") }, "the kernel once, under its fixed name")
        let config = try system("mtype", ["-i", firmware, "::/config.txt"]).stdout
        for line in ["arm_64bit=1", "enable_uart=1", "upstream_kernel=1", "kernel=vmlinuz", "initramfs initrd.img followkernel"] {
            #expect(config.split(separator: "\n").contains { $0 == line }, "config.txt has \(line): \(config)")
        }
        let commandLine = try system("mtype", ["-i", firmware, "::/cmdline.txt"]).stdout
        #expect(commandLine == ImageBuilder.kernelCommandLine(.rpi) + "\n", "\(commandLine)")
        let rootID = "\(table.id.dropFirst(2))-02"
        #expect(commandLine.contains("root=PARTUUID=\(rootID) ") && commandLine.contains("console=ttyS1,115200"), "\(commandLine)")
        let kernel = dir + "/rpi-vmlinuz"
        defer { try? FileManager.default.removeItem(atPath: kernel) }
        #expect(try system("mcopy", ["-n", "-i", firmware, "::/vmlinuz", kernel]).status == 0)
        let kernelKind = try system("file", ["-b", kernel]).stdout
        #expect(kernelKind.contains("ARM64"), "Debian's arm64 kernel: \(kernelKind)")

        // The root's fstab names the same partitions, the data partition (04) made by
        // edgekit-grow-data, which the image carries with sfdisk; no repart definitions (repart needs GPT).
        let rootOffset = "\(image)?offset=\(table.partitions[1].start * DiskLayout.sector)"
        let fstab = try system("debugfs", ["-R", "cat /etc/fstab", rootOffset]).stdout
        #expect(fstab.contains("PARTUUID=\(rootID)  /  ") && fstab.contains("PARTUUID=\(table.id.dropFirst(2))-03  /etc/edgekit/site "), "\(fstab)")
        #expect(fstab.contains("PARTUUID=\(table.id.dropFirst(2))-04  /var/lib/edgekit  ext4  nofail,x-systemd.requires=edgekit-grow-data.service,"),
                "\(fstab)")
        for path in ["/usr/local/sbin/edgekit-grow-data", "/etc/systemd/system/edgekit-grow-data.service", "/usr/sbin/sfdisk"] {
            let found = try system("debugfs", ["-R", "stat \(path)", rootOffset])
            #expect(found.stdout.contains("Type: regular"), "\(path) in the root: \(found.stdout)\(found.stderr)")
        }
        let repart = try system("debugfs", ["-R", "ls /etc/repart.d", rootOffset])
        #expect(repart.stdout.isEmpty || repart.stderr.contains("File not found"), "no repart.d: \(repart.stdout)")
        #expect(try agentKind(in: image, scratch: dir).contains("ARM aarch64"), "the aarch64 agent on rpi")

        try expectSiteBRebuildsIdentically(in: dir, agents: ["--agent", try staticAgent(), "--agent-arm64", try arm64Agent()], board: "rpi")
    }

    /// The image's own kernel, initrd and Pi 3 device tree, taken from its firmware partition, boot
    /// under qemu's `raspi3b` (the GPU firmware cannot run there) with the card on the SD controller
    /// to the agent's first line and the site's login prompt on the GPIO serial console (ttyS1).
    /// The image is written to a 4 GiB card and its data partition is made at first boot, through a
    /// power cut: the first boot is cut (qemu killed) as soon as edgekit-grow-data has written the
    /// partition table, before or while it formats; the second boot finishes the partition, mounts
    /// it, applies the site's stick plugged in after the login prompt (two USB Ethernet adapters as
    /// the ports), and the card then holds partition 4 from the site partition's end to its own,
    /// ext4, with generation 1 on it.
    @Test(.timeLimit(.minutes(30))) func rpiImageBootsOnRaspi3bToTheAgent() throws {
        let dir = try RaspberryPiBuild.shared.build()
        let firmware = try RaspberryPiBuild.firmwarePartition(dir)
        defer { try? FileManager.default.removeItem(atPath: firmware) }
        var kernelArguments: [String] = []
        for (option, file) in [("-kernel", "vmlinuz"), ("-initrd", "initrd.img"), ("-dtb", "bcm2837-rpi-3-b.dtb")] {
            let copy = dir + "/rpi-boot-" + file
            #expect(try system("mcopy", ["-n", "-i", firmware, "::/" + file, copy]).status == 0, "\(file) on the firmware partition")
            kernelArguments += [option, copy]
        }
        let commandLine = try system("mtype", ["-i", firmware, "::/cmdline.txt"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // qemu's SD card must be a power of two in size: the image written to a 4 GiB card.
        let cardBytes = 4 << 30
        let card = try writeSiteBImage(in: dir, toCard: "rpi-card.img", bytes: cardBytes)
        defer { try? FileManager.default.removeItem(atPath: card) }
        let qemu = ["-nic", "none"] + kernelArguments + ["-append", commandLine]

        let made = "edgekit-grow-data: made partition 4 of /dev/mmcblk0: "
        let cut = try EmulatedBoot.run(card, Board.rpi.emulation[0], scratch: dir, name: "rpi-cut", limit: 900, extra: qemu,
                                       writable: true, waitingFor: [made])
        print("boot rpi, cut: partition table written after \(cut.seconds(made)) s under emulation; qemu killed then")
        try #require(cut.console.contains(made), "the first boot made the data partition; console tail: \(cut.console.suffix(3000))")
        #expect(try PartitionTable.read(card).count == 4, "the cut came after the table was written")

        // The second boot has the Pi's two Ethernet ports as a Pi 3 has them, on USB (the onboard
        // port is a USB device too): two USB network adapters on the machine's DWC2 controller. The
        // site's stick is plugged in (USB storage, same controller) after the login prompt.
        let formatted = "edgekit-grow-data: formatted /dev/mmcblk0p4 as ext4 (edgekit-data)"
        let prompt = LateStick.prompt, applied = LateStick.applied
        // The ports' pins are logged after the applied line: wait for the last one too (CI20
        // stopped between the uplink's line and the LAN's).
        let lanPinned = "ports: LAN auto: pinned "
        let plug = try LateStick.make(plan: dir + "/plan", in: dir, bus: nil)
        let ports = ["-netdev", "user,id=uplink", "-device", "usb-net,netdev=uplink", "-netdev", "user,id=lan", "-device", "usb-net,netdev=lan"]
        let boot = try EmulatedBoot.run(card, Board.rpi.emulation[0], scratch: dir, name: "rpi", limit: 1200,
                                        extra: kernelArguments + ["-append", commandLine] + ports, after: (prompt, plug),
                                        writable: true, waitingFor: [EmulatedBoot.noStickLine, prompt, applied, lanPinned])
        print("boot rpi (raspi3b, kernel from the firmware partition), after the cut: agent line after "
              + "\(boot.seconds(EmulatedBoot.noStickLine)) s, \"\(prompt)\" after \(boot.seconds(prompt)) s, stick plugged in then, "
              + "applied after \(boot.seconds(applied)) s under emulation; "
              + (boot.console.contains(formatted) ? "the cut came before the format ended, this boot formatted"
                                                  : "the format had ended before the cut"))
        let tail = "console tail: \(boot.console.suffix(3000))"
        #expect(boot.console.contains("Machine model: Raspberry Pi 3 Model B"), "the Pi 3's device tree; \(tail)")
        #expect(boot.console.contains("root=PARTUUID=\(DiskLayout.mbrPartitionUUID(2))"), "root by the MBR's PARTUUID; \(tail)")
        #expect(boot.console.contains(EmulatedBoot.noStickLine), "\(tail)")
        #expect(boot.console.contains(prompt) && LateStick.named(boot.console), "a login prompt, the machine named after the site; \(tail)")
        #expect(!boot.console.contains(made), "the second boot made no partition again; \(tail)")
        #expect(boot.console.contains("appeared (new block devices:"), "the agent noticed the stick; \(tail)")
        #expect(boot.console.contains(applied), "the stick plugged in after boot was applied; \(tail)")
        #expect(!boot.console.contains("did not come up with generation"), "every service came up; \(tail)")
        // Both ports are USB: the first by device path (qemu's first usb-net, MAC …:57) is the uplink
        // (docs/network.md, "Ports"), whichever of usb0 and usb1 the kernel named it this boot (a CI
        // run saw the two adapters enumerate the other way round).
        let pinned = { (role: String, mac: String) in
            boot.console.split(separator: "\n").contains { line in
                line.contains("ports: \(role) auto: pinned \(mac) (usb") && line.contains(", USB)")
            }
        }
        #expect(pinned("uplink", "52:54:00:12:34:57") && pinned("LAN", "52:54:00:12:34:58"), "\(tail)")
        let mounted = boot.console.split(separator: "\n").contains { $0.contains("Mounted ") && $0.contains("var-lib-edgekit.mount") }
        #expect(mounted, "the data partition was mounted; \(tail)")
        try expectDataPartitionFills(card, bytes: cardBytes, holding: "generations/1")
    }
}
