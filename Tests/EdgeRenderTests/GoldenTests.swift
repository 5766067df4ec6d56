import EdgeModel
import EdgeRender
import Foundation
import Testing

/// Every file of every router of the example plan, of the relay, and of every server of its mesh
/// variant (`Golden/mesh-<server>-<format>/`), byte for byte against `Golden/<name>/<path>`. `EDGEKIT_RECORD_GOLDEN=1 swift test` re-records them, and
/// then fails, so a run that records can never pass.
@Suite("Golden files")
struct GoldenTests {
    static var recording: Bool { ProcessInfo.processInfo.environment["EDGEKIT_RECORD_GOLDEN"] == "1" }

    @Test("rendered files match the golden files")
    func matchesGolden() throws {
        let renderings = try Fixtures.allRenderings() + Fixtures.meshRenderings() + [Fixtures.pinnedPortsRendering()]
        let fileManager = FileManager.default
        if Self.recording {
            try? fileManager.removeItem(at: Fixtures.goldenDirectory)
            for (name, files) in renderings {
                for file in files {
                    let url = Fixtures.goldenDirectory.appendingPathComponent(name + file.path)
                    try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(file.contents.utf8).write(to: url)
                }
            }
            Issue.record("golden files re-recorded; review the diff and run again")
            return
        }

        var expectedPaths: Set<String> = []
        for (name, files) in renderings {
            for file in files {
                let relative = name + file.path
                expectedPaths.insert(relative)
                let url = Fixtures.goldenDirectory.appendingPathComponent(relative)
                guard let data = fileManager.contents(atPath: url.path) else {
                    Issue.record("no golden file \(relative); run EDGEKIT_RECORD_GOLDEN=1 swift test and review it")
                    continue
                }
                let golden = String(decoding: data, as: UTF8.self)
                #expect(file.contents == golden, "\(relative) differs from its golden file:\n\(firstDifference(golden, file.contents))")
            }
        }
        // A golden file nothing renders any more is stale.
        let enumerator = fileManager.enumerator(at: Fixtures.goldenDirectory, includingPropertiesForKeys: [.isRegularFileKey])
        let root = Fixtures.goldenDirectory.standardizedFileURL.path + "/"
        while let url = enumerator?.nextObject() as? URL {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(root.count))
            #expect(expectedPaths.contains(relative), "stale golden file \(relative): nothing renders it")
        }
    }

    /// The first differing line, so a failure shows what changed rather than two whole files.
    func firstDifference(_ golden: String, _ rendered: String) -> String {
        let a = golden.split(separator: "\n", omittingEmptySubsequences: false)
        let b = rendered.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(a.count, b.count) {
            let left = index < a.count ? String(a[index]) : "<end of file>"
            let right = index < b.count ? String(b[index]) : "<end of file>"
            if left != right { return "line \(index + 1):\n  golden:   \(left)\n  rendered: \(right)" }
        }
        return "(same lines)"
    }
}
