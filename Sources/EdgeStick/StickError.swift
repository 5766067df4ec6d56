import EdgeCrypto
import EdgeSystem

/// Why a profile input (stick, image, folder or file) could not be read. One line each, naming
/// the input; every value that came from the input (path, label, names, a tool's words) is
/// printed with control characters escaped.
public enum StickError: Error, Equatable, CustomStringConvertible {
    case missing(String)
    /// `edgekit profile inspect` of a path that does not exist (it may be a file, not a stick).
    case fileMissing(String)
    case noFilesystem(String)
    case wrongLabel(String, found: String?)
    case unsupportedFilesystem(String, String)
    case noProfile(String)
    case severalProfiles(String, [String])
    case profileTooLarge(String)
    /// `profile.age` on the stick is a directory, FIFO, link, device or socket: not a sealed profile.
    case profileNotAFile(String, kind: String)
    /// The input itself is a FIFO, socket or character device.
    case notAnInput(String, kind: String)
    /// The filesystem contradicts itself (a directory entry's size against the file's clusters).
    case damaged(String, String)
    case unreadable(String, String)
    case cannotWrite(String, String)

    public var description: String {
        let e = Printable.escaped
        let profile = ProfileStick.profileName
        return switch self {
        case .missing(let path):
            "stick \(e(path)) does not exist"
        case .fileMissing(let path):
            "\(e(path)) does not exist"
        case .noFilesystem(let path):
            "stick \(e(path)) has no filesystem (expected FAT or ext4 labelled \(ProfileStick.label))"
        case .wrongLabel(let path, let found):
            "stick \(e(path)) is labelled \(found.map { "\"\(e($0))\"" } ?? "nothing"), not \(ProfileStick.label)"
        case .unsupportedFilesystem(let path, let type):
            "stick \(e(path)) is \(e(type)); a profile stick is FAT or ext4"
        case .noProfile(let path):
            "stick \(e(path)) holds no \(profile)"
        case .severalProfiles(let path, let names):
            "stick \(e(path)) holds \(names.count) profiles (\(names.map(e).joined(separator: ", "))); keep exactly one \(profile)"
        case .profileTooLarge(let path):
            "stick \(e(path)): \(profile) is larger than \(SealedProfile.maximumSize) bytes: not a profile"
        case .profileNotAFile(let path, let kind):
            "stick \(e(path)): \(profile) is a \(kind), not a file; put the sealed \(profile) from `edgekit profile seal` there"
        case .notAnInput(let path, let kind):
            "\(e(path)) is a \(kind): give a \(profile), a stick image or device, or a mounted stick's folder"
        case .damaged(let path, let why):
            "stick \(e(path)) is damaged: \(e(why)); rebuild it with `edgekit stick build`"
        case .unreadable(let path, let why):
            "stick \(e(path)) is unreadable: \(e(why))"
        case .cannotWrite(let path, let why):
            "cannot write stick image \(e(path)): \(e(why))"
        }
    }
}
