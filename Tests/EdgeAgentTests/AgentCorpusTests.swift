import EdgeCrypto
import Foundation
import Testing

/// Every bad stick or profile of the fail-closed corpus, given to `edgekit-agent apply`: exit 1,
/// the corpus's own line, nothing on stdout, and not one byte changed under --root.
@Suite struct AgentCorpusTests {
    @Test(arguments: BadProfileCorpus.names)
    func badStickChangesNothing(_ name: String) throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let caseDirectory = scratch.dir.appendingPathComponent("case")
            try FileManager.default.createDirectory(at: caseDirectory, withIntermediateDirectories: true)
            if name == "older serial than the last applied" {
                // The device applied serial 1001 before; the corpus's stick is serial 1000.
                let newer = try scratch.stickFolder("newer", serial: 1001)
                let first = try scratch.apply(root, newer)
                try #require(first.status == 0, "\(first)")
            }
            var (path, _, expected) = try BadProfileCorpus.make(name, in: caseDirectory)
            // A bare profile.age is given to the agent as a mounted stick: its folder.
            var stick = path
            if path.hasSuffix("/profile.age") { stick = (path as NSString).deletingLastPathComponent }
            switch name {
            case "10 MB of garbage", "300 KB of garbage":
                // Read from a stick, the size cap is the stick reader's (it stops at 256 KiB + 1).
                expected = "stick \(stick): profile.age is larger than 262144 bytes: not a profile"
            case "missing file":
                expected = "stick \(path) does not exist"
            default:
                break
            }
            let before = treeHash(root)
            let result = try scratch.apply(root, stick, environment: try BadProfileCorpus.environment(name, in: caseDirectory))
            #expect(result.status == 1, "\(name): \(result)")
            #expect(result.stderrLines == [expected], "\(name)")
            #expect(result.stdout.isEmpty, "\(name): \(result)")
            #expect(treeHash(root) == before, "\(name): the tree under --root changed")
        }
    }

    /// Sticks the agent reads itself (folders, images) whose profile.age is not a file. Agent-only:
    /// `edgekit profile inspect` takes a file, so these are not in the shared corpus.
    static let notAFile = ["folder whose profile.age is a directory", "folder whose profile.age is a FIFO",
                           "stick image whose profile.age is a directory"]

    @Test(arguments: notAFile)
    func profileThatIsNotAFile(_ name: String) throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = scratch.path("stick")
            try FileManager.default.createDirectory(atPath: stick, withIntermediateDirectories: true)
            var given = stick
            let expected: String
            switch name {
            case "folder whose profile.age is a directory":
                try FileManager.default.createDirectory(atPath: stick + "/profile.age", withIntermediateDirectories: true)
                expected = "stick \(stick): profile.age is a directory, not a file; put the sealed profile.age from `edgekit profile seal` there"
            case "folder whose profile.age is a FIFO":
                // Nobody ever writes to it: a blocking open or read would wait forever.
                try #require(mkfifo(stick + "/profile.age", 0o644) == 0)
                expected = "stick \(stick): profile.age is a FIFO, not a file; put the sealed profile.age from `edgekit profile seal` there"
            default:
                given = stick + "/stick.img"
                try BadProfileCorpus.makeStick(given, label: "EDGEPROFILE", files: [:])
                #expect(try runSystem("mmd", ["-i", given, "::/profile.age"]).status == 0)
                expected = "stick \(given): profile.age is a directory, not a file; put the sealed profile.age from `edgekit profile seal` there"
            }
            let before = treeHash(root)
            let result = try runBounded(["apply", "--root", root, "--stick", given])
            #expect(result.status == 1, "\(name): \(result)")
            #expect(result.stderrLines == [expected], "\(name): \(result)")
            #expect(result.stdout.isEmpty, "\(name): \(result)")
            #expect(treeHash(root) == before, "\(name): the tree under --root changed")
        }
    }

    /// `edgekit-agent ARGS`, killed (and failed) if it has not ended within 30 s: a hang is a failure, not a stuck run.
    func runBounded(_ arguments: [String]) throws -> ToolResult {
        let agent = try startProgram(binDirectory.appendingPathComponent("edgekit-agent").path, arguments)
        defer { agent.discard() }
        let ended = agent.wait(seconds: 30)
        try #require(ended, "edgekit-agent \(arguments.joined(separator: " ")) still running after 30 s: \(agent.stderr)")
        return ToolResult(status: agent.exitCode ?? -(agent.signal ?? 0), signalled: agent.signal != nil,
                          stdout: agent.stdout, stderr: agent.stderr)
    }

    /// Issue "Hardening" 1: a stick whose profile.age is huge costs the agent no more memory than one
    /// just over the cap: refused from its directory entry, and any read is cut at 256 KiB + 1.
    @Test(arguments: ["ext4, 1 GiB sparse", "FAT, 64 MiB"])
    func aHugeProfileIsRefusedInBoundedMemory(_ kind: String) throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let caseDirectory = scratch.dir.appendingPathComponent("case")
            try FileManager.default.createDirectory(at: caseDirectory, withIntermediateDirectories: true)
            let justOver = try BadProfileCorpus.make("FAT stick with a 300 KB profile", in: caseDirectory).path
            let huge = scratch.path("huge.img")
            if kind.hasPrefix("ext4") {
                try BadProfileCorpus.makeExtStick(huge, in: scratch.dir) { folder in
                    _ = FileManager.default.createFile(atPath: folder + "/profile.age", contents: nil)
                    #expect(truncate(folder + "/profile.age", 1 << 30) == 0)
                }
            } else {
                _ = FileManager.default.createFile(atPath: huge, contents: nil)
                #expect(truncate(huge, 80 << 20) == 0)
                #expect(try runSystem("mkfs.vfat", ["-n", "EDGEPROFILE", huge]).status == 0)
                let source = scratch.path("big")
                _ = FileManager.default.createFile(atPath: source, contents: nil)
                #expect(truncate(source, 64 << 20) == 0)
                #expect(try runSystem("mcopy", ["-i", huge, source, "::/profile.age"]).status == 0)
            }
            func peak(_ stick: String) throws -> (ToolResult, Int) {
                let report = scratch.path("rss-\(UUID().uuidString)")
                let result = try runProgram("/usr/bin/time", ["-f", "%M", "-o", report,
                                                              binDirectory.appendingPathComponent("edgekit-agent").path,
                                                              "apply", "--root", root, "--stick", stick])
                let text = try String(contentsOfFile: report, encoding: .utf8)
                let kilobytes = try #require(text.split(separator: "\n").last.flatMap { Int($0) }, "time -o: \(text)")
                return (result, kilobytes)
            }
            let (baseline, baselineKB) = try peak(justOver)
            let (result, hugeKB) = try peak(huge)
            #expect(baseline.stderrLines == ["stick \(justOver): profile.age is larger than 262144 bytes: not a profile"])
            #expect(result.status == 1, "\(result)")
            #expect(result.stderrLines == ["stick \(huge): profile.age is larger than 262144 bytes: not a profile"])
            #expect(hugeKB <= baselineKB + 16 * 1024, "\(kind): peak RSS \(hugeKB) KB against \(baselineKB) KB for a 300 KB profile")
        }
    }

    @Test func missingImageFilesAreNamed() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", serial: 1000)
            try FileManager.default.removeItem(atPath: root + "/etc/edgekit/site.json")
            let before = treeHash(root)
            let result = try scratch.apply(root, stick)
            #expect(result.status == 1)
            #expect(result.stderrLines == ["\(root)/etc/edgekit/site.json: missing or unreadable; the image was not stamped for a site"])
            #expect(treeHash(root) == before)
        }
    }
}
