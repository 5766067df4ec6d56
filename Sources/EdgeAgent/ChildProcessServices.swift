import EdgeErrors
import EdgeModel
import EdgeRender
import EdgeSystem
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The router's daemons as direct child processes, for network namespaces without systemd (tests and
/// the lab). Each daemon runs in the foreground in its own session, logs to
/// `/run/edgekit/processes/NAME.log` and has its pid in `NAME.pid` there (under `--root`), so a later
/// `apply` or `run` finds and restarts it. One-shot services (`nft -f`, `sysctl -p`) just run.
public struct ChildProcessServices: ServiceControl {
    public let paths: AgentPaths
    /// Replacement executables by tool name (`radvd` → a path), for the lab and for fault injection.
    public var tools: [String: String]

    public init(paths: AgentPaths, tools: [String: String] = [:]) {
        self.paths = paths
        self.tools = tools
    }

    public var name: String { "processes" }

    func tool(_ name: String) -> String { tools[name] ?? name }

    public var ipTool: String { tool("ip") }

    /// A daemon whose pid file is there (it was started and not stopped on purpose: `stop` removes
    /// the file first) but whose process is gone. This manager restarts nothing by itself; the
    /// supervisor acts on the answer (keepalived gone: the VIPs are released).
    public func isRunning(_ service: RouterService) -> Bool? {
        let name: String
        switch service {
        case .keepalived, .radvd: name = service.rawValue
        case .ssh: name = "sshd"
        case .tunnel:
            // Every tunnel's wireguard-go: one gone is the tunnel gone.
            let names = RouterTunnelFiles.interfaces(under: paths).map(Self.tunnelProcess)
                .filter { FileManager.default.fileExists(atPath: pidFile($0)) }
            return names.isEmpty ? nil : names.allSatisfy { alivePid($0) != nil }
        case .sysctl, .networkd, .nftables: return nil
        }
        guard FileManager.default.fileExists(atPath: pidFile(name)) else { return nil }
        return alivePid(name) != nil
    }

    public func restart(_ service: RouterService) throws {
        try FileManager.default.createDirectory(atPath: paths.processes, withIntermediateDirectories: true)
        switch service {
        case .sysctl:
            try check(service, tool("sysctl"), ["-q", "-p", paths.live(ConfigPaths.routerSysctl)])
        case .nftables:
            try check(service, tool("nft"), ["-f", paths.live(ConfigPaths.nftables)])
        case .networkd:
            // Only what the lab needs of udev and networkd: ports renamed by MAC, the LAN port up
            // with the router's own address.
            try renamePinnedPorts()
            let lan = NetworkdFile(paths.live(ConfigPaths.lanNetwork))
            if let name = lan.values("Name").first {
                try check(service, tool("ip"), ["link", "set", name, "up"])
                for address in lan.values("Address") {
                    try check(service, tool("ip"), ["-6", "addr", "replace", address, "dev", name, "nodad"])
                }
            }
            if let uplink = NetworkdFile(paths.live(ConfigPaths.uplinkNetwork)).values("Name").first {
                try check(service, tool("ip"), ["link", "set", uplink, "up"])
            }
            try configureDMZ(lan: lan.values("Name").first)
        case .radvd:
            let config = paths.live(ConfigPaths.radvd)
            try restartDaemon(service, name: "radvd", [tool("radvd"), "-n", "-m", "stderr", "-C", config,
                                                       "-p", paths.processes + "/radvd.daemon.pid"], marker: config)
        case .keepalived:
            let config = paths.live(ConfigPaths.keepalived)
            let pid = { (name: String) in self.paths.processes + "/keepalived.\(name).pid" }
            try restartDaemon(service, name: "keepalived",
                              [tool("keepalived"), "--dont-fork", "--log-console", "--vrrp", "-f", config,
                               "-p", pid("main"), "-r", pid("vrrp"), "-c", pid("checkers")], marker: config)
        case .tunnel:
            try restartTunnel()
        case .ssh:
            try restartSSH()
        }
    }

    /// The DMZ as networkd makes it from its `.netdev` and `.network` (docs/dmz.md): the VLAN on the
    /// LAN port (a DMZ on a port of its own has no `.netdev`: the port is there), up, its /64
    /// on-link, and the rule that sends the DMZ's traffic to the table whose default route is the
    /// relay's tunnel. Without a DMZ in the profile, a VLAN and a rule left by an earlier one go.
    func configureDMZ(lan: String?) throws {
        let netdev = NetworkdFile(paths.live(ConfigPaths.dmzNetdev))
        let network = NetworkdFile(paths.live(ConfigPaths.dmzNetwork))
        guard let name = network.values("Name").first else {
            let vlans = (try? attempt(tool("ip"), ["-o", "link", "show", "type", "vlan"]))?.output ?? ""
            if vlans.contains(" \(DMZ.vlanInterface)@") { _ = try? attempt(tool("ip"), ["link", "delete", DMZ.vlanInterface]) }
            deleteRules(priority: "\(ConfigPaths.dmzRulePriority)")
            return
        }
        let present = try attempt(tool("ip"), ["link", "show", "dev", name]).succeeded
        if let lan, let id = netdev.values("Id").first, !present {
            try check(.networkd, tool("ip"), ["link", "add", "link", lan, "name", name, "type", "vlan", "id", id])
        } else if !present {
            // A port of its own that is not there (yet): networkd would wait for it; so does this.
            return
        }
        try check(.networkd, tool("ip"), ["link", "set", name, "up"])
        for route in network.routes {
            try check(.networkd, tool("ip"), route.arguments(dev: name))
        }
        for rule in network.rules {
            let priority = rule.priority ?? "\(ConfigPaths.dmzRulePriority)"
            // Replace: one rule at this priority, whatever an earlier apply left.
            deleteRules(priority: priority)
            try check(.networkd, tool("ip"), ["-6", "rule", "add", "from", rule.from, "table", rule.table, "priority", priority])
        }
    }

    /// Deletes the IPv6 rules at `priority` (a bounded number: `ip rule del` removes one per call).
    func deleteRules(priority: String) {
        for _ in 0..<16 {
            guard (try? attempt(tool("ip"), ["-6", "rule", "del", "priority", priority]))?.succeeded == true else { return }
        }
    }

    /// What udev does with a `.link` file that matches by MAC address (a pinned `auto` port, or the
    /// plan's `mac:`) at the "add" event the systemd apply replays: the port with that address takes
    /// the file's `Name=`. Files that match otherwise (`OriginalName=`) are left alone: the lab's
    /// ports already carry their names then.
    func renamePinnedPorts() throws {
        // `ip -o link` lines: "4: eth1@if5: <BROADCAST,…> mtu 1500 … link/ether 02:00:00:00:00:02 brd …".
        let shown = (try? attempt(tool("ip"), ["-o", "link", "show"]))?.output ?? ""
        for path in [ConfigPaths.uplinkLink, ConfigPaths.lanLink] {
            let link = NetworkdFile(paths.live(path))
            guard let mac = link.values("MACAddress").first?.lowercased(), let name = link.values("Name").first else { continue }
            for line in shown.split(separator: "\n") where line.contains("link/ether \(mac) ") {
                let fields = line.split(separator: " ")
                guard fields.count > 1 else { continue }
                let current = String(fields[1].dropLast().split(separator: "@").first ?? "")
                if current != name {
                    try check(.networkd, tool("ip"), ["link", "set", "dev", current, "name", name])
                }
            }
        }
    }

    // MARK: OpenSSH

    /// sshd in the foreground (`-D -e`), on a copy of the live config whose file paths point under
    /// `--root` (the rendered one names the appliance's paths). Without a config (a profile without
    /// operators) it is stopped. sshd needs its privilege-separation directory, /run/sshd (compiled
    /// in), and an absolute path to re-execute itself.
    func restartSSH() throws {
        let config = paths.live(ConfigPaths.sshdConfig)
        guard FileManager.default.fileExists(atPath: config) else {
            stop("sshd")
            return
        }
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let rooted = [
            "HostKey": paths.live(ConfigPaths.sshHostKey),
            "AuthorizedKeysFile": paths.live(ConfigPaths.sshAuthorizedKeys),
        ]
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let key = line.split(separator: " ").first.map(String.init) ?? ""
            return rooted[key].map { "\(key) \($0)" } ?? String(line)
        }
        lines.insert("PidFile \(paths.processes)/sshd.daemon.pid", at: 0)
        let copy = paths.processes + "/sshd_config"
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: copy))
        var isDirectory = false
        if !FileManager.default.fileExists(atPath: "/run/sshd", isDirectory: &isDirectory) {
            try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        }
        guard let sshd = SystemCommand.find(tool("sshd")) ?? ["/usr/sbin/sshd"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ServiceFailure(service: .ssh, detail: "sshd is not installed (Debian package openssh-server)")
        }
        try check(.ssh, sshd, ["-t", "-f", copy])
        try restartDaemon(.ssh, name: "sshd", [sshd, "-D", "-e", "-f", copy], marker: copy)
    }

    // MARK: WireGuard through wireguard-go

    /// One wireguard-go per tunnel of the applied generation (one per relay), each with its
    /// `wg setconf` file, key, MTU, address and routes as its `.network` says.
    func restartTunnel() throws {
        let interfaces = RouterTunnelFiles.interfaces(under: paths)
        guard !interfaces.isEmpty else {
            throw ServiceFailure(service: .tunnel, detail: "the generation has no tunnel (no \(paths.live(RouterTunnelFiles.setconfDirectory))/wg-relay*.conf)")
        }
        for interface in interfaces {
            try restartTunnel(interface)
        }
        // A tunnel of an earlier generation with more relays: gone with its files.
        for name in tunnelProcesses() where !interfaces.map(Self.tunnelProcess).contains(name) {
            stop(name)
            _ = try? attempt(tool("ip"), ["link", "delete", String(name.dropFirst("wireguard-go-".count))])
        }
    }

    /// The pid-file name of the wireguard-go serving `interface`: `wireguard-go` for `wg-relay` (as
    /// before plans had several relays), `wireguard-go-wg-relayN` for the others.
    static func tunnelProcess(_ interface: String) -> String {
        interface == InterfaceNames.routerTunnel ? "wireguard-go" : "wireguard-go-\(interface)"
    }

    /// The extra tunnels' wireguard-go pid files that exist now.
    func tunnelProcesses() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.processes)) ?? []
        return names.filter { $0.hasPrefix("wireguard-go-") && $0.hasSuffix(".pid") }.map { String($0.dropLast(4)) }
    }

    func restartTunnel(_ interface: String) throws {
        let process = Self.tunnelProcess(interface)
        let socket = "/run/wireguard/\(interface).sock"
        if alivePid(process) == nil || !FileManager.default.fileExists(atPath: socket) {
            stop(process)
            let environment = ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1", "WG_PROCESS_FOREGROUND": "1"]
            try start(.tunnel, name: process, [tool("wireguard-go"), "-f", interface], environment: environment)
            var waited = 0.0
            while !FileManager.default.fileExists(atPath: socket) {
                guard waited < 5, alivePid(process) != nil else {
                    throw ServiceFailure(service: .tunnel, detail: "wireguard-go did not create \(socket): \(logTail(process))")
                }
                Threads.sleep(0.05)
                waited += 0.05
            }
        }
        let files = RouterTunnelFiles(interface: interface)
        // The relay's name may not resolve yet (no uplink, no DNS): then load the peer without its
        // endpoint; the supervisor sets it once the name resolves (and re-resolves when stale).
        let setconf = paths.live(files.setconf)
        let noRetries = ["WG_ENDPOINT_RESOLUTION_RETRIES": "0"]
        if try !attempt(tool("wg"), ["setconf", interface, setconf], environment: noRetries).succeeded {
            let text = (try? String(contentsOfFile: setconf, encoding: .utf8)) ?? ""
            let without = text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.trimmingSpaces().hasPrefix("Endpoint") }.joined(separator: "\n")
            let copy = paths.processes + "/\(interface).no-endpoint.conf"
            try Data(without.utf8).write(to: URL(fileURLWithPath: copy))
            try check(.tunnel, tool("wg"), ["setconf", interface, copy])
        }
        // The key by file, never in argv (wg(8) `private-key FILE`).
        try check(.tunnel, tool("wg"), ["set", interface, "private-key", paths.live(ConfigPaths.routerWireGuardKey)])
        let network = NetworkdFile(paths.live(files.network))
        let netdev = NetworkdFile(paths.live(files.netdev))
        if let mtu = netdev.values("MTUBytes").first {
            try check(.tunnel, tool("ip"), ["link", "set", interface, "mtu", mtu])
        }
        try check(.tunnel, tool("ip"), ["link", "set", interface, "up"])
        _ = try? attempt(tool("ip"), ["-6", "addr", "flush", "dev", interface, "scope", "global"])
        for address in network.values("Address") {
            try check(.tunnel, tool("ip"), ["-6", "addr", "replace", address, "dev", interface, "nodad"])
        }
        for route in network.routes {
            try check(.tunnel, tool("ip"), route.arguments(dev: interface))
        }
    }

    // MARK: Daemons

    func restartDaemon(_ service: RouterService, name: String, _ command: [String], marker: String) throws {
        stop(name)
        try start(service, name: name, command, environment: [:])
        // A daemon that rejects its config exits within moments; one that is still there after a
        // second has read it.
        var waited = 0.0
        while waited < 1.0 {
            guard alivePid(name) != nil else {
                throw ServiceFailure(service: service, detail: "exited at start: \(logTail(name))")
            }
            Threads.sleep(0.1)
            waited += 0.1
        }
    }

    func pidFile(_ name: String) -> String { paths.processes + "/\(name).pid" }
    func logFile(_ name: String) -> String { paths.processes + "/\(name).log" }

    /// The recorded pid of `name` if that process still runs (reaping it if it is our exited child).
    func alivePid(_ name: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile(name), encoding: .utf8),
              let pid = pid_t(text.trimmingWhitespace()), pid > 0 else { return nil }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return nil }
        guard kill(pid, 0) == 0 else { return nil }
        // A zombie of another parent or a recycled pid is not ours.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let state = stat.split(separator: ")").last?.split(separator: " ").first, state != "Z" else { return nil }
        return pid
    }

    /// SIGTERM, then SIGKILL after 3 s, of the recorded process; forgets its pid file.
    func stop(_ name: String) {
        defer { unlink(pidFile(name)) }
        guard let pid = alivePid(name) else { return }
        kill(pid, SIGTERM)
        for _ in 0..<30 {
            if alivePid(name) == nil { return }
            Threads.sleep(0.1)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    func start(_ service: RouterService, name: String, _ command: [String], environment: [String: String]) throws {
        guard let executable = SystemCommand.find(command[0]) else {
            throw ServiceFailure(service: service, detail: "\(command[0]) is not installed")
        }
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        // One log per start (the previous one kept as .1), so a failure quotes this start only.
        rename(logFile(name), logFile(name) + ".1")
        let pid = try ChildProcessServices.spawnDetached(executable, Array(command.dropFirst()), environment: env, log: logFile(name),
                                                         service: service)
        try Data("\(pid)\n".utf8).write(to: URL(fileURLWithPath: pidFile(name)))
    }

    func logTail(_ name: String) -> String {
        let text = (try? String(contentsOfFile: logFile(name), encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").suffix(2).map(String.init)
        return lines.isEmpty ? "no output" : lines.joined(separator: " / ")
    }

    /// Starts a process in its own session (so it outlives us and ignores our terminal), stdin from
    /// /dev/null, stdout and stderr appended to `log`, no other descriptor inherited, default signals.
    /// A failure to start is `service`'s `ServiceFailure`.
    static func spawnDetached(_ path: String, _ arguments: [String], environment: [String: String], log: String,
                              service: RouterService) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else may leak into a daemon that outlives us (a test's pipe would never close).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let setsid: Int16 = 0x80  // POSIX_SPAWN_SETSID (glibc)
        // Every signal at its default and none blocked. posix_spawn copies the calling thread's mask,
        // and the agent calls from Dispatch / Swift concurrency threads, which block SIGTERM, SIGINT
        // and most others (their handling is left to the main thread): a daemon would inherit that and
        // never see the lab's or an operator's SIGTERM. Ignored signals (a shell's SIGQUIT) are inherited too.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, setsid | Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard code == 0 else { throw ServiceFailure(service: service, detail: "cannot start \(path): \(String(cString: strerror(code)))") }
        return pid
    }

    // MARK: One-shot tools

    func attempt(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        return try SystemCommand.run(tool, arguments, environment: env)
    }

    func check(_ service: RouterService, _ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let result: CommandResult
        do {
            result = try attempt(tool, arguments, environment: environment)
        } catch {
            throw ServiceFailure(service: service, detail: "\(error)", cause: error)
        }
        guard result.succeeded else {
            let detail = result.errorText.split(separator: "\n").first.map(String.init) ?? "exit \(result.status)"
            throw ServiceFailure(service: service, detail: "\(tool.lastPathComponent) \(arguments.first ?? ""): \(detail)")
        }
    }
}

/// The `Key=value` lines of a systemd-networkd file, enough for the lab to mirror addresses and routes.
struct NetworkdFile {
    var pairs: [(String, String)] = []

    init(_ path: String) {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var section = ""
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingSpaces()
            if trimmed.hasPrefix("[") {
                section = trimmed
                if section == "[Route]" { routes.append(Route()) }
                if section == "[RoutingPolicyRule]" { rules.append(Rule()) }
                continue
            }
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals]), value = String(trimmed[trimmed.index(after: equals)...])
            pairs.append((key, value))
            switch (section, key) {
            case ("[Route]", "Destination"): routes[routes.count - 1].destination = value
            case ("[Route]", "Metric"): routes[routes.count - 1].metric = value
            case ("[Route]", "Table"): routes[routes.count - 1].table = value
            case ("[RoutingPolicyRule]", "From"): rules[rules.count - 1].from = value
            case ("[RoutingPolicyRule]", "Table"): rules[rules.count - 1].table = value
            case ("[RoutingPolicyRule]", "Priority"): rules[rules.count - 1].priority = value
            default: break
            }
        }
    }

    /// A `[Route]` section: `Destination=`, and `Metric=` and `Table=` when it has them.
    struct Route {
        var destination = ""
        var metric: String?
        var table: String?

        /// `ip -6 route replace` arguments for this route on `interface`.
        func arguments(dev interface: String) -> [String] {
            ["-6", "route", "replace", destination, "dev", interface] + (metric.map { ["metric", $0] } ?? [])
                + (table.map { ["table", $0] } ?? [])
        }
    }

    /// A `[RoutingPolicyRule]` section: `From=`, `Table=`, `Priority=`.
    struct Rule {
        var from = ""
        var table = ""
        var priority: String?
    }

    /// `[Route]` sections, in order.
    private(set) var routes: [Route] = []
    /// `[RoutingPolicyRule]` sections, in order.
    private(set) var rules: [Rule] = []

    func values(_ key: String) -> [String] { pairs.filter { $0.0 == key }.map(\.1) }
}

extension RouterTunnelFiles {
    /// The tunnels of the generation live under `paths`, `wg-relay` first.
    static func interfaces(under paths: AgentPaths) -> [String] {
        interfaces(inSetconfDirectory: paths.live(setconfDirectory))
    }
}
