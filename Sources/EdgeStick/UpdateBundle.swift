import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeSystem
import SystemCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Why an update bundle was refused: one line naming the bundle and the problem (docs/updates.md).
public struct UpdateBundleError: EdgeError {
    public let code: ErrorCode
    public let input: String?
    public let message: String
    /// What is wrong, without the bundle's path (`message` names it).
    public let problem: String
    public let cause: (any Error)?

    public init(_ code: ErrorCode, _ path: String, _ problem: String, cause: (any Error)? = nil) {
        self.code = code
        input = path
        self.problem = problem
        message = "update bundle \(Printable.escaped(path)): \(problem)"
        self.cause = cause
    }

    public var description: String { message }
}

/// The signed description of an update bundle, `manifest.json`: which plan, board and site the
/// system is for, its version, and every other member's size and SHA-256 (docs/updates.md).
public struct UpdateManifest: Codable, Sendable, Equatable {
    public static let currentFormat = 1

    public struct Member: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: UInt64
        public var sha256: String

        public init(name: String, bytes: UInt64, sha256: String) {
            self.name = name
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    public var format: Int
    public var plan: String
    /// nil: any site of the plan on this board (the system is the same for every site).
    public var site: String?
    public var board: String
    public var version: UInt64
    /// The system level the bundle was made from (`edgekit image build` names it in its progress).
    public var system: String
    /// The root filesystem once decompressed: what the inactive slot must hold after the install.
    public var rootBytes: UInt64
    public var rootSHA256: String
    /// The kernel command line after `root=` for the new system's boot entry (the agent adds
    /// `root=PARTUUID=` of the slot it installs into); nil: the running system's.
    public var kernelOptions: String?
    public var members: [Member]

    public init(plan: String, site: String?, board: String, version: UInt64, system: String,
                rootBytes: UInt64, rootSHA256: String, kernelOptions: String? = nil, members: [Member]) {
        format = Self.currentFormat
        self.plan = plan
        self.site = site
        self.board = board
        self.version = version
        self.system = system
        self.rootBytes = rootBytes
        self.rootSHA256 = rootSHA256
        self.kernelOptions = kernelOptions
        self.members = members
    }

    enum CodingKeys: String, CodingKey {
        case format, plan, site, board, version, system, members
        case rootBytes = "root_bytes"
        case rootSHA256 = "root_sha256"
        case kernelOptions = "kernel_options"
    }
}

/// An update bundle, `SITE-VERSION.update`: a POSIX tar (ustar) whose first member is
/// `manifest.sig`, the manifest as a signify embedded signature of the operator key
/// (`signify-openbsd -V -e -p operator.pub -x manifest.sig -m manifest.json` checks it), followed by
/// the members the manifest lists (`root.img.zst`, the kernel, the initrd, the software bill).
public struct UpdateBundle: Sendable {
    public static let manifestMember = "manifest.sig"
    public static let rootMember = "root.img.zst"
    /// A manifest lists a handful of members: anything larger than this is not one.
    static let maximumManifestBytes = 64 << 10
    static let maximumMembers = 16

    public let path: String
    public let manifest: UpdateManifest
    /// Where each member's bytes start in the file, by name.
    public let offsets: [String: UInt64]

    /// Reads the first member and checks its signature with `operatorKey`, then the tar headers of
    /// the members the manifest lists: names, sizes and order. Nothing past the headers is read.
    public static func open(_ path: String, operatorKey: Signify.PublicKey) throws(UpdateBundleError) -> UpdateBundle {
        let file = try BundleFile(path)
        defer { file.close() }
        let (first, signed) = try signedManifest(file)
        let message: Data
        do {
            message = try Signify.verifyEmbedded(signed, publicKey: operatorKey)
        } catch {
            throw UpdateBundleError("update.bad-signature", path,
                                    "its signature does not verify with the operator key (altered, or signed by another plan's operator): \(error)", cause: error)
        }
        let manifest = try decodeManifest(message, path: path)
        guard manifest.format == UpdateManifest.currentFormat else {
            throw UpdateBundleError("update.unsupported", path, "manifest format \(manifest.format); this agent reads format \(UpdateManifest.currentFormat): update the agent first")
        }
        guard manifest.members.count <= maximumMembers, manifest.members.first?.name == rootMember,
              Set(manifest.members.map(\.name)).count == manifest.members.count else {
            throw UpdateBundleError("update.malformed", path, "its manifest must list \(rootMember) first and at most \(maximumMembers) members, each once")
        }
        var offsets: [String: UInt64] = [:]
        var position = TarFormat.blockSize + TarFormat.padded(first.size)
        for member in manifest.members {
            guard let header = try file.header(at: position), header.name == member.name, header.size == member.bytes else {
                throw UpdateBundleError("update.malformed", path, "member \(member.name) is missing, out of order or not \(member.bytes) bytes (truncated?)")
            }
            offsets[member.name] = position + TarFormat.blockSize
            position += TarFormat.blockSize + TarFormat.padded(header.size)
        }
        return UpdateBundle(path: path, manifest: manifest, offsets: offsets)
    }

    /// What the bundle at `path` says it is, its signature **not checked** (the operator's machine
    /// has no business trusting it, only naming it: the relay and the router verify).
    public static func unverifiedManifest(_ path: String) throws(UpdateBundleError) -> UpdateManifest {
        let file = try BundleFile(path)
        defer { file.close() }
        let (_, signed) = try signedManifest(file)
        let message: Data
        do {
            message = try Signify.embeddedMessageUnverified(signed)
        } catch {
            throw UpdateBundleError("update.malformed", path, "its \(manifestMember) is not a signify embedded signature: \(error)", cause: error)
        }
        return try decodeManifest(message, path: path)
    }

    /// The first member's header and bytes: `manifest.sig`, small.
    static func signedManifest(_ file: BundleFile) throws(UpdateBundleError) -> (TarFormat.Header, Data) {
        guard let first = try file.header(at: 0) else {
            throw UpdateBundleError("update.malformed", file.path, "is empty or not a tar archive")
        }
        guard first.name == manifestMember, first.size <= UInt64(maximumManifestBytes) else {
            throw UpdateBundleError("update.malformed", file.path, "does not start with \(manifestMember) (at most \(maximumManifestBytes) bytes); not an edgekit update bundle")
        }
        return (first, try file.read(at: TarFormat.blockSize, count: Int(first.size)))
    }

    static func decodeManifest(_ message: Data, path: String) throws(UpdateBundleError) -> UpdateManifest {
        do {
            return try DocumentCoding.decode(UpdateManifest.self, from: message)
        } catch {
            throw UpdateBundleError("update.malformed", path, "its manifest is unreadable: \(error)", cause: error)
        }
    }

    /// Refuses a bundle that is not for this device: another plan, board or site, or a version not
    /// newer than the running system's `release` (anti-rollback, like the stick's serial).
    public func check(plan: String, site: String, release: SystemRelease) throws(UpdateBundleError) {
        guard manifest.plan == plan else {
            throw UpdateBundleError("update.wrong-plan", path, "is for plan \(manifest.plan), this router belongs to plan \(plan)")
        }
        guard manifest.board == release.board else {
            throw UpdateBundleError("update.wrong-board", path, "is for board \(manifest.board), this router is a \(release.board)")
        }
        if let bundleSite = manifest.site, bundleSite != site {
            throw UpdateBundleError("update.wrong-site", path, "is for site \(bundleSite), this router serves \(site)")
        }
        guard manifest.version > release.version else {
            throw UpdateBundleError("update.not-newer", path,
                                    "version \(manifest.version) is not newer than the installed \(release.version); an older system is never installed again")
        }
    }

    /// Reads member `name` in order, in chunks of at most 1 MiB (nothing when the bundle has no such member).
    public func readMember(_ name: String, _ body: (Data) -> Void) throws(UpdateBundleError) {
        guard let offset = offsets[name], let member = manifest.members.first(where: { $0.name == name }) else { return }
        let file = try BundleFile(path)
        defer { file.close() }
        try file.stream(at: offset, count: member.bytes, body)
    }

    /// Reads every member once and compares its SHA-256 with the manifest's; `progress` gets the
    /// bytes read so far.
    public func verifyMembers(progress: (UInt64) -> Void = { _ in }) throws(UpdateBundleError) {
        let file = try BundleFile(path)
        defer { file.close() }
        var done: UInt64 = 0
        for member in manifest.members {
            var hash = SHA256()
            try file.stream(at: offsets[member.name]!, count: member.bytes) { chunk in
                hash.update(data: chunk)
                done += UInt64(chunk.count)
                progress(done)
            }
            guard hash.finalize().hex == member.sha256 else {
                throw UpdateBundleError("update.damaged", path, "member \(member.name) does not match its SHA-256 in the signed manifest (damaged or altered)")
            }
        }
    }
}

/// The few parts of POSIX ustar that bundles use: regular files with short names.
public enum TarFormat {
    public static let blockSize: UInt64 = 512

    public static func padded(_ size: UInt64) -> UInt64 { (size + blockSize - 1) / blockSize * blockSize }

    /// A ustar header for a regular file `name` (at most 100 bytes) of `size` bytes, mode 0644,
    /// owner 0, time `mtime`.
    public static func header(name: String, size: UInt64, mtime: Int) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: Int(blockSize))
        func put(_ text: String, at offset: Int, width: Int) {
            for (index, byte) in text.utf8.prefix(width).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: UInt64, width: Int) -> String {
            let digits = String(value, radix: 8)
            return String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
        }
        put(name, at: 0, width: 100)
        put(octal(0o644, width: 8), at: 100, width: 7)
        put(octal(0, width: 8), at: 108, width: 7)
        put(octal(0, width: 8), at: 116, width: 7)
        put(octal(size, width: 12), at: 124, width: 11)
        put(octal(UInt64(max(0, mtime)), width: 12), at: 136, width: 11)
        block[156] = UInt8(ascii: "0")
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        put("root", at: 265, width: 32)
        put("root", at: 297, width: 32)
        for index in 148..<156 { block[index] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + UInt64($1) }
        put(octal(sum, width: 7) + "\0 ", at: 148, width: 8)
        return block
    }

    public struct Header: Equatable {
        public var name: String
        public var size: UInt64
    }

    /// Parses a header block; nil for the end-of-archive block (all zero). Only regular files.
    struct Problem: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    static func parse(_ block: [UInt8]) -> Result<Header?, Problem> {
        guard block.count == Int(blockSize) else { return .failure(Problem("a tar header is cut short")) }
        if block.allSatisfy({ $0 == 0 }) { return .success(nil) }
        var stored = block
        for index in 148..<156 { stored[index] = UInt8(ascii: " ") }
        guard let sum = number(block[148..<156]), sum == stored.reduce(0, { $0 + UInt64($1) }) else {
            return .failure(Problem("a tar header's checksum is wrong"))
        }
        guard Array(block[257..<262]) == Array("ustar".utf8), block[156] == UInt8(ascii: "0") || block[156] == 0 else {
            return .failure(Problem("a member is not a plain ustar file"))
        }
        guard let size = number(block[124..<136]) else { return .failure(Problem("a tar header's size is unreadable")) }
        let name = String(decoding: block[0..<100].prefix { $0 != 0 }, as: UTF8.self)
        return .success(Header(name: name, size: size))
    }

    static func number(_ field: ArraySlice<UInt8>) -> UInt64? {
        let digits = field.prefix { $0 != 0 && $0 != UInt8(ascii: " ") }
        guard !digits.isEmpty, digits.count <= 11 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit) else { return nil }
            value = value * 8 + UInt64(digit - UInt8(ascii: "0"))
        }
        return value
    }
}

/// A bundle opened for reading with pread: headers, the manifest, members in chunks.
struct BundleFile {
    let path: String
    let fd: Int32
    let size: UInt64

    init(_ path: String) throws(UpdateBundleError) {
        self.path = path
        fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw UpdateBundleError("update.unreadable", path, "cannot be read: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            _ = Glibc.close(fd)
            throw UpdateBundleError("update.unreadable", path, "is not a regular file")
        }
        size = UInt64(info.st_size)
    }

    func close() { _ = Glibc.close(fd) }

    func read(at offset: UInt64, count: Int) throws(UpdateBundleError) -> Data {
        guard offset + UInt64(count) <= size else {
            throw UpdateBundleError("update.malformed", path, "ends early (truncated: \(size) bytes)")
        }
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            guard got > 0 else { throw UpdateBundleError("update.unreadable", path, "cannot be read: \(got < 0 ? String(cString: strerror(errno)) : "ends early")") }
            done += got
        }
        return Data(buffer)
    }

    func header(at offset: UInt64) throws(UpdateBundleError) -> TarFormat.Header? {
        guard offset + TarFormat.blockSize <= size else { return nil }
        switch TarFormat.parse([UInt8](try read(at: offset, count: Int(TarFormat.blockSize)))) {
        case .success(let header): return header
        case .failure(let problem): throw UpdateBundleError("update.malformed", path, "is not a valid bundle: \(problem.text)")
        }
    }

    func stream(at offset: UInt64, count: UInt64, _ body: (Data) -> Void) throws(UpdateBundleError) {
        var position = offset
        let end = offset + count
        while position < end {
            let chunk = Int(min(1 << 20, end - position))
            body(try read(at: position, count: chunk))
            position += UInt64(chunk)
        }
    }
}
