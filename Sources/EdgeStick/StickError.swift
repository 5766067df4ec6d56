import EdgeCrypto
import EdgeErrors
import EdgeSystem

/// Why a profile input (stick, image, folder or file) could not be read. One line each, naming
/// the input; every value that came from the input (path, label, names, a tool's words) is
/// printed with control characters escaped.
public enum StickError: EdgeError, Equatable {
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
    /// The input could not be read; `cause` is the tool or system failure behind the words.
    case unreadable(String, String, cause: ErrorCause = .none)
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
        case .unreadable(let path, let why, _):
            "stick \(e(path)) is unreadable: \(e(why))"
        case .cannotWrite(let path, let why):
            "cannot write stick image \(e(path)): \(e(why))"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .missing, .fileMissing: "stick.missing"
        case .noFilesystem: "stick.no-filesystem"
        case .wrongLabel: "stick.wrong-label"
        case .unsupportedFilesystem: "stick.unsupported-filesystem"
        case .noProfile: "stick.no-profile"
        case .severalProfiles: "stick.several-profiles"
        case .profileTooLarge: "stick.too-large"
        case .profileNotAFile: "stick.profile-not-a-file"
        case .notAnInput: "stick.not-an-input"
        case .damaged: "stick.damaged"
        case .unreadable: "stick.unreadable"
        case .cannotWrite: "stick.cannot-write"
        }
    }

    public var input: String? {
        switch self {
        case .missing(let path), .fileMissing(let path), .noFilesystem(let path), .wrongLabel(let path, _),
             .unsupportedFilesystem(let path, _), .noProfile(let path), .severalProfiles(let path, _),
             .profileTooLarge(let path), .profileNotAFile(let path, _), .notAnInput(let path, _),
             .damaged(let path, _), .unreadable(let path, _, _), .cannotWrite(let path, _):
            path
        }
    }

    public var cause: (any Error)? {
        if case .unreadable(_, _, let cause) = self { return cause.error }
        return nil
    }
}
