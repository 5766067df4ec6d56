import EdgeModel
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` over HTTP/1.1 on each of `metrics_addresses` (docs/relay.md, "Metrics"): what
/// `edgekit-relay status` reads (the state database and `wg show IF dump`), rendered by
/// `RelayMetrics` at every scrape, plus the daemon's counters. Anything else is 404 (405 for
/// other methods). A failed bind is logged and leaves registrations alone: metrics never stop the relay.
struct MetricsEndpoint: Sendable {
    let config: RelayConfig
    let store: RelayStore
    let counters: RelayCounters
    let logger: Logger
    /// Called with each bound address (tests wait for it).
    let onListening: @Sendable (String) -> Void

    typealias Connection = HTTPListener.Connection

    /// The exposition now: one database snapshot and one `wg show IF dump` (blocking: call off the event loop).
    static func scrape(config: RelayConfig, store: RelayStore, counters: RelayCounters, now: Date = Date()) throws -> String {
        let snapshot = try store.snapshot()
        var handshakes: [String: Int] = [:]
        var transfers: [String: RelayMetrics.Transfer] = [:]
        var readable = true
        do {
            for peer in try WireGuardControl(interface: config.interface).dump() {
                handshakes[peer.publicKey] = peer.latestHandshake
                transfers[peer.publicKey] = .init(receiveBytes: peer.receiveBytes, transmitBytes: peer.transmitBytes)
            }
        } catch {
            readable = false
        }
        let routers = RouterLiveness.rows(snapshot, handshakes: handshakes, keepaliveSeconds: config.keepaliveSeconds, now: now)
        return RelayMetrics.exposition(snapshot: snapshot, routers: routers, transfers: transfers,
                                       counters: counters.values, interfaceReadable: readable)
    }

    /// Serves on every address until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for address in config.metricsAddresses {
                group.addTask { await serve(on: address) }
            }
        }
    }

    func serve(on address: String) async {
        await HTTPListener.serve(on: address, port: config.metricsPort, name: "metrics", serving: "metrics", logger: logger,
                                 onListening: onListening) { connection in await respond(connection) }
    }

    func respond(_ connection: Connection) async {
        let config = config, store = store, counters = counters
        await HTTPListener.eachRequest(of: connection, name: "metrics", logger: logger) { request, outbound in
            let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
            if request.method != .GET && request.method != .HEAD {
                try await HTTPListener.answer(request, .methodNotAllowed, body: "only GET /metrics\n", to: outbound)
            } else if path != "/metrics" {
                try await HTTPListener.answer(request, .notFound, body: "not found: the relay serves GET /metrics\n", to: outbound)
            } else {
                do {
                    let body = try await offThread { try MetricsEndpoint.scrape(config: config, store: store, counters: counters) }
                    try await HTTPListener.answer(request, .ok, type: RelayMetrics.contentType, body: body, to: outbound)
                } catch {
                    try await HTTPListener.answer(request, .internalServerError, body: "edgekit-relay: metrics: \(error)\n", to: outbound)
                }
            }
            return request.isKeepAlive
        }
    }
}
