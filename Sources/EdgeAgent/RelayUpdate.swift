import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeStick
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// `edgekit-agent update --from-relay` (docs/updates.md, "From the relay"): asks the plan's first
/// relay, through the tunnel, which bundle this router should install now, and fetches it onto the
/// data partition. The relay knows the router by its tunnel address and holds a site's master
/// back until its backup runs the new version, blessed. What was fetched is checked and installed
/// exactly like a bundle copied by hand: the relay is trusted with nothing.
public struct RelayUpdate {
    public let paths: AgentPaths
    /// How long one read or write on the connection may wait.
    public var timeout: TimeInterval = 30

    public init(paths: AgentPaths) {
        self.paths = paths
    }

    /// The relay's answer to `GET /update` (`UpdateRollout` on the relay).
    public enum Answer: Sendable, Equatable {
        case bundle(name: String, bytes: UInt64, version: UInt64)
        case none(String)
        case wait(String)

        /// Parses the answer's one line; nil for anything else.
        public init?(line: String) {
            let line = trimmed(line)
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            switch words.first {
            case "bundle":
                let fields = (words.count > 1 ? words[1] : "").split(separator: " ").map(String.init)
                guard fields.count == 3, BundleFileName.isPlain(fields[0]), fields[0].hasSuffix(".update"),
                      let bytes = UInt64(fields[1]), let version = UInt64(fields[2]) else { return nil }
                self = .bundle(name: fields[0], bytes: bytes, version: version)
            case "none": self = .none(words.count > 1 ? words[1] : "")
            case "wait": self = .wait(words.count > 1 ? words[1] : "")
            default: return nil
            }
        }
    }

    /// Where fetched bundles are kept: on the data partition, outside both system slots.
    public var folder: String { paths.state + "/updates" }

    /// The relay asked: the applied profile's first relay, at its tunnel address.
    public func relay() throws -> (name: String, address: String) {
        guard let data = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile)),
              let document = try? JSONDecoder().decode(ProfileDocument.self, from: data),
              let relay = document.plan.relays.first?.relay else {
            throw AgentError.updateFromRelay("no profile is applied, so this router knows no relay to ask")
        }
        return (relay.name, relay.tunnelAddress.description)
    }

    /// Why `update --from-relay --scheduled` (edgekit-update.timer) asks nothing now, before any
    /// traffic: no profile applied (no relay known; a spare without its stick), or no bundle could
    /// be installed whatever the relay offered (on a trial boot, a board without trial boots, an
    /// image without slots). nil: ask.
    public func reasonToWait() throws -> String? {
        guard FileManager.default.fileExists(atPath: paths.live(Agent.appliedProfile)) else {
            return "no profile is applied, so this router knows no relay to ask"
        }
        return try SlotInstall(paths: paths).blocker(release: try SystemUpdate.release(paths: paths))
    }

    /// The last offer this router fetched and refused (`state/update-refused`): one line,
    /// `NAME BYTES VERSION REASON`. The timer does not fetch the same offer again.
    public var refusedPath: String { paths.state + "/update-refused" }

    /// Why the offer `name` (`bytes`, `version`) was refused here before; nil when it was not.
    public func earlierRefusal(of name: String, bytes: UInt64, version: UInt64) -> String? {
        guard let data = FileManager.default.contents(atPath: refusedPath), data.count <= 4096 else { return nil }
        let fields = String(decoding: data, as: UTF8.self).split(separator: " ", maxSplits: 3).map(String.init)
        guard fields.count == 4, fields[0] == name, fields[1] == String(bytes), fields[2] == String(version) else { return nil }
        return trimmed(fields[3])
    }

    /// Remembers that the offer was fetched and refused for `reason` (one line, at most 1 KiB of it).
    public func recordRefusal(of name: String, bytes: UInt64, version: UInt64, reason: String) throws {
        let line = "\(name) \(bytes) \(version) \(String(Printable.escaped(reason).prefix(1024)))\n"
        try FileManager.default.createDirectory(atPath: paths.state, withIntermediateDirectories: true)
        try AtomicFile.write(Data(line.utf8), to: refusedPath, mode: 0o644, replace: true)
    }

    /// Checks a fetched bundle as `update --check` does. A refused one (another plan, board or
    /// site, not newer, a bad signature or hash) is removed from the data partition and remembered,
    /// so the timer does not fetch the same offer again.
    public func checkFetched(_ path: String, name: String, bytes: UInt64, version: UInt64) throws -> SystemUpdate.Checked {
        do {
            return try SystemUpdate.check(path, paths: paths)
        } catch let refusal as UpdateBundleError {
            try? FileManager.default.removeItem(atPath: path)
            try? recordRefusal(of: name, bytes: bytes, version: version, reason: refusal.problem)
            throw refusal
        }
    }

    /// `GET /update?board=B&version=N` for the running system.
    public func ask() throws -> Answer {
        let release = try SystemUpdate.release(paths: paths)
        let (name, address) = try relay()
        let response = try HTTPFetch(host: address, port: RelayConfig.defaultUpdatePort, timeout: timeout)
            .get("/update?board=\(release.board)&version=\(release.version)", limit: 4096)
        let text = String(decoding: response.body, as: UTF8.self)
        guard response.status == 200 else {
            throw AgentError.updateFromRelay("relay \(name) ([\(address)]:\(RelayConfig.defaultUpdatePort)) answered \(response.status): \(Printable.escaped(trimmed(text)))")
        }
        guard let answer = Answer(line: text) else {
            throw AgentError.updateFromRelay("relay \(name) answered something that is not an update answer: \(Printable.escaped(String(text.prefix(200))))")
        }
        return answer
    }

    /// Fetches `name` (`bytes` long) into `folder`, under a temporary name until it is whole and
    /// synced; earlier fetches are removed first (one bundle on the partition at a time). `report`
    /// hears progress at every quarter. Returns its path.
    public func fetch(_ name: String, bytes: UInt64, report: (String) -> Void = { _ in }) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for old in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            try? FileManager.default.removeItem(atPath: folder + "/" + old)
        }
        try Self.checkRoom(for: name, bytes: bytes, free: Self.freeBytes(folder))
        let (relayName, address) = try relay()
        let path = folder + "/" + name
        let partial = path + ".part"
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgentError.cannotWrite(partial, String(cString: strerror(errno))) }
        var closed = false
        defer {
            if !closed { close(fd) }
            unlink(partial)
        }
        let size = { (n: UInt64) in bytes >= 1 << 20 ? "\(n >> 20) of \(bytes >> 20) MiB" : "\(n) of \(bytes) bytes" }
        var nextQuarter: UInt64 = 1
        let written = try HTTPFetch(host: address, port: RelayConfig.defaultUpdatePort, timeout: timeout)
            .download("/bundles/" + name, expecting: bytes, into: fd) { done in
                while nextQuarter <= 4, done >= bytes / 4 * nextQuarter {
                    report("fetching \(name) from relay \(relayName): \(nextQuarter * 25) % (\(size(done)))")
                    nextQuarter += 1
                }
            }
        guard written == bytes else {
            throw AgentError.updateFromRelay("relay \(relayName) sent \(written) bytes of \(name), not the \(bytes) it announced")
        }
        guard fsync(fd) == 0 else { throw AgentError.cannotWrite(partial, String(cString: strerror(errno))) }
        close(fd)
        closed = true
        guard rename(partial, path) == 0 else { throw AgentError.cannotWrite(path, String(cString: strerror(errno))) }
        try SlotInstall.syncDirectory(folder)
        report("fetched \(name) (\(bytes) bytes) from relay \(relayName)")
        return path
    }
}

extension RelayUpdate {
    /// No bundle is larger (the example's is 125 MB): a larger announcement is not fetched.
    static let maximumBundleBytes: UInt64 = 8 << 30
    /// Left free on the data partition after a fetch: the agent's generations, records and logs live there.
    static let reserveBytes: UInt64 = 64 << 20

    /// Refuses, before a byte is fetched, a bundle the data partition cannot hold with the reserve
    /// to spare, or one larger than any bundle: the relay's announced length is not trusted with
    /// the router's disk.
    static func checkRoom(for name: String, bytes: UInt64, free: UInt64?) throws {
        guard bytes <= maximumBundleBytes else {
            throw AgentError.updateFromRelay("the relay offers \(name) of \(bytes >> 20) MiB, more than any bundle (\(maximumBundleBytes >> 30) GiB); not fetched")
        }
        if let free, bytes > free || free - bytes < reserveBytes {
            throw AgentError.updateFromRelay("\(name) is \(bytes >> 20) MiB and the data partition has \(free >> 20) MiB free, \(reserveBytes >> 20) MiB of which stay for the agent's state; not fetched")
        }
    }

    /// Bytes an unprivileged write may still use in the file system holding `path`; nil when unknown.
    static func freeBytes(_ path: String) -> UInt64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }
}

/// A small HTTP/1.1 client for the relay's update endpoint (no Foundation networking on the
/// appliance): one request per connection, bounded headers and text bodies, a read and write
/// timeout on the socket.
struct HTTPFetch {
    let host: String
    let port: UInt16
    let timeout: TimeInterval

    struct Response {
        var status: Int
        var length: UInt64?
        var body: [UInt8]
    }

    /// The largest response head accepted.
    static let headLimit = 16 * 1024

    func connect() throws -> Int32 {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw failure("\(host) is not an IPv6 address") }
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        // On Linux the send timeout bounds connect() too.
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard connected == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw failure("cannot connect: \(why)")
        }
        return fd
    }

    func failure(_ why: String) -> AgentError {
        AgentError.updateFromRelay("[\(host)]:\(port): \(why)")
    }

    /// Sends the request and reads the response head; returns the head and what of the body came with it.
    func request(_ fd: Int32, _ path: String) throws -> (Response, [UInt8]) {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: [\(host)]:\(port)\r\nUser-Agent: edgekit-agent/\(AgentVersion.current)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw failure("cannot send the request: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = head.firstRange(of: [13, 10, 13, 10]) {
                let text = String(decoding: head[..<end.lowerBound], as: UTF8.self)
                let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
                let statusWords = lines.first?.split(separator: " ") ?? []
                guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), let status = Int(statusWords[1]) else {
                    throw failure("the answer is not HTTP: \(Printable.escaped(String(lines.first ?? "")))")
                }
                var length: UInt64?
                for line in lines.dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        length = UInt64(trimmed(String(parts[1])))
                    }
                }
                return (Response(status: status, length: length, body: []), Array(head[end.upperBound...]))
            }
            guard head.count < HTTPFetch.headLimit else { throw failure("the answer's head is longer than \(HTTPFetch.headLimit) bytes") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw failure(n == 0 ? "the relay closed the connection before answering" : "no answer: \(String(cString: strerror(errno)))") }
            head += buffer[..<n]
        }
    }

    /// A GET whose body (at most `limit` bytes) is returned.
    func get(_ path: String, limit: Int) throws -> Response {
        let fd = try connect()
        defer { close(fd) }
        var (response, body) = try request(fd, path)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while body.count <= limit, response.length.map({ UInt64(body.count) < $0 }) ?? true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            body += buffer[..<n]
        }
        guard body.count <= limit else { throw failure("the answer to \(path) is longer than \(limit) bytes") }
        response.body = body
        return response
    }

    /// A GET whose body, exactly `expecting` bytes, goes to `fd`; `progress` hears the bytes so far.
    /// Returns the bytes written.
    func download(_ path: String, expecting: UInt64, into output: Int32, progress: (UInt64) -> Void) throws -> UInt64 {
        let fd = try connect()
        defer { close(fd) }
        let (response, first) = try request(fd, path)
        guard response.status == 200 else {
            let text = trimmed(String(decoding: first.prefix(200), as: UTF8.self))
            throw failure("GET \(path) answered \(response.status): \(Printable.escaped(text))")
        }
        guard response.length == expecting else {
            throw failure("GET \(path) announced \(response.length.map(String.init) ?? "no length"), not the \(expecting) bytes the relay named")
        }
        var written: UInt64 = 0
        func write(_ bytes: ArraySlice<UInt8>) throws {
            guard written + UInt64(bytes.count) <= expecting else { throw failure("GET \(path) sent more than \(expecting) bytes") }
            var done = 0
            while done < bytes.count {
                let n = bytes[(bytes.startIndex + done)...].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
                guard n > 0 else { throw AgentError.cannotWrite("the fetched bundle", String(cString: strerror(errno))) }
                done += n
            }
            written += UInt64(bytes.count)
            progress(written)
        }
        try write(first[...])
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while written < expecting {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else {
                throw failure(n == 0 ? "the connection closed after \(written) of \(expecting) bytes" : "after \(written) of \(expecting) bytes: \(String(cString: strerror(errno)))")
            }
            try write(buffer[..<n])
        }
        return written
    }
}

/// `text` without white space at either end (FoundationEssentials has no `trimmingCharacters`).
func trimmed(_ text: String) -> String {
    String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
}
