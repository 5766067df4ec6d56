import EdgeModel

/// One config file as it is installed on the appliance or the relay.
///
/// Renderers only build these values; the apply layer (agent, `edgekit render --out`) writes them.
public struct RenderedFile: Sendable, Equatable {
    /// Absolute path on the target machine, e.g. `/etc/radvd.conf`.
    public var path: String
    /// Permission bits, e.g. `0o644`. A router's and the relay's rendered files never hold secrets;
    /// a server's mesh key file and wg-quick file do, and are `0o600`.
    public var mode: UInt16
    public var contents: String

    public init(path: String, mode: UInt16 = 0o644, contents: String) {
        self.path = path
        self.mode = mode
        self.contents = contents
    }
}

/// Where things live on the appliance and the relay. Paths of rendered files and of the secret files
/// they refer to (which the agent or operator writes, never the renderers).
public enum ConfigPaths {
    // MARK: Secrets, written by others

    /// The router's WireGuard private key (base64). The agent writes it mode 0600, owned by
    /// `systemd-network`, because systemd-networkd reads `PrivateKeyFile=` as that user
    /// (systemd.netdev(5), [WireGuard] PrivateKeyFile=).
    public static let routerWireGuardKey = "/etc/edgekit/wireguard.key"
    /// The relay's WireGuard private key, 0600, owner `systemd-network` for the same reason;
    /// the relay daemon (root) reads it too, to authenticate its registration answers.
    public static let relayWireGuardKey = "/etc/edgekit/relay-wireguard.key"
    /// The operator's signify public key (DESIGN.md, "Paths on the appliance").
    public static let operatorPublicKey = "/etc/edgekit/operator.pub"

    // MARK: Edge router

    public static let networkdDirectory = "/etc/systemd/network"
    public static let uplinkLink = "/etc/systemd/network/10-edgekit-uplink.link"
    public static let lanLink = "/etc/systemd/network/10-edgekit-lan.link"
    public static let uplinkNetwork = "/etc/systemd/network/20-edgekit-uplink.network"
    public static let lanNetwork = "/etc/systemd/network/20-edgekit-lan.network"
    /// The DMZ's VLAN on the LAN port and its link (docs/dmz.md), only for a site with `dmz:` (the
    /// `.netdev` only for a VLAN).
    public static let dmzNetdev = "/etc/systemd/network/20-edgekit-dmz.netdev"
    public static let dmzNetwork = "/etc/systemd/network/21-edgekit-dmz.network"
    /// The routing table whose default route is the DMZ relay's tunnel, and the priority of the
    /// rule that sends the DMZ's traffic there.
    public static let dmzTable = 7474
    public static let dmzRulePriority = 7474
    /// The tunnel to the plan's first relay; the others' files: `RouterTunnel`.
    public static let routerTunnelNetdev = "/etc/systemd/network/30-edgekit-wg-relay.netdev"
    public static let routerTunnelNetwork = "/etc/systemd/network/30-edgekit-wg-relay.network"
    /// The tunnel in `wg setconf` form, for the test lab (wireguard-go, no systemd). No private key.
    public static let routerTunnelSetconf = "/etc/edgekit/wg-relay.conf"
    public static let radvd = "/etc/radvd.conf"
    public static let keepalived = "/etc/keepalived/keepalived.conf"
    /// Debian's `nftables.service` loads this file at boot (`nft -f /etc/nftables.conf`).
    public static let nftables = "/etc/nftables.conf"
    public static let routerSysctl = "/etc/sysctl.d/90-edgekit.conf"
    /// Debian's prometheus-node-exporter.service reads `ARGS` from here (`EnvironmentFile=`).
    public static let nodeExporterArguments = "/etc/default/prometheus-node-exporter"
    /// keepalived's notify hook.
    public static let agentExecutable = "/usr/local/bin/edgekit-agent"
    /// The agent's health verdict for keepalived's `track_file`: `0` healthy, `1` not (docs/network.md, "Health").
    public static let healthTrackFile = "/run/edgekit/health"
    /// Non-zero puts this router's VRRP instance in FAULT: the agent's way to make keepalived hand
    /// the VIPs over at once (its priority-0 advertisement) when the master turns unhealthy.
    public static let yieldTrackFile = "/run/edgekit/yield"

    // MARK: Relay

    public static let relayTunnelNetdev = "/etc/systemd/network/30-edgekit-relay.netdev"
    public static let relayTunnelNetwork = "/etc/systemd/network/30-edgekit-relay.network"
    public static let relaySysctl = "/etc/sysctl.d/90-edgekit-relay.conf"
    /// The relay daemon's own config (`EdgeModel.RelayConfig`, JSON).
    public static let relayDaemonConfig = "/etc/edgekit/relay.json"
    public static let relayService = "/etc/systemd/system/edgekit-relay.service"
    public static let relayExecutable = "/usr/local/bin/edgekit-relay"
    /// Created by systemd (`StateDirectory=edgekit-relay`).
    public static let relayStateDirectory = "/var/lib/edgekit-relay"
    public static let relayStateDatabase = "/var/lib/edgekit-relay/relay.sqlite"
    /// Update bundles the relay serves its routers (`bundles_directory`, docs/updates.md).
    public static let relayBundles = "/var/lib/edgekit-relay/bundles"
    /// Debian's `prometheus` reads this config (its `--config.file` default); the rules and the
    /// routers' file_sd targets sit beside it and are named relative to it.
    public static let prometheusConfig = "/etc/prometheus/prometheus.yml"
    public static let prometheusRules = "/etc/prometheus/edgekit-rules.yml"
    public static let prometheusRouterTargets = "/etc/prometheus/edgekit-routers.json"
    /// NAT64 and DNS64 on the relay (docs/nat64.md): tayga's config, its unit, unbound's drop-in.
    public static let taygaConfig = "/etc/edgekit/tayga.conf"
    public static let nat64Service = "/etc/systemd/system/edgekit-nat64.service"
    public static let dns64Config = "/etc/unbound/unbound.conf.d/edgekit-dns64.conf"

    // MARK: A server in the servers' mesh (edgekit mesh render)

    public static let meshNetdev = "/etc/systemd/network/50-edgekit-mesh.netdev"
    public static let meshNetwork = "/etc/systemd/network/50-edgekit-mesh.network"
    /// The server's mesh private key (base64), 0600; networkd reads it as `systemd-network`, so it
    /// must be owned by that user on the server (docs/mesh.md, "Install"). In
    /// /etc/systemd/network, not /etc/wireguard, which is 0700 root on Debian.
    public static let meshKey = "/etc/systemd/network/50-edgekit-mesh.key"
    /// The wg-quick form: the interface is named after the file (`wg-quick up wg-mesh`). 0600.
    public static let meshWgQuick = "/etc/wireguard/wg-mesh.conf"
}

/// Interface names the rendered files use. They are fixed at render time so every file agrees.
public enum InterfaceNames {
    /// The router's WireGuard interface towards the plan's first relay (`RouterTunnel` names the others).
    public static let routerTunnel = "wg-relay"
    /// The relay's single WireGuard interface, one peer per registered router.
    public static let relayTunnel = "wg-edgekit"
    /// A server's interface in the servers' mesh.
    public static let serverMesh = "wg-mesh"
    /// The name a `.link` file gives the uplink NIC when the plan says `auto` or a MAC address.
    public static let stableUplink = "uplink0"
    /// The name a `.link` file gives the LAN NIC when the plan says `auto` or a MAC address.
    public static let stableLAN = "lan0"

    /// The runtime name of the router's uplink: the plan's name, or `uplink0`.
    public static func uplink(of router: Router) -> String {
        name(router.uplink, stable: stableUplink)
    }

    /// The runtime name of the router's LAN port: the plan's name, or `lan0`.
    public static func lan(of router: Router) -> String {
        name(router.lan, stable: stableLAN)
    }

    static func name(_ match: InterfaceMatch, stable: String) -> String {
        if case .name(let name) = match { return name }
        return stable
    }
}
