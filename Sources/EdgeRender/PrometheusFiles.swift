import EdgeModel
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Prometheus on the relay VPS (Debian's `prometheus`, docs/fleet.md): the scrape config, the
/// routers as file_sd targets from the plan, and the alert rules. Paths inside the config are
/// relative, which Prometheus resolves against the config file's own folder (`/etc/prometheus`).
public enum PrometheusFiles {
    /// Job names the rules refer to.
    public static let relayJob = "edgekit-relay"
    public static let routerJob = "edgekit-routers"

    /// `prometheus.yml`. The relay's endpoint over `::1`; every router's node exporter at its
    /// tunnel address through the tunnel (the relay's routes to the tunnel prefix).
    public static func config(plan: Plan, scrapeIntervalSeconds: Int = 15) -> String {
        let port = RelayConfig(plan: plan).metricsPort
        // A scrape must end before the next one starts.
        let timeout = max(1, scrapeIntervalSeconds * 2 / 3)
        return """
            # edgekit: Prometheus on the relay of plan \(plan.name) (docs/fleet.md). Rendered from the plan.
            global:
              scrape_interval: \(scrapeIntervalSeconds)s
              scrape_timeout: \(timeout)s
              evaluation_interval: \(scrapeIntervalSeconds)s
              external_labels:
                plan: \(plan.name)

            rule_files:
              - \(ConfigPaths.prometheusRules.lastPathComponent)

            scrape_configs:
              # edgekit-relay serve: registrations, drops, peers, each site's master, each router's liveness.
              - job_name: \(relayJob)
                static_configs:
                  - targets: ["[::1]:\(port)"]
              # Each router's prometheus-node-exporter on its tunnel address, with the agent's edgekit_* series.
              - job_name: \(routerJob)
                file_sd_configs:
                  - files: [\(ConfigPaths.prometheusRouterTargets.lastPathComponent)]

            """
    }

    /// file_sd JSON (https://prometheus.io/docs/guides/file-sd/): one group per router of the plan,
    /// labelled with its site, slot and hostname. Sorted keys, so it is deterministic.
    public static func routerTargets(plan: Plan) -> String {
        struct Group: Encodable {
            var targets: [String]
            var labels: [String: String]
        }
        let groups = plan.sites.flatMap { site in
            site.routers.map { router in
                Group(targets: ["[\(router.tunnelAddress)]:\(NodeExporter.port)"],
                      labels: ["site": site.name, "slot": String(router.slot), "hostname": site.hostname(slot: router.slot)])
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Strings only: encoding cannot fail.
        return String(decoding: try! encoder.encode(groups), as: UTF8.self) + "\n"
    }

    /// The alert rules (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/).
    public static func rules() -> String {
        """
        # edgekit alerts (docs/fleet.md, "Alerts"). Labels site and slot name the router.
        groups:
          - name: edgekit
            rules:
              # The node exporter on the router's tunnel address does not answer: the router, its
              # uplink or its tunnel is down.
              - alert: EdgekitRouterDown
                expr: up{job="\(routerJob)"} == 0
                for: 2m
                labels:
                  severity: critical
                annotations:
                  summary: "router {{ $labels.site }} slot {{ $labels.slot }} does not answer through the tunnel"
              # A site of the plan where no router claiming master is heard by the relay (a site that
              # never registered counts too: its routers come from the plan's targets).
              - alert: EdgekitSiteHasNoMaster
                expr: max by (site) (up{job="\(routerJob)"}) unless on (site) (edgekit_relay_site_master_up == 1)
                for: 1m
                labels:
                  severity: critical
                annotations:
                  summary: "site {{ $labels.site }} has no live VRRP master at the relay"
              # WireGuard rekeys every 2 minutes while keepalives flow: 3 minutes without a handshake
              # (REJECT_AFTER_TIME) means the tunnel is lost.
              - alert: EdgekitHandshakeStale
                expr: edgekit_relay_router_handshake_age_seconds > 180
                for: 1m
                labels:
                  severity: warning
                annotations:
                  summary: "router {{ $labels.site }} slot {{ $labels.slot }}: no WireGuard handshake for {{ $value }} s"
              # The last apply refused its stick or a service did not come up with it (edgekit-agent status).
              - alert: EdgekitApplyFailed
                expr: edgekit_agent_last_apply_success == 0
                labels:
                  severity: warning
                annotations:
                  summary: "router {{ $labels.site }} slot {{ $labels.slot }}: the last apply failed"
              # Live files differ from the applied generation (edgekit-agent status; apply --repair).
              - alert: EdgekitDrift
                expr: edgekit_agent_drift_files > 0
                for: 10m
                labels:
                  severity: warning
                annotations:
                  summary: "router {{ $labels.site }} slot {{ $labels.slot }}: {{ $value }} files drifted from the applied generation"
              # A router's last system update failed its trial boot, and the board came back to its
              # old system by itself (docs/updates.md). From the router's report to the relay, so it
              # fires for a router Prometheus cannot scrape too; it clears with the next install.
              - alert: EdgekitUpdateFailed
                expr: edgekit_relay_router_update{state="failed"} == 1
                labels:
                  severity: warning
                annotations:
                  summary: "router {{ $labels.site }} slot {{ $labels.slot }}: system version {{ $labels.version }} failed its trial boot; it runs its old system"
              # The relay's metrics endpoint does not answer.
              - alert: EdgekitRelayDown
                expr: up{job="\(relayJob)"} == 0
                for: 1m
                labels:
                  severity: critical
                annotations:
                  summary: "edgekit-relay on {{ $labels.instance }} does not answer"

        """
    }
}
