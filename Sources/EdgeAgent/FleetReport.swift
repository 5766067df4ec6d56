import EdgeModel
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
    /// The running system and its last update install (docs/updates.md); nil on an image from
    /// before system versions.
    public var system: SystemState?

    public init(generation: Int, agentVersion: String = AgentVersion.current, health: HealthReport?, tunnelMTU: Int? = nil,
                system: SystemState? = nil) {
        self.generation = generation
        self.agentVersion = agentVersion
        self.health = health
        self.tunnelMTU = tunnelMTU
        self.system = system
    }

    /// The report for now: the applied generation, this agent, the last verdict the health watch
    /// wrote, the system and its last update.
    static func current(paths: AgentPaths, generation: Int?) -> ClaimReport {
        ClaimReport(generation: generation ?? 0, health: HealthReport.load(paths: paths), system: SystemState.current(paths: paths))
    }
}

/// Which system version the router runs and how its last update install went: what `status` and the
/// `edgekit_system_*` metrics say, and what the relay hears (docs/updates.md, "Watching").
public struct SystemState: Sendable, Equatable {
    public var version: UInt64
    /// The last install (`update.json`), reconciled with the running version: a trial whose boot
    /// came back to the old system is failed. nil when nothing was installed.
    public var update: UpdateRecord?

    public init(version: UInt64, update: UpdateRecord?) {
        self.version = version
        self.update = update
    }

    /// nil on an image without `system.json`. Reads two small files, writes nothing.
    public static func current(paths: AgentPaths) -> SystemState? {
        guard let release = try? SystemUpdate.release(paths: paths) else { return nil }
        return SystemState(version: release.version, update: SlotInstall(paths: paths).reconciledRecord(running: release, save: false))
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

    /// A changed system or update state (an install wrote its trial, the trial was blessed or
    /// judged failed: `update --confirm` runs in its own process) registers again, so the relay's
    /// view of the rollout is current within one metrics interval. Looked at with the metrics.
    func registerAgainForSystemChange() {
        let now = SystemState.current(paths: paths)
        guard now != lastSystemState else { return }
        lastSystemState = now
        logChange("system", "system: version \(now.map { String($0.version) } ?? "unknown"), update \(now?.update.map { "\($0.version) \($0.state.rawValue)" } ?? "none"); registering again")
        registerAgainForReport()
    }
}
