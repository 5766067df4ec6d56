@testable import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// `pc-bios` under legacy BIOS tries and keeps a system slot with GRUB (docs/updates.md, "Trial
/// boot under legacy BIOS"): the script is checked by GRUB's own `grub-script-check`, the
/// environment block by `grub-editenv`, both ways. The boots are UpdateBootTests.
@Suite(.requiresTool("grub-script-check", "grub-editenv"))
struct GrubTrialTests {
    func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-grub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try body(dir)
    }

    @Test func theScriptPassesGrubScriptCheck() throws {
        try withTemporaryDirectory { dir in
            let script = dir.appendingPathComponent("grub.cfg").path
            let options = ImageBuilder.kernelOptions(.pcBIOS)
            try GrubPC.configuration(options: options).write(toFile: script, atomically: true, encoding: .utf8)
            let checked = try system("grub-script-check", [script])
            #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
            // Both slots' kernels, each with its own root; the image's options when grubenv has none.
            let text = try String(contentsOfFile: script, encoding: .utf8)
            #expect(text.contains("linux /b/vmlinuz root=PARTUUID=\(SystemSlot.b.partitionUUID) $edgekit_b_options"))
            #expect(text.contains("linux /vmlinuz root=PARTUUID=\(SystemSlot.a.partitionUUID) $edgekit_a_options"))
            #expect(text.contains("set edgekit_a_options=\"\(options)\""))
            #expect(SystemSlot.a.partitionUUID == DiskLayout.rootUUID && SystemSlot.b.partitionUUID == DiskLayout.rootBUUID)
            // The check can fail: a script missing its `fi` does.
            try text.replacingOccurrences(of: "\tfi\n", with: "\n").write(toFile: script, atomically: true, encoding: .utf8)
            #expect(try system("grub-script-check", [script]).status != 0)
        }
    }

    @Test func theEnvironmentBlockIsGrubsOwnFormat() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("grubenv").path
            // The image's block, as grub-editenv lists it.
            let initial = try #require(GrubPC.initialEnvironment.encoded)
            #expect(initial.count == 1024)
            try Data(initial).write(to: URL(fileURLWithPath: file))
            #expect(try system("grub-editenv", [file, "list"]).stdout == "edgekit_slot=a\n")
            // What an install writes, with spaces and a backslash in a value.
            var environment = GrubPC.initialEnvironment
            environment["edgekit_b_options"] = "rw console=ttyS0,115200 x=\\y"
            environment["edgekit_trial"] = "b"
            try Data(try #require(environment.encoded)).write(to: URL(fileURLWithPath: file))
            #expect(try system("grub-editenv", [file, "list"]).stdout
                    == "edgekit_slot=a\nedgekit_b_options=rw console=ttyS0,115200 x=\\y\nedgekit_trial=b\n")
            // What GRUB's save_env leaves (the same code as grub-editenv): read back exactly.
            #expect(try system("grub-editenv", [file, "set", "edgekit_trial="]).status == 0)
            let saved = try #require(GrubEnvironment(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: file)))))
            #expect(saved["edgekit_trial"] == "" && saved["edgekit_b_options"] == "rw console=ttyS0,115200 x=\\y" && saved["edgekit_slot"] == "a")
            // Too much for 1024 bytes: refused rather than cut; not a block: nil.
            environment["edgekit_a_options"] = String(repeating: "o", count: 1000)
            #expect(environment.encoded == nil)
            #expect(GrubEnvironment(bytes: Array(repeating: 0x23, count: 1024)) == nil)
            #expect(GrubEnvironment(bytes: Array(initial.prefix(1000))) == nil)
        }
    }
}
