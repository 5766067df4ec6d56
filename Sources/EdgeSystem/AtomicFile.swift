import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Writes a whole file so that no one ever sees it half written or with a wider mode than asked:
/// a temporary file beside the target is created owner-only (whatever the umask), set to `mode`
/// while still empty, written, fsynced and only then renamed into place (or linked, when an
/// existing file must not be replaced), and the folder is fsynced so the name survives power loss.
///
/// Every writer of a secret (`edgekit render`, `keys identity`, `keys init`, key files of the relay)
/// goes through here, so "0600 from the first byte" holds in one place.
public enum AtomicFile {
    /// Writes `data` to `path` with permission bits `mode`.
    /// - Parameter replace: when false, an existing `path` is an error and is left untouched.
    public static func write(_ data: Data, to path: String, mode: Int, replace: Bool) throws {
        let directory = path.deletingLastPathComponent.isEmpty ? "." : path.deletingLastPathComponent
        let name = path.lastPathComponent
        if !replace, exists(path) { throw AtomicFileError.alreadyExists(path) }
        let (fd, temporary) = try createTemporary(in: directory, for: name, path: path)
        var placed = false
        defer { if !placed { unlink(temporary) } }
        do {
            defer { close(fd) }
            // Created with owner bits only; now the final mode, before the first byte is written.
            guard fchmod(fd, mode_t(mode)) == 0 else { throw AtomicFileError.systemFailure(path, step: "chmod") }
            try writeAll(fd, data, path: path)
            guard fsync(fd) == 0 else { throw AtomicFileError.systemFailure(path, step: "fsync") }
        }
        if replace {
            guard rename(temporary, path) == 0 else { throw AtomicFileError.systemFailure(path) }
        } else {
            // link(2) fails with EEXIST if the name appeared meanwhile: no replacement, ever.
            guard link(temporary, path) == 0 else {
                let code = errno
                throw code == EEXIST ? AtomicFileError.alreadyExists(path) : AtomicFileError.systemFailure(path, errno: code)
            }
            unlink(temporary)
        }
        placed = true
        syncDirectory(directory)
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// A fresh `.NAME.partial-PID-RANDOM` beside the target, opened O_EXCL and owner-only.
    static func createTemporary(in directory: String, for name: String, path: String) throws -> (Int32, String) {
        for _ in 0..<8 {
            let temporary = directory + "/.\(name).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(0o600))
            if fd >= 0 { return (fd, temporary) }
            if errno != EEXIST { throw AtomicFileError.systemFailure(path) }
        }
        throw AtomicFileError.failed(path, "no free temporary name in \(directory)")
    }

    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws {
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFileError.systemFailure(path)
                }
                offset += written
            }
        }
    }

    /// fsync(2) of a folder, so a rename or a new name in it survives a power cut; best effort.
    public static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
}

/// Why `AtomicFile.write` did not write; the target is unchanged in every case.
public enum AtomicFileError: EdgeError, Equatable {
    /// The target exists and `replace` was false.
    case alreadyExists(String)
    /// The file could not be written: path, the system's reason, and the `POSIXError` it came from.
    case failed(String, String, cause: ErrorCause = .none)

    /// A failed system call on `path`: its reason in words, the errno kept as the cause.
    static func systemFailure(_ path: String, step: String? = nil, errno code: Int32 = errno) -> AtomicFileError {
        let reason = AtomicFile.errorText(code)
        return .failed(path, step.map { "\($0): \(reason)" } ?? reason,
                       cause: ErrorCause(POSIXErrorCode(rawValue: code).map { POSIXError($0) }))
    }

    public var description: String {
        switch self {
        case .alreadyExists(let path): "\(path) already exists; remove it or choose another path"
        case .failed(let path, let reason, _): "cannot write \(path): \(reason)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .alreadyExists: "file.exists"
        case .failed: "file.cannot-write"
        }
    }

    public var input: String? {
        switch self {
        case .alreadyExists(let path), .failed(let path, _, _): path
        }
    }

    public var message: String {
        switch self {
        case .alreadyExists: "already exists; remove it or choose another path"
        case .failed(_, let reason, _): reason
        }
    }

    public var cause: (any Error)? {
        switch self {
        case .alreadyExists: nil
        case .failed(_, _, let cause): cause.error
        }
    }
}
