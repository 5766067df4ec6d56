import ArgumentParser
import CLISupport
import EdgeAgent
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

@main
enum Main {
    static func main() async {
        await CommandRunner.main(AgentCommand.self)
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgekit-agent",
        abstract: "The edge router's agent: apply the profile stick, register with the relay, supervise.",
        discussion: """
            Exit codes: 0 success, 1 a refused stick or a failed apply (one line says which), 2 usage.
            Docs: docs/agent.md.
            """,
        version: AgentVersion.current,
        subcommands: [Apply.self, Run.self, Notify.self, Status.self, Hostname.self, Update.self])
}

enum ServiceMode: String, ExpressibleByArgument, CaseIterable {
    case systemd, processes, none
}

struct RootOptions: ParsableArguments {
    @Option(help: "Root of the tree to read and write (default /).")
    var root: String = "/"

    @Option(help: "How services are restarted: systemd, processes (child processes, for namespaces without systemd) or none (default: systemd for /, none for another --root).")
    var services: ServiceMode?

    var paths: AgentPaths { AgentPaths(root: root) }

    /// `EDGEKIT_AGENT_TOOL_RADVD=/path` and the like replace a tool for `--services processes` (lab, tests).
    func serviceControl() -> any ServiceControl {
        switch services ?? (paths.isSystemRoot ? .systemd : ServiceMode.none) {
        case .systemd: return SystemdServices()
        case .none: return NoServices()
        case .processes:
            var tools: [String: String] = [:]
            for (key, value) in ProcessInfo.processInfo.environment where key.hasPrefix("EDGEKIT_AGENT_TOOL_") {
                tools[String(key.dropFirst("EDGEKIT_AGENT_TOOL_".count)).lowercased().replacing("_", with: "-")] = value
            }
            return ChildProcessServices(paths: paths, tools: tools)
        }
    }
}

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find, unseal, verify, derive, render and apply the profile stick as one generation.")

    @OptionGroup var options: RootOptions
    @Option(help: "The stick: a block device, a stick image or a folder (default: the device labelled EDGEPROFILE).")
    var stick: String?
    @Flag(help: "Print what would change; change nothing.")
    var dryRun = false
    @Flag(help: "Restore the files that drifted from the applied generation (see status), without the stick; restart only their services.")
    var repair = false

    func run() async throws {
        let agent = Agent(paths: options.paths, services: options.serviceControl())
        if repair {
            // A repair puts the applied generation back; a stick would be a new one.
            if let stick {
                throw CommandError("apply: --repair restores the applied generation without a stick; drop --stick \(stick), or drop --repair to apply the stick")
            }
            let repaired = Result { try agent.repair(dryRun: dryRun) }
            if !dryRun { publishMetrics(options.paths) }
            Output.data(try repaired.get().lines.joined(separator: "\n") + "\n")
            return
        }
        // The site's hostname, whatever the stick turns out to be (docs/agent.md, "Hostname"); a
        // problem with it is reported and does not stop the apply.
        do {
            let lines = try agent.syncHostname(dryRun: dryRun)
            if !lines.isEmpty { Output.data(lines.joined(separator: "\n") + "\n") }
        } catch {
            Output.error("\(error)")
        }
        let result = Result { try agent.apply(stick: stick, dryRun: dryRun) }
        // What `status` shows as the last apply, when a `run` keeps a runtime status on this root.
        if !dryRun {
            RuntimeState.recordApply(paths: options.paths, stick: stick, result: result)
            publishMetrics(options.paths)
        }
        Output.data(try result.get().lines.joined(separator: "\n") + "\n")
    }
}

struct Hostname: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the hostname the site stamp's (the running system's and /etc/hostname), then exit.",
        discussion: """
            Every site's image shares one root filesystem, whose /etc/hostname says edgekit; only the
            site stamp (/etc/edgekit/site.json, on the site partition) knows the site. At boot
            edgekit-hostname.service runs this before the login prompts, so the console greets with
            the site's name from the first boot on; `apply` and `run` do the same at their start.
            Without a stamp (a root not stamped yet) it says so and changes nothing (exit 0).
            Under another --root only that root's /etc/hostname is written.
            Docs: docs/agent.md, "Hostname".
            """)

    @Option(help: "Root of the tree to read and write (default /).")
    var root: String = "/"
    @Flag(help: "Print what would change; change nothing.")
    var dryRun = false

    func run() async throws {
        let paths = AgentPaths(root: root)
        guard FileManager.default.fileExists(atPath: paths.siteStamp) else {
            Output.data("hostname: no site stamp at \(paths.siteStamp); nothing to do\n")
            return
        }
        let lines = try Agent(paths: paths, services: NoServices()).syncHostname(dryRun: dryRun)
        Output.data((lines.isEmpty ? ["hostname: already the site stamp's"] : lines).joined(separator: "\n") + "\n")
    }
}

/// The textfile collector's `edgekit.prom` after an apply or repair (docs/agent.md, "Metrics"); a
/// failure to write it is one line on stderr and does not change the apply's outcome.
func publishMetrics(_ paths: AgentPaths) {
    do {
        try AgentMetrics.publish(paths: paths)
    } catch {
        Output.error("edgekit-agent: metrics: \(error)")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply at boot, register with the relay, then supervise until SIGTERM/SIGINT (systemd runs this).",
        discussion: """
            SIGTERM or SIGINT: the loop stops within a second, removes its notify socket, logs one line
            and exits 0; the services it started keep running. Docs: docs/agent.md, "run".
            """)

    @OptionGroup var options: RootOptions
    @Option(help: "The stick (default: the device labelled EDGEPROFILE).")
    var stick: String?
    @Flag(help: "Apply and attempt one registration, then exit (lab and tests).")
    var once = false
    @Option(help: "Give up one registration attempt cycle after this many seconds (retries continue in the supervisor).")
    var registrationDeadline: Int = 60
    @Option(help: "Seconds between reads of the tunnel's last handshake while it is fresh.")
    var tunnelCheckInterval: Int = 30
    @Option(help: "Seconds after which the last handshake counts as stale (relay re-resolved, registration repeated). Lower values are for tests.")
    var handshakeStaleAfter: Int = 180

    func validate() throws {
        for (flag, value) in [("--registration-deadline", registrationDeadline), ("--tunnel-check-interval", tunnelCheckInterval),
                              ("--handshake-stale-after", handshakeStaleAfter)] where value < 1 {
            throw ValidationError("\(flag) must be at least 1 second, not \(value)")
        }
    }

    func run() async throws {
        let logger = AgentLogger.standardError(label: "edgekit-agent", level: .info)
        if let failed = SystemUpdate.failedTrial(paths: options.paths) { logger.warning(failed) }
        let registrar = RelayClientRegistrar(logger: logger, deadline: .seconds(registrationDeadline))
        var settings = SupervisorSettings()
        settings.tunnelCheckInterval = TimeInterval(tunnelCheckInterval)
        settings.staleAfter = handshakeStaleAfter
        if once {
            let supervisor = Supervisor(paths: options.paths, services: options.serviceControl(), registrar: registrar,
                                        settings: settings, logger: logger, stick: stick)
            await supervisor.applyAtBoot()
            _ = await supervisor.registerOnce()
            await supervisor.markStopped()
            return
        }
        // Caught before the boot apply: a SIGTERM during it stops the agent once it is done.
        let signals = await ShutdownSignals.catching([SIGTERM, SIGINT])
        let agent = AgentService(paths: options.paths, services: options.serviceControl(), registrar: registrar,
                                 settings: settings, stick: stick, logger: logger)
        // The loop stops within a tick; past this, exit without it. systemd's TimeoutStopSec=10s is
        // the last resort.
        guard await agent.run(until: signals, grace: .seconds(5)) else {
            throw CommandError("run: the supervisor did not stop within 5 s of SIGTERM or SIGINT; exiting without it")
        }
        // Stopped: end here rather than through exit(3). The watch threads may be mid-pass, and the
        // atexit handlers (libcrypto's cleanup among them) would take libraries away under them: a
        // hash started then failed as "out of memory" and trapped (seen under qemu-aarch64). All
        // that matters is written already (stderr is unbuffered, status.json is on disk).
        fflush(nil)
        _exit(0)
    }
}

struct Notify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "keepalived's notify hook: record the VRRP state and tell the running agent (never blocks).",
        discussion: """
            Writes RUNTIME/vrrp-state and pokes RUNTIME/agent.sock, RUNTIME being /run/edgekit under
            --root: the same root as the `run` to tell. A state other than master, backup or fault, or a
            --root that is not a directory: one line, exit 1, nothing written.
            `stopped` is keepalived.service's ExecStopPost= (keepalived ended, even by kill -9): remove
            the VIPs it may have left on the LAN port, send the priority-0 advertisement a master that
            stops sends (when it was master), then record fault.
            """)

    @Option(help: "Root of the tree (default /).")
    var root: String = "/"
    @Argument(help: "master, backup, fault, or stopped (keepalived has ended).")
    var state: String

    func run() async throws {
        let paths = AgentPaths(root: root)
        if state.lowercased() == "stopped" {
            VirtualAddresses.handOver(paths: paths)
            try VRRPNotify.record(.fault, paths: paths)
            return
        }
        guard let vrrp = VRRPState(rawValue: state.lowercased()) else {
            throw CommandError("notify: VRRP state \"\(state)\" is not master, backup, fault or stopped; nothing was recorded")
        }
        try VRRPNotify.record(vrrp, paths: paths)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stick, site, slot, generation, serial, VRRP state, tunnel handshake, registration and drift.")

    @Option(help: "Root of the tree (default /).")
    var root: String = "/"
    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() async throws {
        let status = AgentStatus.gather(paths: AgentPaths(root: root))
        switch format {
        case .text:
            Output.data(status.lines.joined(separator: "\n") + "\n")
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            Output.data(String(decoding: try encoder.encode(status), as: UTF8.self) + "\n")
        }
    }
}

struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install a system update bundle (SITE-VERSION.update) into the other system slot, or check one.",
        discussion: """
            update BUNDLE checks the bundle, writing nothing until every check
            passed: the operator's signature on the manifest (this image's
            /etc/edgekit/operator.pub), the plan and site (/etc/edgekit/site.json),
            the board and a version newer than the running system's
            (/usr/lib/edgekit/system.json), then every member against its
            SHA-256. A refused bundle is one line, exit 1, nothing written.
            It then writes the system into the slot that is not running (A or B),
            reads it back, copies the kernel and initrd to the EFI system
            partition and adds the slot's boot entry with one try: the next boot
            tries the new system once. --reboot reboots into it at once.

            On that trial boot, edgekit-health.service runs `update --confirm`:
            the new system is kept (blessed) once the agent is healthy (profile
            applied, services up, registered with a relay; or no stick at all),
            else after --within seconds it exits 1, the router reboots and the
            board boots the old slot by itself. Either way `edgekit-agent status`
            and the metrics say how the last update went.

            --from-relay asks the plan's first relay, through the tunnel, which
            bundle this router should install now (the newest for its site or board
            above the running version; a site's master only once its backup runs
            that version, blessed), fetches it to /var/lib/edgekit/updates and then
            checks (--check) or installs it as above. Nothing newer, or held back:
            one line saying why, exit 0, nothing fetched.

            --scheduled is how edgekit-update.timer runs it (hourly; docs/updates.md,
            "On a schedule"): before asking, it waits quietly (one line, exit 0) when no
            profile is applied or no bundle could be installed now (a trial boot not yet
            blessed, a board without trial boots); and an offer this router fetched and
            refused before (another plan, board or site, an older version, a bad
            signature or hash; recorded in /var/lib/edgekit/update-refused) is not
            fetched again: publish a newer version.

            --check verifies only. Trial boots need systemd-boot (pc-uefi,
            arm64-uefi, pc-bios started by UEFI) or edgekit's GRUB (pc-bios started
            by legacy BIOS: grubenv's edgekit_trial and edgekit_slot); on the
            Raspberry Pi the install is refused.
            Docs: docs/updates.md.
            """)

    @Flag(help: "Verify the bundle for this router and change nothing.")
    var check = false
    @Flag(help: "Judge this system's trial boot (edgekit-health.service runs this): exit 0 when healthy or not on trial, 1 when not healthy in time.")
    var confirm = false
    @Option(help: "With --confirm: seconds the new system has to become healthy.")
    var within: Int = 600
    @Flag(help: "After installing, reboot into the new system.")
    var reboot = false
    @Flag(help: "Ask the relay which bundle to install now and fetch it through the tunnel, instead of naming one.")
    var fromRelay = false
    @Flag(help: "With --from-relay, as edgekit-update.timer runs it: wait quietly when nothing can be installed now, and never fetch an offer refused here before.")
    var scheduled = false
    @Option(help: "Root of the system to work on (default /).")
    var root: String = "/"
    @Argument(help: "The update bundle (not with --confirm).")
    var bundle: String?

    func validate() throws {
        if confirm {
            guard bundle == nil, !check, !reboot, !fromRelay else { throw ValidationError("--confirm takes no bundle, --check, --reboot or --from-relay") }
            guard within >= 1 else { throw ValidationError("--within must be at least 1 second, not \(within)") }
        } else if fromRelay {
            guard bundle == nil else { throw ValidationError("--from-relay fetches the bundle; name none") }
        } else if bundle == nil {
            throw ValidationError("name the update bundle (or --from-relay, or --confirm on a trial boot)")
        }
        if check && reboot { throw ValidationError("--check changes nothing; --reboot is for an install") }
        if scheduled && !fromRelay { throw ValidationError("--scheduled goes with --from-relay") }
    }

    func run() async throws {
        let paths = AgentPaths(root: root)
        if confirm {
            switch try SlotInstall(paths: paths).confirm(deadline: Double(within)) {
            case .notOnTrial:
                return
            case .healthy(let line):
                Output.data("edgekit-agent: " + line + "\n")
            case .failed(let line):
                throw CommandError(line)
            }
            return
        }
        // Fetching holds the update lock from before the first byte to the end of the install; an
        // install of a named bundle takes it once the bundle passed its checks.
        var lock: UpdateLock?
        defer { lock?.release() }
        var bundle = bundle
        var checked: SystemUpdate.Checked?
        if fromRelay {
            let relay = RelayUpdate(paths: paths)
            if scheduled, let why = try relay.reasonToWait() {
                Output.data("update: not asking the relay now: \(why)\n")
                return
            }
            switch try relay.ask() {
            case .none(let why):
                Output.data("update: the relay has nothing newer for this router: \(why)\n")
                return
            case .wait(let why):
                Output.data("update: the relay holds this router back for now: \(why)\n")
                return
            case .bundle(let name, let bytes, let version):
                if scheduled, let earlier = relay.earlierRefusal(of: name, bytes: bytes, version: version) {
                    Output.data("update: the relay offers \(name) again, refused here before (\(earlier)); not fetched: publish a newer version\n")
                    return
                }
                do {
                    lock = try UpdateLock(paths: paths)
                } catch AgentError.updateBusy where scheduled {
                    Output.data("update: the relay offers \(name); not fetched now: another update is fetching or installing\n")
                    return
                }
                Output.error("edgekit-agent: update: the relay offers \(name) (version \(version), \(bytes) bytes)")
                let fetched = try relay.fetch(name, bytes: bytes) { Output.error("edgekit-agent: update: " + $0) }
                let (opened, release) = try relay.checkFetched(fetched, name: name, bytes: bytes, version: version)
                if check {
                    Output.data(SystemUpdate.acceptedLine(opened, release: release) + "\n")
                    return
                }
                bundle = fetched
                checked = (opened, release)
            }
        }
        guard let bundle else { return }
        if check {
            let (opened, release) = try SystemUpdate.check(bundle, paths: paths)
            Output.data(SystemUpdate.acceptedLine(opened, release: release) + "\n")
            return
        }
        let install = SlotInstall(paths: paths)
        let report = { (line: String) in Output.error("edgekit-agent: update: " + line) }
        let installed = try checked.map { try install.install(checked: $0, locked: lock != nil, report: report) }
            ?? install.install(bundle, report: report)
        // A fetched bundle has done its work; the slot holds the system now.
        if fromRelay { try? FileManager.default.removeItem(atPath: bundle) }
        Output.data(installed.line + "\n")
        if reboot {
            Output.error("edgekit-agent: update: rebooting into system version \(installed.version)")
            try SlotInstall.reboot()
        }
    }
}
