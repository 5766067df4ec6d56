import Foundation
import ServiceLifecycle

/// `edgekit-agent run` as a swift-service-lifecycle `Service`: the boot apply, `READY=1` to systemd,
/// then the supervisor until graceful shutdown. Run it in a `ServiceGroup` with SIGTERM and SIGINT
/// as graceful-shutdown signals: the loop then ends within a tick, removes its notify socket, logs
/// one line and `run()` returns. The services it started keep running (docs/agent.md, "Stopping").
public struct AgentService: Service {
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

    public func run() async throws {
        let supervisor = Supervisor(paths: paths, services: services, registrar: registrar, tunnel: tunnel,
                                    settings: settings, logger: logger, stick: stick)
        // Not interruptible on purpose: a SIGTERM during the boot apply takes effect when it is done
        // (an apply killed half-way is still safe: docs/agent.md, "Recovery").
        await supervisor.applyAtBoot()
        Supervisor.notifySystemd("READY=1")
        await supervisor.supervise()
    }
}
