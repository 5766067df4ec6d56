import EdgeModel

/// Debian's `prometheus-node-exporter` on the router: bound to the router's tunnel address only, so
/// Prometheus on the relay scrapes it through the tunnel and nothing on the uplink or LAN can, with
/// the agent's `edgekit_*` series in its textfile collector directory (docs/agent.md, "Metrics").
public enum NodeExporter {
    /// The node exporter's registered port (Prometheus' default port allocations wiki).
    public static let port = 9100
    /// Where the agent writes `edgekit.prom` (Debian's default for the collector).
    public static let textfileDirectory = "/var/lib/prometheus/node-exporter"

    /// `/etc/default/prometheus-node-exporter`: the unit's `ARGS` (its `ExecStart=` is
    /// `/usr/bin/prometheus-node-exporter $ARGS`). The address changes only with the tunnel
    /// address, so the agent restarts the exporter with the tunnel.
    static func arguments(plan: Plan, site: Site, router: Router) -> String {
        """
        # edgekit: node exporter of \(site.hostname(slot: router.slot)), rendered from the profile.
        # Listens on the router's tunnel address only; nftables admits the relays' tunnel addresses
        # (\(plan.relays.map { "\($0.tunnelAddress)" }.joined(separator: ", "))) alone. The agent writes edgekit_* series to the textfile directory.
        ARGS="--web.listen-address=[\(router.tunnelAddress)]:\(port) --collector.textfile.directory=\(textfileDirectory)"

        """
    }
}
