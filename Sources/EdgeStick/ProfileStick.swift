import EdgeCrypto
import EdgeSystem
import Foundation

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

        """.replacingOccurrences(of: "\n", with: "\r\n")
    }

    /// Writes a FAT stick image holding `profile` and a README to `output`, atomically: on any
    /// failure nothing is left at `output`.
    public static func build(profile: Data, readme: String, output: String, volumeID: UInt32) throws {
        let directory = (output as NSString).deletingLastPathComponent
        let staging = (directory.isEmpty ? "." : directory) + "/.\((output as NSString).lastPathComponent).partial-\(getpid())"
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-stick-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(atPath: staging)
            try? FileManager.default.removeItem(at: scratch)
        }
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.createFile(atPath: staging, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw StickError.cannotWrite(output, "cannot create a file in \(directory.isEmpty ? "." : directory)")
        }
        guard truncate(staging, off_t(imageSize)) == 0 else {
            throw StickError.cannotWrite(output, String(cString: strerror(errno)))
        }
        // --invariant + a fixed volume id: the same profile gives the same image bytes.
        try SystemCommand.check("mkfs.vfat", ["--invariant", "-F", "12", "-n", label, "-i", String(format: "%08X", volumeID), staging],
                                what: "formatting the stick image")
        let profileFile = scratch.appendingPathComponent(profileName).path
        let readmeFile = scratch.appendingPathComponent("README.txt").path
        guard FileManager.default.createFile(atPath: profileFile, contents: profile, attributes: [.posixPermissions: 0o600]),
            FileManager.default.createFile(atPath: readmeFile, contents: Data(readme.utf8))
        else { throw StickError.cannotWrite(output, "cannot stage files in \(scratch.path)") }
        try SystemCommand.check("mcopy", ["-i", staging, "-m", profileFile, readmeFile, "::/"],
                                what: "copying the profile onto the stick image")
        guard rename(staging, output) == 0 else {
            throw StickError.cannotWrite(output, String(cString: strerror(errno)))
        }
    }

    /// Reads `profile.age` from a stick image, a block device or a folder, checking the label
    /// and that the stick holds exactly one profile. Never mounts anything.
    public static func readProfile(at path: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw StickError.missing(path)
        }
        if isDirectory.boolValue { return try readFolder(path) }
        let (type, fsLabel) = try probe(path)
        guard let type else { throw StickError.noFilesystem(path) }
        guard fsLabel == label else { throw StickError.wrongLabel(path, found: fsLabel) }
        switch type {
        case "vfat", "msdos":
            let listing = try SystemCommand.check("mdir", ["-b", "-i", path, "::/"], what: "listing stick \(path)").output
            let names = listing.split(separator: "\n").map { String($0).replacingOccurrences(of: "::/", with: "") }
            try checkNames(names, path)
            let tool = try SystemCommand.run("mtype", ["-i", path, "::/\(profileName)"])
            guard tool.succeeded else { throw StickError.unreadable(path, tool.errorText) }
            return try capped(tool.stdout, path)
        case "ext4", "ext3", "ext2":
            let listing = try SystemCommand.check("debugfs", ["-R", "ls -p /", path], what: "listing stick \(path)").output
            // `ls -p` prints /inode/mode/uid/gid/name/size/ per entry.
            let names = listing.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: "/", omittingEmptySubsequences: false)
                return fields.count >= 6 ? String(fields[5]) : nil
            }.filter { $0 != "." && $0 != ".." && $0 != "lost+found" }
            try checkNames(names, path)
            let tool = try SystemCommand.run("debugfs", ["-R", "cat /\(profileName)", path])
            guard tool.succeeded else { throw StickError.unreadable(path, tool.errorText) }
            return try capped(tool.stdout, path)
        default:
            throw StickError.unsupportedFilesystem(path, type)
        }
    }

    static func readFolder(_ path: String) throws -> Data {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw StickError.unreadable(path, error.localizedDescription)
        }
        try checkNames(names, path)
        let name = names.first { $0.lowercased() == profileName } ?? profileName
        return try readRegularFile((path as NSString).appendingPathComponent(name), stick: path)
    }

    /// Reads at most `SealedProfile.maximumSize + 1` bytes of `file`, which must be a regular file
    /// (links followed): a directory or a FIFO named profile.age is refused with one line, never
    /// opened for a blocking read (a FIFO with no writer would hang the agent) or read as a file.
    static func readRegularFile(_ file: String, stick path: String) throws -> Data {
        var info = stat()
        guard stat(file, &info) == 0 else { throw StickError.unreadable(path, "cannot open \(file): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw StickError.profileNotAFile(path, kind: fileKind(info.st_mode)) }
        // O_NONBLOCK: should it have become a FIFO since the stat, open still returns at once.
        let fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw StickError.unreadable(path, "cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw StickError.profileNotAFile(path, kind: fileKind(info.st_mode))
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while data.count <= SealedProfile.maximumSize {
            let count = read(fd, &buffer, min(buffer.count, SealedProfile.maximumSize + 1 - data.count))
            if count < 0 {
                if errno == EINTR { continue }
                throw StickError.unreadable(path, "reading \(file): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        return try capped(data, path)
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

    /// Exactly one `*.age` file at the root, and it is `profile.age` (any case: FAT ignores it).
    static func checkNames(_ names: [String], _ path: String) throws {
        let profiles = names.filter { $0.lowercased().hasSuffix(".age") }.sorted()
        if profiles.count > 1 { throw StickError.severalProfiles(path, profiles) }
        guard profiles.first?.lowercased() == profileName else { throw StickError.noProfile(path) }
    }

    static func capped(_ data: Data, _ path: String) throws -> Data {
        guard data.count <= SealedProfile.maximumSize else {
            throw StickError.profileTooLarge(path)
        }
        return data
    }

    /// Filesystem type and label as `blkid` reads them from the raw bytes (no cache, no mount).
    static func probe(_ path: String) throws -> (type: String?, label: String?) {
        let result = try SystemCommand.run("blkid", ["-p", "-o", "export", path])
        // blkid exits 2 when it finds no filesystem at all.
        var fields: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return (fields["TYPE"], fields["LABEL"])
    }
}

/// Why a stick could not be read. One line each, naming the stick.
public enum StickError: Error, Equatable, CustomStringConvertible {
    case missing(String)
    case noFilesystem(String)
    case wrongLabel(String, found: String?)
    case unsupportedFilesystem(String, String)
    case noProfile(String)
    case severalProfiles(String, [String])
    case profileTooLarge(String)
    /// `profile.age` in a folder is a directory, FIFO, device or socket: not a sealed profile.
    case profileNotAFile(String, kind: String)
    case unreadable(String, String)
    case cannotWrite(String, String)

    public var description: String {
        switch self {
        case .missing(let path):
            "stick \(path) does not exist"
        case .noFilesystem(let path):
            "stick \(path) has no filesystem (expected FAT or ext4 labelled \(ProfileStick.label))"
        case .wrongLabel(let path, let found):
            "stick \(path) is labelled \(found.map { "\"\($0)\"" } ?? "nothing"), not \(ProfileStick.label)"
        case .unsupportedFilesystem(let path, let type):
            "stick \(path) is \(type); a profile stick is FAT or ext4"
        case .noProfile(let path):
            "stick \(path) holds no \(ProfileStick.profileName)"
        case .severalProfiles(let path, let names):
            "stick \(path) holds \(names.count) profiles (\(names.joined(separator: ", "))); keep exactly one \(ProfileStick.profileName)"
        case .profileTooLarge(let path):
            "stick \(path): \(ProfileStick.profileName) is larger than \(SealedProfile.maximumSize) bytes: not a profile"
        case .profileNotAFile(let path, let kind):
            "stick \(path): \(ProfileStick.profileName) is a \(kind), not a file; put the sealed \(ProfileStick.profileName) from `edgekit profile seal` there"
        case .unreadable(let path, let why):
            "stick \(path) is unreadable: \(why)"
        case .cannotWrite(let path, let why):
            "cannot write stick image \(path): \(why)"
        }
    }
}
