import CArchive
import EdgeErrors
import Foundation

/// One member of a tar layer, with owners, mode and time already normalised.
public struct LayerEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case file(Data)
        case directory
        case symlink(String)
    }

    /// Path inside the rootfs without a leading slash, e.g. `etc/edgekit/site.json`.
    public var path: String
    public var kind: Kind
    public var mode: UInt16
    public var uid: UInt32
    public var gid: UInt32

    public init(path: String, kind: Kind, mode: UInt16, uid: UInt32 = 0, gid: UInt32 = 0) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }
}

/// Writes one *layer* of a `.tar.zst` rootfs: tar members (libarchive, pax) compressed as exactly
/// one zstd frame (libzstd, multi-threaded), appended to `output`.
///
/// Layers concatenate: zstd decodes consecutive frames as one stream, and every layer but the last
/// omits tar's end-of-archive blocks, so base + overlay + site layers form one valid tar. This is
/// how a site is stamped onto a cached base without recompressing it (docs/image.md).
/// This file is the only code in edgekit that touches libarchive or libzstd.
public final class TarZstdLayerWriter {
    private let archive: OpaquePointer
    private let compressor: ZstdCompressor
    private let output: FileHandle
    private let isLast: Bool
    private let mtime: Int
    /// The tail of the tar stream held back so the 1024-byte end-of-archive marker can be dropped.
    private var pending = Data()
    private var failure: ArchiveError?
    private var finished = false
    private var hardlinks: [String: String] = [:]
    public private(set) var uncompressedBytes = 0

    static let trailerSize = 1024

    /// - Parameters:
    ///   - output: an open file; the frame is written at its current offset.
    ///   - isLast: write tar's end-of-archive marker (only the final layer does).
    ///   - mtime: every member's modification time (SOURCE_DATE_EPOCH).
    ///   - level: zstd level; threads: zstd workers (output does not depend on the count).
    public init(output: FileHandle, isLast: Bool, mtime: Int, level: Int32 = 3,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard let archive = archive_write_new() else { throw ArchiveError("libarchive: out of memory") }
        do {
            compressor = try ZstdCompressor(level: level, threads: threads)
        } catch {
            archive_write_free(archive)
            throw error
        }
        self.archive = archive
        self.output = output
        self.isLast = isLast
        self.mtime = mtime
        try check(archive_write_set_format_pax_restricted(archive), "choosing the tar format")
        // No blocking: members end on 512-byte boundaries and the trailer is exactly 1024 bytes.
        try check(archive_write_set_bytes_per_block(archive, 0), "setting the block size")
        try check(archive_write_set_bytes_in_last_block(archive, 1), "setting the last block size")
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_write_open2(archive, context, nil, { _, context, buffer, length in
            guard let context, let buffer else { return -1 }
            let writer = Unmanaged<TarZstdLayerWriter>.fromOpaque(context).takeUnretainedValue()
            return writer.receive(UnsafeRawBufferPointer(start: buffer, count: length)) ? la_ssize_t(length) : -1
        }, nil, nil)
        try check(status, "opening the archive")
    }

    deinit {
        archive_write_free(archive)
    }

    /// Adds one member.
    public func add(_ entry: LayerEntry) throws {
        let member = archive_entry_new()!
        defer { archive_entry_free(member) }
        archive_entry_set_pathname_utf8(member, memberName(entry.path))
        archive_entry_set_uid(member, la_int64_t(entry.uid))
        archive_entry_set_gid(member, la_int64_t(entry.gid))
        archive_entry_set_mtime(member, time_t(mtime), 0)
        var content = Data()
        switch entry.kind {
        case .file(let data):
            archive_entry_set_filetype(member, edgekit_ae_ifreg())
            archive_entry_set_size(member, la_int64_t(data.count))
            content = data
        case .directory:
            archive_entry_set_filetype(member, edgekit_ae_ifdir())
        case .symlink(let target):
            archive_entry_set_filetype(member, edgekit_ae_iflnk())
            archive_entry_set_symlink_utf8(member, target)
        }
        archive_entry_set_perm(member, mode_t(entry.mode & 0o7777))
        try check(archive_write_header(archive, member), "writing the header of \(entry.path)")
        if !content.isEmpty {
            try content.withUnsafeBytes { bytes in
                let written = archive_write_data(archive, bytes.baseAddress, bytes.count)
                guard written == bytes.count else { throw self.error("writing \(entry.path)") }
            }
        }
        try failure.map { throw $0 }
    }

    /// Adds every file under `root` as it is on disk (owners, modes, hard links, devices), in
    /// byte-sorted depth-first order, with times set to `mtime`. `root` itself becomes `./`.
    /// `progress` hears the bytes of file contents added so far.
    public func addTree(at root: String, progress: ((Int) -> Void)? = nil) throws {
        treeProgress = progress
        defer { treeProgress = nil }
        try addNode(root: root, relative: "")
    }

    private var treeProgress: ((Int) -> Void)?
    private var treeBytes = 0
    /// One read buffer for every file of a tree (tens of thousands of files).
    private var readBuffer = [UInt8](repeating: 0, count: 1 << 20)

    private func addNode(root: String, relative: String) throws {
        let full = relative.isEmpty ? root : root + "/" + relative
        var info = stat()
        guard lstat(full, &info) == 0 else {
            throw ArchiveError("cannot read \(full): \(String(cString: strerror(errno)))")
        }
        let member = archive_entry_new()!
        defer { archive_entry_free(member) }
        archive_entry_copy_stat(member, &info)
        archive_entry_set_pathname_utf8(member, memberName(relative))
        archive_entry_set_mtime(member, time_t(mtime), 0)
        archive_entry_unset_atime(member)
        archive_entry_unset_ctime(member)
        archive_entry_unset_birthtime(member)
        let type = info.st_mode & S_IFMT
        var copyContent = false
        if type == S_IFLNK {
            var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(full, &target, Int(PATH_MAX))
            guard length >= 0 else { throw ArchiveError("cannot read link \(full)") }
            archive_entry_set_symlink_utf8(member, String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        } else if type == S_IFREG {
            let key = "\(info.st_dev):\(info.st_ino)"
            if info.st_nlink > 1, let first = hardlinks[key] {
                archive_entry_set_hardlink_utf8(member, memberName(first))
                archive_entry_set_size(member, 0)
            } else {
                if info.st_nlink > 1 { hardlinks[key] = relative }
                copyContent = info.st_size > 0
            }
        }
        try check(archive_write_header(archive, member), "writing the header of \(relative.isEmpty ? "/" : relative)")
        if copyContent { try copyFile(full) }
        try failure.map { throw $0 }
        if type == S_IFDIR {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: full)
            } catch {
                throw ArchiveError("cannot list \(full): \(error.localizedDescription)", cause: error)
            }
            for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                try addNode(root: root, relative: relative.isEmpty ? name : relative + "/" + name)
            }
        }
    }

    private func copyFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while true {
            let count = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 { throw ArchiveError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            let written = readBuffer.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
            guard written == count else { throw self.error("writing \(path)") }
            treeBytes += count
            treeProgress?(treeBytes)
        }
    }

    /// Ends the layer: one complete zstd frame, with or without tar's end-of-archive marker.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try check(archive_write_close(archive), "closing the archive")
        try failure.map { throw $0 }
        if isLast {
            try compress(pending, end: true)
        } else {
            // The stream ends with tar's end-of-archive marker (1024 zero bytes; no block padding,
            // see init): drop it so the next layer continues the same tar.
            let trailer = TarZstdLayerWriter.trailerSize
            guard pending.count >= trailer, pending.suffix(trailer).allSatisfy({ $0 == 0 }) else {
                throw ArchiveError("libarchive ended the layer without the expected end-of-archive marker")
            }
            try compress(Data(pending.dropLast(trailer)), end: true)
        }
        pending = Data()
    }

    private func memberName(_ relative: String) -> String {
        relative.isEmpty ? "./" : "./" + relative
    }

    /// libarchive's write callback: keep the last 1024 bytes back, compress the rest.
    private func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        uncompressedBytes += bytes.count
        pending.append(contentsOf: bytes)
        let keep = TarZstdLayerWriter.trailerSize
        guard pending.count > keep * 64 else { return true }
        let ready = pending.prefix(pending.count - keep)
        do {
            try compress(Data(ready), end: false)
        } catch let error as ArchiveError {
            failure = error
            return false
        } catch {
            failure = ArchiveError("\(error)", cause: error)
            return false
        }
        pending = Data(pending.suffix(keep))
        return true
    }

    private func compress(_ data: Data, end: Bool) throws {
        try compressor.compress(data, end: end) { bytes in
            do {
                try output.write(contentsOf: bytes)
            } catch {
                throw ArchiveError("cannot write the archive: \(error.localizedDescription)", cause: error)
            }
        }
    }

    private func check(_ status: Int32, _ what: String) throws {
        guard status == edgekit_archive_ok() || status == edgekit_archive_warn() else { throw error(what) }
    }

    private func error(_ what: String) -> ArchiveError {
        if let failure { return failure }
        let detail = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return ArchiveError("\(what): \(detail)")
    }

}

/// A zstd stream compressor (one frame, with its checksum; `threads` workers, which do not change
/// the output): the tar layers and the update bundles' root filesystem.
final class ZstdCompressor {
    private let context: OpaquePointer
    private var buffer = [UInt8](repeating: 0, count: Int(ZSTD_CStreamOutSize()))

    init(level: Int32 = 3, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard let context = ZSTD_createCCtx() else { throw ArchiveError("libzstd: out of memory") }
        self.context = context
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), "setting the level")
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(max(1, threads))), "setting workers")
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "enabling checksums")
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `data`; `end` closes the frame. `write` gets every piece of output.
    func compress(_ data: Data, end: Bool, write: (ArraySlice<UInt8>) throws -> Void) throws {
        try data.withUnsafeBytes { raw in
            var input = ZSTD_inBuffer(src: raw.baseAddress, size: raw.count, pos: 0)
            while true {
                let (remaining, produced): (Int, Int) = buffer.withUnsafeMutableBytes { out in
                    var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let result = ZSTD_compressStream2(context, &output, &input, end ? ZSTD_e_end : ZSTD_e_continue)
                    return (result, output.pos)
                }
                try check(remaining, "compressing")
                if produced > 0 { try write(buffer[0..<produced]) }
                if end ? remaining == 0 : input.pos == input.size { break }
            }
        }
    }

    private func check(_ code: Int, _ what: String) throws {
        if edgekit_zstd_is_error(code) != 0 {
            throw ArchiveError("libzstd \(what): \(String(cString: ZSTD_getErrorName(code)))")
        }
    }
}

/// A failure while writing an archive, in one line.
public struct ArchiveError: EdgeError, Equatable {
    public let message: String
    private let underlying: ErrorCause

    public init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.underlying = ErrorCause(cause)
    }

    /// libarchive, libzstd and the files they read fail the same way for a caller: the layer is not written.
    public var code: ErrorCode { "archive.failed" }
    public var cause: (any Error)? { underlying.error }
    public var description: String { message }
}
