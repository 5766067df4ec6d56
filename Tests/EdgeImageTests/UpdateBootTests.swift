import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// Updates on the booted image (docs/updates.md), under qemu with OVMF (software emulation), on one
/// 8 GiB card through eight boots: systemd-boot's boot counting, systemd-bless-boot and the image's
/// edgekit-health.service are the real ones.
///
/// How a bundle reaches the guest: the test image carries one unit more than the product's overlays,
/// `edgekit-test-update.service`, which mounts a disk with serial `ekupdate` (an ext4 file holding
/// `bundle.update`) when one is attached and runs `edgekit-agent update --reboot` on it: an operator
/// at the router's shell would type the same. qemu runs with -no-reboot, so a reboot ends the boot,
/// and the next boot starts from the card as the last one left it.
@Suite(.serialized, .requiresApplianceAgent, .requiresTool("mmdebstrap", "mcopy", "mkfs.vfat", "mke2fs", "sfdisk", "qemu-system-x86_64"), .slow)
struct UpdateBootTests {
    static let trigger = """
        # Test only (UpdateBootTests): installs the bundle on an attached disk with serial ekupdate.
        [Unit]
        Description=test: install the update bundle of the attached ekupdate disk
        After=edgekit-agent.service
        ConditionPathExists=/dev/disk/by-id/virtio-ekupdate

        [Service]
        Type=oneshot
        ExecStart=/bin/sh -c 'mkdir -p /run/ekupdate && mount -o ro /dev/disk/by-id/virtio-ekupdate /run/ekupdate && exec /usr/local/bin/edgekit-agent update --reboot /run/ekupdate/bundle.update'
        StandardOutput=journal+console
        StandardError=journal+console

        [Install]
        WantedBy=multi-user.target

        """

    /// The product's overlays plus the trigger unit, enabled.
    static func overlays(in dir: String) throws -> String {
        let overlays = dir + "/overlays"
        try? FileManager.default.removeItem(atPath: overlays)
        let copied = try system("cp", ["-a", repositoryRoot + "/overlays", overlays])
        try #require(copied.status == 0, "\(copied.stderr)")
        let units = overlays + "/etc/systemd/system"
        try Data(trigger.utf8).write(to: URL(fileURLWithPath: units + "/edgekit-test-update.service"))
        try FileManager.default.createSymbolicLink(atPath: units + "/multi-user.target.wants/edgekit-test-update.service",
                                                   withDestinationPath: "../edgekit-test-update.service")
        return overlays
    }

    /// `SITE-N.update` for site-b with `agent` in it, on an ext4 disk image `dir/vN.disk` as bundle.update.
    static func bundleDisk(version: Int, agent: String, overlays: String, dir: String, plan: String = repositoryRoot + "/profiles/example") throws -> String {
        let out = dir + "/bundle-\(version)"
        try? FileManager.default.removeItem(atPath: out)
        let made = try edgekit(["image", "update", "--plan", plan, "--secrets", dir + "/secrets",
                                "--site", "site-b", "--system-version", String(version), "--out", out, "--cache", imageCache,
                                "--agent", agent, "--overlays", overlays])
        try #require(made.status == 0, "\(made.stderr.suffix(2000))")
        let folder = out + "/disk"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: out + "/site-b-\(version).update", toPath: folder + "/bundle.update")
        let disk = dir + "/v\(version).disk"
        try? FileManager.default.removeItem(atPath: disk)
        let ext4 = try system("mke2fs", ["-q", "-t", "ext4", "-L", "ekupdate", "-d", folder, disk, "400M"])
        try #require(ext4.status == 0, "\(ext4.stderr)")
        try? FileManager.default.removeItem(atPath: out)
        return disk
    }

    /// The bundle's disk, at PCI slot 0x10, after the card's: SeaBIOS boots only the first hard
    /// disk it finds, in PCI order, and the card's drive is added after these arguments.
    static func attach(_ disk: String) -> [String] {
        ["-drive", "file=\(disk),if=none,id=ekupdate,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=ekupdate,serial=ekupdate,addr=0x10"]
    }

    /// GRUB's environment block on the card's ESP (pc-bios).
    static func grubenv(_ card: String) throws -> GrubEnvironment {
        let esp = try #require(try PartitionTable.read(card).first { $0.name == "esp" })
        let read = try system("mtype", ["-i", "\(card)@@\(esp.start * DiskLayout.sector)", "::/grub/grubenv"])
        try #require(read.status == 0, "\(read.stderr)")
        return try #require(GrubEnvironment(bytes: Array(read.stdout.utf8)), "\(read.stdout)")
    }

    /// The boot entries on the card's ESP, by name, with their text.
    static func entries(_ card: String) throws -> [String: String] {
        let esp = try #require(try PartitionTable.read(card).first { $0.name == "esp" })
        let image = "\(card)@@\(esp.start * DiskLayout.sector)"
        let listing = try system("mdir", ["-b", "-i", image, "::/loader/entries"])
        try #require(listing.status == 0, "\(listing.stderr)")
        var entries: [String: String] = [:]
        for path in listing.stdout.split(separator: "\n") where path.hasSuffix(".conf") {
            let name = String(path.split(separator: "/").last!)
            entries[name] = try system("mtype", ["-i", image, "::/loader/entries/" + name]).stdout
        }
        return entries
    }

    /// systemd's status line once systemd-bless-boot kept the entry (coloured unit name, cut to the console's width).
    static let blessed = "Finished \u{1b}[0;1;39msystemd-bless-boot"

    @Test(.timeLimit(.minutes(30))) func slotsUpdateTryBlessFallBackAndSurviveAPowerCut() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-update-boot-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let secrets = try makeSecrets(in: dir)
        let overlays = try Self.overlays(in: dir)
        let agent = try staticAgent()
        let built = try edgekit(["image", "build", "--plan", repositoryRoot + "/profiles/example", "--secrets", secrets, "--site", "site-b",
                                 "--system-version", "1", "--out", dir + "/out", "--cache", imageCache, "--agent", agent, "--overlays", overlays])
        try #require(built.status == 0, "\(built.stderr.suffix(2000))")
        let card = try writeSiteBImage(in: dir, toCard: "card.img", bytes: 8 << 30)
        let emulation = Board.pcUEFI.emulation[0]
        var timings: [String] = []
        // Eight boots of about a minute each: awaited, so the suite's async tests are not starved meanwhile.
        func boot(_ name: String, attach disk: String? = nil, waitingFor lines: [String]) async throws -> EmulatedBoot {
            let started = Date()
            let result = try await EmulatedBoot.running(card, emulation, scratch: dir, name: name, limit: 480,
                                                        extra: ["-nic", "none"] + (disk.map(Self.attach) ?? []), writable: true, waitingFor: lines)
            timings.append("\(name) \(Int(Date().timeIntervalSince(started))) s")
            for line in lines {
                try #require(result.seen[line] != nil, "\(name): no \"\(line)\" on the console; tail: \(result.console.suffix(4000))")
            }
            return result
        }

        // 1. Slot A, version 1, installs version 2 into slot B and reboots.
        let v2 = try Self.bundleDisk(version: 2, agent: agent, overlays: overlays, dir: dir)
        let installed2 = "installed system version 2 into slot b"
        let first = try await boot("a1", attach: v2, waitingFor: [installed2, "reboot: Restarting system"])
        #expect(first.console.contains("edgekit-agent: update: slot b written"), "read back before the entry")
        var entries = try Self.entries(card)
        #expect(Set(entries.keys) == ["edgekit-a.conf", "edgekit-b+1.conf"], "\(entries.keys)")
        #expect(entries["edgekit-a.conf"]?.contains("version 1\n") == true && entries["edgekit-b+1.conf"]?.contains("version 2\n") == true)

        // 2. The trial boot of slot B: healthy (no stick: a spare), blessed by systemd-bless-boot.
        let trial = try await boot("b2-trial", waitingFor: ["system version 2 (slot b) is healthy on its trial boot", Self.blessed])
        #expect(trial.console.contains("root=PARTUUID=\(SystemSlot.b.partitionUUID)"), "the kernel was given slot b")
        entries = try Self.entries(card)
        #expect(Set(entries.keys) == ["edgekit-a.conf", "edgekit-b.conf"], "blessed: the counter gone: \(entries.keys)")

        // 3. From slot B, version 3 goes back into slot A; its trial passes too.
        let v3 = try Self.bundleDisk(version: 3, agent: agent, overlays: overlays, dir: dir)
        _ = try await boot("b2", attach: v3, waitingFor: ["installed system version 3 into slot a", "reboot: Restarting system"])
        #expect(Set(try Self.entries(card).keys) == ["edgekit-a+1.conf", "edgekit-b.conf"])
        _ = try await boot("a3-trial", waitingFor: ["system version 3 (slot a) is healthy on its trial boot", Self.blessed])
        entries = try Self.entries(card)
        #expect(Set(entries.keys) == ["edgekit-a.conf", "edgekit-b.conf"] && entries["edgekit-a.conf"]?.contains("linux /a/vmlinuz\n") == true,
                "\(entries)")

        // 4. Version 4's agent exits 1 (/bin/false). Its install is cut by a power cut first (qemu
        //    killed while slot B is written): the next boot is slot A's, and the install runs again.
        let v4 = try Self.bundleDisk(version: 4, agent: "/bin/false", overlays: overlays, dir: dir)
        _ = try await boot("a3-cut", attach: v4, waitingFor: ["edgekit-agent: update: writing slot b: "])
        #expect(Set(try Self.entries(card).keys) == ["edgekit-a.conf"], "slot b's entry went before its first byte was written")
        let retried = try await boot("a3-retry", attach: v4, waitingFor: ["installed system version 4 into slot b", "reboot: Restarting system"])
        #expect(retried.console.contains("root=PARTUUID=\(SystemSlot.a.partitionUUID)"), "after the cut, slot a booted")
        // 5. The trial of version 4: its health check fails at once and the router reboots; the entry, out of tries, sorts last.
        let failing = try await boot("b4-trial", waitingFor: ["reboot: Restarting system"])
        #expect(failing.console.contains("root=PARTUUID=\(SystemSlot.b.partitionUUID)"), "version 4 was tried")
        #expect(!failing.console.contains("is healthy on its trial boot"))
        entries = try Self.entries(card)
        #expect(Set(entries.keys) == ["edgekit-a.conf", "edgekit-b+0-1.conf"], "\(entries.keys)")
        // 6. The board is back on slot A by itself, and the agent says version 4 failed.
        let back = try await boot("a3-back", waitingFor: ["system version 4 (slot b) failed its trial boot", EmulatedBoot.noStickLine])
        #expect(back.console.contains("root=PARTUUID=\(SystemSlot.a.partitionUUID)"))
        print("update boots under emulation: " + timings.joined(separator: ", "))
    }

    /// `pc-bios` started by SeaBIOS (no EFI): GRUB tries a slot once through `edgekit_trial` in
    /// grubenv and the health check keeps it by setting `edgekit_slot` (docs/updates.md, "Trial boot
    /// under legacy BIOS"). Five boots on one card: A v1 installs v2; B's trial is kept; from B, v3
    /// (agent /bin/false) goes into A; A's trial fails and reboots; GRUB boots B by itself.
    @Test(.timeLimit(.minutes(30))) func underLegacyBIOSGrubTriesKeepsAndFallsBack() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-update-bios-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // EDGEKIT_KEEP=1 keeps the card and the consoles for a look after a failure.
        defer { if ProcessInfo.processInfo.environment["EDGEKIT_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let secrets = try makeSecrets(in: dir)
        let overlays = try Self.overlays(in: dir)
        let agent = try staticAgent()
        let plan = dir + "/plan"
        try writeExamplePlan(siteBOn: "pc-bios", to: plan)
        let built = try edgekit(["image", "build", "--plan", plan, "--secrets", secrets, "--site", "site-b",
                                 "--system-version", "1", "--out", dir + "/out", "--cache", imageCache, "--agent", agent, "--overlays", overlays])
        try #require(built.status == 0, "\(built.stderr.suffix(2000))")
        let card = try writeSiteBImage(in: dir, toCard: "card.img", bytes: 8 << 30)
        let emulation = Board.pcBIOS.emulation[0]
        try #require(emulation.firmware == .bios)
        #expect(try Self.grubenv(card) == GrubEnvironment([("edgekit_slot", "a")]))
        var timings: [String] = []
        func boot(_ name: String, attach disk: String? = nil, waitingFor lines: [String]) async throws -> EmulatedBoot {
            let started = Date()
            let result = try await EmulatedBoot.running(card, emulation, scratch: dir, name: name, limit: 480,
                                                        extra: ["-nic", "none"] + (disk.map(Self.attach) ?? []), writable: true, waitingFor: lines)
            timings.append("\(name) \(Int(Date().timeIntervalSince(started))) s")
            for line in lines {
                try #require(result.seen[line] != nil, "\(name): no \"\(line)\" on the console; tail: \(result.console.suffix(4000))")
            }
            #expect(!result.console.contains("efi: EFI v"), "\(name): started by SeaBIOS, not UEFI")
            return result
        }
        let options = ImageBuilder.kernelOptions(.pcBIOS)

        // 1. Slot A (version 1, GRUB's /vmlinuz) installs version 2 into slot B and reboots.
        let v2 = try Self.bundleDisk(version: 2, agent: agent, overlays: overlays, dir: dir, plan: plan)
        let first = try await boot("a1", attach: v2, waitingFor: ["installed system version 2 into slot b", "reboot: Restarting system"])
        #expect(first.console.contains("Command line: BOOT_IMAGE=/vmlinuz root=PARTUUID=\(SystemSlot.a.partitionUUID)"), "GRUB started slot a")
        #expect(first.console.contains("the next boot tries it once (grubenv edgekit_trial=b)"))
        #expect(try Self.grubenv(card) == GrubEnvironment([("edgekit_slot", "a"), ("edgekit_b_options", options), ("edgekit_trial", "b")]))

        // 2. GRUB tries slot B once (clearing edgekit_trial first); healthy, so it is kept.
        let trial = try await boot("b2-trial", waitingFor: ["system version 2 (slot b) is healthy on its trial boot"])
        #expect(trial.console.contains("Command line: BOOT_IMAGE=/b/vmlinuz root=PARTUUID=\(SystemSlot.b.partitionUUID)"), "GRUB started slot b")
        #expect(try Self.grubenv(card) == GrubEnvironment([("edgekit_slot", "b"), ("edgekit_b_options", options)]), "kept: slot b is GRUB's")

        // 3. From slot B (booted again as GRUB's slot), version 3, whose agent exits 1, goes into slot A.
        let v3 = try Self.bundleDisk(version: 3, agent: "/bin/false", overlays: overlays, dir: dir, plan: plan)
        let fromB = try await boot("b2", attach: v3, waitingFor: ["installed system version 3 into slot a", "reboot: Restarting system"])
        #expect(fromB.console.contains("root=PARTUUID=\(SystemSlot.b.partitionUUID)"))
        #expect(try Self.grubenv(card)["edgekit_trial"] == "a")

        // 4. Slot A's trial fails at once and the router reboots; GRUB cleared the trial as it booted it.
        let failing = try await boot("a3-trial", waitingFor: ["reboot: Restarting system"])
        #expect(failing.console.contains("Command line: BOOT_IMAGE=/a/vmlinuz root=PARTUUID=\(SystemSlot.a.partitionUUID)"), "version 3 was tried")
        #expect(!failing.console.contains("is healthy on its trial boot"))
        let after = try Self.grubenv(card)
        #expect(after["edgekit_slot"] == "b" && after["edgekit_trial"] == "", "\(after.variables)")

        // 5. GRUB boots slot B by itself, and its agent says version 3 failed.
        let back = try await boot("b2-back", waitingFor: ["system version 3 (slot a) failed its trial boot", EmulatedBoot.noStickLine])
        #expect(back.console.contains("Command line: BOOT_IMAGE=/b/vmlinuz root=PARTUUID=\(SystemSlot.b.partitionUUID)"))
        print("update boots under legacy BIOS (SeaBIOS, GRUB): " + timings.joined(separator: ", "))
    }
}
