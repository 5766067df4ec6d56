import EdgeModel
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A router's WireGuard tunnel to one relay of the plan: its interface, its files and the port it
/// listens on. A router keeps one to every relay (docs/relay.md, "Running several relays"), each
/// with the router's own key and tunnel address; the relays never share a WireGuard interface,
/// because each routes the whole plan /48 and WireGuard's allowed IPs must not overlap between
/// peers of one interface.
public struct RouterTunnel: Sendable, Equatable {
    /// The relay at the far end.
    public var relay: Relay
    /// Its place in `plan.relays`; names the interface and files.
    public var position: Int

    public init(relay: Relay, position: Int) {
        self.relay = relay
        self.position = position
    }

    /// The tunnels of a router of `plan`, in the plan's order of relays.
    public static func all(of plan: Plan) -> [RouterTunnel] {
        plan.relays.enumerated().map { RouterTunnel(relay: $1, position: $0) }
    }

    /// `wg-relay` for the first relay (the one interface of a one-relay plan), `wg-relayN` after it.
    public var interface: String {
        position == 0 ? InterfaceNames.routerTunnel : "\(InterfaceNames.routerTunnel)\(position)"
    }

    public var files: RouterTunnelFiles { RouterTunnelFiles(interface: interface) }
    public var netdevPath: String { files.netdev }
    public var networkPath: String { files.network }
    public var setconfPath: String { files.setconf }

    /// The fixed UDP port the router listens on, so nftables can allow WireGuard on the uplink by
    /// port: the first relay's WireGuard port, plus the position for the ones after it (two
    /// interfaces cannot share a port; `plan check` keeps the last one at most 65535).
    public func listenPort(in plan: Plan) -> UInt16 {
        plan.relays[0].wireguardPort + UInt16(position)
    }

    /// The metric of the route to the plan /48 through this tunnel, as networkd installs it: the
    /// site's preferred relay lowest (`Plan.relays(preferredBy:)`). The agent's path choice puts a
    /// route of `RouterTunnel.chosenMetric` on the tunnel it picks; these stand when no agent runs.
    public func metric(for site: Site, in plan: Plan) -> Int {
        let rank = plan.relays(preferredBy: site).firstIndex(of: relay) ?? position
        return RouterTunnel.baseMetric + rank
    }

    /// Metric of networkd's /48 route through the site's preferred relay; the others follow it.
    public static let baseMetric = 100
    /// Metric of the /48 route the agent keeps on the tunnel its path choice picked: below every
    /// networkd route, so it wins while it is there.
    public static let chosenMetric = 50

    /// The interface names of every tunnel of `plan`, for nftables sets.
    public static func interfaces(of plan: Plan) -> [String] {
        all(of: plan).map(\.interface)
    }
}

/// Where the files of the router's tunnel `interface` live. The agent finds the tunnels of the
/// applied generation by these files (`wg-relay*.conf`), so it needs no plan to restart them.
public struct RouterTunnelFiles: Sendable, Equatable {
    public var interface: String

    public init(interface: String) {
        self.interface = interface
    }

    public var netdev: String { "\(ConfigPaths.networkdDirectory)/30-edgekit-\(interface).netdev" }
    public var network: String { "\(ConfigPaths.networkdDirectory)/30-edgekit-\(interface).network" }
    /// The tunnel in `wg setconf` form, for the test lab (wireguard-go, no systemd). No private key.
    public var setconf: String { "\(Self.setconfDirectory)/\(interface).conf" }

    public static let setconfDirectory = "/etc/edgekit"

    /// Whether `path` is one of a router tunnel's files.
    public static func isTunnelFile(_ path: String) -> Bool {
        let name = path.lastPathComponent
        let prefix = InterfaceNames.routerTunnel
        return (path.hasPrefix(ConfigPaths.networkdDirectory + "/30-edgekit-\(prefix)") && (name.hasSuffix(".netdev") || name.hasSuffix(".network")))
            || (path.hasPrefix(setconfDirectory + "/\(prefix)") && name.hasSuffix(".conf"))
    }

    /// The tunnel interfaces whose `wg setconf` files are in `directory` (a live `/etc/edgekit`),
    /// `wg-relay` first.
    public static func interfaces(inSetconfDirectory directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(InterfaceNames.routerTunnel) && $0.hasSuffix(".conf") }
            .map { String($0.dropLast(".conf".count)) }
            .filter { $0 == InterfaceNames.routerTunnel || Int($0.dropFirst(InterfaceNames.routerTunnel.count)) != nil }
            .sorted { ($0.count, $0) < ($1.count, $1) }
    }
}
