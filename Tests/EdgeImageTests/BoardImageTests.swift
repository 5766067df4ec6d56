import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// The example plan with site-b on `pc-bios` and site-a on the default `pc-uefi`, built once with
/// `edgekit build` (both boards in one run) and shared by the checks below.
enum MixedBoardBuild {
    static let shared = BuiltOnce("boards") { dir in
        try buildExamplePlan(siteBOn: "pc-bios", in: dir, agents: ["--agent", try staticAgent()])
    }
}

/// Writes the example plan with `board: BOARD` on site-b (site-a stays on the default `pc-uefi`)
/// to `folder/plan.yaml`.
func writeExamplePlan(siteBOn board: String, to folder: String) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let example = try String(contentsOfFile: repositoryRoot + "/profiles/example/plan.yaml", encoding: .utf8)
    let plan = example.replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    board: \(board)\n")
    guard plan != example else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "site-b's vrrp_id line moved"]) }
    try plan.write(toFile: folder + "/plan.yaml", atomically: true, encoding: .utf8)
}

/// The example plan with site-b on `board`, written to `dir/plan` and built as CI builds a plan
/// (`edgekit build`: every site's image, every stick, the relay bundle) into `dir/out`, with the
/// test secrets in `dir/secrets` and `agents` (`--agent`, `--agent-arm64`).
func buildExamplePlan(siteBOn board: String, in dir: String, agents: [String]) throws {
    try writeExamplePlan(siteBOn: board, to: dir + "/plan")
    let result = try edgekit(["build", "--plan", dir + "/plan", "--secrets", try makeSecrets(in: dir), "--out", dir + "/out",
                              "--cache", imageCache, "--overlays", repositoryRoot + "/overlays", "--serial", "7",
                              "--relay-binary", binaryDirectory + "/edgekit-relay"] + agents)
    guard result.status == 0 else {
        Issue.record("edgekit build of the plan with site-b on \(board) failed: \(result.stderr.suffix(2000))")
        throw CocoaError(.fileWriteUnknown)
    }
}

/// Builds site-b of the plan in `dir/plan` again, into a folder of its own, and expects the
/// `SHA256SUMS` of the first build in `dir/out`: the board's images are reproducible.
func expectSiteBRebuildsIdentically(in dir: String, agents: [String], board: String) throws {
    let again = dir + "/again"
    defer { try? FileManager.default.removeItem(atPath: again) }
    let rebuilt = try edgekit(["image", "build", "--plan", dir + "/plan", "--secrets", dir + "/secrets", "--site", "site-b", "--out", again,
                               "--cache", imageCache, "--overlays", repositoryRoot + "/overlays"] + agents)
    #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
    let first = try String(contentsOfFile: dir + "/out/site-b.SHA256SUMS", encoding: .utf8)
    #expect(try String(contentsOfFile: again + "/site-b.SHA256SUMS", encoding: .utf8) == first, "\(board) builds are reproducible")
}

/// Reads `count` bytes of `file` at byte `offset`.
func bytes(of file: String, at offset: Int, count: Int) throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    return [UInt8](try handle.read(upToCount: count) ?? Data())
}

@Suite(.serialized, .requiresApplianceAgent, .requiresTool("mmdebstrap", "mcopy", "mkfs.vfat", "mke2fs", "sfdisk", "qemu-system-x86_64"), .slow)
struct BoardImageTests {
    /// One `edgekit build` makes each site's image for its own board: site-a's is the pc-uefi disk
    /// (three partitions, no boot code in the MBR), site-b's the pc-bios one (GRUB's boot code in
    /// the MBR pointing at core.img in the BIOS boot partition, partition 4, and grub.cfg on the
    /// ESP next to systemd-boot), and a second build of site-b is identical.
    @Test func aPlanWithTwoBoardsBuildsEachSiteOnItsBoard() throws {
        let dir = try MixedBoardBuild.shared.build()
        let out = dir + "/out"
        func partitions(_ image: String) throws -> [[String: Any]] {
            let dump = try system("sfdisk", ["--json", image])
            let json = try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any]
            return ((json?["partitiontable"] as? [String: Any])?["partitions"] as? [[String: Any]]) ?? []
        }
        for image in ["site-a.img", "site-b.img"] {
            let verify = try system("sfdisk", ["--verify", out + "/" + image])
            #expect(verify.status == 0 && verify.stdout.contains("No errors detected"), "sfdisk --verify \(image): \(verify.stdout)")
        }
        let uefi = try partitions(out + "/site-a.img")
        #expect(uefi.map { $0["name"] as? String } == ["esp", "edgekit-root", "edgekit-site", "edgekit-root-b"])
        #expect(try bytes(of: out + "/site-a.img", at: 0, count: 440).allSatisfy { $0 == 0 }, "pc-uefi: no BIOS boot code")

        let bios = try partitions(out + "/site-b.img")
        #expect(bios.map { $0["name"] as? String } == ["esp", "edgekit-root", "edgekit-site", "bios-boot", "edgekit-root-b"])
        let biosBoot = try #require(bios.count == 5 ? bios[3] : nil, "\(bios)")
        #expect((biosBoot["type"] as? String)?.uppercased() == "21686148-6449-6E6F-744E-656564454649", "\(biosBoot)")
        let start = try #require(biosBoot["start"] as? Int)
        #expect(start < (bios[0]["start"] as? Int ?? 0), "the BIOS boot partition lies in front of the ESP")
        // boot.img in the MBR: GRUB's messages, core.img's sector at 0x5c, the partition table kept.
        let mbr = try bytes(of: out + "/site-b.img", at: 0, count: 512)
        #expect(String(decoding: mbr, as: UTF8.self).contains("GRUB "), "GRUB's boot code in the MBR")
        #expect(mbr[0x5c..<0x64].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } == start)
        #expect(mbr[0x1c2] == 0xee && mbr[510] == 0x55 && mbr[511] == 0xaa, "the protective MBR entry and signature stay")
        #expect(mbr[446] == 0x80, "the protective entry is active, for BIOSes that boot only an active partition")
        #expect(try bytes(of: out + "/site-a.img", at: 446, count: 1) == [0], "pc-uefi: the protective entry stays inactive")
        // core.img's first sector (diskboot) lists the rest right after it.
        let diskboot = try bytes(of: out + "/site-b.img", at: start * 512, count: 512)
        #expect(diskboot[500..<508].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } == start + 1)
        #expect(diskboot[508] > 0, "core.img has sectors after its first")
        // The ESP has both boot loaders, GRUB's with the same kernel command line.
        let esp = dir + "/esp.vfat"
        defer { try? FileManager.default.removeItem(atPath: esp) }
        try PartitionTable.copy(try PartitionTable.read(out + "/site-b.img")[0], of: out + "/site-b.img", to: esp)
        let grubConfig = try system("mtype", ["-i", esp, "::/grub/grub.cfg"])
        #expect(grubConfig.status == 0 && grubConfig.stdout.contains("linux /vmlinuz root=PARTUUID=\(DiskLayout.rootUUID) $edgekit_a_options\n")
                && grubConfig.stdout.contains("set edgekit_a_options=\"\(ImageBuilder.kernelOptions(.pcBIOS))\""), "\(grubConfig)")
        // Its environment block: slot A boots (docs/updates.md, "Trial boot under legacy BIOS").
        let grubenv = dir + "/grubenv"
        defer { try? FileManager.default.removeItem(atPath: grubenv) }
        #expect(try system("mcopy", ["-o", "-i", esp, "::/grub/grubenv", grubenv]).status == 0)
        #expect(GrubEnvironment(bytes: try bytes(of: grubenv, at: 0, count: 2048)) == GrubEnvironment([("edgekit_slot", "a")]))
        #expect(try system("mdir", ["-b", "-i", esp, "::/EFI/BOOT"]).stdout.contains("BOOTX64.EFI"))

        let sums = try system("sh", ["-c", "cd '\(out)' && sha256sum -c SHA256SUMS"])
        #expect(sums.status == 0 && sums.stdout.contains("site-b.img: OK"), "sha256sum -c: \(sums.stdout)")
        try expectSiteBRebuildsIdentically(in: dir, agents: ["--agent", try staticAgent()], board: "pc-bios")
    }

    /// The pc-bios image boots to the agent with SeaBIOS (qemu's default firmware, no OVMF) through
    /// GRUB, and the same file with OVMF through systemd-boot: two boots side by side, one core each.
    @Test(.timeLimit(.minutes(10))) func pcBIOSImageBootsWithSeaBIOSAndWithOVMF() throws {
        let dir = try MixedBoardBuild.shared.build()
        let image = dir + "/out/site-b.img"
        let ways = Board.pcBIOS.emulation
        #expect(ways.map(\.firmware) == [.bios, .uefi])
        #expect(!ways[0].arguments.contains { $0.contains("OVMF") || $0 == "-bios" || $0.contains("pflash") }, "SeaBIOS, qemu's own")
        let results = BootResults()
        DispatchQueue.concurrentPerform(iterations: ways.count) { index in
            let way = ways[index]
            results.set(index, Result {
                try EmulatedBoot.run(image, way, scratch: dir, name: "bios-\(index)", cpus: 1, waitingFor: [EmulatedBoot.noStickLine])
            })
        }
        for (index, way) in ways.enumerated() {
            let boot = try results.get(index).get()
            print("boot pc-bios with \(way.firmware.rawValue): agent line after \(boot.seconds(EmulatedBoot.noStickLine)) s under emulation")
            #expect(boot.console.contains(EmulatedBoot.noStickLine), "\(way.firmware.rawValue): console tail: \(boot.console.suffix(3000))")
            // GRUB puts BOOT_IMAGE= first on the kernel's command line; systemd-boot does not, and
            // only under UEFI does the kernel find EFI.
            let viaGRUB = boot.console.contains("Command line: BOOT_IMAGE=/vmlinuz root=PARTUUID=")
            #expect(viaGRUB == (way.firmware == .bios), "\(way.firmware.rawValue): started by \(viaGRUB ? "GRUB" : "systemd-boot")")
            #expect(boot.console.contains("efi: EFI v") == (way.firmware == .uefi), "\(way.firmware.rawValue): firmware seen by the kernel")
        }
    }
}

final class BootResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<EmulatedBoot, any Error>] = [:]
    func set(_ index: Int, _ result: Result<EmulatedBoot, any Error>) { lock.lock(); results[index] = result; lock.unlock() }
    func get(_ index: Int) -> Result<EmulatedBoot, any Error> {
        lock.lock()
        defer { lock.unlock() }
        return results[index] ?? .failure(CocoaError(.featureUnsupported))
    }
}
