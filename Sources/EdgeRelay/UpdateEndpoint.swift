import EdgeModel
import EdgeSystem
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// One bundle in `bundles_directory`, known by its name: `SITE-VERSION.update` (a site's bundle) or
/// `PLAN-BOARD-VERSION.update` (`--any-site`), as `edgekit image update` and `edgekit build` name
/// them. The relay never opens a bundle: the router checks the operator's signature, plan, site,
/// board and version of what it fetched before it writes a byte.
public struct ServedBundle: Sendable, Equatable, Encodable {
    public var name: String
    /// The site, or `PLAN-BOARD` for a bundle for any site of that board.
    public var target: String
    public var version: UInt64
    public var bytes: UInt64

    /// nil for a name that is not `TARGET-VERSION.update` with a plain file name.
    public init?(name: String, bytes: UInt64) {
        guard BundleFileName.isPlain(name), name.hasSuffix(".update") else { return nil }
        let stem = name.dropLast(".update".count)
        guard let dash = stem.lastIndex(of: "-"), let version = UInt64(stem[stem.index(after: dash)...]), version > 0,
              dash > stem.startIndex else { return nil }
        self.name = name
        target = String(stem[..<dash])
        self.version = version
        self.bytes = bytes
    }


    /// The bundles in `folder` (regular files with bundle names), by name; other files are ignored.
    public static func list(_ folder: String) -> [ServedBundle] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        return names.compactMap { name in
            var info = stat()
            guard stat(folder + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return ServedBundle(name: name, bytes: UInt64(info.st_size))
        }
    }
}

/// Which bundle a router should install now (docs/updates.md, "From the relay"): the newest for its
/// site (or for any site of its board) above the version it runs, one router of a site at a time:
/// a router that claims master waits until every other router of its site reports running that
/// version, blessed. So a VRRP pair updates its backup first, and the master only once the backup
/// came through its trial boot; while the master reboots, the backup holds the site.
public enum UpdateRollout {
    public enum Decision: Sendable, Equatable {
        case bundle(ServedBundle)
        /// Nothing newer for this router.
        case none(String)
        /// A newer bundle exists, but the rollout holds this router back for now.
        case wait(String)

        /// The answer's one line: `bundle NAME BYTES VERSION`, `none REASON` or `wait REASON`.
        public var line: String {
            switch self {
            case .bundle(let bundle): "bundle \(bundle.name) \(bundle.bytes) \(bundle.version)"
            case .none(let why): "none \(why)"
            case .wait(let why): "wait \(why)"
            }
        }
    }

    /// `router` asks, running `version` on `board`; `peers` are every registered router.
    public static func decide(router: PeerRecord, peers: [PeerRecord], bundles: [ServedBundle], plan: String,
                              board: String?, version: UInt64) -> Decision {
        let targets = [router.site] + (board.map { ["\(plan)-\($0)"] } ?? [])
        let candidates = bundles.filter { targets.contains($0.target) && $0.version > version }
        // The newest version; at one version a site's own bundle before one for any site.
        guard let newest = candidates.max(by: { ($0.version, $0.target == router.site ? 1 : 0) < ($1.version, $1.target == router.site ? 1 : 0) }) else {
            return .none("no bundle newer than version \(version) for site \(router.site)\(board.map { " or board \($0)" } ?? "")")
        }
        if router.updateState == "failed", let failed = router.updateVersion, failed >= Int64(clamping: newest.version) {
            return .none("version \(failed) failed its trial boot on this router; it needs a newer bundle than \(newest.name)")
        }
        guard router.claim == "master" else { return .bundle(newest) }
        let others = peers.filter { $0.site == router.site && $0.publicKey != router.publicKey }.sorted { $0.slot < $1.slot }
        for other in others {
            let who = "site \(other.site) router \(other.slot) (\(other.claim))"
            guard let running = other.systemVersion else {
                return .wait("\(who) does not report its system version yet; the backup updates first")
            }
            if other.updateState == "failed", let failed = other.updateVersion, failed >= Int64(clamping: newest.version) {
                return .wait("\(who) failed version \(failed) on its trial boot; the master stays on \(version)")
            }
            guard running >= Int64(clamping: newest.version), other.updateState != "trial" else {
                return .wait("\(who) runs version \(running), not yet \(newest.version) blessed; the backup updates first")
            }
        }
        return .bundle(newest)
    }
}

/// The routers' update endpoint (docs/updates.md, "From the relay"), HTTP/1.1 on each of
/// `update_addresses` (the relay's tunnel address): `GET /update?board=B&version=N` answers the
/// asking router (known by its tunnel address, which WireGuard vouches for) with one
/// `UpdateRollout` line; `GET /bundles/NAME` streams a bundle of `bundles_directory`. Anyone else
/// gets 403; a failed bind is logged and leaves registrations alone.
struct UpdateEndpoint: Sendable {
    let config: RelayConfig
    let store: RelayStore
    let logger: Logger
    let onListening: @Sendable (String) -> Void

    typealias Connection = HTTPListener.Connection

    /// How much of a bundle is read per write.
    static let chunkSize = 1 << 18

    func run() async {
        guard let folder = config.bundlesDirectory else { return }
        // The folder the operator copies bundles into; made at start so it is there to copy into.
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        await withDiscardingTaskGroup { group in
            for address in config.updateAddresses {
                group.addTask { await serve(on: address) }
            }
        }
    }

    func serve(on address: String) async {
        await HTTPListener.serve(on: address, port: config.updatePort, name: "update", serving: "updates", metadata: ["bundles": "\(config.bundlesDirectory ?? "")"], logger: logger,
                                 onListening: onListening) { connection in await respond(connection) }
    }

    /// What a request gets: a text answer, or a bundle to stream.
    enum Answer {
        case text(HTTPResponseStatus, String)
        case file(String, UInt64)
    }

    /// The answer to `uri` from `source` (the connection's remote address).
    func answer(_ method: HTTPMethod, _ uri: String, from source: String?) throws -> Answer {
        guard method == .GET || method == .HEAD else { return .text(.methodNotAllowed, "only GET /update and GET /bundles/NAME\n") }
        guard let folder = config.bundlesDirectory else { return .text(.notFound, "this relay serves no bundles\n") }
        let snapshot = try store.snapshot()
        guard let source, let address = IPv6Address(source),
              let router = snapshot.peers.first(where: { IPv6Address($0.tunnelAddress) == address }) else {
            return .text(.forbidden, "not a registered router's tunnel address: \(source ?? "unknown")\n")
        }
        let parts = uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? uri
        if path == "/update" {
            var query: [String: String] = [:]
            for pair in (parts.count > 1 ? parts[1] : "").split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { query[String(kv[0])] = String(kv[1]) }
            }
            guard let version = query["version"].flatMap(UInt64.init) else {
                return .text(.badRequest, "GET /update?board=BOARD&version=N: version is missing or not a number\n")
            }
            let board = query["board"].flatMap { name in Board.all.first { $0.name == name }?.name }
            let decision = UpdateRollout.decide(router: router, peers: snapshot.peers, bundles: ServedBundle.list(folder),
                                                plan: config.plan, board: board, version: version)
            logger.info("update asked", metadata: ["site": "\(router.site)", "slot": "\(router.slot)", "answer": "\(decision.line)"])
            return .text(.ok, decision.line + "\n")
        }
        if path.hasPrefix("/bundles/") {
            let name = String(path.dropFirst("/bundles/".count))
            guard BundleFileName.isPlain(name), let bundle = ServedBundle.list(folder).first(where: { $0.name == name }) else {
                return .text(.notFound, "no bundle \(Printable.escaped(name)) in \(folder)\n")
            }
            return .file(folder + "/" + bundle.name, bundle.bytes)
        }
        return .text(.notFound, "not found: GET /update or GET /bundles/NAME\n")
    }

    func respond(_ connection: Connection) async {
        let source = connection.channel.remoteAddress?.ipAddress
        await HTTPListener.eachRequest(of: connection, name: "update", logger: logger) { request, outbound in
            let answer: Answer
            do {
                answer = try await offThread { try self.answer(request.method, request.uri, from: source) }
            } catch {
                answer = .text(.internalServerError, "edgekit-relay: update: \(error)\n")
            }
            switch answer {
            case .text(let status, let body):
                try await HTTPListener.answer(request, status, body: body, to: outbound)
            case .file(let path, let bytes):
                try await outbound.write(HTTPListener.head(request, .ok, type: "application/octet-stream", length: bytes))
                if request.method != .HEAD { try await stream(path, bytes: bytes, to: outbound) }
                try await outbound.write(.end(nil))
            }
            return request.isKeepAlive
        }
    }

    /// Exactly `bytes` bytes of the file (the length announced), read off the event loop a chunk at
    /// a time; each write waits for the router to take the last (no whole bundle in memory).
    func stream(_ path: String, bytes: UInt64, to outbound: HTTPListener.Writer) async throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RelayError.config(path, "cannot be opened: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset: UInt64 = 0
        while offset < bytes {
            let want = Int(min(UInt64(UpdateEndpoint.chunkSize), bytes - offset))
            let at = off_t(offset)
            let chunk = try await offThread { () -> [UInt8] in
                var buffer = [UInt8](repeating: 0, count: want)
                let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, at) }
                guard got > 0 else { throw RelayError.config(path, "the bundle shrank while it was sent") }
                return Array(buffer.prefix(got))
            }
            offset += UInt64(chunk.count)
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
        }
    }
}
