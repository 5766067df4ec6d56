import EdgeCrypto
import EdgeModel
import EdgeStick
import Foundation
import SystemCrypto

/// Writes update bundles (`EdgeStick.UpdateBundle` reads them; docs/updates.md): the system's root
/// filesystem compressed with zstd, the files that boot it, the software bill, and the manifest that
/// names them all, signed with the operator key.
public enum UpdateBundleWriter {
    /// A member besides the root filesystem: its name in the bundle and the file it is copied from.
    public struct File: Sendable {
        public var name: String
        public var path: String

        public init(name: String, path: String) {
            self.name = name
            self.path = path
        }
    }

    /// Writes the bundle to `path`, under a temporary name until it is complete. `root` is the
    /// byte range of the root filesystem in `root.file` (the system level's disk image).
    @discardableResult
    public static func write(to path: String, plan: String, site: String?, release: SystemRelease, system: String,
                             root: (file: String, offset: Int, bytes: Int), kernelOptions: String? = nil, files: [File],
                             key: Signify.SecretKey, mtime: Int, progress: BuildProgress) throws -> UpdateManifest {
        let partial = (path as NSString).deletingLastPathComponent + "/." + (path as NSString).lastPathComponent + ".partial-\(getpid())"
        let compressed = partial + ".root"
        defer {
            unlink(compressed)
            unlink(partial)
        }
        let rootSum = try progress.step("update: root filesystem", total: root.bytes) { step in
            let sum = try compress(root.file, offset: root.offset, bytes: root.bytes, into: compressed) { step.advance($0, of: root.bytes) }
            return (sum, "update: root filesystem \(byteCount(root.bytes)) → \(byteCount(fileSize(compressed))) zstd")
        }
        var members = [UpdateManifest.Member(name: UpdateBundle.rootMember, bytes: UInt64(fileSize(compressed)), sha256: try sha256(ofFile: compressed))]
        for file in files {
            members.append(UpdateManifest.Member(name: file.name, bytes: UInt64(fileSize(file.path)), sha256: try sha256(ofFile: file.path)))
        }
        let manifest = UpdateManifest(plan: plan, site: site, board: release.board, version: release.version, system: system,
                                      rootBytes: UInt64(root.bytes), rootSHA256: rootSum, kernelOptions: kernelOptions, members: members)
        let signed = Signify.signEmbedded(try DocumentCoding.encode(manifest), with: key,
                                          comment: "edgekit update: plan \(plan), \(site.map { "site \($0)" } ?? "any site"), board \(release.board), version \(release.version)")
        try progress.step("update: bundle") { _ in
            guard FileManager.default.createFile(atPath: partial, contents: nil), let output = FileHandle(forWritingAtPath: partial) else {
                throw ImageError("cannot write \(partial)")
            }
            defer { try? output.close() }
            try append(name: UpdateBundle.manifestMember, data: signed, to: output, mtime: mtime)
            try append(name: UpdateBundle.rootMember, file: compressed, to: output, mtime: mtime)
            for file in files {
                try append(name: file.name, file: file.path, to: output, mtime: mtime)
            }
            try output.write(contentsOf: Data(count: 2 * Int(TarFormat.blockSize)))
            try output.synchronize()
            guard rename(partial, path) == 0 else { throw ImageError("cannot move the bundle to \(path): \(String(cString: strerror(errno)))") }
            return ((), "update: \((path as NSString).lastPathComponent) \(byteCount(fileSize(path))), version \(release.version)")
        }
        return manifest
    }

    static func append(name: String, data: Data, to output: FileHandle, mtime: Int) throws {
        try output.write(contentsOf: TarFormat.header(name: name, size: UInt64(data.count), mtime: mtime))
        try output.write(contentsOf: data)
        try output.write(contentsOf: Data(count: Int(TarFormat.padded(UInt64(data.count))) - data.count))
    }

    static func append(name: String, file: String, to output: FileHandle, mtime: Int) throws {
        let size = fileSize(file)
        try output.write(contentsOf: TarFormat.header(name: name, size: UInt64(size), mtime: mtime))
        guard let input = FileHandle(forReadingAtPath: file) else { throw ImageError("cannot read \(file)") }
        defer { try? input.close() }
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
            try output.write(contentsOf: chunk)
        }
        try output.write(contentsOf: Data(count: Int(TarFormat.padded(UInt64(size))) - size))
    }

    /// Compresses `bytes` bytes of `file` from `offset` into `output` (one zstd frame, level 3, with
    /// its checksum) and returns the SHA-256 of the bytes read.
    static func compress(_ file: String, offset: Int, bytes: Int, into output: String, progress: (Int) -> Void) throws -> String {
        guard let input = FileHandle(forReadingAtPath: file) else { throw ImageError("cannot read \(file)") }
        defer { try? input.close() }
        try input.seek(toOffset: UInt64(offset))
        guard FileManager.default.createFile(atPath: output, contents: nil), let sink = FileHandle(forWritingAtPath: output) else {
            throw ImageError("cannot write \(output)")
        }
        defer { try? sink.close() }
        let compressor = try ZstdCompressor()
        var hash = SHA256()
        var done = 0
        while true {
            let chunk = try input.read(upToCount: min(4 << 20, bytes - done)) ?? Data()
            guard !chunk.isEmpty || done == bytes else { throw ImageError("\(file) ends before its root filesystem does") }
            hash.update(data: chunk)
            done += chunk.count
            try compressor.compress(chunk, end: done == bytes) { try sink.write(contentsOf: $0) }
            progress(done)
            if done == bytes { break }
        }
        return hash.finalize().hex
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }
}
