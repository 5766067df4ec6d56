import EdgeAgent
import EdgeCrypto
import EdgeImage
import EdgeModel
import EdgeStick
import Foundation
import Testing
import TestSupport

/// `edgekit-agent update BUNDLE` and `update --confirm` on a router's root (docs/updates.md, "Install",
/// "Trial boot"), the agent binary itself (in the suite's second pass the aarch64 one): the root holds
/// what the appliance has at those paths (the kernel command line, systemd-boot's LoaderInfo variable,
/// the ESP, the slot partitions' device links), slot B being a plain file. The qemu test
/// (`UpdateBootTests`) does the same on the booted image with real partitions and systemd-boot.
@Suite struct SlotInstallTests {
    static let slotBytes = 3 << 20

    /// A router root running slot A, version 5, booted by systemd-boot, slot B an empty file.
    static func router(_ scratch: Scratch) throws -> (root: String, slotB: String) {
        let root = try scratch.makeRoot()
        try SystemUpdateTests.release(root, version: 5)
        for folder in ["/proc", "/sys/firmware/efi/efivars", "/boot/efi/loader/entries", "/dev/disk/by-partuuid"] {
            try FileManager.default.createDirectory(atPath: root + folder, withIntermediateDirectories: true)
        }
        try Data("root=PARTUUID=\(SystemSlot.a.partitionUUID) rw net.ifnames=0 console=ttyS0,115200\n".utf8)
            .write(to: URL(fileURLWithPath: root + "/proc/cmdline"))
        try Data([6, 0, 0, 0]).write(to: URL(fileURLWithPath: root + "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"))
        try Data(SystemSlot.a.bootEntry(version: 5, kernel: "/vmlinuz", initrd: "/initrd.img", options: "rw").utf8)
            .write(to: URL(fileURLWithPath: root + "/boot/efi/loader/entries/edgekit-a.conf"))
        let slotB = root + "/dev/disk/by-partuuid/" + SystemSlot.b.partitionUUID
        try Data(repeating: 0xee, count: slotBytes).write(to: URL(fileURLWithPath: slotB))
        return (root, slotB)
    }

    /// A 2 MiB system that does not compress to nothing (so decoding is exercised), with a kernel
    /// and initrd, as a bundle signed with the example plan's operator key.
    static func bundle(_ scratch: Scratch, _ name: String, board: String = "pc-uefi", version: UInt64, rootBytes: Int = 2 << 20,
                       key: Signify.SecretKey = BadProfileCorpus.keys.operatorKey) throws -> (path: String, root: Data) {
        var generator = SystemRandomNumberGenerator()
        var root = Data(count: rootBytes)
        for index in stride(from: 0, to: rootBytes, by: 64) { root[index] = UInt8.random(in: 0...255, using: &generator) }
        try root.write(to: URL(fileURLWithPath: scratch.path(name + ".disk")))
        try Data("kernel \(version)\n".utf8).write(to: URL(fileURLWithPath: scratch.path(name + ".vmlinuz")))
        try Data("initrd \(version)\n".utf8).write(to: URL(fileURLWithPath: scratch.path(name + ".initrd")))
        let path = scratch.path(name + ".update")
        try UpdateBundleWriter.write(to: path, plan: "example", site: nil, release: SystemRelease(board: board, version: version),
                                     system: "0123456789abcdef", root: (file: scratch.path(name + ".disk"), offset: 0, bytes: rootBytes),
                                     kernelOptions: "rw net.ifnames=0 console=ttyS0,115200",
                                     files: [.init(name: "vmlinuz", path: scratch.path(name + ".vmlinuz")),
                                             .init(name: "initrd.img", path: scratch.path(name + ".initrd"))],
                                     key: key, mtime: 0, progress: .silent)
        return (path, root)
    }

    static func record(_ root: String) throws -> UpdateRecord? {
        guard let data = FileManager.default.contents(atPath: root + "/var/lib/edgekit/update.json") else { return nil }
        return try DocumentCoding.decode(UpdateRecord.self, from: data)
    }

    @Test("a bundle goes into the slot not running, read back, with its kernel and an entry with one try; status says it is on trial")
    func installWritesTheOtherSlot() throws {
        try Scratch.with { scratch in
            let (root, slotB) = try Self.router(scratch)
            let (bundle, system) = try Self.bundle(scratch, "six", version: 6)
            let result = try runTool("edgekit-agent", ["update", "--root", root, bundle])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout == "update \(bundle): installed system version 6 into slot b (\(system.count) bytes, written and read back); "
                    + "the next boot tries it once (edgekit-b+1.conf)\n", "\(result)")
            #expect(result.stderr.contains("edgekit-agent: update: slot b written (\(system.count) bytes); reading it back"), "\(result.stderr)")
            let slot = try Data(contentsOf: URL(fileURLWithPath: slotB))
            #expect(slot.count == Self.slotBytes && slot.prefix(system.count) == system, "the system, byte for byte")
            #expect(slot.suffix(from: system.count).allSatisfy { $0 == 0xee }, "nothing past it")
            let esp = root + "/boot/efi"
            #expect(try String(contentsOfFile: esp + "/b/vmlinuz", encoding: .utf8) == "kernel 6\n")
            #expect(try String(contentsOfFile: esp + "/b/initrd.img", encoding: .utf8) == "initrd 6\n")
            let entries = try FileManager.default.contentsOfDirectory(atPath: esp + "/loader/entries").sorted()
            #expect(entries == ["edgekit-a.conf", "edgekit-b+1.conf"], "the running entry kept, the new one with one try: \(entries)")
            let entry = try String(contentsOfFile: esp + "/loader/entries/edgekit-b+1.conf", encoding: .utf8)
            #expect(entry == """
                title edgekit system 6 (slot b)
                sort-key edgekit
                version 6
                linux /b/vmlinuz
                initrd /b/initrd.img
                options root=PARTUUID=\(SystemSlot.b.partitionUUID) rw net.ifnames=0 console=ttyS0,115200

                """, "\(entry)")
            #expect(try Self.record(root) == UpdateRecord(version: 6, slot: .b, from: 5, state: .trial))
            let status = try runTool("edgekit-agent", ["status", "--root", root])
            #expect(status.stdout.contains("\nupdate        version 6 into slot b (from 5): installed; the next boot tries it\n"), "\(status)")

            // While another update holds the lock (the timer's run), an install by hand writes nothing.
            let (seven, _) = try Self.bundle(scratch, "seven", version: 7)
            let lockPath = root + "/var/lib/edgekit/update.lock"
            let held = open(lockPath, O_RDWR | O_CREAT, 0o600)
            try #require(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0)
            let before = treeIdentity(root)
            let busy = try runTool("edgekit-agent", ["update", "--root", root, seven])
            close(held)
            #expect(busy.status == 1 && busy.stderr.contains("another edgekit-agent update is fetching or installing (lock \(lockPath) is held)"), "\(busy)")
            #expect(treeIdentity(root) == before, "nothing written under another update's lock")

            // Installing again over an entry on trial replaces it (a newer bundle before the reboot).
            #expect(try runTool("edgekit-agent", ["update", "--root", root, seven]).status == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: esp + "/loader/entries").sorted() == ["edgekit-a.conf", "edgekit-b+1.conf"])
            #expect(try String(contentsOfFile: esp + "/loader/entries/edgekit-b+1.conf", encoding: .utf8).contains("version 7\n"))
        }
    }

    @Test("a bundle refused by a check, a router not booted by systemd-boot or a slot too small: one line, exit 1, no byte written")
    func refusedBundlesWriteNothing() throws {
        try Scratch.with { scratch in
            let (root, _) = try Self.router(scratch)
            let before = treeIdentity(root)
            func refused(_ bundle: String, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
                let result = try runTool("edgekit-agent", ["update", "--root", root, bundle])
                #expect(result.status == 1 && result.stdout.isEmpty && result.stderr.split(separator: "\n").count == 1
                        && result.stderr.contains("update bundle \(bundle): ") && result.stderr.contains(words),
                        "\(result)", sourceLocation: sourceLocation)
                #expect(treeIdentity(root) == before, "nothing written: slot, ESP, state", sourceLocation: sourceLocation)
            }
            let otherOperator = try Signify.SecretKey(seed: Data(repeating: 9, count: 32), keyNumber: Data(repeating: 9, count: 8))
            try refused(try Self.bundle(scratch, "foreign", version: 6, key: otherOperator).path, "its signature does not verify with the operator key")
            try refused(try Self.bundle(scratch, "rpi", board: "rpi", version: 6).path, "is for board rpi, this router is a pc-uefi")
            try refused(try Self.bundle(scratch, "old", version: 4).path, "version 4 is not newer than the installed 5")
            let good = try Self.bundle(scratch, "good", version: 6).path
            var flipped = try Data(contentsOf: URL(fileURLWithPath: good))
            flipped[flipped.count / 2] ^= 0x01
            let damaged = scratch.path("damaged.update")
            try flipped.write(to: URL(fileURLWithPath: damaged))
            try refused(damaged, "does not match its SHA-256 in the signed manifest")
            try refused(try Self.bundle(scratch, "large", version: 6, rootBytes: Self.slotBytes + 4096).path,
                        "its system is \(Self.slotBytes + 4096) bytes, slot b holds \(Self.slotBytes)")

            // A card from before the slots: no slot B partition.
            let slotB = root + "/dev/disk/by-partuuid/" + SystemSlot.b.partitionUUID
            try FileManager.default.moveItem(atPath: slotB, toPath: scratch.path("slot-b"))
            let withoutSlot = treeIdentity(root)
            let noSlot = try runTool("edgekit-agent", ["update", "--root", root, good])
            #expect(noSlot.status == 1 && noSlot.stderr.contains("this card has no slot b (no partition \(SystemSlot.b.partitionUUID)): images from before A/B slots are reflashed once"),
                    "\(noSlot)")
            #expect(treeIdentity(root) == withoutSlot)
            try FileManager.default.moveItem(atPath: scratch.path("slot-b"), toPath: slotB)

            let loaderInfo = root + "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
            try FileManager.default.removeItem(atPath: loaderInfo)
            let grub = treeIdentity(root)
            let result = try runTool("edgekit-agent", ["update", "--root", root, good])
            #expect(result.status == 1 && result.stderr.contains("this router was started neither by systemd-boot nor by edgekit's GRUB"), "\(result)")
            #expect(treeIdentity(root) == grub)
        }
    }

    /// `pc-bios` started by legacy BIOS: no EFI at all, GRUB's grubenv on the ESP (GrubPC).
    static func grubRouter(_ scratch: Scratch) throws -> (root: String, slotB: String) {
        let (root, slotB) = try router(scratch)
        try FileManager.default.removeItem(atPath: root + "/sys/firmware/efi")
        try FileManager.default.removeItem(atPath: root + "/boot/efi/loader")
        try FileManager.default.createDirectory(atPath: root + "/boot/efi/grub", withIntermediateDirectories: true)
        try Data(try #require(GrubEnvironment([("edgekit_slot", "a")]).encoded)).write(to: URL(fileURLWithPath: root + "/boot/efi/grub/grubenv"))
        return (root, slotB)
    }

    static func grubenv(_ root: String) throws -> GrubEnvironment {
        try #require(GrubEnvironment(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/boot/efi/grub/grubenv")))))
    }

    @Test("under GRUB: the install sets edgekit_trial, a healthy trial sets edgekit_slot; back to A the same way")
    func grubTriesAndKeepsASlotThroughGrubenv() throws {
        try Scratch.with { scratch in
            let (root, slotB) = try Self.grubRouter(scratch)
            let (bundle, system) = try Self.bundle(scratch, "six", version: 6)
            let result = try runTool("edgekit-agent", ["update", "--root", root, bundle])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.hasSuffix("the next boot tries it once (grubenv edgekit_trial=b)\n"), "\(result)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: slotB)).prefix(system.count) == system)
            #expect(try String(contentsOfFile: root + "/boot/efi/b/vmlinuz", encoding: .utf8) == "kernel 6\n")
            #expect(try Self.grubenv(root) == GrubEnvironment([("edgekit_slot", "a"), ("edgekit_b_options", "rw net.ifnames=0 console=ttyS0,115200"),
                                                               ("edgekit_trial", "b")]))
            #expect(!FileManager.default.fileExists(atPath: root + "/boot/efi/loader"), "no systemd-boot entry under GRUB")

            // GRUB clears edgekit_trial as it boots slot b (save_env); the trial is healthy: slot b is kept.
            var cleared = try Self.grubenv(root)
            cleared["edgekit_trial"] = ""
            try Data(try #require(cleared.encoded)).write(to: URL(fileURLWithPath: root + "/boot/efi/grub/grubenv"))
            try Data("root=PARTUUID=\(SystemSlot.b.partitionUUID) rw\n".utf8).write(to: URL(fileURLWithPath: root + "/proc/cmdline"))
            try SystemUpdateTests.release(root, version: 6)
            let paths = AgentPaths(root: root)
            var running = RuntimeState(stick: "none", stickPath: nil, lastApply: "no stick", noStickAtBoot: true, registration: "none",
                                       registeredAt: nil, services: "none", pid: getpid(), pidStart: RuntimeState.startTime(of: getpid()))
            running.lastApplyResult = "no_stick"
            running.save(paths: paths)
            let kept = try runTool("edgekit-agent", ["update", "--confirm", "--within", "5", "--root", root])
            #expect(kept.status == 0 && kept.stdout.contains("it is kept"), "\(kept)")
            #expect(try Self.grubenv(root)["edgekit_slot"] == "b" && Self.grubenv(root)["edgekit_trial"] == nil)
            #expect(try Self.record(root)?.state == .blessed)

            // From slot b, version 7 goes into slot a: its kernel in a/, tried once; slot b stays the default.
            let slotA = root + "/dev/disk/by-partuuid/" + SystemSlot.a.partitionUUID
            try Data(repeating: 0xee, count: Self.slotBytes).write(to: URL(fileURLWithPath: slotA))
            let (seven, _) = try Self.bundle(scratch, "seven", version: 7)
            let back = try runTool("edgekit-agent", ["update", "--root", root, seven])
            #expect(back.status == 0 && back.stdout.hasSuffix("(grubenv edgekit_trial=a)\n"), "\(back)")
            #expect(try String(contentsOfFile: root + "/boot/efi/a/vmlinuz", encoding: .utf8) == "kernel 7\n")
            let environment = try Self.grubenv(root)
            #expect(environment["edgekit_slot"] == "b" && environment["edgekit_trial"] == "a"
                    && environment["edgekit_a_options"] == "rw net.ifnames=0 console=ttyS0,115200", "\(environment.variables)")
        }
    }

    @Test("--confirm: passes at once off trial; blesses a healthy trial; fails one whose agent is not running, and the old system records it")
    func confirmJudgesTheTrialBoot() throws {
        try Scratch.with { scratch in
            let (root, _) = try Self.router(scratch)
            let off = try runTool("edgekit-agent", ["update", "--confirm", "--within", "1", "--root", root])
            #expect(off.status == 0 && off.stdout.isEmpty && off.stderr.isEmpty, "no trial: nothing to judge: \(off)")

            // The trial boot of version 6 in slot b, whose agent never started.
            try SystemUpdateTests.release(root, version: 6)
            let state = root + "/var/lib/edgekit"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try DocumentCoding.encode(UpdateRecord(version: 6, slot: .b, from: 5, state: .trial)).write(to: URL(fileURLWithPath: state + "/update.json"))
            let failed = try runTool("edgekit-agent", ["update", "--confirm", "--within", "1", "--root", root])
            #expect(failed.status == 1 && failed.stderr.split(separator: "\n").count == 1
                    && failed.stderr.contains("system version 6 (slot b) failed its trial boot: the agent has not started after ")
                    && failed.stderr.hasSuffix(" s; rebooting into version 5\n"),
                    "\(failed)")
            #expect(try Self.record(root)?.state == .failed)

            // The same trial with the agent running (this test process stands in for it) and no stick: kept.
            try DocumentCoding.encode(UpdateRecord(version: 6, slot: .b, from: 5, state: .trial)).write(to: URL(fileURLWithPath: state + "/update.json"))
            let paths = AgentPaths(root: root)
            var running = RuntimeState(stick: "none", stickPath: nil, lastApply: "no stick", noStickAtBoot: true, registration: "none",
                                       registeredAt: nil, services: "none", pid: getpid(), pidStart: RuntimeState.startTime(of: getpid()))
            running.lastApplyResult = "no_stick"
            running.save(paths: paths)
            // The hourly timer asks the relay nothing without a profile, nor on a trial boot (slot a,
            // the fallback, must stay as it is), and changes nothing.
            var before = treeIdentity(root)
            let noProfile = try runTool("edgekit-agent", ["update", "--from-relay", "--scheduled", "--root", root])
            #expect(noProfile.status == 0 && noProfile.stdout == "update: not asking the relay now: no profile is applied, so this router knows no relay to ask\n",
                    "\(noProfile)")
            #expect(treeIdentity(root) == before)
            let profile = paths.live(Agent.appliedProfile)
            try FileManager.default.createDirectory(atPath: (profile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: profile, contents: Data("{}".utf8))
            before = treeIdentity(root)
            let onTrial = try runTool("edgekit-agent", ["update", "--from-relay", "--scheduled", "--reboot", "--root", root])
            #expect(onTrial.status == 0
                    && onTrial.stdout == "update: not asking the relay now: this system (version 6) is on its trial boot and not yet blessed; install once it is\n",
                    "\(onTrial)")
            #expect(treeIdentity(root) == before)
            try FileManager.default.removeItem(atPath: profile)
            let kept = try runTool("edgekit-agent", ["update", "--confirm", "--within", "5", "--root", root])
            #expect(kept.status == 0 && kept.stdout.hasPrefix("edgekit-agent: system version 6 (slot b) is healthy on its trial boot after ")
                    && kept.stdout.contains("no profile stick (a spare), the agent running; it is kept"), "\(kept)")
            #expect(try Self.record(root)?.state == .blessed)
            let metrics = AgentMetrics.exposition(AgentStatus.gather(paths: paths), lastApplyResult: nil, now: Date())
            #expect(metrics.contains("edgekit_system_update{version=\"6\",state=\"blessed\"} 1\n"), "\(metrics)")

            // Installed in this boot and not rebooted yet: waiting, not failed.
            try SystemUpdateTests.release(root, version: 5)
            try FileManager.default.createDirectory(atPath: root + "/proc/sys/kernel/random", withIntermediateDirectories: true)
            try Data("0b1e4a1c-0000-4000-8000-000000000001\n".utf8).write(to: URL(fileURLWithPath: root + "/proc/sys/kernel/random/boot_id"))
            try DocumentCoding.encode(UpdateRecord(version: 6, slot: .b, from: 5, state: .trial, installedInBoot: "0b1e4a1c-0000-4000-8000-000000000001"))
                .write(to: URL(fileURLWithPath: state + "/update.json"))
            #expect(SystemUpdate.failedTrial(paths: paths) == nil)
            #expect(try Self.record(root)?.state == .trial)
            // A trial the board gave up on: after a reboot the old system (version 5) runs again and records the failure.
            try Data("0b1e4a1c-0000-4000-8000-000000000002\n".utf8).write(to: URL(fileURLWithPath: root + "/proc/sys/kernel/random/boot_id"))
            #expect(try runTool("edgekit-agent", ["status", "--root", root]).stdout
                .contains("\nupdate        version 6 into slot b (from 5): failed its trial boot: not blessed on its trial boot; the board booted version 5 again\n"))
            let line = SystemUpdate.failedTrial(paths: paths)
            #expect(line == "system version 6 (slot b) failed its trial boot: not blessed on its trial boot; the board booted version 5 again; running version 5")
            #expect(try Self.record(root)?.state == .failed)
            #expect(SystemUpdate.failedTrial(paths: paths) == line, "said at every start until the next install")
            // A trial that judged itself failed (the health unit recorded why) is said with its reason.
            try DocumentCoding.encode(UpdateRecord(version: 6, slot: .b, from: 5, state: .failed, reason: "no relay answered"))
                .write(to: URL(fileURLWithPath: state + "/update.json"))
            #expect(SystemUpdate.failedTrial(paths: paths) == "system version 6 (slot b) failed its trial boot: no relay answered; running version 5")
        }
    }
}
