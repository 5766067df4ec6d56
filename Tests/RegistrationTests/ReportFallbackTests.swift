import EdgeCrypto
import Foundation
import Registration
import Synchronization
import SystemCrypto
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A relay on 127.0.0.1 that speaks v1 and, as `old`, drops a REGISTER whose byte 3 is not zero as a
/// relay from before the report does (its parser required zero there). Records each REGISTER's flags.
final class V1Relay: Sendable {
    let fd: Int32
    let port: UInt16
    let old: Bool
    let keys: WireGuardKeyPair
    let flags = Mutex<[UInt8]>([])
    let stopped = Mutex(false)

    init(old: Bool) throws {
        self.old = old
        keys = WireGuardKeyPair(privateKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 9, count: 32)))
        let socketFD = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) } }
        fd = socketFD
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { self.serve() }
    }

    func serve() {
        var buffer = [UInt8](repeating: 0, count: 1500)
        while !stopped.withLock({ $0 }) {
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &from) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
            }
            guard count > 0, let message = try? MessageCodec.parse(buffer[0..<count]) else { continue }
            let reply: [UInt8]
            switch message.body {
            case .hello(let hello):
                guard let session = try? SessionKeys(relay: keys, routerPublicKey: hello.routerKey) else { continue }
                reply = MessageMAC.seal(Challenge(nonce: hello.nonce, cookie: [0, 0, 0, 0, 0, 0, 0, 42] + [UInt8](repeating: 1, count: 16)).authenticated,
                                        with: session.responseKey)
            case .register(let register):
                flags.withLock { $0.append(buffer[3]) }
                if old && buffer[3] != 0 { continue }
                guard let session = try? SessionKeys(relay: keys, routerPublicKey: register.routerKey) else { continue }
                let answer = RegistrationAnswer(status: .accepted, routesSitePrefix: false, claimedMaster: false, nonce: register.nonce,
                                                cookieTime: register.cookieTime, tunnelAddress: [0xfd] + [UInt8](repeating: 0, count: 14) + [1],
                                                sitePrefix: [UInt8](repeating: 0, count: 16))
                reply = MessageMAC.seal(answer.authenticated, with: session.responseKey)
            default:
                continue
            }
            _ = withUnsafePointer(to: &from) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, fromLength) }
            }
        }
        close(fd)
    }

    func stop() { stopped.withLock { $0 = true } }
}

@Suite struct ReportFallbackTests {
    func client(_ relay: V1Relay, log: RegistrationLog = .none) throws -> RegistrationClient {
        var configuration = RegistrationClient.Configuration(
            relayHost: "127.0.0.1", relayPort: relay.port, relayPublicKey: relay.keys.publicKey,
            routerKey: try WireGuardKey(privateKey: Data(repeating: 7, count: 32)), certificate: Array("certificate".utf8))
        // Generous for a loaded machine (the full suite runs image builds beside this): an answer
        // later than the attempt timeout would count as a relay that does not answer.
        configuration.attemptTimeout = .seconds(2)
        configuration.initialBackoff = .milliseconds(10)
        configuration.maximumBackoff = .milliseconds(20)
        // The suite's synchronous tests (image builds, boots) can hold both cooperative threads of a
        // 2-core machine for minutes, and this client's attempts are async: a deadline that counts
        // that wait would fail for the machine, not for the protocol.
        configuration.deadline = .seconds(900)
        configuration.report = RouterReport(generation: 2, health: .healthy, agentVersion: "0.1.0", healthReason: "uplink up")
        return try RegistrationClient(configuration: configuration, log: log)
    }

    @Test("a relay that knows the report gets it in the first REGISTER")
    func newRelayGetsTheReport() throws {
        let relay = try V1Relay(old: false)
        defer { relay.stop() }
        let result = try client(relay).registerBlocking(claim: .backup)
        #expect(result.attempts == 1 && relay.flags.withLock { $0 } == [1])
    }

    @Test("a relay from before the report: after two unanswered REGISTERs with it, the router registers without")
    func oldRelayStillRegistersTheRouter() async throws {
        let relay = try V1Relay(old: true)
        defer { relay.stop() }
        let lines = Mutex<[String]>([])
        let log = RegistrationLog { level, message, metadata in
            lines.withLock { $0.append("\(level) \(message) relay=\(metadata["relay"] ?? "-")") }
        }
        let result = try await client(relay, log: log).register(claim: .backup)
        #expect(result.attempts == 3, "two REGISTERs with the report went unanswered, the third without it was accepted")
        #expect(relay.flags.withLock { $0 } == [1, 1, 0])
        // The operator learns why the report is missing, once, and that the router registered.
        let logged = lines.withLock { $0 }.filter { !$0.hasPrefix("debug ") }
        #expect(logged.count == 2 && logged.first?.hasPrefix("notice the relay answered no REGISTER with a report twice in a row") == true
                && logged.first?.hasSuffix(" relay=127.0.0.1") == true && logged.last?.hasPrefix("info registered with the relay relay=127.0.0.1:") == true,
                "\(logged)")
    }
}
