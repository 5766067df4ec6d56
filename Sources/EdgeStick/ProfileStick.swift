import EdgeCrypto
import EdgeErrors
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A profile stick: any FAT or ext4 filesystem labelled `EDGEPROFILE` holding one `profile.age`.
///
/// Sticks are built as FAT images with `mkfs.vfat` and mtools, and read back with mtools or
/// `debugfs` straight from the image or block device, so neither side needs root, loop devices
/// or mounts. A folder (an already mounted stick) is read directly.
public enum ProfileStick {
    public static let label = "EDGEPROFILE"
    public static let profileName = "profile.age"
    /// FAT12 stick image size: small enough to write in a blink, large enough for mkfs.vfat.
    public static let imageSize = 2 * 1024 * 1024

    /// The README placed next to the profile, for whoever finds the stick in a drawer.
    public static func readme(plan: String, site: String, slot: Int, serial: UInt64) -> String {
        """
        edgekit profile stick
        =====================
        plan \(plan), site \(site), router slot \(slot), serial \(serial)

        Plug this stick into the edge router of that slot. A spare device flashed with the
        site-\(site) image becomes this router when it boots with the stick attached.
        profile.age is sealed to the site image and signed by the operator; it is useless
        anywhere else. Keep exactly one profile.age on the stick. Docs: docs/replace-router.md

        """.replacing("\n", with: "\r\n")
    }

    /// Writes a FAT stick image holding `profile` and a README to `output`, atomically: on any
    /// failure nothing is left at `output`.
    public static func build(profile: Data, readme: String, output: String, volumeID: UInt32) throws {
        let directory = output.deletingLastPathComponent
        let staging = (directory.isEmpty ? "." : directory) + "/.\(output.lastPathComponent).partial-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        do {
            // --invariant + a fixed volume id: the same profile gives the same image bytes.
            let image = try FATImage.format(staging, bytes: imageSize, bits: 12, label: label,
                                            volumeID: String(cFormat: "%08X", volumeID), mode: 0o600)
            try image.add([("::/\(profileName)", profile), ("::/README.txt", Data(readme.utf8))])
        } catch let error as FATImageError {
            throw StickError.cannotWrite(output, error.reason)
        }
        guard rename(staging, output) == 0 else {
            throw StickError.cannotWrite(output, String(cString: strerror(errno)))
        }
    }

    /// Reads `profile.age` from a stick image, a block device or a folder (a mounted stick),
    /// checking the label and that the stick holds exactly one profile. Never mounts anything,
    /// and never holds more than `SealedProfile.maximumSize + 1` bytes of it, whatever the stick
    /// claims. `source` is what profile errors should name: `FOLDER/profile.age` or the stick.
    public static func readProfile(at path: String) throws(StickError) -> (sealed: Data, source: String) {
        switch try ProfileInput.sniff(path) {
        case .missing: throw .missing(path)
        case .folder: return try readFolder(path)
        case .filesystem(let type, let label): return (try readFilesystem(path, type: type, label: label), path)
        case .sealedFile, .otherFile, .blank: throw .noFilesystem(path)
        case .special(let kind): throw .notAnInput(path, kind: kind)
        }
    }

    /// A stick image or device holding a filesystem of `type` labelled `label`.
    static func readFilesystem(_ path: String, type: String, label found: String?) throws(StickError) -> Data {
        guard found == label else { throw .wrongLabel(path, found: found) }
        switch type {
        case "vfat", "msdos": return try FATStick(path: path).readProfile()
        case "ext4", "ext3", "ext2": return try ExtStick(path: path).readProfile()
        default: throw .unsupportedFilesystem(path, type)
        }
    }

    static func readFolder(_ path: String) throws(StickError) -> (sealed: Data, source: String) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw .unreadable(path, error.plainDescription, cause: ErrorCause(error))
        }
        let name = try findProfile(in: names, path)
        let file = path.appendingPath(name)
        return (try readRegularFile(file, stick: path), path.appendingPath(profileName))
    }

    /// Reads at most `SealedProfile.maximumSize + 1` bytes of `file`, which must be a regular file
    /// (links followed): a directory or a FIFO named profile.age is refused with one line, never
    /// opened for a blocking read (a FIFO with no writer would hang the agent) or read as a file.
    /// `stick`: the folder it was found in (errors then name the stick), nil for a bare file.
    static func readRegularFile(_ file: String, stick: String?) throws(StickError) -> Data {
        let path = stick ?? file
        var info = stat()
        guard stat(file, &info) == 0 else { throw .unreadable(path, "cannot open \(file): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw stick == nil ? StickError.notAnInput(file, kind: fileKind(info.st_mode)) : StickError.profileNotAFile(path, kind: fileKind(info.st_mode))
        }
        // O_NONBLOCK: should it have become a FIFO since the stat, open still returns at once.
        let fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw .unreadable(path, "cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw .profileNotAFile(path, kind: fileKind(info.st_mode))
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while data.count <= SealedProfile.maximumSize {
            let count = read(fd, &buffer, min(buffer.count, SealedProfile.maximumSize + 1 - data.count))
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path, "reading \(file): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        // A bare file keeps its extra byte: SealedProfile.open refuses it with the documented line.
        return stick == nil ? data : try capped(data, path)
    }

    static func fileKind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "directory"
        case S_IFIFO: "FIFO"
        case S_IFSOCK: "socket"
        case S_IFCHR: "character device"
        case S_IFBLK: "block device"
        case S_IFLNK: "symbolic link"
        default: "special file"
        }
    }

    /// Exactly one `*.age` file at the root, and it is `profile.age` (any case: FAT ignores it);
    /// returns its name as spelled on the stick.
    static func findProfile(in names: [String], _ path: String) throws(StickError) -> String {
        let profiles = names.filter { $0.lowercased().hasSuffix(".age") }.sorted()
        if profiles.count > 1 { throw .severalProfiles(path, profiles) }
        guard let name = profiles.first, name.lowercased() == profileName else { throw .noProfile(path) }
        return name
    }

    static func capped(_ data: Data, _ path: String) throws(StickError) -> Data {
        guard data.count <= SealedProfile.maximumSize else { throw .profileTooLarge(path) }
        return data
    }
}
