import EdgeModel

/// Every config file of one edge router, as installed (docs/network.md lists them and why).
public enum EdgeRouterConfig {
    /// The router's files, sorted by path. `relayPublicKeys` are the relays' WireGuard public keys
    /// (base64), in the order of `plan.relays`.
    /// The router's private keys are not among them: the agent writes `ConfigPaths.routerWireGuardKey`
    /// (and, when the plan has operators, `ConfigPaths.sshHostKey`).
    /// `pinnedPorts` are the MAC addresses edgekit-agent pinned on the device for `auto` ports; a
    /// preview (`edgekit render`) has none.
    public static func files(plan: Plan, site: Site, router: Router, relayPublicKeys: [String],
                             pinnedPorts: PinnedPorts = PinnedPorts()) -> [RenderedFile] {
        precondition(relayPublicKeys.count == plan.relays.count, "one public key per relay")
        var files = [
            RenderedFile(path: ConfigPaths.uplinkNetwork, contents: RouterNetworkd.uplinkNetwork(router: router)),
            RenderedFile(path: ConfigPaths.lanNetwork, contents: RouterNetworkd.lanNetwork(site: site, router: router)),
            RenderedFile(path: ConfigPaths.radvd, contents: Radvd.config(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.keepalived, contents: Keepalived.config(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.nftables, contents: Nftables.edgeRouter(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.routerSysctl, contents: Sysctl.edgeRouter(sshd: !plan.operators.isEmpty)),
            RenderedFile(path: ConfigPaths.nodeExporterArguments, contents: NodeExporter.arguments(plan: plan, site: site, router: router)),
        ]
        for (tunnel, key) in zip(RouterTunnel.all(of: plan), relayPublicKeys) {
            files += [
                RenderedFile(path: tunnel.netdevPath,
                             contents: RouterNetworkd.tunnelNetdev(plan: plan, site: site, router: router, tunnel: tunnel, relayPublicKey: key)),
                RenderedFile(path: tunnel.networkPath,
                             contents: RouterNetworkd.tunnelNetwork(plan: plan, site: site, router: router, tunnel: tunnel)),
                RenderedFile(path: tunnel.setconfPath,
                             contents: WireGuardSetconf.router(plan: plan, site: site, router: router, tunnel: tunnel, relayPublicKey: key)),
            ]
        }
        if let dmz = site.dmz {
            if let netdev = RouterNetworkd.dmzNetdev(site: site, dmz: dmz) {
                files.append(RenderedFile(path: ConfigPaths.dmzNetdev, contents: netdev))
            }
            files.append(RenderedFile(path: ConfigPaths.dmzNetwork, contents: RouterNetworkd.dmzNetwork(site: site, dmz: dmz)))
        }
        if !plan.operators.isEmpty {
            files.append(RenderedFile(path: ConfigPaths.sshdConfig, contents: SSHServer.config(plan: plan, site: site, router: router)))
            files.append(RenderedFile(path: ConfigPaths.sshAuthorizedKeys, contents: SSHServer.authorizedKeys(plan: plan)))
        }
        if let link = RouterNetworkd.link(router.uplink, stableName: InterfaceNames.stableUplink,
                                          role: "uplink", autoKernelName: "eth0", pinned: pinnedPorts.uplink) {
            files.append(RenderedFile(path: ConfigPaths.uplinkLink, contents: link))
        }
        if let link = RouterNetworkd.link(router.lan, stableName: InterfaceNames.stableLAN,
                                          role: "LAN", autoKernelName: "eth1", pinned: pinnedPorts.lan) {
            files.append(RenderedFile(path: ConfigPaths.lanLink, contents: link))
        }
        return files.sorted { $0.path < $1.path }
    }
}

/// The MAC addresses of the wired ports edgekit-agent pinned on the device for a plan's `auto`
/// uplink and LAN (docs/network.md, "Interface names"): lower case, colon separated; nil where
/// nothing is pinned. Kept by the agent in `/var/lib/edgekit/ports.json`, in this form.
public struct PinnedPorts: Sendable, Equatable, Codable {
    public var uplink: String?
    public var lan: String?

    public init(uplink: String? = nil, lan: String? = nil) {
        self.uplink = uplink
        self.lan = lan
    }
}

/// Every config file of one relay VPS, as installed (relay.json among them: `EdgeModel.RelayConfig`).
/// Each relay of a plan gets its own set; they differ only in the relay's own address, ports and key.
public enum RelayFiles {
    /// The files of `relay` (the plan's first when not given), sorted by path. Its private key is
    /// not among them (`ConfigPaths.relayWireGuardKey`).
    /// `clientPublicKeys` (client name → base64 public key) put the plan's clients into the client
    /// relay's relay.json.
    public static func files(plan: Plan, relay: Relay? = nil, clientPublicKeys: [String: String] = [:]) -> [RenderedFile] {
        let relay = relay ?? plan.relay
        return ([
            RenderedFile(path: ConfigPaths.relayTunnelNetdev, contents: RelayNetworkd.tunnelNetdev(plan: plan, relay: relay)),
            RenderedFile(path: ConfigPaths.relayTunnelNetwork, contents: RelayNetworkd.tunnelNetwork(plan: plan, relay: relay)),
            RenderedFile(path: ConfigPaths.nftables, contents: Nftables.relay(plan: plan, relay: relay)),
            RenderedFile(path: ConfigPaths.relaySysctl, contents: Sysctl.relay(nat64: plan.nat64Enabled && relay == plan.relay)),
            RenderedFile(path: ConfigPaths.relayDaemonConfig,
                         contents: RelayConfig(plan: plan, relay: relay, clientPublicKeys: clientPublicKeys).encoded()),
            RenderedFile(path: ConfigPaths.relayService, contents: SystemdUnits.relayService()),
            RenderedFile(path: ConfigPaths.prometheusConfig, contents: PrometheusFiles.config(plan: plan)),
            RenderedFile(path: ConfigPaths.prometheusRules, contents: PrometheusFiles.rules()),
            RenderedFile(path: ConfigPaths.prometheusRouterTargets, contents: PrometheusFiles.routerTargets(plan: plan)),
        ] + NAT64Files.files(plan: plan, relay: relay)).sorted { $0.path < $1.path }
    }
}
