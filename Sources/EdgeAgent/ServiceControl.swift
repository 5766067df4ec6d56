import EdgeErrors
import EdgeModel
import EdgeRender
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A daemon (or kernel setting) that reads some of the rendered files, in the order they are restarted.
public enum RouterService: String, CaseIterable, Codable, Sendable, Comparable {
    case sysctl, networkd, tunnel, nftables, keepalived, radvd, ssh

    public static func < (a: RouterService, b: RouterService) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Which service must pick up a changed file.
    public static func services(for path: String) -> Set<RouterService> {
        switch path {
        case ConfigPaths.radvd: [.radvd]
        case ConfigPaths.keepalived: [.keepalived]
        case ConfigPaths.nftables: [.nftables]
        case ConfigPaths.routerSysctl: [.sysctl]
        case ConfigPaths.sshdConfig, ConfigPaths.sshAuthorizedKeys, ConfigPaths.sshHostKey: [.ssh]
        case ConfigPaths.routerWireGuardKey: [.tunnel]
        case _ where RouterTunnelFiles.isTunnelFile(path): [.tunnel]
        case _ where path.hasPrefix(ConfigPaths.networkdDirectory + "/"): [.networkd]
        default: []
        }
    }

    public static func services(for paths: some Sequence<String>) -> [RouterService] {
        paths.reduce(into: Set<RouterService>()) { $0.formUnion(services(for: $1)) }.sorted()
    }
}

/// A service that did not come up, with the tool's own words.
public struct ServiceFailure: EdgeError {
    public var service: RouterService
    public var detail: String
    public var cause: (any Error)? = nil
    public var code: ErrorCode { "service.failed" }
    public var input: String? { service.rawValue }
    public var message: String { detail }
    public var description: String { "\(service.rawValue): \(detail)" }
}

/// Starting and restarting the router's daemons. Two implementations: `SystemdServices` on the
/// appliance and `ChildProcessServices` in namespaces without systemd (tests, the lab).
public protocol ServiceControl: Sendable {
    /// A name for logs and `status`: `systemd`, `processes`, `none`.
    var name: String { get }
    /// Makes `service` run with the live files and checks it came up; throws `ServiceFailure`.
    func restart(_ service: RouterService) throws
    /// Whether a daemon this manager started still runs: false only when it was started and has
    /// ended since (crashed, killed) without being stopped on purpose; nil when this manager does
    /// not watch it (systemd watches its own units, `ExecStopPost=` in the overlays).
    func isRunning(_ service: RouterService) -> Bool?
    /// The `ip` tool this manager uses (a test or the lab may replace it).
    var ipTool: String { get }
}

extension ServiceControl {
    public func isRunning(_ service: RouterService) -> Bool? { nil }
    public var ipTool: String { "ip" }
}

/// Changes no service: for `--root` trees that no daemon reads (an image being prepared, tests).
public struct NoServices: ServiceControl {
    public init() {}
    public var name: String { "none" }
    public func restart(_ service: RouterService) throws {}
}

/// systemd on the appliance: `systemctl restart` + `is-active`, `networkctl reload`, `sysctl --system`.
public struct SystemdServices: ServiceControl {
    public init() {}
    public var name: String { "systemd" }

    public func restart(_ service: RouterService) throws {
        switch service {
        case .sysctl:
            try run(service, "sysctl", ["--system"])
        case .networkd:
            // udev applies `.link` files (the uplink0/lan0 names) only to an "add" event: replay
            // one for the network ports, so a first apply renames them without a reboot. A port
            // that is already up keeps its name until the next boot (the kernel refuses to rename it).
            // udevd re-reads `.link` files at most every 3 s on its own: make it read the new ones now.
            try run(service, "udevadm", ["control", "--reload"])
            // Not `trigger --settle`: it waits for the event of each device's old path, and a rename
            // moves the path (eth0 -> uplink0), so systemd 252 waits forever. Settle the whole queue.
            try run(service, "udevadm", ["trigger", "--action=add", "--subsystem-match=net"])
            try run(service, "udevadm", ["settle", "--timeout=30"])
            try run(service, "networkctl", ["reload"])
            try waitForAddresses(of: service, file: ConfigPaths.lanNetwork)
        case .tunnel:
            // networkd does not change an existing WireGuard netdev on reload (key, peer, MTU):
            // delete every tunnel link (one per relay; also one a relay left the plan with) so the
            // reload creates them from the new files.
            for link in RouterTunnelFiles.links() {
                _ = try? SystemCommand.run("ip", ["link", "delete", link])
            }
            try run(service, "networkctl", ["reload"])
            for interface in RouterTunnelFiles.interfaces(inSetconfDirectory: RouterTunnelFiles.setconfDirectory) {
                try waitForAddresses(of: service, file: RouterTunnelFiles(interface: interface).network)
            }
            // The node exporter listens on the tunnel address (its ARGS change only with it): make
            // it bind the new one. Metrics never fail an apply; the unit retries until the address is up.
            _ = try? SystemCommand.run("systemctl", ["try-restart", "prometheus-node-exporter.service"])
        case .ssh where !FileManager.default.fileExists(atPath: ConfigPaths.sshdConfig):
            // A profile without operators: no sshd (the unit's ConditionPathExists= would skip it).
            try run(service, "systemctl", ["stop", "ssh.service"])
        case .nftables, .keepalived, .radvd, .ssh:
            // Debian names sshd's unit ssh.service; the overlay's drop-in points it at our config.
            let unit = "\(service.rawValue).service"
            try run(service, "systemctl", ["restart", unit])
            // A daemon that exits right after start (bad config) shows as failed a moment later.
            Threads.sleep(1)
            let active = try SystemCommand.run("systemctl", ["is-active", unit])
            guard active.succeeded else {
                throw ServiceFailure(service: service, detail: "\(unit) is \(active.output.trimmingWhitespace())")
            }
        }
    }

    /// networkd does not fail a reload over a file it cannot use: it leaves the port unmanaged, or
    /// creates no tunnel. So the apply waits (up to `seconds`) for the addresses the file gives its
    /// port (`Name=`, `Address=`: the LAN address, set even without carrier; the tunnel address),
    /// and a port without them fails the service, which rolls the generation back like a
    /// keepalived that does not start (issue 17.4).
    func waitForAddresses(of service: RouterService, file: String, seconds: TimeInterval = 15) throws {
        let network = NetworkdFile(file)
        guard let name = network.values("Name").first else { return }
        let wanted = network.values("Address").compactMap { IPv6Address(String($0.split(separator: "/")[0])) }
        guard !wanted.isEmpty else { return }
        let deadline = Date().addingTimeInterval(seconds)
        var missing = wanted
        while true {
            // `ip -o` lines: "3: lan0    inet6 fd5e:d9e1:7c2a:1::2/64 scope global …".
            let shown = (try? SystemCommand.run("ip", ["-6", "-o", "addr", "show", "dev", name]))?.output ?? ""
            let addresses = Set(shown.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { word in
                word.contains("/") ? IPv6Address(String(word.split(separator: "/")[0])) : nil
            })
            missing = wanted.filter { !addresses.contains($0) }
            if missing.isEmpty { return }
            if Date() >= deadline { break }
            Threads.sleep(0.2)
        }
        throw ServiceFailure(service: service, detail: "\(name) has no \(missing.map(\.description).joined(separator: ", ")) \(Int(seconds)) s after networkctl reload (networkd did not take \(file))")
    }

    func run(_ service: RouterService, _ tool: String, _ arguments: [String]) throws {
        let result: CommandResult
        do {
            result = try SystemCommand.run(tool, arguments)
        } catch {
            throw ServiceFailure(service: service, detail: "\(error)", cause: error)
        }
        guard result.succeeded else {
            throw ServiceFailure(service: service, detail: "\(tool) \(arguments.joined(separator: " ")): "
                                 + (result.errorText.split(separator: "\n").first.map(String.init) ?? "exit \(result.status)"))
        }
    }
}

extension RouterTunnelFiles {
    /// The router tunnel links the kernel has now (`wg-relay`, `wg-relayN`).
    static func links() -> [String] {
        let shown = (try? SystemCommand.run("ip", ["-o", "link", "show", "type", "wireguard"]))?.output ?? ""
        // "7: wg-relay: <POINTOPOINT,…> …"
        return shown.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let name = String(fields[1].dropLast())
            return name.hasPrefix(InterfaceNames.routerTunnel) ? name : nil
        }
    }
}
