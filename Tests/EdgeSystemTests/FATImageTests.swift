import EdgeSystem
import Foundation
import Testing
import TestSupport

/// The FAT helper as the ESP uses it: nested folders, fixed file and folder times, same bytes every time.
@Suite(.requiresTool("mkfs.vfat", "mmd", "mcopy")) struct FATImageTests {
    @Test func foldersFilesAndTimesAreReproducible() throws {
        try TemporaryDirectory.with { temporary in
            let dir = temporary.path
            var environment = ProcessInfo.processInfo.environment
            // As the ESP is made: mtools stamps folders with SOURCE_DATE_EPOCH, not the clock, so two
            // images made seconds apart (a loaded machine) are still the same bytes.
            environment["TZ"] = "UTC"
            environment["SOURCE_DATE_EPOCH"] = "1700000000"
            let payload = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 3) })
            func make(_ name: String) throws -> String {
                let image = try FATImage.format(dir + "/" + name, bytes: 40 << 20, bits: 32, label: "EFI", volumeID: "EDC0BE01",
                                                environment: environment)
                try image.makeFolders(["::/EFI", "::/EFI/BOOT"])
                try image.add([("::/EFI/BOOT/BOOTX64.EFI", payload), ("::/loader.conf", Data("timeout 0\n".utf8))],
                              modified: 1_700_000_000)
                return image.path
            }
            let first = try make("a.img")
            #expect(try SystemCommand.run("mtype", ["-i", first, "::/EFI/BOOT/BOOTX64.EFI"]).stdout == payload)
            let listing = try SystemCommand.run("mdir", ["-i", first, "::/EFI/BOOT"], environment: environment).output
            #expect(listing.contains("2023-11-14"), "\(listing)")
            Thread.sleep(forTimeInterval: 1.1)  // a second later: a clock time would differ
            let second = try make("b.img")
            #expect(FileManager.default.contents(atPath: first) == FileManager.default.contents(atPath: second))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            #expect(leftovers == ["a.img", "b.img"], "scratch folders are removed")
        }
    }
}
