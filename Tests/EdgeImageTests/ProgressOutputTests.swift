@testable import EdgeImage
import Foundation
import Testing
import TestSupport

/// A cache holding only the shared test cache's current Debian base (hard links: nothing is
/// copied, and nothing of the base is ever written), so a build into it makes the system level
/// again and shows its long steps: writing the disk image and hashing it.
func scratchCacheWithBase(in dir: String, name: String) throws -> String {
    let base = "base-" + BaseRecipe(sourceDateEpoch: try BaseRecipe.imageFileTime()).cacheKey
    let cache = dir + "/" + name
    try? FileManager.default.removeItem(atPath: cache)
    try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
    let link = try system("cp", ["-al", imageCache + "/" + base, cache + "/" + base])
    #expect(link.status == 0, "cp -al: \(link.stderr)")
    return cache
}

func imageBuildArguments(cache: String, out: String, secrets: String, site: String = "site-b") throws -> [String] {
    ["image", "build", "--plan", repositoryRoot + "/profiles/example", "--secrets", secrets, "--site", site,
     "--out", out, "--cache", cache, "--agent", try staticAgent(), "--overlays", repositoryRoot + "/overlays"]
}

func shellWord(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

@Suite(.serialized) struct ProgressOutputTests {
    /// Not a terminal (CI logs, pipes): exactly one line per step, and not one control character.
    @Test(.requiresApplianceAgent, .slow) func withoutATerminalEveryStepIsOnePlainLine() throws {
        let dir = try SharedImage.shared.build()
        let cache = try scratchCacheWithBase(in: dir, name: "cache-plain")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let out = dir + "/plain-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try edgekit(try imageBuildArguments(cache: cache, out: out, secrets: dir + "/secrets"))
        #expect(result.status == 0, "\(result.stderr)")
        let bytes = Array(result.stderr.utf8)
        #expect(!bytes.contains(0x0d), "no carriage return")
        #expect(!bytes.contains(0x1b), "no escape sequence")
        #expect(!bytes.contains { $0 < 0x20 && $0 != 0x0a }, "no other control character")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        // base (cached), the system level's four steps, the site: one line each, in this order.
        let expected = [
            #"^base [0-9a-f]{16}: cached$"#,
            #"^system [0-9a-f]{16}: overlay tar layer, [0-9]+ entries, .* \([0-9]+\.[0-9] s\)$"#,
            #"^system [0-9a-f]{16}: disk image .* allocated \([0-9]+\.[0-9] s\)$"#,
            #"^system [0-9a-f]{16}: checksums: .* hashed \([0-9]+\.[0-9] s\)$"#,
            #"^system [0-9a-f]{16}: software bill of materials, [0-9]+ Debian packages \([0-9]+\.[0-9] s\)$"#,
            #"^site site-b: site-b\.img .*, site-b\.rootfs\.tar\.zst .*, bmap, site-b\.spdx\.json, site-b\.SHA256SUMS \([0-9]+\.[0-9] s\)$"#,
        ]
        #expect(lines.count == expected.count, "\(lines)")
        for (line, pattern) in zip(lines, expected) {
            #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line) !~ \(pattern)")
        }
        // Reproducible with the system level built anew (in another cache, on another run): the same
        // bytes as the shared image, whose system level came from the shared cache.
        // The image and the tar layer only: the bmap lists the disk's data runs as SEEK_DATA reports
        // them, and a system level built anew on the same machine once gave other runs for the same
        // bytes (seen in a full-suite run; not yet understood, noted in the closing note).
        func contentSums(_ path: String) throws -> [String] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.hasSuffix(".bmap") }
        }
        let again = try contentSums(out + "/SHA256SUMS")
        let shared = try contentSums(dir + "/out/SHA256SUMS")
        #expect(again.count == 3, "the image, the tar layer and the software bill")
        #expect(again == shared, "a fresh system level gives other bytes:\n\(again)\nvs\n\(shared)")
    }

    /// On a terminal (a pseudo-terminal from util-linux `script`): long steps are a bar redrawn in
    /// place with `\r`, with percent and bytes, and every step still ends in its summary line.
    @Test(.requiresApplianceAgent, .slow) func onATerminalLongStepsAreABarRedrawnInPlace() throws {
        let dir = try SharedImage.shared.build()
        let cache = try scratchCacheWithBase(in: dir, name: "cache-tty")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let out = dir + "/tty-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let directory = ProcessInfo.processInfo.environment["EDGEKIT_RELEASE_BIN_DIR"] ?? binaryDirectory
        let command = ([directory + "/edgekit"] + (try imageBuildArguments(cache: cache, out: out, secrets: dir + "/secrets")))
            .map(shellWord).joined(separator: " ") + " >/dev/null"
        let result = try system("script", ["-qec", command, "/dev/null"])
        #expect(result.status == 0, "\(result.stdout)")
        // The terminal turns "\n" into "\r\n"; undo that so every "\r" left is a redraw.
        let output = result.stdout.replacingOccurrences(of: "\r\n", with: "\n")
        let erase = "\u{1B}[K"
        #expect(output.contains("\r") && output.contains(erase))
        let frames = output.split(separator: "\n").flatMap { $0.split(separator: "\r") }.map { $0.replacingOccurrences(of: erase, with: "") }
        let bars = frames.filter { $0.contains("%") && $0.contains("[") }
        // The disk image is written with a byte count and a percentage, the hashing redrawn many times.
        #expect(bars.contains { $0.hasPrefix("system: disk image") && $0.contains(" MB") }, "\(output.prefix(3000))")
        let hashing = bars.filter { $0.hasPrefix("system: checksums") }
        #expect(hashing.count >= 2, "the hashing bar is redrawn: \(hashing)")
        #expect(Set(hashing).count >= 2, "and it moves")
        // A bar never wraps (script's terminal has no size: 80 columns), or "\r" could not redraw it.
        #expect(bars.allSatisfy { $0.count < 80 }, "\(bars.filter { $0.count >= 80 })")
        // Every step still ends in one summary line, drawn over the cleared bar.
        let summaries = output.split(separator: "\n").compactMap { $0.split(separator: "\r").last.map { $0.replacingOccurrences(of: erase, with: "") } }
        for summary in ["overlay tar layer", "disk image", "checksums:", "site site-b: site-b.img"] {
            #expect(summaries.filter { $0.contains(summary) && $0.hasSuffix(" s)") }.count == 1, "summary \(summary): \(summaries)")
        }
    }

    /// mmdebstrap draws bars only on a terminal; what its print_progress writes becomes phases
    /// and percentages, and its lines (not the bars) go to the log.
    @Test func mmdebstrapTerminalOutputBecomesPhasesAndPercentages() {
        var parser = Mmdebstrap.OutputParser()
        let text = "I: automatically chosen mode: root\n"
            + "I: downloading packages with apt...\n"
            + "\u{1B}[2Kdownloading:  12.50 [======>            ]\r"
            + "\u{1B}[2Kdownloading: 100.00 [==================]\r\u{1B}[2Kdone\n"
            + "I: installing remaining packages inside the chroot...\n"
            + "\u{1B}[2Kinstalling:   45.00 [=====>     ]\r"
            + "E: apt-get install failed\n"
        let events = parser.feed(Array(text.utf8)) + parser.flush()
        #expect(events == [
            .line("I: automatically chosen mode: root"), .phase("automatically chosen mode: root"),
            .line("I: downloading packages with apt..."), .phase("downloading packages with apt"),
            .percent(12.5), .percent(100),
            .line("I: installing remaining packages inside the chroot..."), .phase("installing remaining packages inside the chroot"),
            .percent(45),
            .line("E: apt-get install failed"),
        ])
        #expect(parser.lastError == "E: apt-get install failed")
    }

    /// A hook that fails with its own E: line is named by that line, not by mmdebstrap's wrap-up
    /// after it (as mmdebstrap 1.3 printed it when the kept kernel modules missed `mii`).
    @Test func aFailedHooksOwnErrorLineIsTheOneKept() {
        var parser = Mmdebstrap.OutputParser()
        let text = "I: running --customize-hook in shell: sh -c 'set -eu; ...'\n"
            + "E: kept kernel modules need modules left out of kernel 6.12.118+deb13-amd64: mii (needed by r8152) - keep them too\n"
            + "E: setup failed: E: command failed: set -eu; root=$(cd \"$1\" && pwd)\nfor v in *; do\n"
            + "I: main() received signal PIPE: waiting for setup...\nE: mmdebstrap failed to run\n"
        _ = parser.feed(Array(text.utf8)) + parser.flush()
        #expect(parser.lastError == "E: kept kernel modules need modules left out of kernel 6.12.118+deb13-amd64: mii (needed by r8152) - keep them too")
        var alone = Mmdebstrap.OutputParser()
        _ = alone.feed(Array("E: setup failed: E: command failed: false\nE: mmdebstrap failed to run\n".utf8))
        #expect(alone.lastError == "E: setup failed: E: command failed: false", "without a line of the hook's own, mmdebstrap's first is kept")
    }
}
