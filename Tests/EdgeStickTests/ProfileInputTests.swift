import EdgeErrors
import EdgeStick
import EdgeSystem
import Foundation
import TestSupport
import Testing

/// The one sniffing function, the bounded tool runner and the FAT helper, against the real tools
/// (mkfs.vfat, mtools, mkfs.ext4, debugfs, blkid).
@Suite(.requiresTool("mkfs.vfat", "mtools", "mkfs.ext4", "debugfs", "blkid")) struct ProfileInputTests {
    @Test func everyKindOfInputIsToldApart() throws {
        try withTemporaryDirectory { dir in
            let age = dir + "/profile.age"
            try Data("age-encryption.org/v1\n-> X25519 abc\n".utf8).write(to: URL(fileURLWithPath: age))
            let empty = dir + "/empty"
            _ = FileManager.default.createFile(atPath: empty, contents: nil)
            let blank = dir + "/blank.img"
            _ = FileManager.default.createFile(atPath: blank, contents: nil)
            #expect(truncate(blank, 1 << 20) == 0)
            let garbage = dir + "/garbage"
            try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }).write(to: URL(fileURLWithPath: garbage))
            let fifo = dir + "/fifo"
            #expect(mkfifo(fifo, 0o600) == 0)
            let stick = dir + "/stick.img"
            try ProfileStick.build(profile: Data("age-encryption.org/v1\n".utf8), readme: "hi", output: stick, volumeID: 0x1234_5678)

            #expect(try ProfileInput.sniff(dir + "/nothing") == .missing)
            #expect(try ProfileInput.sniff(dir) == .folder)
            #expect(try ProfileInput.sniff(age) == .sealedFile)
            #expect(try ProfileInput.sniff(empty) == .sealedFile)
            #expect(try ProfileInput.sniff(blank) == .blank)
            #expect(try ProfileInput.sniff(garbage) == .otherFile(size: 5000))
            #expect(try ProfileInput.sniff(fifo) == .special(kind: "FIFO"))
            #expect(try ProfileInput.sniff(stick) == .filesystem(type: "vfat", label: "EDGEPROFILE"))
        }
    }

    @Test func aStickImageRoundTripsOnFATAndExt4() throws {
        try withTemporaryDirectory { dir in
            let profile = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0) })
            let fat = dir + "/fat.img"
            try ProfileStick.build(profile: profile, readme: "readme", output: fat, volumeID: 1)
            let read = try ProfileStick.readProfile(at: fat)
            #expect(read.sealed == profile)
            #expect(read.source == fat)

            let folder = dir + "/contents"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try profile.write(to: URL(fileURLWithPath: folder + "/profile.age"))
            let ext = dir + "/ext.img"
            _ = FileManager.default.createFile(atPath: ext, contents: nil)
            #expect(truncate(ext, 8 << 20) == 0)
            #expect(try SystemCommand.run("mkfs.ext4", ["-q", "-F", "-L", "EDGEPROFILE", "-d", folder, ext]).succeeded)
            #expect(try ProfileStick.readProfile(at: ext).sealed == profile)
            let fromFolder = try ProfileStick.readProfile(at: folder)
            #expect(fromFolder.sealed == profile)
            #expect(fromFolder.source == folder + "/profile.age")
        }
    }

    /// A FAT directory entry that claims more than the file's clusters hold: mtype stops early and
    /// exits 0, so only comparing the two finds the damage.
    @Test func aDirectoryEntryLongerThanItsClustersIsDamage() throws {
        try withTemporaryDirectory { dir in
            let image = dir + "/stick.img"
            try ProfileStick.build(profile: Data(repeating: 0x61, count: 3000), readme: "r", output: image, volumeID: 2)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: image))
            let entry = try #require(bytes.firstRange(of: Data("PROFILE AGE".utf8)))
            bytes.replaceSubrange((entry.lowerBound + 28)..<(entry.lowerBound + 32), with: [0x50, 0xC3, 0x00, 0x00])  // 50000
            try bytes.write(to: URL(fileURLWithPath: image))
            expectCode("stick.damaged") { _ = try ProfileStick.readProfile(at: image) }
        }
    }

    @Test func aToolThatPrintsTooMuchIsStoppedAtTheLimit() throws {
        let result = try SystemCommand.runBounded("yes", [], outputLimit: 100_000)
        #expect(result.exceeded)
        #expect(result.stdout.count == 100_000)
        #expect(result.signal == SIGKILL)
        let quiet = try SystemCommand.runBounded("sh", ["-c", "printf 'one\\ntwo\\n' >&2; exit 3"], outputLimit: 10)
        #expect(!quiet.exceeded && quiet.status == 3 && quiet.reason() == "one")
    }

    @Test func controlCharactersAreEscaped() {
        #expect(Printable.escaped("a\nb\u{1b}[2J\t\\") == "a\\nb\\u{1b}[2J\\t\\\\")
        #expect(StickError.wrongLabel("s\n", found: "X\u{7f}").description == "stick s\\n is labelled \"X\\u{7f}\", not EDGEPROFILE")
    }
}

func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-stick-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try body(dir)
}
