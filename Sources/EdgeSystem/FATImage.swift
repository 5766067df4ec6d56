import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A FAT filesystem image made with the standard tools, without root, loop devices or mounts:
/// `mkfs.vfat --invariant` formats it, mtools (`mmd`, `mcopy -m`) fills it. The appliance's ESP
/// and the profile sticks are both made this way.
public struct FATImage: Sendable {
    public var path: String
    /// The environment mtools runs with (e.g. SOURCE_DATE_EPOCH and TZ for reproducible times);
    /// nil: ours.
    public var environment: [String: String]?

    /// Creates `path` (`bytes` long, with `mode`) and formats it as FAT`bits` labelled `label` with
    /// volume id `volumeID` (8 hex digits): the same inputs give the same bytes.
    public static func format(_ path: String, bytes: Int, bits: Int, label: String, volumeID: String, mode: Int = 0o644,
                              environment: [String: String]? = nil) throws -> FATImage {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: mode]) else {
            throw FATImageError(path: path, reason: "cannot create it in \(path.deletingLastPathComponent)")
        }
        guard truncate(path, off_t(bytes)) == 0 else {
            throw FATImageError(path: path, reason: String(cString: strerror(errno)))
        }
        try SystemCommand.check("mkfs.vfat", ["--invariant", "-F", String(bits), "-n", label, "-i", volumeID, path],
                                what: "formatting \(path)")
        return FATImage(path: path, environment: environment)
    }

    /// Makes `folders` (`::/EFI`, `::/EFI/BOOT`, … parents first).
    public func makeFolders(_ folders: [String]) throws {
        try SystemCommand.check("mmd", ["-i", path] + folders, what: "making folders in \(path)", environment: environment)
    }

    /// Writes each file (its path in the image, `::/…`, and its bytes) through a private scratch
    /// folder next to the image (not /tmp: an ESP's kernel and initrd would fill a tmpfs); with
    /// `modified`, every file gets that modification time (seconds since 1970).
    public func add(_ files: [(target: String, contents: Data)], modified: Int? = nil) throws {
        let scratch = path + ".files-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for (index, file) in files.enumerated() {
            let name = file.target.lastPathComponent
            let folder = scratch + "/\(index)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            let staged = folder + "/" + name
            guard FileManager.default.createFile(atPath: staged, contents: file.contents, attributes: [.posixPermissions: 0o600]) else {
                throw FATImageError(path: path, reason: "cannot stage \(name) in \(scratch)")
            }
            if let modified {
                var times = [timespec(tv_sec: modified, tv_nsec: 0), timespec(tv_sec: modified, tv_nsec: 0)]
                utimensat(AT_FDCWD, staged, &times, 0)
            }
            try SystemCommand.check("mcopy", ["-m", "-i", path, staged, file.target], what: "copying \(name) into \(path)",
                                    environment: environment)
        }
    }
}

/// A FAT image that could not be made: which and why.
public struct FATImageError: EdgeError, Equatable {
    public var path: String
    public var reason: String
    public var code: ErrorCode { "system.fat-image" }
    public var input: String? { path }
    public var message: String { reason }
    public var description: String { "cannot make FAT image \(path): \(reason)" }
}
