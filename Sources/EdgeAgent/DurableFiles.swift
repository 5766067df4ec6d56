import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// The few POSIX operations a generation is built from, each durable when it returns: files are
/// fsynced before they are named, directories after an entry in them changed (rename(2) is atomic,
/// but only an fsync of the directory makes it survive power loss).
enum DurableFiles {
    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// Creates `path` (which must not exist) with `data`, `mode` and owner, and fsyncs it.
    static func create(_ path: String, _ data: Data, mode: UInt16, uid: uid_t, gid: gid_t, steps: CrashPoints) throws {
        steps.step("create \(path)")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(0o600))
        guard fd >= 0 else { throw AgentError.cannotWrite(path, errorText()) }
        defer { close(fd) }
        // fchown before fchmod: changing the owner may clear set-id bits, and the key must never be
        // readable by anyone else in between (created 0600 above).
        if fchown(fd, uid, gid) != 0 && geteuid() == 0 { throw AgentError.cannotWrite(path, "chown: \(errorText())") }
        guard fchmod(fd, mode_t(mode)) == 0 else { throw AgentError.cannotWrite(path, "chmod: \(errorText())") }
        steps.step("write \(path)")
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw AgentError.cannotWrite(path, errorText())
                }
                offset += written
            }
        }
        steps.step("fsync \(path)")
        guard fsync(fd) == 0 else { throw AgentError.cannotWrite(path, "fsync: \(errorText())") }
    }

    static func fsyncDirectory(_ path: String, steps: CrashPoints) throws {
        steps.step("fsync directory \(path)")
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw AgentError.cannotWrite(path, errorText()) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw AgentError.cannotWrite(path, "fsync: \(errorText())") }
    }

    /// `mkdir -p` with mode 0755, fsyncing each parent that gained an entry.
    static func makeDirectories(_ path: String, steps: CrashPoints) throws {
        var changed = Set<String>()
        try makeDirectories(path, steps: steps, syncLater: &changed)
        for directory in changed.sorted(by: >) { try fsyncDirectory(directory, steps: steps) }
    }

    /// `mkdir -p` with mode 0755; each parent that gained an entry is added to `changed` for the
    /// caller to fsync once, with everything else it wrote, before the step that needs it durable.
    static func makeDirectories(_ path: String, steps: CrashPoints, syncLater changed: inout Set<String>) throws {
        var isDirectory = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory else { throw AgentError.cannotWrite(path, "exists and is not a directory") }
            return
        }
        let parent = path.deletingLastPathComponent
        if !parent.isEmpty && parent != path { try makeDirectories(parent, steps: steps, syncLater: &changed) }
        steps.step("mkdir \(path)")
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw AgentError.cannotWrite(path, errorText()) }
        _ = chmod(path, 0o755)  // umask may have narrowed it; readers (systemd-network) must traverse it
        changed.insert(parent.isEmpty ? "/" : parent)
    }

    /// Points `path` at `target` atomically: a new symlink renamed over whatever is there. The
    /// directory is fsynced unless `syncDirectory` is false (the caller fsyncs it later, once for
    /// all the links it made there).
    static func replaceSymlink(_ path: String, target: String, steps: CrashPoints, syncDirectory: Bool = true) throws {
        let directory = path.deletingLastPathComponent
        let temporary = directory + "/.\(path.lastPathComponent).edgekit-new"
        unlink(temporary)
        steps.step("symlink \(temporary)")
        guard symlink(target, temporary) == 0 else { throw AgentError.cannotWrite(temporary, errorText()) }
        steps.step("rename \(temporary) → \(path)")
        guard rename(temporary, path) == 0 else {
            let text = errorText()
            unlink(temporary)
            throw AgentError.cannotWrite(path, text)
        }
        if syncDirectory { try fsyncDirectory(directory, steps: steps) }
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Overwrites a secret file with zeros, fsyncs it and unlinks it, so its bytes do not linger in
    /// the filesystem's free blocks any longer than the storage itself keeps them.
    static func scrub(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { unlink(path); return }
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 {
            let zeros = [UInt8](repeating: 0, count: Int(info.st_size))
            _ = zeros.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
        }
        unlink(path)
    }

    /// Removes a tree; files that are not world-readable (secrets) are scrubbed first.
    static func removeTree(_ path: String) {
        guard exists(path) else { return }
        for relative in (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? [] {
            let full = path + "/" + relative
            var info = stat()
            if lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o004 == 0 {
                scrub(full)
            }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).hex
    }
}
