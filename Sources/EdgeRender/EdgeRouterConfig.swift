import EdgeModel

/// Every config file of one edge router, as installed (docs/network.md lists them and why).
public enum EdgeRouterConfig {
    /// The router's files, sorted by path. `relayPublicKey` is the relay's WireGuard public key (base64).
    /// The router's private keys are not among them: the agent writes `ConfigPaths.routerWireGuardKey`
    /// (and, when the plan has operators, `ConfigPaths.sshHostKey`).
    public static func files(plan: Plan, site: Site, router: Router, relayPublicKey: String) -> [RenderedFile] {
        var files = [
            RenderedFile(path: ConfigPaths.uplinkNetwork, contents: RouterNetworkd.uplinkNetwork(router: router)),
            RenderedFile(path: ConfigPaths.lanNetwork, contents: RouterNetworkd.lanNetwork(site: site, router: router)),
            RenderedFile(path: ConfigPaths.routerTunnelNetdev,
                         contents: RouterNetworkd.tunnelNetdev(plan: plan, router: router, relayPublicKey: relayPublicKey)),
            RenderedFile(path: ConfigPaths.routerTunnelNetwork,
                         contents: RouterNetworkd.tunnelNetwork(plan: plan, router: router)),
            RenderedFile(path: ConfigPaths.routerTunnelSetconf,
                         contents: WireGuardSetconf.router(plan: plan, router: router, relayPublicKey: relayPublicKey)),
            RenderedFile(path: ConfigPaths.radvd, contents: Radvd.config(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.keepalived, contents: Keepalived.config(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.nftables, contents: Nftables.edgeRouter(plan: plan, site: site, router: router)),
            RenderedFile(path: ConfigPaths.routerSysctl, contents: Sysctl.edgeRouter(sshd: !plan.operators.isEmpty)),
            RenderedFile(path: ConfigPaths.nodeExporterArguments, contents: NodeExporter.arguments(plan: plan, site: site, router: router)),
        ]
        if !plan.operators.isEmpty {
            files.append(RenderedFile(path: ConfigPaths.sshdConfig, contents: SSHServer.config(plan: plan, site: site, router: router)))
            files.append(RenderedFile(path: ConfigPaths.sshAuthorizedKeys, contents: SSHServer.authorizedKeys(plan: plan)))
        }
        if let link = RouterNetworkd.link(router.uplink, stableName: InterfaceNames.stableUplink,
                                          role: "uplink", autoKernelName: "eth0") {
            files.append(RenderedFile(path: ConfigPaths.uplinkLink, contents: link))
        }
        if let link = RouterNetworkd.link(router.lan, stableName: InterfaceNames.stableLAN,
                                          role: "LAN", autoKernelName: "eth1") {
            files.append(RenderedFile(path: ConfigPaths.lanLink, contents: link))
        }
        return files.sorted { $0.path < $1.path }
    }
}

/// Every config file of the relay VPS, as installed (relay.json among them: `EdgeModel.RelayConfig`).
public enum RelayFiles {
    /// The relay's files, sorted by path. Its private key is not among them (`ConfigPaths.relayWireGuardKey`).
    public static func files(plan: Plan) -> [RenderedFile] {
        [
            RenderedFile(path: ConfigPaths.relayTunnelNetdev, contents: RelayNetworkd.tunnelNetdev(plan: plan)),
            RenderedFile(path: ConfigPaths.relayTunnelNetwork, contents: RelayNetworkd.tunnelNetwork(plan: plan)),
            RenderedFile(path: ConfigPaths.nftables, contents: Nftables.relay(plan: plan)),
            RenderedFile(path: ConfigPaths.relaySysctl, contents: Sysctl.relay()),
            RenderedFile(path: ConfigPaths.relayDaemonConfig, contents: RelayConfig(plan: plan).encoded()),
            RenderedFile(path: ConfigPaths.relayService, contents: SystemdUnits.relayService()),
            RenderedFile(path: ConfigPaths.prometheusConfig, contents: PrometheusFiles.config(plan: plan)),
            RenderedFile(path: ConfigPaths.prometheusRules, contents: PrometheusFiles.rules()),
            RenderedFile(path: ConfigPaths.prometheusRouterTargets, contents: PrometheusFiles.routerTargets(plan: plan)),
        ].sorted { $0.path < $1.path }
    }
}
