@testable import EdgeAgent
import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation
import Registration
import Synchronization
import Testing
import TestSupport

/// A relay that keeps every claim it was sent.
final class RecordingRegistrar: RelayRegistrar {
    let claims = Mutex<[EdgeAgent.Claim]>([])
    func register(claim: EdgeAgent.Claim) async throws -> RegistrationOutcome {
        claims.withLock { $0.append(claim) }
        return .registered("test relay")
    }
    var all: [EdgeAgent.Claim] { claims.withLock { $0 } }
}

/// The registration's report (issue 18.2, fleet view): generation, agent version and the health
/// verdict the running agent wrote; a changed verdict registers again, once.
@Suite(.slow) struct FleetReportTests {
    static func health(_ verdict: HealthTracker.Verdict, _ reason: String) -> HealthReport {
        HealthReport(verdict: verdict, reason: reason, since: "2027-01-15T08:00:00Z", relay: "fd3b:4f10:a8c6::1",
                     probeAnswered: verdict == .healthy, roundTripSeconds: nil)
    }

    /// A root with site-a router 2's stick applied, as the supervisor finds it.
    static func appliedRoot(_ scratch: Scratch) throws -> AgentPaths {
        let root = try scratch.makeRoot()
        let applied = try scratch.apply(root, try scratch.stickFolder("stick", slot: 2, serial: 1000))
        try #require(applied.status == 0, "\(applied)")
        return AgentPaths(root: root)
    }

    @Test("the claim reports the applied generation, this agent's version and its health; a new verdict registers again")
    func claimCarriesTheReportAndHealthChangesReRegister() async throws {
        try await Scratch.withAsync { scratch in
            let paths = try Self.appliedRoot(scratch)
            let clock = FakeClock(Date(timeIntervalSince1970: 1_800_000_000))
            let registrar = RecordingRegistrar()
            var settings = SupervisorSettings()
            settings.stickCheckInterval = nil
            let supervisor = Supervisor(paths: paths, services: NoServices(), registrar: registrar, tunnel: ScriptedTunnel(journal: Journal(), clock: clock),
                                        settings: settings, logger: AgentLogger { _ in }, stick: nil,
                                        clock: { clock.now })

            // Before the health watch's first look: no verdict.
            await supervisor.stepAndSettle()
            let first = try #require(registrar.all.first?.report)
            #expect(first == ClaimReport(generation: 1, agentVersion: AgentVersion.current, health: nil))
            #expect(RouterReport(first) == RouterReport(generation: 1, health: .unknown, agentVersion: AgentVersion.current,
                                                        healthReason: "no health verdict yet"))

            // The watch writes a verdict and reports the change: one registration carries it.
            let unhealthy = Self.health(.unhealthy, "uplink eth0 has no carrier (link down)")
            try unhealthy.save(paths: paths)
            await supervisor.log(unhealthy)
            for _ in 0..<3 {
                clock.advance(1)
                await supervisor.stepAndSettle()
            }
            #expect(registrar.all.count == 2, "one registration for the new verdict, no more: \(registrar.all.count)")
            let second = try #require(registrar.all.last?.report)
            #expect(second.health == unhealthy && second.generation == 1)
            #expect(RouterReport(second).health == .unhealthy && RouterReport(second).healthReason == unhealthy.reason)

            // Back to healthy: one more registration carries it.
            let healthy = Self.health(.healthy, "uplink up; the relay answered 3 probes in a row")
            try healthy.save(paths: paths)
            await supervisor.log(healthy)
            await supervisor.stepAndSettle()
            #expect(registrar.all.count == 3 && registrar.all.last?.report?.health?.verdict == .healthy)
        }
    }

    /// Services whose `ip` is a script over files: `ip -o link show dev X` prints the MTU in
    /// FOLDER/mtu-X, `ip link set dev X mtu N` writes it (enough for `TunnelMTUWatch`).
    struct FileLinkServices: ServiceControl {
        let ipTool: String
        var name: String { "file-links" }
        func restart(_ service: RouterService) throws {}

        init(folder: URL) throws {
            let script = folder.appendingPathComponent("ip")
            let text = """
                #!/bin/sh
                folder='\(folder.path)'
                case "$*" in
                  "-o link show dev "*) [ -f "$folder/mtu-$5" ] || exit 1; echo "7: $5: <UP> mtu $(cat "$folder/mtu-$5") qdisc noqueue state UP" ;;
                  "link set dev "*" mtu "*) echo "$6" > "$folder/mtu-$4" ;;
                  *) exit 0 ;;
                esac
                """
            try #require(FileManager.default.createFile(atPath: script.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o755]))
            ipTool = script.path
        }
    }

    @Test("the claim reports the tunnel's MTU; a changed uplink MTU registers again with the new one, once")
    func claimCarriesTheTunnelMTUAndAChangeReRegisters() async throws {
        try await Scratch.withAsync { scratch in
            let paths = try Self.appliedRoot(scratch)
            let links = scratch.dir.appendingPathComponent("links")
            try FileManager.default.createDirectory(at: links, withIntermediateDirectories: true)
            let services = try FileLinkServices(folder: links)
            let profile = try JSONDecoder().decode(ProfileDocument.self, from: Data(contentsOf: URL(fileURLWithPath: paths.live(Agent.appliedProfile))))
            let uplink = InterfaceNames.uplink(of: profile.router)
            let tunnel = try #require(profile.plan.tunnels.first?.interface)
            func setMTU(_ interface: String, _ mtu: Int) throws {
                try "\(mtu)\n".write(to: links.appendingPathComponent("mtu-\(interface)"), atomically: true, encoding: .utf8)
            }
            try setMTU(uplink, 1460)    // DS-Lite
            try setMTU(tunnel, 1420)    // as rendered
            let clock = FakeClock(Date(timeIntervalSince1970: 1_800_000_000))
            let registrar = RecordingRegistrar()
            var settings = SupervisorSettings()
            settings.stickCheckInterval = nil
            let supervisor = Supervisor(paths: paths, services: services, registrar: registrar,
                                        tunnel: ScriptedTunnel(journal: Journal(), clock: clock),
                                        settings: settings, logger: AgentLogger { _ in }, stick: nil, clock: { clock.now })

            // The watch looks before the first registration: it carries the MTU the watch set (the
            // scripted tunnel's relay endpoint is IPv4: 1460 - 60 = 1400, down to 1392).
            await supervisor.stepAndSettle()
            #expect(registrar.all.count == 1)
            #expect(registrar.all.first?.report?.tunnelMTU == 1392)
            #expect(RouterReport(try #require(registrar.all.first?.report)).tunnelMTU == 1392)

            // The uplink becomes LTE: the next look sets 1360 and registers again with it, once.
            try setMTU(uplink, 1420)
            for _ in 0..<4 {
                clock.advance(3)
                await supervisor.stepAndSettle()
            }
            #expect(registrar.all.count == 2, "one registration for the new MTU: \(registrar.all.map { $0.report?.tunnelMTU })")
            #expect(registrar.all.last?.report?.tunnelMTU == 1360)
            #expect(try String(contentsOf: links.appendingPathComponent("mtu-\(tunnel)"), encoding: .utf8) == "1360\n")
        }
    }

    @Test("the claim reports the system version and the last update's state; an install, or its trial judged, registers again")
    func claimCarriesTheSystemAndUpdateChangesReRegister() async throws {
        try await Scratch.withAsync { scratch in
            let paths = try Self.appliedRoot(scratch)
            try SystemUpdateTests.release(paths.root, version: 3)
            let clock = FakeClock(Date(timeIntervalSince1970: 1_800_000_000))
            let registrar = RecordingRegistrar()
            var settings = SupervisorSettings()
            settings.stickCheckInterval = nil
            let supervisor = Supervisor(paths: paths, services: NoServices(), registrar: registrar, tunnel: ScriptedTunnel(journal: Journal(), clock: clock),
                                        settings: settings, logger: AgentLogger { _ in }, stick: nil, clock: { clock.now })
            func stepPastTheMetrics() async {
                for _ in 0..<3 {
                    clock.advance(settings.tunnelCheckInterval / 2 + 1)
                    await supervisor.stepAndSettle()
                }
            }
            await supervisor.stepAndSettle()
            #expect(registrar.all.count == 1)
            #expect(RouterReport(try #require(registrar.all.last?.report)).system == RouterReport.System(version: 3, update: .none, updateVersion: 0))

            // Nothing changed: no registration.
            await stepPastTheMetrics()
            #expect(registrar.all.count == 1)

            // An install of version 4 (the `update` command, another process): its trial is reported.
            let install = SlotInstall(paths: paths)
            try install.save(UpdateRecord(version: 4, slot: .b, from: 3, state: .trial, installedInBoot: install.bootID()))
            await stepPastTheMetrics()
            #expect(registrar.all.count == 2, "one registration for the install: \(registrar.all.count)")
            #expect(RouterReport(try #require(registrar.all.last?.report)).system == RouterReport.System(version: 3, update: .trial, updateVersion: 4))

            // The board came back to version 3 in another boot: failed, and reported so.
            try install.save(UpdateRecord(version: 4, slot: .b, from: 3, state: .trial, installedInBoot: "an earlier boot"))
            await stepPastTheMetrics()
            #expect(registrar.all.count == 3)
            #expect(RouterReport(try #require(registrar.all.last?.report)).system == RouterReport.System(version: 3, update: .failed, updateVersion: 4))
        }
    }

    @Test func theVersionIsTheOneTheAgentCommandPrints() {
        #expect(!AgentVersion.current.isEmpty && RouterReport(generation: 0, health: .unknown, agentVersion: AgentVersion.current,
                                                               healthReason: "").agentVersion == AgentVersion.current,
                "the version must be wire-safe as written")
    }
}
