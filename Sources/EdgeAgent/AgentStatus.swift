import EdgeCrypto
import EdgeModel
import EdgeRender
import EdgeSystem
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// What `run` knows that the disk does not: kept in `/run/edgekit/status.json` while it runs, and
/// left there when it stops, marked stopped. `run` owns the registration, service and process fields;
/// the stick fields are the last apply's, by `run` at boot or by a manual `apply` since.
public struct RuntimeState: Codable, Sendable, Equatable {
    /// `found`, `none` or `refused`.
    public var stick: String
    public var stickPath: String?
    /// The last apply's result line (or refusal).
    public var lastApply: String?
    /// What that apply came to, for the metrics (`AgentMetrics`): `applied`, `no_stick`, `refused`
    /// or `service_failed`; nil in a record an older agent wrote.
    public var lastApplyResult: String?
    public var noStickAtBoot: Bool
    public var registration: String
    public var registeredAt: String?
    public var services: String
    /// The `run` process and its start time (clock ticks since boot, /proc/PID/stat field 22), so
    /// `status` can tell it from a later process that reuses the pid.
    public var pid: Int32?
    public var pidStart: UInt64?
    /// Set by `run` when it stops gracefully (SIGTERM/SIGINT, or the end of `--once`).
    public var stoppedAt: String?

    public init(stick: String, stickPath: String?, lastApply: String?, noStickAtBoot: Bool, registration: String,
                registeredAt: String?, services: String, pid: Int32? = nil, pidStart: UInt64? = nil, stoppedAt: String? = nil) {
        self.stick = stick
        self.stickPath = stickPath
        self.lastApply = lastApply
        self.noStickAtBoot = noStickAtBoot
        self.registration = registration
        self.registeredAt = registeredAt
        self.services = services
        self.pid = pid
        self.pidStart = pidStart
        self.stoppedAt = stoppedAt
    }

    public static func load(paths: AgentPaths) -> RuntimeState? {
        FileManager.default.contents(atPath: paths.statusFile).flatMap { try? JSONDecoder().decode(RuntimeState.self, from: $0) }
    }

    /// Replaces the whole record (the boot apply of `run`).
    public func save(paths: AgentPaths) {
        RuntimeState.update(paths: paths, onlyIfPresent: false) { $0 = self }
    }

    /// Changes some fields of the record under a lock (`status.lock`), so the running agent and a
    /// manual `apply` never undo each other's fields; writes only when something changed (a repeated
    /// apply of the same stick leaves the file alone). With `onlyIfPresent`, nothing is written when
    /// no `run` ever created the record.
    public static func update(paths: AgentPaths, onlyIfPresent: Bool, _ change: (inout RuntimeState) -> Void) {
        if onlyIfPresent && !FileManager.default.fileExists(atPath: paths.statusFile) { return }
        try? FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        let lock = try? Lock(path: paths.runtime + "/status.lock", wait: true)
        defer { lock?.release() }
        let before = load(paths: paths)
        var state = before ?? RuntimeState(stick: "none", stickPath: nil, lastApply: nil, noStickAtBoot: false,
                                           registration: "not attempted (agent not running)", registeredAt: nil, services: "none")
        change(&state)
        guard state != before else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let temporary = paths.statusFile + ".new"
        guard let data = try? encoder.encode(state) else { return }
        if (try? data.write(to: URL(fileURLWithPath: temporary))) != nil { rename(temporary, paths.statusFile) }
    }

    /// What a manual `apply` did, for `status` while (or after) `run` ran: the stick fields, only
    /// when a `run` created the record (so an apply under a scratch --root writes nothing there).
    public static func recordApply(paths: AgentPaths, stick given: String?, result: Result<ApplyReport, any Error>) {
        update(paths: paths, onlyIfPresent: true) { state in
            switch result {
            case .success(let report):
                state.stick = "found"
                state.stickPath = report.stick
                state.lastApply = report.summary
                state.lastApplyResult = "applied"
                state.noStickAtBoot = false
            case .failure(AgentError.noStick(let keeping)):
                state.stick = "none"
                state.stickPath = nil
                state.lastApply = AgentError.noStickLine(keeping: keeping)
                state.lastApplyResult = "no_stick"
            case .failure(let error):
                let serviceFailure = (error as? AgentError)?.isServiceFailure == true
                state.stick = serviceFailure ? "found" : "refused"
                state.stickPath = given
                state.lastApply = "\(error)"
                state.lastApplyResult = serviceFailure ? "service_failed" : "refused"
            }
        }
    }

    /// Whether the recorded `run` process is still the one running: not stopped, pid alive and
    /// not a zombie, started when it was (a reused pid is someone else).
    public var runIsAlive: Bool {
        guard stoppedAt == nil, let pid, pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let started = RuntimeState.startTime(of: pid) else { return false }
        return pidStart == nil || pidStart == started
    }

    /// Field 22 of the process's stat (start time in clock ticks after boot), nil for a zombie or no
    /// such process. Read from its main thread's stat (/proc/PID/task/PID/stat, the same start time):
    /// qemu-user, which runs the aarch64 agent's tests, makes up /proc/PID/stat for the emulated
    /// process itself, so `run` would record a start time no other process reads.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "PID (COMM)": field 3 (state) onwards.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z" else { return nil }
        return UInt64(fields[19])
    }

    /// `running (services: X)`, or why not.
    var agentLine: String {
        if runIsAlive { return "running (services: \(services))" }
        if let stoppedAt { return "not running (stopped at \(stoppedAt))" }
        if let pid { return "not running (pid \(pid) ended without stopping cleanly)" }
        return "not running"
    }
}

/// `edgekit-agent status`: the applied generation from disk, the running agent's view, keepalived's
/// last VRRP state and the tunnel's last handshake.
public struct AgentStatus: Codable, Sendable, Equatable {
    public var stick: String
    public var stickPath: String?
    public var plan: String?
    public var site: String?
    public var slot: Int?
    public var generation: Int?
    public var previousGeneration: Int?
    public var serial: UInt64?
    /// Services that did not come up with the current generation (and no rollback brought back).
    public var failedServices: [String]?
    public var vrrp: String
    /// Seconds since the tunnel's last handshake; nil when there was none or the tunnel is absent.
    public var handshakeAgeSeconds: Int?
    public var tunnel: String
    public var registration: String
    public var agent: String
    /// The last apply's result line (by `run` at boot or a manual `apply` since).
    public var lastApply: String?
    public var note: String?
    /// How many live files differ from the current generation's manifest; nil when nothing is
    /// applied or the generation has no manifest (`driftProblem` says so).
    public var drift: Int?
    /// Each drifted file and what differs (never its content); nil when `drift` is.
    public var driftedFiles: [DriftedFile]?
    /// Why drift could not be checked (`generation N has no manifest; …`), else nil.
    public var driftProblem: String?
    /// The running agent's health verdict and last relay probe; nil when no agent runs.
    public var health: HealthReport?
    /// The ports pinned for the plan's `auto` uplink and LAN (docs/network.md, "Interface names");
    /// nil when nothing is pinned.
    public var ports: [PinnedPort]?
    /// The running system's board and version (`/usr/lib/edgekit/system.json`, docs/updates.md);
    /// nil on an image from before update bundles.
    public var system: SystemRelease?
    /// The last update install and how its trial boot went (docs/updates.md); nil when none was ever installed.
    public var update: UpdateRecord? = nil

    /// One pinned port: its role, MAC address and the name it has now (nil: not present).
    public struct PinnedPort: Codable, Sendable, Equatable {
        public var role: String
        public var mac: String
        public var name: String?

        public init(role: String, mac: String, name: String?) {
            self.role = role
            self.mac = mac
            self.name = name
        }

        /// Every key, always (`name` null when the port is not present).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(role, forKey: .role)
            try container.encode(mac, forKey: .mac)
            try container.encode(name, forKey: .name)
        }

        /// The pins on disk, each with the port that has its MAC address now.
        static func gather(paths: AgentPaths) -> [PinnedPort]? {
            let pinning = PortPinning(paths: paths)
            let pins = pinning.load()
            let roles = [("uplink", pins.uplink), ("lan", pins.lan)].compactMap { role, mac in mac.map { (role, $0) } }
            guard !roles.isEmpty else { return nil }
            let ports = WiredPorts.scan(pinning.classNet) ?? []
            return roles.map { role, mac in PinnedPort(role: role, mac: mac, name: ports.first { $0.mac == mac }?.name) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case stick, plan, site, slot, generation, serial, vrrp, tunnel, registration, agent, note, drift, health, ports, system, update
        case driftedFiles = "drifted_files"
        case driftProblem = "drift_problem"
        case stickPath = "stick_path"
        case previousGeneration = "previous_generation"
        case handshakeAgeSeconds = "handshake_age_seconds"
        case failedServices = "failed_services"
        case lastApply = "last_apply"
    }

    /// Every key, always: `null` where there is nothing (scripts can rely on the keys being there).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stick, forKey: .stick)
        try container.encode(stickPath, forKey: .stickPath)
        try container.encode(plan, forKey: .plan)
        try container.encode(site, forKey: .site)
        try container.encode(slot, forKey: .slot)
        try container.encode(generation, forKey: .generation)
        try container.encode(previousGeneration, forKey: .previousGeneration)
        try container.encode(serial, forKey: .serial)
        try container.encode(failedServices, forKey: .failedServices)
        try container.encode(vrrp, forKey: .vrrp)
        try container.encode(handshakeAgeSeconds, forKey: .handshakeAgeSeconds)
        try container.encode(tunnel, forKey: .tunnel)
        try container.encode(registration, forKey: .registration)
        try container.encode(agent, forKey: .agent)
        try container.encode(lastApply, forKey: .lastApply)
        try container.encode(note, forKey: .note)
        try container.encode(drift, forKey: .drift)
        try container.encode(driftedFiles, forKey: .driftedFiles)
        try container.encode(driftProblem, forKey: .driftProblem)
        try container.encode(health, forKey: .health)
        try container.encode(ports, forKey: .ports)
        try container.encode(system, forKey: .system)
        try container.encode(update, forKey: .update)
    }

    public static func gather(paths: AgentPaths, now: Date = Date()) -> AgentStatus {
        let store = GenerationStore(paths: paths)
        let current = store.current
        let runtime = RuntimeState.load(paths: paths)
        let release = try? SystemUpdate.release(paths: paths)
        let failed = store.failedServices
        let stamp = try? SiteStamp.load(from: paths.siteStamp)
        let relayKey = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile))
            .flatMap { try? JSONDecoder().decode(ProfileDocument.self, from: $0) }?.plan.relay.publicKey
        let handshake = WireGuardTunnel().latestHandshake(relayPublicKey: relayKey)
        let staleAfter = SupervisorSettings().staleAfter
        var tunnel = "absent"
        var age: Int?
        if let handshake {
            if handshake == 0 {
                tunnel = "up, no handshake yet"
            } else {
                age = max(0, Int(now.timeIntervalSince1970) - handshake)
                tunnel = "handshake \(age!) s ago" + (age! > staleAfter ? " (stale)" : "")
            }
        }
        var note: String?
        if runtime?.noStickAtBoot == true {
            note = current.map { "no stick at boot: running the last applied generation \($0.number)" }
                ?? "no stick at boot: nothing applied yet"
        }
        var drift: Int?
        var drifted: [DriftedFile]?
        var driftProblem: String?
        var generation = current?.number
        switch store.drift() {
        case .nothingApplied:
            break
        case .noManifest(let number):
            generation = number
            driftProblem = DriftCheck.noManifestLine(number)
        case .checked(_, let files):
            drift = files.count
            drifted = files
        }
        return AgentStatus(
            stick: runtime?.stick ?? "unknown (agent not running)", stickPath: runtime?.stickPath,
            plan: current?.manifest.plan ?? stamp?.plan, site: current?.manifest.site ?? stamp?.site,
            slot: current?.manifest.slot, generation: generation, previousGeneration: store.previous?.number,
            serial: current?.manifest.serial, failedServices: failed?.services.map(\.rawValue), vrrp: VRRPNotify.current(paths: paths)?.rawValue ?? "unknown",
            handshakeAgeSeconds: age, tunnel: tunnel,
            registration: runtime?.registration ?? "not attempted (agent not running)",
            agent: runtime?.agentLine ?? "not running", lastApply: runtime?.lastApply, note: note,
            drift: drift, driftedFiles: drifted, driftProblem: driftProblem,
            health: runtime?.agentLine.hasPrefix("running") == true ? HealthReport.load(paths: paths) : nil,
            ports: PinnedPort.gather(paths: paths), system: release,
            update: release.flatMap { SlotInstall(paths: paths).reconciledRecord(running: $0, save: false) })
    }

    public var lines: [String] {
        var lines = [
            "stick         \(stick)\(stickPath.map { " (\($0))" } ?? "")",
            "site          \(plan ?? "?")/\(site ?? "?")\(slot.map { " router \($0)" } ?? "")",
        ]
        if let system { lines.append("system        \(system.board), version \(system.version)") }
        if let update {
            let outcome = switch update.state {
            case .trial: update.version == system?.version ? "on its trial boot" : "installed; the next boot tries it"
            case .blessed: "blessed"
            case .failed: "failed its trial boot: \(update.reason ?? "not blessed")"
            }
            lines.append("update        version \(update.version) into slot \(update.slot.rawValue) (from \(update.from)): \(outcome)")
        }
        lines += [
            "generation    \(generation.map(String.init) ?? "none")\(previousGeneration.map { " (previous \($0) kept)" } ?? "")",
            "serial        \(serial.map(String.init) ?? "none")",
            "vrrp          \(vrrp)",
        ]
        if let ports {
            lines.append("ports         " + ports.map { "\($0.role) \($0.mac) (\($0.name ?? "not present"))" }.joined(separator: ", ")
                         + " (pinned for auto)")
        }
        lines += [
            "tunnel        \(tunnel)",
            "registration  \(registration)",
            "agent         \(agent)",
        ]
        if let health {
            func probe(_ roundTrip: Double?) -> String {
                roundTrip.map { String(cFormat: "answered in %.1f ms", $0 * 1000) } ?? "not answered"
            }
            lines.append("health        \(health.verdict.rawValue) since \(health.since): \(health.reason); last probe of \(health.relay) \(probe(health.roundTripSeconds))")
            // With several relays, one line each: probe, up or down, and which one carries the traffic.
            for relay in health.relays ?? [] {
                lines.append("relay         \(relay.name) (\(relay.address) on \(relay.interface)) \(relay.up ? "up" : "down"), last probe \(probe(relay.roundTripSeconds))\(relay.chosen ? "; the site's traffic goes through it" : "")")
            }
        }
        if let lastApply { lines.append("last apply    \(lastApply)") }
        // `drift=N` leads the line so a script or a metric can take it as it is.
        if let driftProblem {
            lines.append("drift         unknown: \(driftProblem)")
        } else if let drift, let generation {
            lines.append("drift         drift=\(drift)" + (drift == 0 ? " (the live files are generation \(generation)'s)"
                                                          : " (files differ from generation \(generation); apply --repair restores them)"))
            lines += (driftedFiles ?? []).map { "drifted       \($0.line)" }
        }
        if let failedServices {
            lines.insert("services      not up with this generation: \(failedServices.joined(separator: ", ")) (apply its stick again to retry)",
                         at: lines.firstIndex { $0.hasPrefix("vrrp ") } ?? lines.count)
        }
        if let note { lines.append(note) }
        return lines
    }
}
