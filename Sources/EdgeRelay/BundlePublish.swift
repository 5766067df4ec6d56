import EdgeCrypto
import EdgeModel
import EdgeStick
import EdgeSystem
import Foundation

/// `edgekit-relay publish NAME` (docs/updates.md, "Publishing"): a bundle read from a file
/// descriptor (standard input: `edgekit fleet update` pipes it through ssh) into
/// `bundles_directory`. It is written under a temporary name, synced, and checked as a router
/// would check it (the plan's operator signature, this relay's plan, every member's SHA-256, and
/// the name matching what the manifest says) before one rename makes it servable: no router is
/// ever offered half a file or a bundle it would refuse.
public struct BundlePublisher {
    public let config: RelayConfig
    /// Larger input is refused (the example's bundle is 125 MB): a stream that never ends must not
    /// fill the relay's disk.
    public var maximumBytes: UInt64 = 8 << 30

    public init(config: RelayConfig) {
        self.config = config
    }

    public struct Published: Sendable, Equatable {
        public var bundle: ServedBundle
        public var manifest: UpdateManifest
        /// A bundle of the same name was there and is replaced.
        public var replaced: Bool

        /// `published NAME: plan P, site S, board B, version N, BYTES bytes (replaces the one there)`.
        public var line: String {
            "published \(bundle.name): plan \(manifest.plan), \(manifest.site.map { "site \($0)" } ?? "any site"), board \(manifest.board), "
                + "version \(manifest.version), \(bundle.bytes) bytes\(replaced ? " (it replaces the file of that name)" : "")"
        }
    }

    /// Reads `input` to its end into the folder as `name`; `progress` hears the bytes so far (every
    /// 16 MiB) and once when checking starts. Throws, leaving nothing behind, on a bad name, a
    /// stream that is not such a bundle, or one this relay's routers would refuse.
    public func publish(name: String, from input: Int32, progress: (String) -> Void = { _ in }) throws -> Published {
        guard let folder = config.bundlesDirectory else {
            throw RelayError.bundle(name, "cannot be published: the relay config has no bundles_directory, so this relay serves no updates (docs/relay.md)")
        }
        guard ServedBundle(name: name, bytes: 0) != nil else {
            throw RelayError.bundle(name, "is not a bundle name: SITE-VERSION.update or PLAN-BOARD-VERSION.update, as edgekit image update names them")
        }
        let operatorKey = try RelayServer.loadOperatorKey(path: config.operatorPublicKeyFile)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RelayError.bundle(folder, "cannot be made: \(error)")
        }
        // Not `.update`: the endpoint lists only those, so a partial file is never offered.
        let partial = folder + "/\(name).\(getpid()).part"
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RelayError.bundle(partial, "cannot be written: \(String(cString: strerror(errno)))") }
        var kept = false
        defer {
            if !kept { unlink(partial) }
        }
        let bytes: UInt64
        do {
            defer { close(fd) }
            bytes = try copy(from: input, to: fd, partial: partial, progress: progress)
            guard fsync(fd) == 0 else { throw RelayError.bundle(partial, "cannot be synced: \(String(cString: strerror(errno)))") }
        }
        guard bytes > 0 else { throw RelayError.bundle(name, "nothing came on standard input") }
        progress("checking \(name) (\(bytes) bytes) as a router would")
        let opened: UpdateBundle
        do {
            opened = try UpdateBundle.open(partial, operatorKey: operatorKey)
            try opened.verifyMembers()
        } catch {
            throw RelayError.bundle(name, error.problem)
        }
        let manifest = opened.manifest
        guard manifest.plan == config.plan else {
            throw RelayError.bundle(name, "is for plan \(manifest.plan); this relay serves plan \(config.plan)")
        }
        let expected = BundleFileName.name(plan: manifest.plan, site: manifest.site, board: manifest.board, version: manifest.version)
        guard expected == name else {
            throw RelayError.bundle(name, "holds \(manifest.site.map { "site \($0)" } ?? "any site"), board \(manifest.board), version \(manifest.version): publish it as \(expected)")
        }
        let path = folder + "/" + name
        let replaced = FileManager.default.fileExists(atPath: path)
        // A router fetching the old file of this name keeps reading it (its inode) until it is done.
        guard rename(partial, path) == 0 else { throw RelayError.bundle(path, "cannot be put in place: \(String(cString: strerror(errno)))") }
        kept = true
        AtomicFile.syncDirectory(folder)
        return Published(bundle: ServedBundle(name: name, bytes: bytes)!, manifest: manifest, replaced: replaced)
    }

    func copy(from input: Int32, to output: Int32, partial: String, progress: (String) -> Void) throws -> UInt64 {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: UInt64 = 0
        var nextReport: UInt64 = 16 << 20
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw RelayError.bundle("standard input", "cannot be read: \(String(cString: strerror(errno)))") }
            if n == 0 { return total }
            total += UInt64(n)
            guard total <= maximumBytes else {
                throw RelayError.bundle("standard input", "is longer than \(maximumBytes >> 20) MiB; no bundle is that large")
            }
            var done = 0
            while done < n {
                let written = buffer[done..<n].withUnsafeBytes { write(output, $0.baseAddress, $0.count) }
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { throw RelayError.bundle(partial, "cannot be written: \(String(cString: strerror(errno)))") }
                done += written
            }
            if total >= nextReport {
                progress("received \(total >> 20) MiB")
                nextReport += 16 << 20
            }
        }
    }
}
