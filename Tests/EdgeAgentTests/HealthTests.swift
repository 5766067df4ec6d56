@testable import EdgeAgent
import EdgeModel
import Foundation
import Testing
import TestSupport

/// The health verdict keepalived tracks (docs/network.md, "Health"): the state machine with its
/// hysteresis, and how the uplink is read from sysfs and procfs. The real probe, keepalived and the
/// failover it causes are proven in the lab (lab/lab.sh, "uplink down" and "black hole").
@Suite struct HealthTests {
    static let up = HealthTracker.Sample(uplinkProblem: nil, relayAnswered: true)
    static let silent = HealthTracker.Sample(uplinkProblem: nil, relayAnswered: false)
    static let down = HealthTracker.Sample(uplinkProblem: "uplink uplink0 has no carrier (link down)", relayAnswered: false)

    @Test("a router starts unhealthy and is healthy after `rise` answered probes in a row")
    func startsUnhealthy() {
        let tracker = Fed(misses: 3, rise: 3)
        #expect(tracker.verdict == .unhealthy)
        #expect(!tracker.changed(by: Self.up))
        #expect(!tracker.changed(by: Self.up))
        #expect(tracker.verdict == .unhealthy)
        #expect(tracker.changed(by: Self.up))
        #expect(tracker.verdict == .healthy)
        #expect(tracker.reason.contains("answered 3 probes in a row"), "\(tracker.reason)")
    }

    @Test("an agent restarted on a healthy router stays healthy until `misses` probes go unanswered")
    func restartedHealthy() {
        let tracker = Fed(misses: 3, rise: 3, healthy: true)
        #expect(tracker.verdict == .healthy)
        #expect(!tracker.changed(by: Self.silent))
        #expect(!tracker.changed(by: Self.silent))
        #expect(tracker.changed(by: Self.silent))
        #expect(tracker.verdict == .unhealthy)
    }

    @Test("`misses` unanswered probes in a row make it unhealthy; fewer, or one answer between, do not")
    func missesInARow() {
        let tracker = Fed(misses: 3, rise: 3)
        for _ in 0..<3 { _ = tracker.changed(by: Self.up) }
        // Two misses, an answer, two misses: a lossy path, still healthy.
        for sample in [Self.silent, Self.silent, Self.up, Self.silent, Self.silent] {
            #expect(!tracker.changed(by: sample))
            #expect(tracker.verdict == .healthy)
        }
        #expect(tracker.changed(by: Self.silent))
        #expect(tracker.verdict == .unhealthy)
        #expect(tracker.reason == "the relay fd00::1 did not answer 3 probes in a row")
    }

    @Test("a dead uplink makes it unhealthy at the first look; back up, it needs `rise` answers again")
    func uplinkDown() {
        let tracker = Fed(misses: 3, rise: 2)
        for _ in 0..<2 { _ = tracker.changed(by: Self.up) }
        #expect(tracker.verdict == .healthy)
        #expect(tracker.changed(by: Self.down))
        #expect(tracker.reason == "uplink uplink0 has no carrier (link down)")
        // Hysteresis: one answer with the link back is not enough; no flapping on a bouncing link.
        #expect(!tracker.changed(by: Self.up))
        #expect(!tracker.changed(by: Self.down))
        #expect(!tracker.changed(by: Self.up))
        #expect(tracker.verdict == .unhealthy)
        #expect(tracker.changed(by: Self.up))
        #expect(tracker.verdict == .healthy)
    }

    @Test("the uplink needs a carrier and a default route through it, IPv4 or IPv6")
    func uplinkState() throws {
        try Scratch.with { scratch in
            let sysfs = scratch.path("sys"), proc = scratch.path("proc")
            try FileManager.default.createDirectory(atPath: sysfs + "/uplink0", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: proc, withIntermediateDirectories: true)
            func write(_ path: String, _ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }
            let header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            try write(proc + "/route", header + "uplink0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
            try write(proc + "/ipv6_route", "")
            #expect(UplinkState.problem(interface: "eth9", sysfs: sysfs, proc: proc) == "uplink eth9 is not there")
            try write(sysfs + "/uplink0/carrier", "0\n")
            #expect(UplinkState.problem(interface: "uplink0", sysfs: sysfs, proc: proc)?.contains("no carrier") == true)
            try write(sysfs + "/uplink0/carrier", "1\n")
            #expect(UplinkState.problem(interface: "uplink0", sysfs: sysfs, proc: proc)?.contains("no default route") == true)
            // IPv4 default (destination and mask zero) through another port: still none.
            try write(proc + "/route", header + "lan0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
            #expect(UplinkState.problem(interface: "uplink0", sysfs: sysfs, proc: proc) != nil)
            try write(proc + "/route", header + "uplink0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
            #expect(UplinkState.problem(interface: "uplink0", sysfs: sysfs, proc: proc) == nil)
            // IPv6 only: ::/0 via a link-local router.
            try write(proc + "/route", header)
            try write(proc + "/ipv6_route", "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003  uplink0\n")
            #expect(UplinkState.problem(interface: "uplink0", sysfs: sysfs, proc: proc) == nil)
        }
    }

    @Test("the probe gets an answer where one comes, and none within its timeout where none does", .requiresRoot)
    func probeAnswers() throws {
        // The loopback answers echo (the raw socket also sees the request itself: not an answer).
        let answered = try #require(RelayProbe(address: "::1"), "no raw ICMPv6 socket").echo(timeout: 1)
        #expect(answered.map { $0 < 1 } == true)
        // A ULA nobody here has: unroutable (sendto fails) or routed out to nobody; no answer either way.
        let start = Date()
        let silent = try #require(RelayProbe(address: "fd00:dead:beef::1")).echo(timeout: 0.5)
        #expect(silent == nil)
        #expect(Date().timeIntervalSince(start) < 1.5)
    }

    @Test("the probe's reply matching: an echo reply from the relay, nothing else")
    func probeAddresses() throws {
        var a = in6_addr(), b = in6_addr()
        #expect(inet_pton(AF_INET6, "fd00::1", &a) == 1)
        #expect(inet_pton(AF_INET6, "fd00::1", &b) == 1)
        #expect(RelayProbe.same(a, b))
        #expect(inet_pton(AF_INET6, "fd00::2", &b) == 1)
        #expect(!RelayProbe.same(a, b))
        #expect(RelayProbe(address: "not an address") == nil)
    }

    @Test("the priority-0 advertisement: RFC 5798 section 5.1, byte by byte")
    func resignationPacket() throws {
        let instance = VRRPResignation.Instance(interface: "lan0", vrid: 51, intervalCentiseconds: 100,
                                                addresses: [try #require(IPv6Address("fe80::1")), try #require(IPv6Address("fd00:1:2:3::1"))])
        let packet = VRRPResignation.packet(instance)
        #expect(packet.count == 8 + 2 * 16)
        // Version 3 and type 1; VRID 51; priority 0; 2 addresses; interval 100 cs (0x064); checksum 0.
        #expect(Array(packet.prefix(8)) == [0x31, 51, 0, 2, 0x00, 0x64, 0, 0])
        #expect(Array(packet[8..<24]) == [0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [1])
        // The 12-bit interval field holds 40.95 s at most.
        var slow = instance
        slow.intervalCentiseconds = 4095
        #expect(Array(VRRPResignation.packet(slow)[4..<6]) == [0x0f, 0xff])
    }

    @Test("the router's own link-local address, never the link-local VIP")
    func ownLinkLocal() throws {
        try Scratch.with { scratch in
            let table = scratch.path("if_inet6")
            try Data("""
                fe800000000000000000000000000001 03 40 20 80     lan0
                fd000001000200030000000000000001 03 40 00 80     lan0
                fe8000000000000024a1b2fffec3d4e5 03 40 20 80     lan0
                fe80000000000000000000000000abcd 02 40 20 80  uplink0

                """.utf8).write(to: URL(fileURLWithPath: table))
            let vip = try #require(IPv6Address("fe80::1"))
            let own = try #require(VRRPResignation.ownLinkLocal(interface: "lan0", except: [vip], table: table))
            var expected = in6_addr()
            #expect(inet_pton(AF_INET6, "fe80::24a1:b2ff:fec3:d4e5", &expected) == 1)
            #expect(RelayProbe.same(own, expected))
            #expect(VRRPResignation.ownLinkLocal(interface: "lan9", except: [vip], table: table) == nil)
        }
    }
}

/// A tracker behind a reference, so `#expect` (which cannot call a mutating method) can feed it.
final class Fed {
    var tracker: HealthTracker
    init(misses: Int, rise: Int, healthy: Bool = false) { tracker = HealthTracker(misses: misses, rise: rise, healthy: healthy) }
    /// Whether the sample changed the verdict.
    func changed(by sample: HealthTracker.Sample) -> Bool { tracker.record(sample, relay: "fd00::1") }
    var verdict: HealthTracker.Verdict { tracker.verdict }
    var reason: String { tracker.reason }
}
