import EdgeCrypto
import EdgeErrors
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// What a path given as a profile input is: the one place that decides between a mounted stick,
/// a bare `profile.age`, a stick image or device, and everything else. `edgekit profile inspect`
/// and the agent both start here.
public enum ProfileInput: Equatable, Sendable {
    /// Nothing at that path.
    case missing
    /// A folder: a mounted stick.
    case folder
    /// A regular file that starts with age's version line, or is empty: a bare `profile.age`.
    case sealedFile
    /// A file or block device holding a filesystem `blkid -p` recognises: a stick image or device.
    case filesystem(type: String, label: String?)
    /// A block device, or a file whose first 4 KiB are zeros, with no filesystem: a blank or
    /// wiped stick.
    case blank
    /// A regular file that is none of the above, `size` bytes long (a damaged profile or garbage).
    case otherFile(size: Int)
    /// A FIFO, socket or character device: never opened for reading (a FIFO would block).
    case special(kind: String)

    /// How many leading zero bytes make an unrecognised file a blank stick image rather than a
    /// damaged profile: no age file, and no garbage worth the name, starts with 4 KiB of zeros.
    static let blankPrefix = 4096

    /// Looks at `path` without changing or mounting anything: stat, at most 4 KiB of its bytes,
    /// and `blkid -p` (bounded). Throws `StickError.unreadable` when it cannot tell, e.g. blkid
    /// died: a probe that failed is never taken for "no filesystem".
    public static func sniff(_ path: String) throws(StickError) -> ProfileInput {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return .missing }
            throw .unreadable(path, "cannot look at it: \(String(cString: strerror(errno)))")
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFDIR { return .folder }
        guard type == S_IFREG || type == S_IFBLK else { return .special(kind: ProfileStick.fileKind(info.st_mode)) }
        let head = try readHead(path, count: blankPrefix)
        if type == S_IFREG, head.isEmpty || head.starts(with: Data(ageVersionPrefix.utf8)) { return .sealedFile }
        let probe: BoundedResult
        do {
            probe = try SystemCommand.runBounded("blkid", ["-p", "-o", "export", path], outputLimit: 64 * 1024)
        } catch {
            throw .unreadable(path, "\(error)", cause: ErrorCause(error))
        }
        // blkid -p: 0 found something, 2 found nothing; anything else (8: ambivalent signatures,
        // 4: usage, a signal) means we do not know what the input is.
        switch (probe.signal, probe.status) {
        case (nil, 0):
            var fields: [String: String] = [:]
            for line in String(decoding: probe.stdout, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            if let type = fields["TYPE"] { return .filesystem(type: type, label: fields["LABEL"]) }
        case (nil, 2):
            break
        case (nil, 8):
            throw .unreadable(path, "blkid found more than one filesystem signature on it; wipe it and rebuild the stick")
        default:
            throw .unreadable(path, "blkid: \(probe.reason())")
        }
        if type == S_IFBLK || head.allSatisfy({ $0 == 0 }) { return .blank }
        return .otherFile(size: Int(info.st_size))
    }

    /// Every age file starts with this (docs/crypto-formats.md); the version is checked later.
    static let ageVersionPrefix = "age-encryption.org/"

    /// Up to `count` leading bytes, opened non-blocking (nothing here may wait on a device).
    static func readHead(_ path: String, count: Int) throws(StickError) -> Data {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw .unreadable(path, "cannot open it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, count - filled) }
            if got < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path, "cannot read it: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            filled += got
        }
        return Data(buffer[0..<filled])
    }

    /// The sealed bytes of `path` for `edgekit profile inspect`: a bare profile (any file that is
    /// not a stick, read up to `SealedProfile.maximumSize + 1` bytes so that `SealedProfile.open`
    /// gives its size or format refusal), a stick image or device, or a mounted stick.
    public static func readSealed(_ path: String) throws(StickError) -> Data {
        switch try sniff(path) {
        case .missing: throw .fileMissing(path)
        case .folder: return try ProfileStick.readFolder(path).sealed
        case .sealedFile, .otherFile: return try ProfileStick.readRegularFile(path, stick: nil)
        case .filesystem(let type, let label): return try ProfileStick.readFilesystem(path, type: type, label: label)
        case .blank: throw .noFilesystem(path)
        case .special(let kind): throw .notAnInput(path, kind: kind)
        }
    }
}
