import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// The example plan with site-b on `arm64-uefi` (site-a stays on `pc-uefi`), built once with
/// `edgekit build`, each board getting its own architecture's agent, and shared by the checks below.
enum Arm64Build {
    static let shared = BuiltOnce("arm64") { dir in
        try buildExamplePlan(siteBOn: "arm64-uefi", in: dir, agents: ["--agent", try staticAgent(), "--agent-arm64", try arm64Agent()])
    }
}

/// The aarch64 agent build.sh cross-builds (scripts/aarch64-agent.sh).
func arm64Agent() throws -> String {
    guard let path = Products.arm64ApplianceAgent else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "EDGEKIT_ARM64_AGENT_BINARY is not set"])
    }
    return path
}

/// What `file` says about the agent inside a disk image: dumped from the ext4 root (partition 2 on
/// every board) with debugfs, no mount.
func agentKind(in image: String, scratch: String) throws -> String {
    let partitions = try PartitionTable.read(image)
    try #require(partitions.count >= 2, "no root partition: \(partitions)")
    let root = partitions[1]
    let dumped = scratch + "/agent-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: dumped) }
    let dump = try system("debugfs", ["-R", "dump /usr/local/bin/edgekit-agent \(dumped)", "\(image)?offset=\(root.start * DiskLayout.sector)"])
    try #require(FileManager.default.fileExists(atPath: dumped), "debugfs dump: \(dump.stderr)")
    return try system("file", ["-b", dumped]).stdout
}

@Suite(.requiresApplianceAgent, .requiresTool("mcopy", "mkfs.vfat", "mke2fs", "sfdisk"))
struct AgentArchitectureTests {
    /// An arm64 board built without the aarch64 agent, or with the x86-64 one in its place, is one
    /// line naming the board, the binary and the option to give, exit 1, before any base is built
    /// and with nothing written.
    @Test func anArm64BoardRefusesAMissingOrWrongAgent() throws {
        try withScratch { dir in
            try writeExamplePlan(siteBOn: "arm64-uefi", to: dir + "/plan")
            let secrets = try makeSecrets(in: dir)
            let common = ["--plan", dir + "/plan", "--secrets", secrets, "--cache", dir + "/cache", "--agent", try staticAgent(),
                          "--overlays", repositoryRoot + "/overlays"]
            let missing = try edgekit(["build", "--out", dir + "/out", "--relay-binary", binaryDirectory + "/edgekit-relay"] + common)
            #expect(missing.status == 1)
            #expect(missing.stderr.split(separator: "\n").count == 1, "one line: \(missing.stderr)")
            #expect(missing.stderr.contains("board arm64-uefi needs edgekit-agent built for arm64") && missing.stderr.contains("--agent-arm64 FILE"),
                    "\(missing.stderr)")
            let wrong = try edgekit(["image", "build", "--site", "site-b", "--out", dir + "/out", "--agent-arm64", try staticAgent()] + common)
            #expect(wrong.status == 1)
            #expect(wrong.stderr.split(separator: "\n").count == 1, "one line: \(wrong.stderr)")
            #expect(wrong.stderr.contains("agent binary \(try staticAgent()) is built for x86-64, but board arm64-uefi runs aarch64"), "\(wrong.stderr)")
            // The x86-64 boards refuse the aarch64 agent the same way.
            if let arm64 = Products.arm64ApplianceAgent {
                let swapped = try edgekit(["image", "build", "--site", "site-a", "--out", dir + "/out"] + common + ["--agent", arm64])
                #expect(swapped.status == 1)
                #expect(swapped.stderr.contains("is built for aarch64, but board pc-uefi runs x86-64; give the amd64 agent with --agent FILE"),
                        "\(swapped.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"), "nothing written")
            let cached = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/cache")) ?? []
            #expect(!cached.contains { $0.hasPrefix("base-") && !$0.hasSuffix(".lock") }, "no base begun: \(cached)")
        }
    }
}

@Suite(.serialized, .requiresApplianceAgent, .requiresArm64ApplianceAgent,
       .requiresTool("mmdebstrap", "mcopy", "mkfs.vfat", "mke2fs", "sfdisk", "file", "qemu-system-aarch64", "qemu-aarch64-static"), .slow)
struct Arm64ImageTests {
    /// site-b's image is the arm64-uefi disk: the GPT of pc-uefi with the arm64 root partition type,
    /// systemd-boot for aarch64 as `EFI/BOOT/BOOTAA64.EFI`, the serial console on the PL011, and the
    /// aarch64 agent in its root, while site-a of the same build keeps the x86-64 one. A second
    /// build of site-b is identical.
    @Test func arm64UEFIImageHasTheArm64LoaderRootAndAgent() throws {
        let dir = try Arm64Build.shared.build()
        let out = dir + "/out"
        let verify = try system("sfdisk", ["--verify", out + "/site-b.img"])
        #expect(verify.status == 0 && verify.stdout.contains("No errors detected"), "sfdisk --verify: \(verify.stdout)")
        let partitions = try PartitionTable.read(out + "/site-b.img")
        #expect(partitions.map(\.name) == ["esp", "edgekit-root", "edgekit-site", "edgekit-root-b"])
        #expect(partitions[1].type.uppercased() == "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "root, 64-bit ARM: \(partitions[1])")
        #expect(try PartitionTable.read(out + "/site-a.img")[1].type.uppercased() == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")

        let esp = dir + "/arm64-esp.vfat"
        defer { try? FileManager.default.removeItem(atPath: esp) }
        try PartitionTable.copy(partitions[0], of: out + "/site-b.img", to: esp)
        let loader = dir + "/BOOTAA64.EFI"
        defer { try? FileManager.default.removeItem(atPath: loader) }
        #expect(try system("mcopy", ["-n", "-i", esp, "::/EFI/BOOT/BOOTAA64.EFI", loader]).status == 0)
        let loaderKind = try system("file", ["-b", loader]).stdout
        #expect(loaderKind.contains("EFI application") && loaderKind.contains("Aarch64"), "systemd-boot for aarch64: \(loaderKind)")
        let entry = try system("mtype", ["-i", esp, "::/loader/entries/edgekit-a.conf"]).stdout
        #expect(entry.contains("options \(ImageBuilder.kernelCommandLine(.arm64UEFI))\n") && entry.contains("console=ttyAMA0,115200"), "\(entry)")
        let kernel = dir + "/vmlinuz"
        defer { try? FileManager.default.removeItem(atPath: kernel) }
        #expect(try system("mcopy", ["-n", "-i", esp, "::/vmlinuz", kernel]).status == 0)
        let kernelKind = try system("file", ["-b", kernel]).stdout
        #expect(kernelKind.contains("Aarch64") || kernelKind.contains("ARM64"), "the arm64 kernel: \(kernelKind)")

        #expect(try agentKind(in: out + "/site-b.img", scratch: dir).contains("ARM aarch64"), "the aarch64 agent on arm64-uefi")
        #expect(try agentKind(in: out + "/site-a.img", scratch: dir).contains("x86-64"), "the x86-64 agent on pc-uefi")

        try expectSiteBRebuildsIdentically(in: dir, agents: ["--agent", try staticAgent(), "--agent-arm64", try arm64Agent()], board: "arm64-uefi")
    }

    /// One boot under qemu's `virt` machine (software emulation, Cortex-A72, AAVMF), three checks:
    /// systemd-boot starts the arm64 kernel, the aarch64 agent says at boot that there is no
    /// stick, and a stick plugged in later (USB disk hot-plugged on an xHCI controller) is applied
    /// without a reboot, every service coming up.
    @Test(.timeLimit(.minutes(25))) func arm64UEFIImageBootsAndAppliesALateStick() throws {
        let dir = try Arm64Build.shared.build()
        let plug = try LateStick.make(plan: dir + "/plan", in: dir)
        let prompt = LateStick.prompt, applied = LateStick.applied
        let boot = try EmulatedBoot.run(dir + "/out/site-b.img", Board.arm64UEFI.emulation[0], scratch: dir, name: "arm64", limit: 1200,
                                        extra: LateStick.devices, after: (prompt, plug), waitingFor: [EmulatedBoot.noStickLine, prompt, applied])
        print("boot arm64-uefi (virt, AAVMF): agent line after \(boot.seconds(EmulatedBoot.noStickLine)) s, \"\(prompt)\" after "
              + "\(boot.seconds(prompt)) s, stick applied after \(boot.seconds(applied)) s under emulation")
        let tail = "console tail: \(boot.console.suffix(3000))\nmonitor: \(boot.monitor.joined(separator: "\n"))"
        #expect(boot.console.contains("Linux version") && boot.console.contains("aarch64"), "the arm64 kernel started; \(tail)")
        #expect(boot.console.contains("efi: EFI v"), "started by UEFI firmware; \(tail)")
        #expect(boot.console.contains(EmulatedBoot.noStickLine), "\(tail)")
        #expect(boot.console.contains(prompt) && LateStick.named(boot.console), "a login prompt, the machine named after the site; \(tail)")
        #expect(boot.console.contains(applied), "the stick plugged in after boot was applied; \(tail)")
        #expect(!boot.console.contains("did not come up with generation"), "every service came up; \(tail)")
    }
}
