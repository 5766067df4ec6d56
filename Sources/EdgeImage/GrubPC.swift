import EdgeModel
import EdgeSystem
import Foundation

/// GRUB for legacy-BIOS PCs (the `pc-bios` board), installed without grub-install, root, loop
/// devices or mounts, the way grub-bios-setup embeds it on a GPT disk:
///
/// - `core.img` is made inside the Debian tree by the tree's own grub-mkimage (a customize hook of
///   mmdebstrap, so the build host needs no GRUB), with every module it needs built in and its
///   prefix on the ESP of the disk it was loaded from, `(,gpt1)/grub`;
/// - `boot.img`'s code goes into the MBR's code area (the protective MBR's partition entry and
///   the disk signature stay), told the sector where core.img starts;
/// - core.img goes into the BIOS boot partition, its first sector (diskboot) told where the rest is;
/// - GRUB's normal mode then reads `grub.cfg` from the ESP, which starts the same kernel and
///   initrd with the same command line as systemd-boot does under UEFI.
///
/// Offsets: grub-core/boot/i386/pc/boot.S and diskboot.S, include/grub/i386/pc/boot.h.
public enum GrubPC {
    /// Where the hook leaves core.img in the tree (where grub-install would) and boot.img is.
    static let coreImageInTree = "/boot/grub/i386-pc/core.img"
    static let bootImageInTree = "/usr/lib/grub/i386-pc/boot.img"

    /// biosdisk reads the disk through the BIOS, part_gpt and fat find the ESP, normal reads
    /// grub.cfg, linux boots the kernel, serial and terminal put GRUB on the serial console too
    /// (headless boxes such as PC Engines APUs have nothing else); loadenv and test run the trial
    /// boot of an update (`load_env`, `save_env`, `[`).
    static let modules = ["biosdisk", "part_gpt", "fat", "normal", "linux", "serial", "terminal", "loadenv", "test"]

    /// The mmdebstrap customize hook (`$1` is the tree) that makes core.img with the tree's GRUB.
    static var makeCoreImage: String {
        "mkdir -p \"$1\(coreImageInTree.dropLast("/core.img".count))\" && chroot \"$1\" grub-mkimage --format=i386-pc"
            + " --output=\(coreImageInTree) --prefix='(,gpt1)/grub' " + modules.joined(separator: " ")
    }

    /// `grub/grubenv` on the ESP as the image leaves it: slot A boots.
    static let initialEnvironment = GrubEnvironment([("edgekit_slot", "a")])

    /// `grub.cfg` on the ESP: GRUB on the serial console and the screen, no menu, and the system
    /// slot to boot from `grubenv` (docs/updates.md, "Trial boot under legacy BIOS"): the slot on
    /// trial once (GRUB clears `edgekit_trial` before it boots it, so any reset that follows boots
    /// `edgekit_slot` again), else `edgekit_slot`; each slot's kernel and initrd in its folder on this
    /// partition (slot A's at the top until an update wrote `a/`), with its options from `grubenv`
    /// or, when `grubenv` is lost, `options`, the image's. The script never changes: the agent edits
    /// `grubenv` only.
    static func configuration(options: String) -> String {
        let a = SystemSlot.a.partitionUUID, b = SystemSlot.b.partitionUUID
        return """
            # edgekit, board pc-bios (docs/image.md, "Boards"): legacy BIOS boots the kernel through GRUB,
            # UEFI through systemd-boot; both from this partition. Which system slot boots is in
            # grubenv (docs/updates.md, "Trial boot under legacy BIOS"); edgekit-agent edits only that.
            serial --unit=0 --speed=115200
            terminal_input console serial
            terminal_output console serial
            set timeout=0
            set edgekit_slot=a
            load_env --file /grub/grubenv edgekit_slot edgekit_trial edgekit_a_options edgekit_b_options
            set edgekit_boot="$edgekit_slot"
            if [ -n "$edgekit_trial" ]; then
            	set edgekit_boot="$edgekit_trial"
            	set edgekit_trial=
            	save_env --file /grub/grubenv edgekit_trial
            fi
            if [ -z "$edgekit_a_options" ]; then set edgekit_a_options="\(options)"; fi
            if [ -z "$edgekit_b_options" ]; then set edgekit_b_options="\(options)"; fi
            menuentry edgekit {
            	if [ "$edgekit_boot" = b ]; then
            		linux /b/vmlinuz root=PARTUUID=\(b) $edgekit_b_options
            		initrd /b/initrd.img
            	elif [ -f /a/vmlinuz ]; then
            		linux /a/vmlinuz root=PARTUUID=\(a) $edgekit_a_options
            		initrd /a/initrd.img
            	else
            		linux /vmlinuz root=PARTUUID=\(a) $edgekit_a_options
            		initrd /initrd.img
            	fi
            }

            """
    }

    static let bpbStart = 0x03, bpbEnd = 0x5a
    static let kernelSectorOffset = 0x5c
    static let bootDriveOffset = 0x64
    static let driveCheckOffset = 0x66
    /// The MBR's code area ends where the disk signature begins.
    static let codeAreaEnd = 440
    /// diskboot's block list: (start sector u64, sector count u16, segment u16) at the end of
    /// core.img's first sector.
    static let blockListOffset = 512 - 12

    /// Writes boot.img's code into the MBR of `disk` and core.img at `sector`, which must begin a
    /// partition of `sectors` sectors that nothing else uses.
    static func install(bootImage: String, coreImage: String, into disk: String, at sector: Int, sectors: Int) throws {
        let boot = try Data(contentsOf: URL(fileURLWithPath: bootImage))
        var core = [UInt8](try Data(contentsOf: URL(fileURLWithPath: coreImage)))
        guard boot.count == 512, boot[510] == 0x55, boot[511] == 0xaa else {
            throw ImageError("image.missing-input", "\(bootImage) is not GRUB's 512-byte boot.img; is grub-pc-bin in the base?")
        }
        let coreSectors = (core.count + 511) / 512
        guard core.count >= 1024, coreSectors <= sectors else {
            throw ImageError("image.missing-input", "\(coreImage) is \(core.count) bytes; GRUB's core.img must fit the \(sectors * 512)-byte BIOS boot partition")
        }
        // mkimage has already counted the sectors after the first; only where they are is new.
        let listedSectors = Int(core[blockListOffset + 8]) | Int(core[blockListOffset + 9]) << 8
        guard listedSectors == coreSectors - 1 else {
            throw ImageError("image.tool-failed", "\(coreImage) lists \(listedSectors) sectors after its first, not \(coreSectors - 1); is it an i386-pc core image?")
        }
        put(UInt64(sector + 1), into: &core, at: blockListOffset)
        core += [UInt8](repeating: 0, count: coreSectors * 512 - core.count)

        guard let handle = FileHandle(forUpdatingAtPath: disk) else { throw ImageError("cannot write \(disk)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: 0)
        var mbr = [UInt8](try handle.read(upToCount: 512) ?? Data())
        guard mbr.count == 512, mbr[510] == 0x55, mbr[511] == 0xaa else {
            throw ImageError("\(disk) has no partition table to add GRUB's boot code to")
        }
        // boot.img's code, keeping the disk's own BPB area (as grub-bios-setup does) and everything
        // from the disk signature on: the protective MBR's partition entry and its signature.
        var code = [UInt8](boot.prefix(codeAreaEnd))
        code.replaceSubrange(bpbStart..<bpbEnd, with: mbr[bpbStart..<bpbEnd])
        put(UInt64(sector), into: &code, at: kernelSectorOffset)
        code[bootDriveOffset] = 0xff  // load core.img from the drive the BIOS booted from
        // A fixed disk: skip boot.img's check of the drive number the BIOS passed (some pass 0).
        code[driveCheckOffset] = 0x90
        code[driveCheckOffset + 1] = 0x90
        mbr.replaceSubrange(0..<codeAreaEnd, with: code)
        // The protective MBR entry marked active (parted's `pmbr_boot`): some legacy BIOSes boot only
        // a disk with an active MBR partition. UEFI ignores the flag on a protective entry (UEFI
        // 2.10 section 5.2.3, BootIndicator), so the same disk still boots UEFI.
        mbr[protectiveEntryBootIndicator] = 0x80
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data(mbr))
        try handle.seek(toOffset: UInt64(sector * 512))
        try handle.write(contentsOf: Data(core))
    }

    /// The boot indicator of the MBR's first partition entry (offset 446), GPT's protective entry.
    static let protectiveEntryBootIndicator = 446

    static func put(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}
