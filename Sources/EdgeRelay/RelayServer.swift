import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Registration
import ServiceLifecycle

/// `edgekit-relay serve`: restores WireGuard from the state database, then answers registrations
/// on one UDP port until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`), saving the
/// peers' endpoints every `endpoint_save_ms`, and which routers were heard from meanwhile.
public struct RelayServer: Service {
    public let config: RelayConfig
    let logger: Logger
    /// Called with the bound address once the socket is up (tests and the benchmark wait for it).
    let onListening: @Sendable (String) -> Void
    /// Called with each address the metrics endpoint bound.
    let onMetricsListening: @Sendable (String) -> Void

    public init(config: RelayConfig, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in },
                onMetricsListening: @escaping @Sendable (String) -> Void = { _ in }) {
        self.config = config
        self.logger = logger
        self.onListening = onListening
        self.onMetricsListening = onMetricsListening
    }

    /// The relay's private WireGuard key from `private_key_file` (base64, as `wg genkey` prints).
    public static func loadPrivateKey(path: String) throws -> WireGuardKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RelayError.key(path, "cannot be read (private_key_file: the relay's WireGuard private key)")
        }
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
           let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw RelayError.key(path, "is readable by group or others (mode \(String(mode, radix: 8))); run chmod 600 \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: text), raw.count == 32 else {
            throw RelayError.key(path, "is not a base64 WireGuard private key (32 bytes, `wg genkey` form)")
        }
        return try WireGuardKey(privateKey: raw)
    }

    public static func loadOperatorKey(path: String) throws -> Signify.PublicKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RelayError.key(path, "cannot be read (operator_public_key_file: the plan's signify public key)")
        }
        do {
            return try Signify.PublicKey(parsing: String(decoding: data, as: UTF8.self))
        } catch {
            throw RelayError.key(path, "is not a signify public key: \(error)", cause: ErrorCause(error))
        }
    }

    public func run() async throws {
        let store = try RelayStore(path: config.stateDatabase)
        let engine = try RegistrationEngine(
            config: config, store: store, relayPrivateKey: RelayServer.loadPrivateKey(path: config.privateKeyFile),
            operatorKey: RelayServer.loadOperatorKey(path: config.operatorPublicKeyFile), logger: logger)
        // docs/protocol.md: WireGuard holds every stored peer before anything is answered.
        try await engine.restore()

        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: config.listenAddress, port: Int(config.listenPort)) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(
                        wrappingChannelSynchronously: channel)
                }
            }
        let bound = channel.channel.localAddress.map { "\($0)" } ?? "\(config.listenAddress):\(config.listenPort)"
        logger.info("listening for registrations", metadata: ["address": "\(bound)", "interface": "\(config.interface)"])
        onListening(bound)

        let limits = config.rateLimit
        let pollInterval = config.revocationPollMilliseconds
        let endpointInterval = config.endpointSaveMilliseconds
        let logger = logger
        let counters = engine.counters
        let metrics = MetricsEndpoint(config: config, store: store, counters: counters, logger: logger, onListening: onMetricsListening)
        let updates = UpdateEndpoint(config: config, store: store, logger: logger, onListening: { _ in })
        // Graceful shutdown closes the socket: the receive loop ends, then the poller is cancelled.
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await metrics.run() }
                group.addTask { await updates.run() }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(pollInterval))
                        if Task.isCancelled { break }
                        await engine.pollRevocations()
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(endpointInterval))
                        if Task.isCancelled { break }
                        await engine.samplePeers()
                    }
                }
                try await channel.executeThenClose { inbound, outbound in
                    var limiter = RateLimiter(perSecond: limits.perSourcePerSecond, burst: limits.perSourceBurst,
                                              globalPerSecond: limits.globalPerSecond, buckets: limits.buckets)
                    let queue = QueueShares()
                    for try await envelope in inbound {
                        // Step 1: structure only, no crypto, no state.
                        guard let message = try? MessageCodec.parse(envelope.data.readableBytesView),
                              message.type == .hello || message.type == .register,
                              let address = SourceAddress.bytes(envelope.remoteAddress) else {
                            counters.count(.malformed)
                            continue
                        }
                        // Steps 2-3: the cheap checks (cookie, MAC of a known key: one HMAC each), then
                        // the source's bucket, then the global budget only for an X25519.
                        let screening = engine.screen(message, from: address)
                        guard screening != .drop else {
                            counters.count(.unauthenticated)
                            continue
                        }
                        let budget = screening.budget
                        // A datagram whose MAC verified under a known key is charged to that key's bucket,
                        // not its address's: routers behind one CG-NAT address each keep their own
                        // budget, and replays of a router's datagrams from many forged sources still
                        // share one. Everything else is charged to its source address.
                        let bucketKey = screening == .authenticated ? message.routerKey ?? address : address
                        guard limiter.allow(bucketKey, now: DispatchTime.now().uptimeNanoseconds, budget: budget) else {
                            counters.count(.rateLimited)
                            continue
                        }
                        guard queue.admit(budget) else {
                            counters.count(.queueFull)
                            continue
                        }
                        let remote = envelope.remoteAddress
                        group.addTask {
                            defer { queue.release(budget) }
                            guard let reply = await engine.handle(message, from: address) else { return }
                            do {
                                try await outbound.write(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: reply)))
                            } catch {
                                logger.debug("reply not sent", metadata: ["to": "\(remote)", "error": "\(error)"])
                            }
                        }
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            channel.channel.close(promise: nil)
        }
        // The latest endpoints for the next start (a kill -9 keeps those of the last periodic save).
        await engine.saveEndpoints()
        logger.info("registration socket closed")
    }
}

/// Bounds on queued work: 4096 datagrams in all, of which key agreements get a small share (HELLOs
/// that proved they know the relay key a share of their own), so a flood of unknown keys never fills
/// the queue a router's datagrams need.
struct QueueShares: Sendable {
    static let total = 4096
    static let keyAgreements = 256
    private let counts = NIOLockedValueBox((all: 0, global: 0, proven: 0))

    /// Takes a place for a datagram charged to `budget`; false: the queue or its share is full.
    func admit(_ budget: RateLimiter.Budget) -> Bool {
        counts.withLockedValue { count in
            guard count.all < Self.total else { return false }
            switch budget {
            case .sourceOnly: break
            case .global:
                guard count.global < Self.keyAgreements else { return false }
                count.global += 1
            case .proven:
                guard count.proven < Self.keyAgreements else { return false }
                count.proven += 1
            }
            count.all += 1
            return true
        }
    }

    /// Gives back the place `admit` took once the datagram is handled.
    func release(_ budget: RateLimiter.Budget) {
        counts.withLockedValue { count in
            count.all -= 1
            switch budget {
            case .sourceOnly: break
            case .global: count.global -= 1
            case .proven: count.proven -= 1
            }
        }
    }
}

/// The 16-byte source address cookies are bound to (IPv4 as `::ffff:a.b.c.d`).
enum SourceAddress {
    static func bytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            let four = withUnsafeBytes(of: &raw) { Array($0) }
            return [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + four
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        default:
            return nil
        }
    }
}
