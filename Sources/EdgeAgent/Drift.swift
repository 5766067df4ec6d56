#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// One live file that no longer is what the applied generation's manifest says: its link through
/// `current` replaced or gone, or the generation's own copy changed (an editor writes through the
/// link), chmod-ed or chown-ed.
public struct DriftedFile: Codable, Sendable, Equatable {
    public var path: String
    /// What differs, in words; never the content (the WireGuard key is compared, not shown).
    public var problems: [String]
    /// The generation's own copy is as recorded (bytes, mode, owner): only the live link moved.
    var copyIntact: Bool

    enum CodingKeys: String, CodingKey { case path, problems }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        problems = try c.decode([String].self, forKey: .problems)
        copyIntact = false
    }

    init(path: String, problems: [String], copyIntact: Bool) {
        self.path = path
        self.problems = problems
        self.copyIntact = copyIntact
    }

    public var line: String { "\(path): \(problems.joined(separator: "; "))" }
}

/// What `status` knows about drift: nothing applied, a generation without a manifest to compare
/// with, or the list of drifted files (empty: none).
public enum DriftCheck: Sendable, Equatable {
    case nothingApplied
    case noManifest(generation: Int)
    case checked(generation: Int, files: [DriftedFile])

    /// The line for a generation that cannot be checked.
    public static func noManifestLine(_ generation: Int) -> String {
        "generation \(generation) has no manifest; run apply from the stick once"
    }
}

extension GenerationStore {
    /// Compares every file of the current generation's manifest with what is live: the link at the
    /// live path, and the generation's copy behind it (bytes by SHA-256, mode, owner).
    public func drift() -> DriftCheck {
        guard let number = number(ofLink: paths.current) else { return .nothingApplied }
        guard let manifest = manifest(number) else { return .noManifest(generation: number) }
        return .checked(generation: number, files: drift(of: Generation(number: number, manifest: manifest)))
    }

    func drift(of generation: Generation) -> [DriftedFile] {
        generation.manifest.files.sorted { $0.path < $1.path }.compactMap { entry in
            var problems: [String] = []
            let copy = paths.generation(generation.number) + "/files" + entry.path
            let copyProblems = Self.compare(copy, with: entry)
            let live = paths.live(entry.path)
            var info = stat()
            if lstat(live, &info) != 0 {
                problems.append("missing")
            } else if (info.st_mode & S_IFMT) == S_IFLNK {
                let target = DurableFiles.readLink(live) ?? "?"
                if target != Self.linkTarget(for: entry.path) {
                    problems.append("a link to \(target), not to generation \(generation.number)'s file")
                }
            } else {
                let kind = (info.st_mode & S_IFMT) == S_IFREG ? "a regular file" : (info.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "a special file"
                var words = "replaced by \(kind), not the link to generation \(generation.number)'s file"
                if (info.st_mode & S_IFMT) == S_IFREG {
                    words += Self.compare(live, with: entry).contains("content differs") ? " (content differs)" : " (same content)"
                }
                problems.append(words)
            }
            // The generation's copy is what the link shows (and what a repair can reuse when intact).
            problems += copyProblems.map { problem in
                problem == "missing" ? "missing from generation \(generation.number)" : problem
            }
            guard !problems.isEmpty else { return nil }
            return DriftedFile(path: entry.path, problems: Self.unique(problems),
                               copyIntact: copyProblems.isEmpty)
        }
    }

    /// Differences between the regular file at `path` (not followed) and a manifest entry.
    static func compare(_ path: String, with entry: GenerationManifest.Entry) -> [String] {
        var info = stat()
        guard lstat(path, &info) == 0 else { return ["missing"] }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return ["not a regular file"] }
        var problems: [String] = []
        if sha256(ofFileAt: path) != entry.sha256 { problems.append("content differs") }
        if UInt16(info.st_mode & 0o7777) != entry.mode {
            problems.append("mode \(octal(UInt16(info.st_mode & 0o7777))), expected \(octal(entry.mode))")
        }
        if info.st_uid != entry.uid || info.st_gid != entry.gid {
            problems.append("owner \(info.st_uid):\(info.st_gid), expected \(entry.uid):\(entry.gid)")
        }
        return problems
    }

    /// The bytes of a regular file (links not followed), or nil.
    static func regularFileContents(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return data }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    static func sha256(ofFileAt path: String) -> String? {
        regularFileContents(path).map(DurableFiles.sha256)
    }

    static func octal(_ mode: UInt16) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func unique(_ list: [String]) -> [String] {
        var seen = Set<String>()
        return list.filter { seen.insert($0).inserted }
    }
}
