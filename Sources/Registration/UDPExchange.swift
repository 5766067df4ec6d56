#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One resolved socket address of the relay.
struct ResolvedAddress: Sendable {
    var storage: sockaddr_storage
    var length: socklen_t
    var family: Int32
    var text: String
}

/// Blocking UDP for the client: getaddrinfo, a connected socket (the kernel then drops datagrams
/// from anyone but the relay address), send, and receive with a deadline. Only this file touches
/// C socket calls; every failure becomes a one-line `String` problem.
enum UDPExchange {
    static func resolve(host: String, port: UInt16) -> Result<[ResolvedAddress], UDPProblem> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc) || canImport(Musl)
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        #else
        hints.ai_socktype = SOCK_DGRAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .failure(UDPProblem("cannot resolve relay \(host): \(String(cString: gai_strerror(status)))"))
        }
        defer { freeaddrinfo(first) }
        var result: [ResolvedAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            guard let address = entry.pointee.ai_addr,
                  entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 else { continue }
            var storage = sockaddr_storage()
            let length = entry.pointee.ai_addrlen
            withUnsafeMutableBytes(of: &storage) { target in
                target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
            }
            var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            _ = getnameinfo(address, length, &name, socklen_t(name.count), nil, 0, NI_NUMERICHOST)
            let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            result.append(ResolvedAddress(storage: storage, length: length, family: entry.pointee.ai_family,
                                          text: entry.pointee.ai_family == AF_INET6 ? "[\(text)]:\(port)" : "\(text):\(port)"))
        }
        return result.isEmpty ? .failure(UDPProblem("relay \(host) has no IPv4 or IPv6 address")) : .success(result)
    }

    /// A UDP socket connected to `address`; closed by `close()`.
    struct Socket {
        let fd: Int32

        init(connectedTo address: ResolvedAddress) throws(UDPProblem) {
            #if canImport(Glibc) || canImport(Musl)
            let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue), 0)
            #else
            let fd = socket(address.family, SOCK_DGRAM, 0)
            #endif
            guard fd >= 0 else { throw UDPProblem("cannot open a UDP socket: \(errnoText())") }
            var storage = address.storage
            let connected = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
            }
            guard connected == 0 else {
                let text = errnoText()
                _ = SystemCalls.close(fd)
                throw UDPProblem("cannot reach relay \(address.text): \(text)")
            }
            self.fd = fd
        }

        func send(_ bytes: [UInt8]) throws(UDPProblem) {
            let sent = bytes.withUnsafeBytes { SystemCalls.send(fd, $0.baseAddress, $0.count, 0) }
            guard sent == bytes.count else { throw UDPProblem("cannot send to the relay: \(errnoText())") }
        }

        /// The next datagram within `milliseconds`, or nil on timeout.
        func receive(withinMilliseconds milliseconds: Int) throws(UDPProblem) -> [UInt8]? {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(0, milliseconds)))
            if ready == 0 { return nil }
            guard ready > 0 else {
                if errno == EINTR { return [] }
                throw UDPProblem("cannot wait for the relay: \(errnoText())")
            }
            var buffer = [UInt8](repeating: 0, count: 2048)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count >= 0 else {
                // ECONNREFUSED: an ICMP port unreachable came back; nothing listens there.
                throw UDPProblem("relay did not accept the datagram: \(errnoText())")
            }
            return Array(buffer.prefix(count))
        }

        func close() { _ = SystemCalls.close(fd) }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

struct UDPProblem: Error, Sendable {
    var text: String
    init(_ text: String) { self.text = text }
}

/// The C calls whose names the socket type shadows.
enum SystemCalls {
    static func send(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
        #if canImport(Darwin)
        Darwin.send(fd, buffer, count, flags)
        #elseif canImport(Glibc)
        Glibc.send(fd, buffer, count, flags)
        #else
        Musl.send(fd, buffer, count, flags)
        #endif
    }

    static func close(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        Darwin.close(fd)
        #elseif canImport(Glibc)
        Glibc.close(fd)
        #else
        Musl.close(fd)
        #endif
    }
}
