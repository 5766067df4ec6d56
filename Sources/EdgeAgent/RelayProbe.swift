import EdgeModel
import EdgeRender
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// ICMPv6 echo to the relay's tunnel address: the packet goes through the WireGuard tunnel, so an
/// answer proves the uplink, the path and the tunnel at once, and only the relay (which holds the
/// tunnel's other key) can give it. One raw socket for the agent's life (the agent runs as root);
/// one request per call, at most one call per `HealthWatch` interval.
final class RelayProbe {
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

/// Looks at the router's health once per interval from a thread of its own (like `KeepalivedWatch`):
/// the uplink's carrier and default route, and one probe of the relay. Writes health.json every
/// look and keepalived's track file when the verdict changes; reports verdict changes.
final class HealthWatch: @unchecked Sendable {
    private let paths: AgentPaths
    private let interval: TimeInterval
    private let report: @Sendable (HealthReport) -> Void
    private let lock = NSLock()
    private var stopped = false
    private var tracker: HealthTracker

    init(paths: AgentPaths, every interval: Duration, misses: Int, rise: Int, report: @escaping @Sendable (HealthReport) -> Void) {
        self.paths = paths
        let (seconds, attoseconds) = interval.components
        self.interval = Double(seconds) + Double(attoseconds) / 1e18
        self.report = report
        tracker = HealthTracker(misses: misses, rise: rise, healthy: HealthReport.tracked(paths: paths) == .healthy)
    }

    func start() {
        let thread = Thread { [self] in watch() }
        thread.name = "health-watch"
        thread.start()
    }

    /// The thread ends within one interval.
    func stop() {
        lock.withLock { stopped = true }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    /// A master that turns unhealthy hands the VIPs over at once rather than waiting for its peer's
    /// Master_Down_Interval (three advertisements: a backup ignores a master's lower priority):
    /// the yield track file puts keepalived in FAULT, whose priority-0 advertisement makes the
    /// backup master after its skew time; two seconds later the instance is back as a backup with
    /// its lowered priority. A peer that is unhealthy too has the lower priority still, so this
    /// router takes the site back after one Master_Down_Interval: one bounce, not a flap.
    /// A single-router site's keepalived.conf does not track the file.
    private func yieldMastership() {
        let file = paths.live(ConfigPaths.yieldTrackFile)
        do {
            try HealthReport.replace(file, with: Data("1\n".utf8))
            Thread.sleep(forTimeInterval: 2)
            try HealthReport.replace(file, with: Data("0\n".utf8))
        } catch {
            FileHandle.standardError.write(Data("edgekit-agent: health: cannot yield mastership: \(error)\n".utf8))
        }
    }

    private func watch() {
        var probe: RelayProbe?
        var probed = ""
        var since = DocumentCoding.timestamp(Date())
        var first = true
        while !isStopped {
            let started = ProcessInfo.processInfo.systemUptime
            // The applied generation says which uplink and which relay; a new apply may change them.
            let target = HealthTarget.applied(paths: paths)
            var roundTrip: TimeInterval?
            var sample = HealthTracker.Sample(uplinkProblem: "nothing applied yet", relayAnswered: false)
            var relay = "(none)"
            if let target {
                relay = "\(target.relayTunnelAddress)"
                if probed != relay {
                    probe = RelayProbe(address: relay)
                    probed = relay
                }
                sample.uplinkProblem = UplinkState.problem(interface: target.uplink)
                if sample.uplinkProblem == nil {
                    roundTrip = probe?.echo(timeout: min(interval, 1))
                }
                sample.relayAnswered = roundTrip != nil
            }
            let changed = tracker.record(sample, relay: relay)
            if changed { since = DocumentCoding.timestamp(Date()) }
            let health = HealthReport(verdict: tracker.verdict, reason: tracker.reason, since: since, relay: relay,
                                      probeAnswered: sample.relayAnswered, roundTripSeconds: roundTrip)
            do {
                try health.save(paths: paths)
            } catch {
                FileHandle.standardError.write(Data("edgekit-agent: health: \(error)\n".utf8))
            }
            if changed || first { report(health) }
            if changed, tracker.verdict == .unhealthy, VRRPNotify.current(paths: paths) == .master { yieldMastership() }
            first = false
            let rest = interval - (ProcessInfo.processInfo.systemUptime - started)
            if rest > 0 { Thread.sleep(forTimeInterval: rest) }
        }
    }
}
