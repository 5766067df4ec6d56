@testable import EdgeAgent
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

    @Test("the claim reports the applied generation, this agent's version and its health; a new verdict registers again")
    func claimCarriesTheReportAndHealthChangesReRegister() async throws {
        try await Scratch.withAsync { scratch in
            let root = try scratch.makeRoot()
            let applied = try scratch.apply(root, try scratch.stickFolder("stick", slot: 2, serial: 1000))
            try #require(applied.status == 0, "\(applied)")
            let paths = AgentPaths(root: root)
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

    @Test func theVersionIsTheOneTheAgentCommandPrints() {
        #expect(!AgentVersion.current.isEmpty && RouterReport(generation: 0, health: .unknown, agentVersion: AgentVersion.current,
                                                               healthReason: "").agentVersion == AgentVersion.current,
                "the version must be wire-safe as written")
    }
}
