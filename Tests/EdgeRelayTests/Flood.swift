import EdgeModel
import EdgeRelay
import Foundation
import Registration

#if canImport(Glibc)
import Glibc
#endif

/// Spoofed HELLOs at a fixed rate from 65,536 IPv4 sources (`10.200.0.0/16`), sent from the lab's
/// client namespace through a raw socket (`IPPROTO_RAW`, so we write the IPv4 header and its source).
/// Every HELLO carries a router key the relay has never seen and a MAC that cannot verify: each one
/// the relay lets through costs it an X25519 and gets silence. The relay namespace routes
/// `10.200.0.0/16` back to the client namespace, which does not forward, so nothing leaves the lab.
final class SpoofedHelloFlood: @unchecked Sendable {
    static let sourcePrefix: (UInt8, UInt8) = (10, 200)
    let lock = NSLock()
    var stopping = false
    var sent = 0
    var seconds = 0.0
    var failure: String?
    let finished = DispatchSemaphore(value: 0)

    /// Starts sending `perSecond` HELLOs to the lab's relay until `stop()`.
    init(lab: Lab, perSecond: Int) throws {
        try sh("ip", ["-n", lab.relayNamespace, "route", "replace", "10.200.0.0/16", "via", lab.clientAddress])
        for conf in ["all", "default", "ekv0"] {
            try sh("ip", ["netns", "exec", lab.relayNamespace, "sysctl", "-qw", "net.ipv4.conf.\(conf).rp_filter=0"])
        }
        let namespace = lab.clientNamespace
        let destination = lab.relayAddress
        let port = lab.port
        let thread = Thread { [self] in
            defer { finished.signal() }
            let fd = open("/var/run/netns/\(namespace)", O_RDONLY)
            guard fd >= 0, c_setns(fd, CLONE_NEWNET_FLAG) == 0 else {
                lock.withLock { failure = "cannot enter network namespace \(namespace)" }
                return
            }
            Glibc.close(fd)
            send(to: destination, port: port, perSecond: perSecond)
        }
        thread.start()
    }

    func send(to host: String, port: UInt16, perSecond: Int) {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else {
            lock.withLock { failure = "raw socket: \(String(cString: strerror(errno)))" }
            return
        }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, host, &address.sin_addr)
        let destination = withUnsafeBytes(of: &address.sin_addr) { Array($0) }

        // IPv4 header (the kernel fills in length, id and checksum), UDP header (checksum 0: none), HELLO.
        var packet = [UInt8](repeating: 0, count: 20 + 8 + Wire.helloSize)
        packet[0] = 0x45
        packet[8] = 64
        packet[9] = UInt8(IPPROTO_UDP)
        packet[12] = SpoofedHelloFlood.sourcePrefix.0
        packet[13] = SpoofedHelloFlood.sourcePrefix.1
        packet.replaceSubrange(16..<20, with: destination)
        packet[22] = UInt8(port >> 8)
        packet[23] = UInt8(port & 0xff)
        let udpLength = 8 + Wire.helloSize
        packet[24] = UInt8(udpLength >> 8)
        packet[25] = UInt8(udpLength & 0xff)
        packet[28] = Wire.version
        packet[29] = Wire.MessageType.hello.rawValue
        var generator = SystemRandomNumberGenerator()
        for i in 32..<(32 + 48) { packet[i] = UInt8.random(in: 0...255, using: &generator) }  // R and N
        for i in (28 + 112)..<(28 + 128) { packet[i] = UInt8.random(in: 0...255, using: &generator) }  // MAC

        let start = DispatchTime.now().uptimeNanoseconds
        var count = 0
        var stop = false
        while !stop {
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            let due = Int(Double(elapsed) * Double(perSecond) / 1e9)
            var batch = 0
            while count < due && batch < 2000 {
                let n = UInt32(truncatingIfNeeded: count)
                // A new source (16 bits), a new router key (the counter in R's first bytes).
                packet[14] = UInt8(truncatingIfNeeded: n >> 8)
                packet[15] = UInt8(truncatingIfNeeded: n)
                packet[20] = 0x80 | UInt8(truncatingIfNeeded: n >> 8)
                packet[21] = UInt8(truncatingIfNeeded: n)
                packet[32] = UInt8(truncatingIfNeeded: n)
                packet[33] = UInt8(truncatingIfNeeded: n >> 8)
                packet[34] = UInt8(truncatingIfNeeded: n >> 16)
                packet[35] = UInt8(truncatingIfNeeded: n >> 24)
                _ = packet.withUnsafeBytes { bytes in
                    withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
                count += 1
                batch += 1
            }
            usleep(1000)
            stop = lock.withLock { stopping }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lock.withLock {
            self.sent = count
            self.seconds = seconds
        }
    }

    /// Stops the sender; what it sent and for how long.
    func stop() throws -> (sent: Int, perSecond: Double) {
        lock.withLock { stopping = true }
        finished.wait()
        return try lock.withLock {
            if let failure { throw LabError("flood sender: \(failure)") }
            return (sent, Double(sent) / max(seconds, 0.001))
        }
    }
}

/// CPU time and memory of a process from /proc (Linux).
struct ProcessUsage {
    /// User + system CPU seconds so far.
    var cpuSeconds: Double
    /// Resident set now and its peak, in MiB.
    var residentMiB: Double
    var peakResidentMiB: Double

    init(pid: Int32) throws {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name (which may hold spaces) start at field 3.
        guard let close = stat.lastIndex(of: ")") else { throw LabError("/proc/\(pid)/stat unreadable") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        cpuSeconds = ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kib(_ name: String) -> Double {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        residentMiB = kib("VmRSS") / 1024
        peakResidentMiB = kib("VmHWM") / 1024
    }
}

extension Lab {
    /// The relay's shipped rate limits (docs/relay.md) instead of the lab's generous ones: the flood
    /// must meet the same global budget a deployed relay has.
    /// `globalPerSecond` scales the global budget down (with the flood) for a debug relay.
    func useDefaultRateLimits(globalPerSecond: Double = RelayConfig.RateLimit().globalPerSecond) throws {
        var config = try JSONDecoder().decode(RelayConfig.self, from: Data(contentsOf: URL(fileURLWithPath: configPath)))
        config.rateLimit = RelayConfig.RateLimit(globalPerSecond: globalPerSecond)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(config).write(to: URL(fileURLWithPath: configPath))
    }

    /// Seconds one registration takes from the client namespace, and its attempts.
    func timedRegistration(_ router: LabRouter, claim: Claim = .master, deadline: Duration = .seconds(10)) throws -> (seconds: Double, attempts: Int) {
        let client = try router.client(relay: relayAddress, port: port, deadline: deadline)
        return try inClient {
            let start = ContinuousClock.now
            let result = try client.registerBlocking(claim: claim)
            let d = ContinuousClock.now - start
            return (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18, result.attempts)
        }
    }
}
