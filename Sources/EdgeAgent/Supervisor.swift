import EdgeCrypto
import EdgeModel
import EdgeRender
import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// How often the supervisor looks at things, and how it backs off. The defaults are the appliance's;
/// tests and the lab shorten them.
public struct SupervisorSettings: Sendable, Equatable {
    /// The loop wakes at least this often (VRRP state file, due timers, shutdown); a
    /// `notify` poke wakes it at once.
    public var tick: Duration = .seconds(1)
    /// How often the daemons the agent started itself (`--services processes`) are looked at: a
    /// keepalived that is gone must not leave its VIPs behind for longer than this (issue 17.3).
    public var daemonCheck: Duration = .milliseconds(250)
    /// How often the health watch looks at the uplink and probes the relay (docs/network.md, "Health").
    public var healthInterval: Duration = .seconds(1)
    /// Unanswered probes in a row that make a healthy router unhealthy.
    public var healthMisses = 3
    /// Answered probes in a row (uplink up) that make an unhealthy router healthy again.
    public var healthRise = 3
    /// With several relays: unanswered probes in a row that move the site's traffic off a relay, and
    /// how long a more preferred relay must answer before the traffic moves back to it (`PathChoice`).
    public var relayMisses = 2
    public var relayHoldDown: TimeInterval = 10
    /// Seconds between looks for a stick that appeared after boot (`Supervisor.lookForLateStick`);
    /// nil: no looking (tests that drive the loop on the host must not run blkid on its disks).
    public var stickCheckInterval: TimeInterval? = 1
    /// Seconds between reads of the tunnel's last handshake while it is fresh.
    public var tunnelCheckInterval: TimeInterval = 30
    /// A handshake older than this many seconds is stale. WireGuard rekeys every 2 minutes while
    /// keepalives flow, so 3 minutes without one (REJECT_AFTER_TIME, 180 s) means the relay is lost.
    public var staleAfter: Int = 180
    /// The first retry (registration, or re-resolving a stale tunnel's relay) waits this many
    /// seconds, doubling per failure up to `retryMaximum`, each ±25 % jitter.
    public var retryBase: TimeInterval = 5
    public var retryMaximum: TimeInterval = 300

    public init() {}
}

/// `edgekit-agent run`: apply at boot, register with the relay, then watch: register again on every
/// VRRP transition (at once, abandoning an attempt still waiting for the relay) and when the tunnel's handshake goes stale (after re-resolving the
/// relay's name and pointing WireGuard at the new address), retrying with exponential backoff and
/// jitter. Logs each state change once. Ends on cancellation (SIGTERM or SIGINT under `AgentService`).
public actor Supervisor {
    let agent: Agent
    let registrar: any RelayRegistrar
    let tunnel: any RelayTunnel
    let settings: SupervisorSettings
    let logger: AgentLogger
    let stick: String?
    let clock: @Sendable () -> Date
    var state: RuntimeState
    var lastLogged: [String: String] = [:]

    // The schedule.
    var registrationDue: Date
    var registrationFailures = 0
    var lastVRRP: VRRPState?
    var nextTunnelCheck: Date
    /// While a relay's handshake stays stale, its name is re-resolved no sooner than this (by relay name).
    var nextResolve: [String: Date] = [:]
    var staleAttempts: [String: Int] = [:]
    /// The registration attempt waiting for the relay, if any. It runs beside the loop, so a VRRP
    /// transition is never held up behind it (a relay that does not answer keeps an attempt for up to
    /// `--registration-deadline`); a transition abandons it and starts one with the new claim.
    var inFlight: Task<Void, Never>?
    var attemptNumber = 0
    /// The relays the next attempt registers with: nil for all (a new claim: a transition, a health
    /// change, a stale tunnel), else those that did not accept the last attempt.
    var pendingRelays: Set<String>?
    /// Each relay's last registration result, in words, by relay name.
    var relayRegistration: [String: String] = [:]
    /// Block devices at the last look for a stick, so only a new one makes the agent run blkid.
    var knownBlockDevices: Set<String> = []
    var nextStickLook = Date.distantPast
    /// When the metrics are rewritten next without a state change (drift, handshake).
    var nextMetrics = Date.distantPast
    /// The tunnel MTUs that follow the uplink (TunnelMTU.swift), by tunnel interface.
    var tunnelMTUs: [String: TunnelMTUWatch] = [:]
    /// The system state at the last look (`registerAgainForSystemChange`).
    var lastSystemState: SystemState?

    public init(paths: AgentPaths, services: any ServiceControl, registrar: any RelayRegistrar,
                tunnel: any RelayTunnel = WireGuardTunnel(), settings: SupervisorSettings = SupervisorSettings(),
                logger: AgentLogger, stick: String?, clock: @escaping @Sendable () -> Date = { Date() }) {
        agent = Agent(paths: paths, services: services)
        self.registrar = registrar
        self.tunnel = tunnel
        self.settings = settings
        self.logger = logger
        self.stick = stick
        self.clock = clock
        let now = clock()
        registrationDue = now
        // Give a freshly started tunnel time for its first handshake before judging it.
        nextTunnelCheck = now.addingTimeInterval(settings.tunnelCheckInterval)
        lastVRRP = VRRPNotify.current(paths: paths)
        lastSystemState = SystemState.current(paths: paths)
        // Only a block device that appears after the agent started makes it look for a stick.
        knownBlockDevices = StickWatch.blockDevices()
        let pid = getpid()
        state = RuntimeState(stick: "none", stickPath: nil, lastApply: nil, noStickAtBoot: false,
                             registration: "not attempted yet", registeredAt: nil, services: services.name,
                             pid: pid, pidStart: RuntimeState.startTime(of: pid))
    }

    var paths: AgentPaths { agent.paths }

    /// Logs `message` only when the value for `key` changed since the last time. With
    /// `ignoringNumbers`, messages that differ only in their numbers ("after 4 attempts", "after 5
    /// attempts") count as the same state.
    func logChange(_ key: String, _ message: String, level: AgentLogger.Level = .info, ignoringNumbers: Bool = false) {
        let state = ignoringNumbers ? message.replacing(#/[0-9]+/#, with: "#") : message
        guard lastLogged[key] != state else { return }
        lastLogged[key] = state
        logger.log(level: level, "\(message)")
    }

    // MARK: Boot

    /// The boot apply. No stick: keep the last generation and print the console line.
    public func applyAtBoot() {
        // The site's hostname first: it does not depend on the stick (docs/agent.md, "Hostname").
        do {
            for line in try agent.syncHostname() { logger.info("\(line)") }
        } catch {
            logger.error("\(error)")
        }
        do {
            let recovered = try agent.recover()
            if !recovered.isEmpty {
                logger.info("recovered an interrupted apply: restarted \(recovered.map(\.rawValue).joined(separator: ", "))")
            }
        } catch let error as AgentError {
            // Finished by a rollback, or it could not be: either way one line says what happened.
            logger.error("\(error)")
        } catch {
            logger.error("recovering an interrupted apply failed: \(error)")
        }
        applyStick(atBoot: true)
        knownBlockDevices = StickWatch.blockDevices()
    }

    /// Applies the stick (`--stick`, else the device labelled EDGEPROFILE) and records the result.
    /// At boot, no stick means keeping the last generation, with the console line; later (a stick
    /// that appeared, `lookForLateStick`) the apply is the same as at boot, and a new generation is
    /// registered at once.
    func applyStick(atBoot: Bool) {
        do {
            // Under `run`, a `--stick` path that is not there yet is no stick yet (a device that
            // has not enumerated), not a refused one: it is applied when it appears.
            if let stick, !FileManager.default.fileExists(atPath: stick) {
                throw AgentError.noStick(keeping: agent.store.current?.number)
            }
            let report = try agent.apply(stick: stick, dryRun: false)
            state.stick = "found"
            state.stickPath = report.stick
            state.lastApply = report.summary
            state.lastApplyResult = "applied"
            state.noStickAtBoot = false
            for line in report.lines { logger.info("\(line)") }
        } catch AgentError.noStick(let keeping) {
            state.stick = "none"
            state.lastApply = AgentError.noStickLine(keeping: keeping)
            state.lastApplyResult = "no_stick"
            if atBoot {
                state.noStickAtBoot = true
                // Exactly this line on the console (StandardError=journal+console): the image boot test greps it.
                StandardStream.error.write(AgentError.noStickLine(keeping: keeping) + "\n")
            }
        } catch let error as AgentError where error.isServiceFailure {
            // The stick was good; a service did not come up with it.
            state.stick = "found"
            state.stickPath = stick
            state.lastApply = "\(error)"
            state.lastApplyResult = "service_failed"
            logger.error("\(error)")
        } catch {
            state.stick = "refused"
            state.lastApply = "\(error)"
            state.lastApplyResult = "refused"
            let keeping = agent.store.current.map { "keeping generation \($0.number)" } ?? "nothing applied yet"
            logger.error("\(error) (\(keeping))")
        }
        state.save(paths: paths)
        publishMetrics()
        if !atBoot {
            // A new generation may carry a new certificate or claim: register it now.
            abandonRegistration()
            registrationDue = clock()
            registrationFailures = 0
        }
    }

    /// A stick that appears while `run` runs (USB enumerates late on a Pi; an operator plugs one into
    /// a running router) is applied without a reboot (docs/agent.md, "A stick inserted later"): with
    /// `--stick PATH`, when PATH appears after the boot found nothing there; otherwise when a block
    /// device appears (`/sys/class/block`, read once a look: no process unless something is new) and
    /// blkid finds the EDGEPROFILE label. A stick already applied applies as "already applied".
    func lookForLateStick(now: Date) {
        guard let interval = settings.stickCheckInterval else {
            nextStickLook = .distantFuture
            return
        }
        nextStickLook = now.addingTimeInterval(interval)
        if let stick {
            guard state.stick == "none", FileManager.default.fileExists(atPath: stick) else { return }
            logger.info("stick: \(stick) appeared; applying it")
            applyStick(atBoot: false)
            return
        }
        let devices = StickWatch.blockDevices()
        let added = devices.subtracting(knownBlockDevices).sorted()
        knownBlockDevices = devices
        guard !added.isEmpty, let device = Agent.locateStick() else { return }
        logger.info("stick: \(device) appeared (new block devices: \(added.joined(separator: ", "))); applying it")
        applyStick(atBoot: false)
    }

    /// Rewrites the textfile collector's `edgekit.prom` when what it says changed (`AgentMetrics`).
    func publishMetrics() {
        nextMetrics = clock().addingTimeInterval(settings.tunnelCheckInterval)
        do {
            try AgentMetrics.publish(paths: paths, now: clock())
        } catch {
            logChange("metrics", "metrics: \(error)", level: .warning)
        }
    }

    // MARK: Registration

    /// The applied profile (secret redacted), or nil when nothing is applied.
    func appliedProfile() -> ProfileDocument? {
        guard agent.store.current != nil,
              let data = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile)) else { return nil }
        return try? JSONDecoder().decode(ProfileDocument.self, from: data)
    }

    /// The claim for the current generation to each relay of its plan (in the plan's order), or nil
    /// when nothing is applied.
    func claims() -> [(relay: String, claim: Claim)]? {
        guard let document = appliedProfile() else { return nil }
        let master = VRRPNotify.current(paths: paths) == .master
        let report = ClaimReport.current(paths: paths, generation: agent.store.current?.number)
        return document.plan.tunnels.map { relay, interface in
            var report = report
            report.tunnelMTU = tunnelMTUs[interface]?.mtu
            return (relay.name, Claim(master: master, certificate: document.certificate, relayHost: relay.host,
                                      registrationPort: relay.registrationPort, relayPublicKey: relay.publicKey,
                                      privateKeyFile: paths.live(ConfigPaths.routerWireGuardKey), report: report))
        }
    }

    var stopping: Bool { Task.isCancelled }

    /// One registration attempt with every relay of the plan; true when all accepted it.
    public func registerOnce() async -> Bool {
        await register(with: nil)?.isEmpty ?? false
    }

    /// One registration attempt with the relays named in `relays` (nil: every relay), all at once;
    /// returns the names of those that did not accept it, or nil when nothing was attempted (no
    /// generation applied) or the attempt was abandoned. Stopping the supervisor abandons it.
    func register(with relays: Set<String>?) async -> Set<String>? {
        guard let all = claims() else {
            state.registration = "not attempted: no generation applied"
            logChange("registration", "registration: not attempted, no generation applied")
            saveOwnFields()
            return nil
        }
        let wanted = all.filter { relays?.contains($0.relay) ?? true }
        let role = wanted.first?.claim.master == true ? "master" : "backup"
        let outcomes = await withTaskGroup(of: (String, Result<RegistrationOutcome, any Error>).self) { group in
            for (relay, claim) in wanted {
                group.addTask { [registrar] in
                    let result = await Result {
                        try await Blocking.abandoningOnCancel { try await registrar.register(claim: claim) }
                    }
                    return (relay, result)
                }
            }
            var outcomes: [String: Result<RegistrationOutcome, any Error>] = [:]
            for await (relay, result) in group { outcomes[relay] = result }
            return outcomes
        }
        // Abandoned for a newer claim (a VRRP transition): its answers are about a role we no longer hold.
        if Task.isCancelled { return nil }
        var failed = Set<String>()
        for (relay, _) in wanted {
            guard let outcome = outcomes[relay] else { continue }
            let line: String
            switch outcome {
            case .success(.registered(let detail, let relayAddress)):
                line = "registered as \(role): \(detail)"
                state.registeredAt = DocumentCoding.timestamp(clock())
                if let relayAddress { followRegistration(to: relayAddress, relay: relay) }
            case .success(.refused(let reason)):
                line = "refused by the relay: \(reason)"
                failed.insert(relay)
            case .failure(let error):
                // Stopping: the attempt was abandoned, not answered; leave the last result standing.
                if stopping { return nil }
                line = "failed: \(error)"
                failed.insert(relay)
            }
            relayRegistration[relay] = line
        }
        // One relay: its line, as it always read. Several: each relay's line, by name.
        state.registration = all.count == 1 ? (relayRegistration[all[0].relay] ?? "not attempted yet")
            : all.map { "relay \($0.relay): \(relayRegistration[$0.relay] ?? "not attempted yet")" }.joined(separator: "; ")
        logChange("registration", "registration (\(role)): \(state.registration)", level: failed.isEmpty ? .info : .warning,
                  ignoringNumbers: true)
        saveOwnFields()
        publishMetrics()
        return failed
    }

    /// Points the tunnel to `relay` at the relay address the accepted registration reached, when
    /// WireGuard's endpoint is another address of the relay. WireGuard resolves the relay's name once, when the
    /// config is loaded; on a dual-stack uplink that can be before IPv6 is usable (duplicate
    /// address detection still running), so getaddrinfo put the A record first and the tunnel
    /// stayed on IPv4 while registrations, which resolve at every attempt, went over IPv6 (seen in
    /// the lab). The registration's answer proves that address works from here now.
    func followRegistration(to relayAddress: String, relay name: String? = nil) {
        guard let profile = appliedProfile(), let host = endpointHost(relayAddress),
              let relay = profile.plan.relays.first(where: { $0.name == (name ?? profile.plan.relay.name) }) else { return }
        let current = tunnel.endpoint(relayPublicKey: relay.publicKey)
        guard let current, let currentHost = endpointHost(current), currentHost != host else { return }
        let endpoint = wireGuardEndpoint(host: host, port: relay.wireguardPort)
        do {
            try tunnel.setEndpoint(relayPublicKey: relay.publicKey, endpoint: endpoint, keepalive: profile.plan.keepalive)
            logChange("follow", "tunnel: relay endpoint moved from \(current) to \(endpoint), the address the registration reached")
        } catch {
            logChange("follow", "tunnel: cannot move the relay endpoint to \(endpoint): \(error)", level: .warning)
        }
    }

    /// Writes what this process owns in the runtime status (registration, services, pid, stopped),
    /// keeping the stick fields a manual `apply` may have updated since the boot apply.
    func saveOwnFields() {
        let state = self.state
        RuntimeState.update(paths: paths, onlyIfPresent: false) { disk in
            disk.registration = state.registration
            disk.registeredAt = state.registeredAt
            disk.services = state.services
            disk.pid = state.pid
            disk.pidStart = state.pidStart
            disk.stoppedAt = state.stoppedAt
        }
    }

    /// Marks the runtime status stopped, so `status` says "not running" (the record stays: it holds
    /// the last stick and registration).
    public func markStopped() {
        state.stoppedAt = DocumentCoding.timestamp(clock())
        saveOwnFields()
        publishMetrics()
    }

    // MARK: The loop

    /// The supervision loop: wakes on every tick and on every `notify` poke, until cancelled (by
    /// `signals`, SIGTERM or SIGINT, under `AgentService`). Then it closes and removes its socket,
    /// logs one line saying why and returns; the router's services keep running.
    public func supervise(stoppedBy signals: ShutdownSignals? = nil) async {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let listener = bindNotifySocket(wake: wake)
        if let lastVRRP { logChange("vrrp", "VRRP state: \(lastVRRP.rawValue)") }
        let tick = settings.tick
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: tick)
                    wake.yield()
                }
            }
            // Its own thread; a change wakes the loop, which re-registers on the `fault` it recorded.
            let watch = KeepalivedWatch(agent: agent, every: settings.daemonCheck) { change in
                wake.yield()
                Task { await self.log(change) }
            }
            watch.start()
            let health = HealthWatch(paths: paths, every: settings.healthInterval, misses: settings.healthMisses,
                                     rise: settings.healthRise, relayMisses: settings.relayMisses, holdDown: settings.relayHoldDown,
                                     ipTool: agent.services.ipTool) { report in
                Task { await self.log(report) }
            }
            health.start()
            await withTaskCancellationHandler {
                for await _ in wakeups {
                    if stopping { break }
                    await step()
                }
            } onCancel: {
                wake.finish()
            }
            group.cancelAll()
            watch.stop()
            health.stop()
        }
        inFlight?.cancel()
        inFlight = nil
        listener?.cancel()
        let socket = listener == nil ? "" : "; removed \(paths.notifySocket)"
        if listener != nil { unlink(paths.notifySocket) }
        markStopped()
        let why = signals?.caught != nil ? "graceful shutdown (SIGTERM or SIGINT)" : "cancelled"
        logger.info("\(why): stopped supervising\(socket); the router's services keep running")
    }

    /// One pass: a VRRP transition, the tunnel check when due, a registration when due.
    func step() async {
        let now = clock()
        let vrrp = VRRPNotify.current(paths: paths)
        if vrrp != lastVRRP {
            lastVRRP = vrrp
            logChange("vrrp", "VRRP state: \(vrrp?.rawValue ?? "unknown")")
            // Every transition re-registers at once with the new claim: to master so the relay routes
            // the site /64 here, to backup or fault so it stops listing this router as master (issue
            // 17.3: a router that lost the VIP back stayed "master" at the relay). An attempt still
            // waiting for the relay claims the old role: abandon it rather than wait for it.
            abandonRegistration()
            registrationDue = now
            pendingRelays = nil
            registrationFailures = 0
            publishMetrics()
        }
        if now >= nextStickLook { lookForLateStick(now: now) }
        if now >= nextTunnelCheck { await checkTunnel(now: now) }
        checkTunnelMTU(now: now)
        if now >= nextMetrics {
            publishMetrics()
            registerAgainForSystemChange()
        }
        if stopping { return }
        if clock() >= registrationDue && inFlight == nil { startRegistration() }
    }

    /// Starts one registration attempt beside the loop; its end schedules the next one.
    func startRegistration() {
        attemptNumber += 1
        let number = attemptNumber
        let relays = pendingRelays
        registrationDue = .distantFuture
        inFlight = Task {
            let failed = await self.register(with: relays)
            self.finishRegistration(number, failed: failed)
        }
    }

    /// Makes a registration with every relay due now: the claim changed.
    func registerWithAllNow(_ now: Date) {
        pendingRelays = nil
        registrationDue = min(registrationDue, now)
    }

    /// `failed`: the relays that did not accept the attempt; nil: none was made (retry every relay).
    func finishRegistration(_ number: Int, failed: Set<String>?) {
        // Abandoned meanwhile (a transition started a newer attempt) or stopping: nothing to schedule.
        guard number == attemptNumber, !stopping else { return }
        inFlight = nil
        if let failed, failed.isEmpty {
            pendingRelays = nil
            registrationFailures = 0
            registrationDue = .distantFuture
        } else {
            // Only the relays that did not accept are tried again; a new claim tries all.
            pendingRelays = failed
            registrationFailures += 1
            registrationDue = clock().addingTimeInterval(retryDelay(after: registrationFailures))
        }
    }

    /// One pass, then waits for the registration attempt it started, if any: for tests that drive
    /// the loop with a fake clock and look at its effects pass by pass.
    func stepAndSettle() async {
        await step()
        await inFlight?.value
    }

    func abandonRegistration() {
        inFlight?.cancel()
        inFlight = nil
        attemptNumber += 1
    }

    /// A health verdict that changed (keepalived has read it from the track file already); the
    /// metrics follow at once.
    func log(_ health: HealthReport) {
        logChange("health", "health: \(health.verdict.rawValue) (\(health.reason))", level: health.verdict == .healthy ? .info : .warning)
        publishMetrics()
        registerAgainForReport()
    }

    /// What the `KeepalivedWatch` did, logged once per change.
    func log(_ change: KeepalivedWatch.Change) {
        switch change {
        case .back:
            logChange("keepalived", "keepalived runs again: VRRP decides which router is master")
        case .gone(let removed, let recordFailure):
            if let recordFailure { logger.error("\(recordFailure)") }
            let what = removed.isEmpty ? "no VIP was left on the LAN port" : "removed \(removed.joined(separator: ", ")) from the LAN port"
            logChange("keepalived", "keepalived is not running (nothing restarts it here): \(what); radvd is silent without the link-local VIP; VRRP state fault",
                      level: .error)
        }
    }

    /// Reads each relay peer's last handshake; when one is stale (or there never was one), resolves
    /// that relay's name again, points WireGuard at the answer (WireGuard resolves a name only once,
    /// when the config is loaded) and makes a registration due now. While it stays stale, each
    /// further attempt waits `retryDelay` (checks in between only look at the handshake).
    func checkTunnel(now: Date) async {
        nextTunnelCheck = now.addingTimeInterval(settings.tunnelCheckInterval)
        guard let profile = appliedProfile() else { return }
        for (relay, interface) in profile.plan.tunnels {
            await checkTunnel(to: relay, on: interface, of: profile, now: now)
            if stopping { return }
        }
    }

    func checkTunnel(to relay: ProfileDocument.RelayParameters, on interface: String, of profile: ProfileDocument, now: Date) async {
        // Log keys and words per relay only when there are several: one relay reads as it always did.
        let several = profile.plan.relays.count > 1
        let key = several ? "-\(relay.name)" : ""
        let which = several ? "relay \(relay.name)" : "the relay"
        guard let handshake = tunnel.latestHandshake(relayPublicKey: relay.publicKey) else {
            logChange("tunnel" + key, "tunnel: \(interface) is absent", level: .warning)
            return
        }
        if handshake != 0 && Int(now.timeIntervalSince1970) - handshake <= settings.staleAfter {
            staleAttempts[relay.name] = 0
            nextResolve[relay.name] = .distantPast
            lastLogged["endpoint" + key] = nil
            logChange("tunnel" + key, "tunnel: handshake with \(which) is fresh")
            return
        }
        logChange("tunnel" + key, (handshake == 0 ? "tunnel: no handshake with \(which) yet"
                                                  : "tunnel: no handshake with \(which) for over \(settings.staleAfter) s")
                                  + "; re-resolving \(relay.host)", level: .warning)
        guard now >= nextResolve[relay.name, default: .distantPast] else { return }
        staleAttempts[relay.name, default: 0] += 1
        nextResolve[relay.name] = now.addingTimeInterval(retryDelay(after: staleAttempts[relay.name]!))
        let port = relay.wireguardPort
        let resolved = await tunnel.resolve(host: relay.host, port: port)
        if stopping { return }
        guard let endpoint = resolved else {
            logChange("endpoint" + key, "tunnel: \(relay.host) does not resolve; trying again with backoff", level: .warning)
            return
        }
        do {
            try tunnel.setEndpoint(relayPublicKey: relay.publicKey, endpoint: endpoint, keepalive: profile.plan.keepalive)
            logChange("endpoint" + key, "tunnel: \(relay.host) is at \(endpoint); relay endpoint set, registering again")
        } catch {
            logChange("endpoint" + key, "tunnel: \(relay.host) is at \(endpoint), but setting the endpoint failed: \(error)", level: .warning)
        }
        // The relay may have moved or restarted and forgotten this router.
        registerWithAllNow(now)
    }

    func retryDelay(after failures: Int) -> TimeInterval {
        Supervisor.backoff(failures: failures, base: settings.retryBase, maximum: settings.retryMaximum)
    }

    /// `base` doubling per failure up to `maximum`, ±25 % jitter so a site's routers (and sites after
    /// a relay outage) spread out.
    public static func backoff(failures: Int, base: TimeInterval = 5, maximum: TimeInterval = 300) -> TimeInterval {
        let delay = min(maximum, base * pow(2, Double(max(0, failures - 1))))
        return delay * Double.random(in: 0.75...1.25)
    }

    // MARK: The notify socket

    /// Binds `/run/edgekit/agent.sock` (under the root) and yields to `wake` for every datagram.
    /// Nil when it cannot: the loop still reads the state file every tick.
    func bindNotifySocket(wake: AsyncStream<Void>.Continuation) -> (any DispatchSourceRead)? {
        let path = paths.notifySocket
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            logger.warning("notify socket path \(path) is longer than a socket address allows; polling \(paths.vrrpState) every tick instead")
            return nil
        }
        try? FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = VRRPNotify.unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            logger.warning("cannot listen on \(path): \(DurableFiles.errorText()); polling \(paths.vrrpState) every tick instead")
            close(fd)
            return nil
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "edgekit-agent.notify"))
        source.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 128)
            while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
            wake.yield()
        }
        source.setCancelHandler { close(fd) }
        source.resume()
        return source
    }

    /// Tells systemd (Type=notify) the boot apply is done; a no-op outside systemd.
    public static func notifySystemd(_ message: String) {
        guard var path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var abstract = false
        if path.hasPrefix("@") { abstract = true; path.removeFirst() }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = (abstract ? [0] : []) + Array(path.utf8.prefix(106))
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = message.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text, strlen(text), 0, $0, length) }
            }
        }
    }
}
