import EdgeSystem
import Foundation
import Testing

/// `SystemCommand` starts tools with posix_spawn (EdgeSystem's SpawnedTool, no Foundation `Process`):
/// output and status come back whole, input goes in, and a tool gets only its three streams.
@Suite struct SystemCommandTests {
    @Test func outputErrorsAndStatusComeBack() throws {
        let result = try SystemCommand.run("sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(result.status == 3 && result.output == "out\n" && result.errorText == "err")
    }

    @Test func inputLargerThanAPipeGoesInWhileOutputComesOut() throws {
        // 1 MiB through `cat`: more than a pipe holds, so input and output must flow at once.
        let input = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let result = try SystemCommand.run("cat", [], stdin: input)
        #expect(result.succeeded && result.stdout == input)
    }

    @Test func aToolThatExitsWithoutReadingItsInputDoesNotTakeUsDown() throws {
        // SIGPIPE on the writer would kill the test process; it is ignored, the write fails quietly.
        let result = try SystemCommand.run("true", [], stdin: Data(count: 4 << 20))
        #expect(result.succeeded)
    }

    @Test func aToolInheritsNoDescriptorButItsThreeStreams() throws {
        // A descriptor without O_CLOEXEC, as a socket or device opened carelessly would be, at a
        // number no tool opens by itself.
        let null = open("/dev/null", O_RDONLY)
        let fd = fcntl(null, F_DUPFD, 77)
        close(null)
        #expect(fd >= 77)
        defer { close(fd) }
        let listing = try SystemCommand.run("ls", ["/proc/self/fd"])
        let open = listing.output.split(separator: "\n").compactMap { Int32($0) }
        #expect(listing.succeeded && open.contains(0) && !open.contains(fd), "the tool has \(open) open (ours: \(fd))")
    }

    @Test func aMissingToolIsNamed() {
        #expect(throws: SystemCommandError.missingTool("no-such-tool-edgekit")) {
            try SystemCommand.run("no-such-tool-edgekit", [])
        }
    }

    @Test func aSignalledToolIsReportedAsSignalled() throws {
        let result = try SystemCommand.runBounded("sh", ["-c", "kill -9 $$"], outputLimit: 100)
        #expect(result.signal == 9 && result.status == 137 && !result.succeeded)
    }
}
