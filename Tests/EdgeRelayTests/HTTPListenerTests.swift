import Foundation
import Logging
import NIOHTTP1
import Synchronization
import Testing
@testable import EdgeRelay

/// The relay's HTTP listener (metrics and update endpoints) with a client that ends the
/// connection after one answer: the whole answer arrives, however much larger than the socket's
/// buffers, and then the end of the stream (HTTP/1.0 clients read until it).
@Suite struct HTTPListenerTests {
    /// 8 MiB of text: far more than a socket buffer holds, so most of it is still queued in the
    /// relay when its handler returns.
    static let body = String(repeating: "edgekit_relay_router_up{site=\"site-a\",slot=\"1\"} 1\n", count: 8 << 20 / 48)

    /// One request on a fresh connection to [::1]:`port`, on a thread of its own (its blocking
    /// reads must not hold one of the few threads the server's tasks run on while the whole suite
    /// runs beside it); everything the server sends until it ends the stream, or why not (no
    /// connection, 60 s without a byte).
    static func exchange(_ request: String, port: UInt16) async -> Result<String, Failure> {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: exchangeNow(request, port: port)) }.start()
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func exchangeNow(_ request: String, port: UInt16) -> Result<String, Failure> {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var limit = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        address.sin6_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard connected == 0 else { return .failure(Failure(description: "connect: \(String(cString: strerror(errno)))")) }
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return .success(String(decoding: received, as: UTF8.self)) }
            guard n > 0 else { return .failure(Failure(description: "after \(received.count) bytes: \(String(cString: strerror(errno)))")) }
            received += buffer[..<n]
        }
    }

    @Test func aLargeAnswerArrivesWholeBeforeTheStreamEnds() async throws {
        let bound = Mutex<String?>(nil)
        let server = Task {
            await HTTPListener.serve(on: "::1", port: 0, name: "test", serving: "test", logger: Logger(label: "test"),
                                     onListening: { address in bound.withLock { $0 = address } }) { connection in
                await HTTPListener.eachRequest(of: connection, name: "test", logger: Logger(label: "test")) { request, outbound in
                    try await HTTPListener.answer(request, .ok, body: Self.body, to: outbound)
                    return request.isKeepAlive
                }
            }
        }
        defer { server.cancel() }
        var port: UInt16?
        for _ in 0..<100 where port == nil {
            port = bound.withLock { $0 }.flatMap { $0.split(separator: ":").last }.flatMap { UInt16($0.filter(\.isNumber)) }
            if port == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let listening = try #require(port, "the listener never said where it listens")
        for request in ["GET /metrics HTTP/1.0\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"] {
            let response = try await Self.exchange(request, port: listening).get()
            let parts = response.components(separatedBy: "\r\n\r\n")
            #expect(parts.count == 2 && parts[0].contains("Content-Length: \(Self.body.utf8.count)"), "\(parts[0])")
            #expect(parts.last?.utf8.count == Self.body.utf8.count, "\(request.prefix(21)): \(parts.last?.utf8.count ?? 0) of \(Self.body.utf8.count) bytes")
        }
    }
}
