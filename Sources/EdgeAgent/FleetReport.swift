#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The agent's version: `edgekit-agent --version`, and what each registration reports to the relay
/// (the fleet view, docs/fleet.md). The one place it is written down.
public enum AgentVersion {
    public static let current = "0.1.0"
}

/// What a registration tells the relay about this router beside its claim (docs/protocol.md,
/// "Report"): the applied generation, the agent's version and its health verdict, so
/// `edgekit-relay status` and `edgekit fleet status` show them per router.
public struct ClaimReport: Sendable, Equatable {
    /// The applied generation's number (0: none).
    public var generation: Int
    public var agentVersion: String
    /// The running agent's verdict (RUNTIME/health.json); nil before its first look.
    public var health: HealthReport?
    /// The MTU the tunnel to this relay has now (`TunnelMTUWatch`); nil before the watch's first look.
    public var tunnelMTU: Int?

    public init(generation: Int, agentVersion: String = AgentVersion.current, health: HealthReport?, tunnelMTU: Int? = nil) {
        self.generation = generation
        self.agentVersion = agentVersion
        self.health = health
        self.tunnelMTU = tunnelMTU
    }

    /// The report for now: the applied generation, this agent, the last verdict the health watch wrote.
    static func current(paths: AgentPaths, generation: Int?) -> ClaimReport {
        ClaimReport(generation: generation ?? 0, health: HealthReport.load(paths: paths))
    }
}

extension Supervisor {
    /// A changed health verdict or tunnel MTU registers again, so the relay's view of this router is
    /// current (the claim reads both when it is made) and the relay routes the site with the tunnel's
    /// MTU. An attempt in flight carries the old report: once it ends, look again. A retry already
    /// scheduled (the relay did not accept yet) will carry the new report itself, so nothing is moved
    /// forward then.
    func registerAgainForReport() {
        if let pending = inFlight {
            Task {
                await pending.value
                self.registerAgainForReport()
            }
            return
        }
        guard registrationDue == .distantFuture, !stopping else { return }
        registerWithAllNow(clock())
    }
}
