#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// ICMPv6 echo to the relay's tunnel address: the packet goes through the WireGuard tunnel, so an
/// answer proves the uplink, the path and the tunnel at once, and only the relay (which holds the
/// tunnel's other key) can give it. One raw socket for the agent's life (the agent runs as root);
/// one request per call, at most one call per `HealthWatch` interval. One thread at a time uses a
/// probe (the watch hands each relay's probe to one worker per round).
final class RelayProbe: @unchecked Sendable {
    private let socket: Int32
    private var target = in6_addr()
    private let identifier = UInt16(truncatingIfNeeded: getpid())
    private var sequence: UInt16 = 0
    private var buffer = [UInt8](repeating: 0, count: 2048)

    /// Nil when `address` is not an IPv6 address or no raw ICMPv6 socket can be opened (not root).
    init?(address: String) {
        guard inet_pton(AF_INET6, address, &target) == 1 else { return nil }
        socket = Glibc.socket(AF_INET6, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMPV6))
        guard socket >= 0 else { return nil }
        _ = fcntl(socket, F_SETFD, FD_CLOEXEC)
    }

    deinit { close(socket) }

    /// Sends one echo request and waits up to `timeout` seconds for its reply: the round trip in
    /// seconds, or nil when none came. The kernel fills in the ICMPv6 checksum (RFC 3542 section 3.1).
    func echo(timeout: TimeInterval) -> TimeInterval? {
        sequence &+= 1
        let request: [UInt8] = [128, 0, 0, 0,
                                UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
            + Array("edgekit health probe".utf8)
        var destination = sockaddr_in6()
        destination.sin6_family = sa_family_t(AF_INET6)
        destination.sin6_addr = target
        let start = ProcessInfo.processInfo.systemUptime
        let sent = withUnsafePointer(to: &destination) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(socket, request, request.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
        guard sent == request.count else { return nil }
        while true {
            let left = start + timeout - ProcessInfo.processInfo.systemUptime
            guard left > 0 else { return nil }
            var ready = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let count = poll(&ready, 1, Int32(max(1, (left * 1000).rounded(.up))))
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            var source = sockaddr_in6()
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let received = withUnsafeMutablePointer(to: &source) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
                }
            }
            // Echo reply (129) with our identifier and sequence, from the relay: anything else a raw
            // ICMPv6 socket sees (neighbour discovery, other replies) is not the answer.
            guard received >= 8, buffer[0] == 129,
                  buffer[4] == UInt8(identifier >> 8), buffer[5] == UInt8(identifier & 0xff),
                  buffer[6] == UInt8(sequence >> 8), buffer[7] == UInt8(sequence & 0xff),
                  Self.same(source.sin6_addr, target) else { continue }
            return ProcessInfo.processInfo.systemUptime - start
        }
    }

    static func same(_ a: in6_addr, _ b: in6_addr) -> Bool {
        withUnsafeBytes(of: a) { left in withUnsafeBytes(of: b) { right in left.elementsEqual(right) } }
    }
}
