#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// `edgekit-agent run`: the boot apply, `READY=1` to systemd, then the supervisor until SIGTERM or
/// SIGINT. The signal cancels the supervisor: the loop then ends within a tick, removes its notify
/// socket, logs one line and `run(until:grace:)` returns. The services it started keep running
/// (docs/agent.md, "Stopping").
public struct AgentService: Sendable {
    public var paths: AgentPaths
    public var services: any ServiceControl
    public var registrar: any RelayRegistrar
    public var tunnel: any RelayTunnel
    public var settings: SupervisorSettings
    public var stick: String?
    public var logger: AgentLogger

    public init(paths: AgentPaths, services: any ServiceControl, registrar: any RelayRegistrar,
                tunnel: any RelayTunnel = WireGuardTunnel(), settings: SupervisorSettings = SupervisorSettings(),
                stick: String?, logger: AgentLogger) {
        self.paths = paths
        self.services = services
        self.registrar = registrar
        self.tunnel = tunnel
        self.settings = settings
        self.stick = stick
        self.logger = logger
    }

    /// Runs until one of `signals` is caught, then gives the supervisor `grace` to stop; false when
    /// it did not (the caller exits without it).
    public func run(until signals: ShutdownSignals, grace: Duration) async -> Bool {
        await signals.run(grace: grace) {
            let supervisor = Supervisor(paths: paths, services: services, registrar: registrar, tunnel: tunnel,
                                        settings: settings, logger: logger, stick: stick)
            // Cancellation does not interrupt the boot apply: a SIGTERM during it takes effect when it
            // is done (an apply killed half-way is still safe: docs/agent.md, "Recovery").
            await supervisor.applyAtBoot()
            Supervisor.notifySystemd("READY=1")
            await supervisor.supervise(stoppedBy: signals)
        }
    }
}
