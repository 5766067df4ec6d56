import EdgeCrypto
import EdgeErrors
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Reading `profile.age` from a stick's filesystem with the standard tools, straight from the
/// image or device (no mount), in the same steps for FAT and ext4: list the root, pick the one
/// profile, check its type and size in its directory entry, then read it through a pipe that is
/// cut at the size cap. A stick's claims never decide how much memory the reader takes.
protocol StickFilesystem {
    var path: String { get }
    /// The root folder's entries (`.`, `..` and `lost+found` left out).
    func rootEntries() throws(StickError) -> [StickEntry]
    /// At most `SealedProfile.maximumSize + 1` bytes of the file `name` at the root.
    func read(_ name: String) throws(StickError) -> BoundedResult
    /// Lines of the tools' stderr that are not errors (debugfs prints its version there).
    var banner: [String] { get }
    var tool: String { get }
}

/// One directory entry as the filesystem tool lists it.
struct StickEntry: Equatable {
    var name: String
    /// nil for a regular file; "directory", "symbolic link", … otherwise.
    var kind: String?
    /// Bytes, as the directory entry says.
    var size: Int?
}

extension StickFilesystem {
    /// Listings are small (a FAT12 root holds 224 entries); anything longer is damage.
    static var listingLimit: Int { 1 << 20 }

    func readProfile() throws(StickError) -> Data {
        let entries = try rootEntries()
        let name = try ProfileStick.findProfile(in: entries.map(\.name), path)
        guard let entry = entries.first(where: { $0.name == name }) else { throw .noProfile(path) }
        if let kind = entry.kind { throw .profileNotAFile(path, kind: kind) }
        if let size = entry.size, size > SealedProfile.maximumSize { throw .profileTooLarge(path) }
        let result = try read(name)
        if result.exceeded { throw .profileTooLarge(path) }
        // debugfs reports read errors on stderr and still exits 0.
        guard result.succeeded, result.stderrLines(skipping: banner).isEmpty else {
            throw .unreadable(path, "reading \(name): \(tool): \(result.reason(skipping: banner))")
        }
        if let size = entry.size, size != result.stdout.count {
            throw .damaged(path, "\(ProfileStick.profileName) is \(size) bytes by its directory entry, but \(result.stdout.count) could be read")
        }
        return result.stdout
    }

    /// Runs the listing tool, bounded, and returns its stdout or throws its one-line complaint.
    func list(_ tool: String, _ arguments: [String]) throws(StickError) -> String {
        let result: BoundedResult
        do { result = try SystemCommand.runBounded(tool, arguments, outputLimit: Self.listingLimit) } catch { throw .unreadable(path, "\(error)", cause: ErrorCause(error)) }
        if result.exceeded { throw .damaged(path, "its root folder lists more than \(Self.listingLimit) bytes of entries") }
        guard result.succeeded, result.stderrLines(skipping: banner).isEmpty else {
            throw .unreadable(path, "listing it: \(tool): \(result.reason(skipping: banner))")
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }

    func run(_ tool: String, _ arguments: [String]) throws(StickError) -> BoundedResult {
        do {
            return try SystemCommand.runBounded(tool, arguments, outputLimit: SealedProfile.maximumSize)
        } catch {
            throw .unreadable(path, "\(error)", cause: ErrorCause(error))
        }
    }
}

extension BoundedResult {
    func stderrLines(skipping prefixes: [String]) -> [Substring] {
        String(decoding: stderr, as: UTF8.self).split(whereSeparator: \.isNewline)
            .filter { line in !line.allSatisfy(\.isWhitespace) && !prefixes.contains { line.hasPrefix($0) } }
    }
}

/// A FAT stick, read with mtools (`mdir`, `mtype`).
struct FATStick: StickFilesystem {
    var path: String
    var banner: [String] { [] }
    var tool: String { "mtype" }

    func rootEntries() throws(StickError) -> [StickEntry] {
        // -b: one "::/NAME" per entry, folders with a trailing slash.
        let names = try list("mdir", ["-b", "-i", path, "::/"]).split(separator: "\n").map { line in
            String(line.hasPrefix("::/") ? line.dropFirst(3) : line[...])
        }
        var entries: [StickEntry] = []
        for name in names {
            if name.hasSuffix("/") {
                entries.append(StickEntry(name: String(name.dropLast()), kind: "directory", size: nil))
            } else {
                let isProfile = name.lowercased() == ProfileStick.profileName
                entries.append(StickEntry(name: name, kind: nil, size: isProfile ? try size(of: name) : nil))
            }
        }
        return entries
    }

    /// The size in `name`'s directory entry, from mdir's long listing:
    /// `profile  age      5000 2026-12-05   9:06` (8.3 name, extension, size, date, time).
    func size(of name: String) throws(StickError) -> Int {
        for line in try list("mdir", ["-i", path, "::/\(name)"]).split(separator: "\n") {
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.count >= 3, fields[0].lowercased() == "profile", fields[1].lowercased() == "age", let size = Int(fields[2]) {
                return size
            }
        }
        throw .unreadable(path, "mdir shows no size for \(name)")
    }

    func read(_ name: String) throws(StickError) -> BoundedResult {
        try run("mtype", ["-i", path, "::/\(name)"])
    }
}

/// An ext2/3/4 stick, read with e2fsprogs' `debugfs` (read-only unless -w, so never changed).
struct ExtStick: StickFilesystem {
    var path: String
    var banner: [String] { ["debugfs "] }
    var tool: String { "debugfs" }

    func rootEntries() throws(StickError) -> [StickEntry] {
        // `ls -p` prints /inode/mode/uid/gid/name/size/ per entry, mode in octal.
        try list("debugfs", ["-R", "ls -p /", path]).split(separator: "\n").compactMap { line -> StickEntry? in
            let fields = line.split(separator: "/", omittingEmptySubsequences: false)
            guard fields.count >= 7, let mode = mode_t(fields[2], radix: 8) else { return nil }
            let name = String(fields[5])
            guard ![".", "..", "lost+found"].contains(name) else { return nil }
            let kind = mode & S_IFMT == S_IFREG ? nil : ProfileStick.fileKind(mode)
            return StickEntry(name: name, kind: kind, size: Int(fields[6]))
        }
    }

    func read(_ name: String) throws(StickError) -> BoundedResult {
        try run("debugfs", ["-R", "cat /\(name)", path])
    }
}
