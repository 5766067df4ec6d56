import EdgeCrypto
import EdgeRender
import EdgeSystem
import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The router's WireGuard tunnel to the relay, as far as the supervisor watches and repairs it.
/// Two implementations: `WireGuardTunnel` (`wg` on `wg-relay`) and the tests' scripted one, so the
/// stale-handshake logic is proven without waiting three minutes for a real handshake to age.
public protocol RelayTunnel: Sendable {
    /// The relay peer's last handshake in UNIX seconds (0: never), or nil when the tunnel is absent.
    func latestHandshake(relayPublicKey: String?) -> Int?
    /// `ADDRESS:PORT` for WireGuard (IPv6 in brackets) that `host` resolves to now, or nil when it
    /// does not resolve. Returns nil at once when the calling task is cancelled.
    func resolve(host: String, port: UInt16) async -> String?
    /// Points the relay peer at `endpoint` and has WireGuard send to it right away.
    func setEndpoint(relayPublicKey: String, endpoint: String, keepalive: Int) throws
    /// The relay peer's endpoint as WireGuard has it (`ADDRESS:PORT`), or nil when it has none.
    func endpoint(relayPublicKey: String) -> String?
}

extension ProfileDocument.PlanParameters {
    /// Each relay with the router's tunnel to it (`RouterTunnel`'s interface name), in the plan's order.
    var tunnels: [(relay: ProfileDocument.RelayParameters, interface: String)] {
        relays.enumerated().map { ($1, RouterTunnel(relay: $1.relay, position: $0).interface) }
    }
}

/// The host part of `ADDRESS:PORT` (IPv6 in brackets, as WireGuard and the registration client
/// write them), without brackets.
func endpointHost(_ endpoint: String) -> String? {
    if endpoint.hasPrefix("[") {
        guard let close = endpoint.firstIndex(of: "]") else { return nil }
        return String(endpoint[endpoint.index(after: endpoint.startIndex)..<close])
    }
    guard let colon = endpoint.lastIndex(of: ":") else { return nil }
    return String(endpoint[..<colon])
}

/// `host` and `port` as a WireGuard endpoint.
func wireGuardEndpoint(host: String, port: UInt16) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// The tunnels through `wg(8)`: one interface per relay, each with that relay as its one peer, so
/// a relay's tunnel is found by the relay's public key among the router's tunnels (interfaces named
/// `wg-relay…`). Each is asked by name (`wg show IF FIELD`), never with `all`: wireguard-go's
/// control sockets are shared by every network namespace of a host, so `all` also walks other
/// namespaces' interfaces (tests, the lab), which may have the same relay as their peer, and one
/// busy or half-gone socket of theirs could cut the listing.
public struct WireGuardTunnel: RelayTunnel {
    /// Interfaces whose names start with this are the router's tunnels.
    public var interfacePrefix: String
    /// Where wireguard-go keeps its control sockets (`IF.sock`).
    static let socketDirectory = "/var/run/wireguard"

    public init(interfacePrefix: String = InterfaceNames.routerTunnel) {
        self.interfacePrefix = interfacePrefix
    }

    /// The router's tunnels by name: this namespace's interfaces (kernel WireGuard) and
    /// wireguard-go's control sockets, both kept to `interfacePrefix`, in name order.
    func interfaces() -> [String] {
        var names = Set<String>()
        if let list = if_nameindex() {
            defer { if_freenameindex(list) }
            var entry = list
            while entry.pointee.if_index != 0, let name = entry.pointee.if_name {
                names.insert(String(cString: name))
                entry += 1
            }
        }
        for file in (try? FileManager.default.contentsOfDirectory(atPath: Self.socketDirectory)) ?? [] where file.hasSuffix(".sock") {
            names.insert(String(file.dropLast(".sock".count)))
        }
        return names.filter { $0.hasPrefix(interfacePrefix) }.sorted()
    }

    /// The tunnel interface whose peer is `relayPublicKey`, and that peer's value of `field`
    /// (`wg show IF FIELD`: "KEY<TAB>VALUE" lines); nil when no tunnel has that peer.
    func show(_ field: String, relayPublicKey: String?) -> (interface: String, value: String)? {
        for interface in interfaces() {
            // An interface named but gone (a stale socket, a tunnel being recreated) prints nothing.
            guard let result = try? SystemCommand.run("wg", ["show", interface, field]), result.succeeded else { continue }
            for line in result.output.split(separator: "\n") {
                let columns = line.split(separator: "\t")
                guard columns.count == 2 else { continue }
                // Without a key, the first tunnel listed.
                if relayPublicKey == nil || String(columns[0]) == relayPublicKey {
                    return (interface, String(columns[1]))
                }
            }
        }
        return nil
    }

    public func latestHandshake(relayPublicKey: String?) -> Int? {
        guard let (_, seconds) = show("latest-handshakes", relayPublicKey: relayPublicKey) else { return nil }
        return Int(seconds) ?? 0
    }

    public func resolve(host: String, port: UInt16) async -> String? {
        // getaddrinfo blocks for the resolver's whole timeout when DNS is down: keep it off the
        // cooperative threads, and let a shutting-down agent walk away from it.
        await Blocking.run { Self.resolveNow(host, port: port) } ?? nil
    }

    /// `wg set … endpoint`, then PersistentKeepalive off and on again: WireGuard sends a keepalive
    /// when the interval goes from 0 to N (wireguard-go `device/uapi.go`, Linux
    /// `drivers/net/wireguard/netlink.c`), so the new address hears from us (and a handshake starts)
    /// now rather than at the next keepalive, up to N seconds later.
    public func setEndpoint(relayPublicKey: String, endpoint: String, keepalive: Int) throws {
        guard let (interface, _) = show("endpoints", relayPublicKey: relayPublicKey) else {
            throw ServiceFailure(service: .tunnel, detail: "no wg-relay tunnel has the relay \(relayPublicKey) as its peer")
        }
        try SystemCommand.check("wg", ["set", interface, "peer", relayPublicKey, "endpoint", endpoint, "persistent-keepalive", "0"],
                                what: "setting the relay endpoint")
        if keepalive > 0 {
            try SystemCommand.check("wg", ["set", interface, "peer", relayPublicKey, "persistent-keepalive", String(keepalive)],
                                    what: "re-arming the relay keepalive")
        }
    }

    public func endpoint(relayPublicKey: String) -> String? {
        // "ADDRESS:PORT", or "(none)" before the first endpoint.
        guard let (_, endpoint) = show("endpoints", relayPublicKey: relayPublicKey), endpoint != "(none)" else { return nil }
        return endpoint
    }

    /// `host:port` for WireGuard, IPv6 in brackets; nil when the name does not resolve.
    static func resolveNow(_ host: String, port: UInt16) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                          NI_NUMERICHOST) == 0 else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return first.pointee.ai_family == AF_INET6 ? "[\(text)]:\(port)" : "\(text):\(port)"
    }
}

/// Blocking work (DNS, a registration exchange) that a cancelled task must not wait for.
enum Blocking {
    /// Runs `work` on a Dispatch thread. The caller gets its result, or nil at once if the calling
    /// task is cancelled first; the work then finishes unobserved (the agent is exiting).
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T? {
        let handoff = Handoff<T>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if handoff.install(continuation) {
                    DispatchQueue.global().async { handoff.finish(work()) }
                }
            }
        } onCancel: {
            handoff.finish(nil)
        }
    }

    /// Like `run`, for async work: it runs in an unstructured task, cancelled along with the caller,
    /// which gets `CancellationError` at once instead of waiting for the work to notice.
    static func abandoningOnCancel<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let handoff = Handoff<Result<T, any Error>>()
        let task = Task { handoff.finish(await Result(catching: work)) }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in _ = handoff.install(continuation) }
        } onCancel: {
            task.cancel()
            handoff.finish(nil)
        }
        guard let result else { throw CancellationError() }
        return try result.get()
    }

    /// One continuation resumed exactly once, by whichever comes first: the result or cancellation
    /// (which may come before the continuation exists).
    final class Handoff<T: Sendable>: @unchecked Sendable {
        private let lock = ThreadLock()
        private var continuation: CheckedContinuation<T?, Never>?
        private var outcome: T??

        /// False when the outcome is already in (then `continuation` is resumed here).
        func install(_ continuation: CheckedContinuation<T?, Never>) -> Bool {
            lock.lock()
            if let outcome {
                lock.unlock()
                continuation.resume(returning: outcome)
                return false
            }
            self.continuation = continuation
            lock.unlock()
            return true
        }

        func finish(_ value: T?) {
            lock.lock()
            guard outcome == nil else { lock.unlock(); return }
            outcome = .some(value)
            let waiting = continuation
            continuation = nil
            lock.unlock()
            waiting?.resume(returning: value)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
