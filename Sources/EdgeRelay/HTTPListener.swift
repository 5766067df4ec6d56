import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The relay's small HTTP/1.1 servers, the metrics endpoint and the routers' update endpoint: each
/// address bound with IP_FREEBIND, every connection handed to `respond` beside the others, until
/// the task is cancelled. A failed bind is one logged line and leaves the rest of the relay alone.
enum HTTPListener {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Serves on `address`:`port`. `name` words the log lines (`NAME endpoint not started`,
    /// `serving WHAT`, which tests wait for); `onListening` hears the bound address.
    static func serve(on address: String, port: UInt16, name: String, serving what: String, metadata: Logger.Metadata = [:],
                      logger: Logger, onListening: @Sendable (String) -> Void,
                      respond: @escaping @Sendable (Connection) async -> Void) async {
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // IP_FREEBIND (ip(7)): bind the tunnel address even before networkd has put it on the
                // interface, so the relay's start does not depend on that ordering.
                .serverChannelOption(ChannelOptions.Types.SocketOption(level: .init(rawValue: CInt(IPPROTO_IP)),
                                                                       name: .init(rawValue: 15)), value: 1)
                .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address, port: Int(port)) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        // Finishing the writer shuts the socket's output down once every byte
                        // written is sent (`eachRequest`): closing at once would drop what is
                        // still queued, the tail of a large answer.
                        return try Connection(wrappingChannelSynchronously: channel,
                                              configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
        } catch {
            logger.error("\(name) endpoint not started", metadata: ["address": "\(address)", "port": "\(port)", "error": "\(error)"])
            return
        }
        let bound = server.channel.localAddress.map { "\($0)" } ?? "\(address):\(port)"
        logger.info("serving \(what)", metadata: metadata.merging(["address": "\(bound)"]) { $1 })
        onListening(bound)
        let channel = server.channel
        await withTaskCancellationHandler {
            do {
                try await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await connection in connections {
                            group.addTask { await respond(connection) }
                        }
                    }
                }
            } catch {
                logger.debug("\(name) endpoint closed", metadata: ["address": "\(bound)", "error": "\(error)"])
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    typealias Writer = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    /// How long a connection whose last answer was sent stays open for the client to close it.
    static let lingerAfterAnswer = TimeAmount.seconds(30)

    /// Hands each whole request of `connection` (its body ignored: both endpoints take GETs) to
    /// `handle`, which writes the answer and says whether to read on. When it does not, the
    /// connection's output is shut down once everything written is sent (the client sees the end
    /// of the answer, as HTTP/1.0 and `Connection: close` clients wait for), and the connection
    /// closes when the client closes its side (at the latest `lingerAfterAnswer` later). A failed
    /// connection is one debug line, `NAME request failed`.
    static func eachRequest(of connection: Connection, name: String, logger: Logger,
                            _ handle: (HTTPRequestHead, Writer) async throws -> Bool) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var parts = inbound.makeAsyncIterator()
                while let part = try await parts.next() {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        break
                    case .end:
                        guard let request = head else { return }
                        head = nil
                        guard try await handle(request, outbound) else {
                            outbound.finish()
                            // Nothing more is answered: the connection closes when the client
                            // closes it, or after `lingerAfterAnswer`, time enough for the rest of
                            // the answer to leave (what was queued when the writer let go of it).
                            let channel = connection.channel
                            let deadline = channel.eventLoop.scheduleTask(in: lingerAfterAnswer) { channel.close(promise: nil) }
                            defer { deadline.cancel() }
                            while try await parts.next() != nil {}
                            return
                        }
                    }
                }
            }
        } catch {
            logger.debug("\(name) request failed", metadata: ["error": "\(error)"])
        }
    }

    /// The response head for `request` (`Connection: close` when it does not keep the connection).
    static func head(_ request: HTTPRequestHead, _ status: HTTPResponseStatus, type: String, length: UInt64) -> HTTPServerResponsePart {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(length))
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        return .head(HTTPResponseHead(version: request.version, status: status, headers: headers))
    }

    /// A whole answer whose body is `body` (none for HEAD).
    static func answer(_ request: HTTPRequestHead, _ status: HTTPResponseStatus, type: String = "text/plain; charset=utf-8",
                       body: String, to outbound: Writer) async throws {
        try await outbound.write(head(request, status, type: type, length: UInt64(body.utf8.count)))
        if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
        try await outbound.write(.end(nil))
    }
}
