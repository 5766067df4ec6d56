@testable import EdgeAgent
import EdgeCrypto
import EdgeModel
import Foundation
import Synchronization
import Testing
import TestSupport

/// What the fakes saw, in order, each stamped with the fake clock's second.
final class Journal: Sendable {
    private let entries = Mutex<[(second: Int, event: String)]>([])

    func add(_ event: String, at date: Date) {
        entries.withLock { $0.append((Int(date.timeIntervalSince1970), event)) }
    }
    var events: [String] { entries.withLock { $0.map(\.event) } }
    func seconds(of prefix: String) -> [Int] { entries.withLock { $0.filter { $0.event.hasPrefix(prefix) }.map(\.second) } }
    func clear() { entries.withLock { $0.removeAll() } }
}

/// Time that moves only when the test says so.
final class FakeClock: Sendable {
    private let value: Mutex<Date>
    init(_ start: Date) { value = Mutex(start) }
    var now: Date { value.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { value.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// A tunnel whose handshake time and DNS answer the test sets.
final class ScriptedTunnel: RelayTunnel {
    struct Script: Sendable {
        var handshake: Int? = 0
        var address: String?
        /// What `wg show endpoints` would say for the relay peer.
        var endpoint: String? = "198.51.100.10:51820"
    }
    let script = Mutex(Script())
    let journal: Journal
    let clock: FakeClock

    init(journal: Journal, clock: FakeClock) {
        self.journal = journal
        self.clock = clock
    }

    func set(_ change: (inout Script) -> Void) { script.withLock { change(&$0) } }
    func latestHandshake(relayPublicKey: String?) -> Int? { script.withLock { $0.handshake } }
    func resolve(host: String, port: UInt16) async -> String? {
        journal.add("resolve \(host) \(port)", at: clock.now)
        return script.withLock { $0.address }
    }
    func setEndpoint(relayPublicKey: String, endpoint: String, keepalive: Int) throws {
        journal.add("endpoint \(relayPublicKey) \(endpoint) keepalive \(keepalive)", at: clock.now)
        script.withLock { $0.endpoint = endpoint }
    }
    func endpoint(relayPublicKey: String) -> String? { script.withLock { $0.endpoint } }
}

struct RelayDown: Error, CustomStringConvertible {
    var attempt: Int
    var description: String { "relay down (test), attempt \(attempt)" }
}

/// A relay that accepts or fails as the test says.
final class ScriptedRegistrar: RelayRegistrar {
    let accepts = Mutex(true)
    /// The relay address an accepted registration reports (nil: the registrar does not say).
    let answersFrom = Mutex<String?>(nil)
    let journal: Journal
    let clock: FakeClock

    init(journal: Journal, clock: FakeClock) {
        self.journal = journal
        self.clock = clock
    }

    /// The relay takes the packet and never answers: the attempt waits until it is cancelled.
    let hangs = Mutex(false)

    func register(claim: Claim) async throws -> RegistrationOutcome {
        journal.add("register \(claim.master ? "master" : "backup")", at: clock.now)
        if hangs.withLock({ $0 }) {
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                journal.add("abandoned", at: clock.now)
                throw error
            }
        }
        guard accepts.withLock({ $0 }) else { throw RelayDown(attempt: journal.events.count) }
        return .registered("test relay", relayAddress: answersFrom.withLock { $0 })
    }
}

/// Log lines as "LEVEL message".
final class LogLines: Sendable {
    let value = Mutex<[String]>([])
    var all: [String] { value.withLock { $0 } }
    func count(_ text: String) -> Int { all.filter { $0.contains(text) }.count }
}

extension AgentLogger {
    /// Collects every line into `lines`.
    static func collecting(into lines: LogLines) -> AgentLogger {
        AgentLogger(level: .debug) { entry in lines.value.withLock { $0.append("\(entry.level) \(entry.message)") } }
    }
}

/// The supervisor's decisions, driven one step at a time with a fake clock, tunnel and relay over a
/// root where generation 1 (site-a router 2) is applied.
@Suite(.slow) struct SupervisorTests {
    struct Rig {
        let supervisor: Supervisor
        let tunnel: ScriptedTunnel
        let registrar: ScriptedRegistrar
        let journal: Journal
        let log: LogLines
        let clock: FakeClock
        let paths: AgentPaths
        let relayKey = BadProfileCorpus.keys.relayWireGuardKey().publicKeyBase64
    }

    static func rig(_ scratch: Scratch, _ settings: SupervisorSettings) throws -> Rig {
        let root = try scratch.makeRoot()
        let applied = try scratch.apply(root, try scratch.stickFolder("stick", slot: 2, serial: 1000))
        try #require(applied.status == 0, "\(applied)")
        let journal = Journal()
        let clock = FakeClock(Date(timeIntervalSince1970: 1_800_000_000))
        let tunnel = ScriptedTunnel(journal: journal, clock: clock)
        let registrar = ScriptedRegistrar(journal: journal, clock: clock)
        let log = LogLines()
        let logger = AgentLogger.collecting(into: log)
        let paths = AgentPaths(root: root)
        var settings = settings
        settings.stickCheckInterval = nil
        let supervisor = Supervisor(paths: paths, services: NoServices(), registrar: registrar, tunnel: tunnel,
                                    settings: settings, logger: logger, stick: nil, clock: { clock.now })
        return Rig(supervisor: supervisor, tunnel: tunnel, registrar: registrar, journal: journal, log: log,
                   clock: clock, paths: paths)
    }

    /// Steps once per fake second for `seconds`.
    static func run(_ rig: Rig, seconds: Int) async {
        for _ in 0..<seconds {
            await rig.supervisor.stepAndSettle()
            rig.clock.advance(1)
        }
    }

    @Test("stale handshake: the relay's name is resolved again, the endpoint set, then a registration; a fresh one changes nothing")
    func staleHandshakeReResolves() async throws {
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = 10
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, settings)
            let start = Int(rig.clock.now.timeIntervalSince1970)
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events == ["register backup"], "the boot registration")
            rig.journal.clear()

            // A handshake 5 s old at every check for a while: nothing to do.
            rig.tunnel.set { $0.handshake = start; $0.address = "[2001:db8::7]:51820" }
            for _ in 0..<12 {
                rig.clock.advance(5)
                rig.tunnel.set { $0.handshake = Int(rig.clock.now.timeIntervalSince1970) - 5 }
                await rig.supervisor.stepAndSettle()
            }
            #expect(rig.journal.events.isEmpty, "a fresh handshake must not resolve, set or register: \(rig.journal.events)")
            #expect(rig.log.count("tunnel: handshake with the relay is fresh") == 1, "\(rig.log.all)")

            // The last handshake 181 s ago.
            rig.tunnel.set { $0.handshake = Int(rig.clock.now.timeIntervalSince1970) }
            rig.clock.advance(181)
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events == [
                "resolve relay.example.net 51820",
                "endpoint \(rig.relayKey) [2001:db8::7]:51820 keepalive 25",
                "register backup",
            ])
            #expect(rig.log.count("warning tunnel: no handshake with the relay for over 180 s; re-resolving relay.example.net") == 1,
                    "\(rig.log.all)")
            #expect(rig.log.count("tunnel: relay.example.net is at [2001:db8::7]:51820; relay endpoint set, registering again") == 1,
                    "\(rig.log.all)")

            // Exactly 180 s is not stale yet (WireGuard's REJECT_AFTER_TIME is the limit).
            rig.journal.clear()
            rig.tunnel.set { $0.handshake = Int(rig.clock.now.timeIntervalSince1970) + 20 - 180 }
            rig.clock.advance(20)
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events.isEmpty, "\(rig.journal.events)")
        }
    }

    @Test("an accepted registration over another address of the relay moves the tunnel there, once; the same address changes nothing")
    func tunnelFollowsTheRegistrationsAddress() async throws {
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, SupervisorSettings())
            // WireGuard resolved the name early (IPv4); the registration reached the relay over IPv6.
            rig.registrar.answersFrom.withLock { $0 = "[2001:db8:100::10]:51821" }
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events == ["register backup", "endpoint \(rig.relayKey) [2001:db8:100::10]:51820 keepalive 25"],
                    "the tunnel uses the WireGuard port on the address the registration reached: \(rig.journal.events)")
            #expect(rig.log.count("tunnel: relay endpoint moved from 198.51.100.10:51820 to [2001:db8:100::10]:51820, the address the registration reached") == 1,
                    "\(rig.log.all)")
            // A master transition registers again over the same address: nothing to move.
            rig.journal.clear()
            try VRRPNotify.record(.master, paths: rig.paths)
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events == ["register master"], "\(rig.journal.events)")
            // IPv4 both ways: nothing to move either.
            rig.tunnel.set { $0.endpoint = "198.51.100.10:51820" }
            rig.registrar.answersFrom.withLock { $0 = "198.51.100.10:51821" }
            rig.journal.clear()
            try VRRPNotify.record(.backup, paths: rig.paths)
            await rig.supervisor.stepAndSettle()
            try VRRPNotify.record(.master, paths: rig.paths)
            await rig.supervisor.stepAndSettle()
            #expect(!rig.journal.events.contains { $0.hasPrefix("endpoint ") }, "\(rig.journal.events)")
        }
    }

    @Test("unresolvable relay name: one warning, retried with growing jittered delays, then followed once it resolves")
    func unresolvableNameBacksOff() async throws {
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = 1
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, settings)
            let start = Int(rig.clock.now.timeIntervalSince1970)
            // Never a handshake, and the name does not resolve.
            rig.tunnel.set { $0.handshake = 0; $0.address = nil }
            await Self.run(rig, seconds: 400)
            let attempts = rig.journal.seconds(of: "resolve ").map { $0 - start }
            #expect(attempts.first == 1, "the first check comes one check interval after start: \(attempts)")
            let gaps = zip(attempts.dropFirst(), attempts).map { $0 - $1 }
            #expect(gaps.count >= 5, "\(attempts)")
            for (index, gap) in gaps.enumerated() {
                // 5 s doubling, ±25 %; the loop wakes on whole fake seconds, so a delay d shows as ceil(d).
                let nominal = min(300, 5 * Double(1 << index))
                #expect(gap >= Int((0.75 * nominal).rounded(.up)) && gap <= Int((1.25 * nominal).rounded(.up)),
                        "retry \(index + 1) came after \(gap) s, outside 5·2^\(index) s ±25 %: \(gaps)")
            }
            #expect(rig.log.count("warning tunnel: relay.example.net does not resolve; trying again with backoff") == 1, "\(rig.log.all)")
            #expect(rig.log.count("warning tunnel: no handshake with the relay yet; re-resolving relay.example.net") == 1, "\(rig.log.all)")
            #expect(rig.journal.seconds(of: "endpoint").isEmpty)
            #expect(rig.journal.seconds(of: "register").count == 1, "only the boot registration while the name does not resolve")

            // The name resolves again: the next attempt sets the endpoint and registers.
            rig.tunnel.set { $0.address = "192.0.2.9:51820" }
            await Self.run(rig, seconds: 400)
            let firstEndpoint = try #require(rig.journal.events.firstIndex { $0.hasPrefix("endpoint") }, "\(rig.journal.events)")
            #expect(Array(rig.journal.events[(firstEndpoint - 1)...(firstEndpoint + 1)]) == [
                "resolve relay.example.net 51820", "endpoint \(rig.relayKey) 192.0.2.9:51820 keepalive 25", "register backup",
            ])
            #expect(rig.log.count("tunnel: relay.example.net is at 192.0.2.9:51820; relay endpoint set, registering again") == 1)
        }
    }

    @Test("failed registrations retry with growing delays; a VRRP transition to master registers at once")
    func registrationBackoffAndMaster() async throws {
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = 100_000
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, settings)
            let start = Int(rig.clock.now.timeIntervalSince1970)
            rig.registrar.accepts.withLock { $0 = false }
            await Self.run(rig, seconds: 200)
            let attempts = rig.journal.seconds(of: "register backup").map { $0 - start }
            #expect(attempts.first == 0)
            let gaps = zip(attempts.dropFirst(), attempts).map { $0 - $1 }
            #expect(gaps.count >= 4, "\(attempts)")
            for (index, gap) in gaps.enumerated() {
                let nominal = 5 * Double(1 << index)
                #expect(gap >= Int((0.75 * nominal).rounded(.up)) && gap <= Int((1.25 * nominal).rounded(.up)),
                        "retry \(index + 1) after \(gap) s: \(gaps)")
            }
            // Each failure says its attempt number; the state (failing) is logged once, status has the last.
            #expect(rig.log.count("warning registration (backup): failed: relay down (test), attempt ") == 1, "logged once: \(rig.log.all)")
            let status = try #require(RuntimeState.load(paths: rig.paths))
            #expect(status.registration == "failed: relay down (test), attempt \(attempts.count)")

            // keepalived says master: register now, not at the end of the backoff.
            rig.journal.clear()
            rig.registrar.accepts.withLock { $0 = true }
            try VRRPNotify.record(.master, paths: rig.paths)
            await rig.supervisor.stepAndSettle()
            #expect(rig.journal.events == ["register master"])
            #expect(RuntimeState.load(paths: rig.paths)?.registration == "registered as master: test relay")
            await Self.run(rig, seconds: 100)
            #expect(rig.journal.events == ["register master"], "registered: nothing more until something changes")
        }
    }

    @Test("a VRRP transition never waits behind a registration the relay does not answer", .timeLimit(.minutes(20)))
    func transitionDoesNotWaitBehindARegistration() async throws {
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = 100_000
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, settings)
            // A relay that swallows the registration: the attempt (as backup) waits, and without
            // the abandon it would wait for --registration-deadline (60 s on the appliance).
            rig.registrar.hangs.withLock { $0 = true }
            await rig.supervisor.step()
            // The attempt runs in a task of its own: on a loaded 2-core machine the cooperative
            // threads may be held by the suite's synchronous tests for minutes before it starts.
            let waited = Date()
            while rig.journal.events.isEmpty, Date().timeIntervalSince(waited) < 600 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(rig.journal.events == ["register backup"])
            // keepalived makes this router master meanwhile: the next pass abandons the hung attempt and
            // registers the new claim at once.
            rig.registrar.hangs.withLock { $0 = false }
            try VRRPNotify.record(.master, paths: rig.paths)
            // Waiting for the hung attempt would never end (it sleeps an hour): the time limit fails it.
            await rig.supervisor.stepAndSettle()
            #expect(Set(rig.journal.events) == ["register backup", "abandoned", "register master"], "\(rig.journal.events)")
            #expect(RuntimeState.load(paths: rig.paths)?.registration == "registered as master: test relay")
            // The abandoned attempt leaves nothing behind: no failure logged for it, no retry scheduled.
            await Self.run(rig, seconds: 30)
            #expect(rig.journal.events.count == 3, "\(rig.journal.events)")
            #expect(rig.log.count("registration (backup): failed") == 0, "\(rig.log.all)")
        }
    }

    @Test("an absent tunnel is reported once and nothing is resolved")
    func absentTunnel() async throws {
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = 1
        try await Scratch.withAsync { scratch in
            let rig = try Self.rig(scratch, settings)
            rig.tunnel.set { $0.handshake = nil; $0.address = "192.0.2.9:51820" }
            await Self.run(rig, seconds: 30)
            #expect(rig.log.count("warning tunnel: wg-relay is absent") == 1, "\(rig.log.all)")
            #expect(rig.journal.seconds(of: "resolve").isEmpty)
        }
    }

    @Test("backoff doubles from 5 s to the 5 min cap, each delay jittered by ±25 %")
    func backoffIsJittered() {
        for failures in 1...12 {
            let nominal = min(300, 5 * pow(2, Double(failures - 1)))
            let samples = (0..<400).map { _ in Supervisor.backoff(failures: failures) }
            #expect(samples.allSatisfy { $0 >= 0.75 * nominal && $0 <= 1.25 * nominal }, "failures \(failures)")
            #expect(Set(samples).count > 300, "jittered, not one fixed delay")
            // Spread over the whole band, not bunched at one end.
            #expect(samples.contains { $0 < 0.85 * nominal } && samples.contains { $0 > 1.15 * nominal })
        }
        #expect(Supervisor.backoff(failures: 3, base: 1, maximum: 2) <= 2.5)
    }
}
