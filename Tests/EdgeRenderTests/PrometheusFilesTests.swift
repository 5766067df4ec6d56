import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import TestSupport
import Testing

/// The relay bundle's Prometheus files, checked by Debian's promtool: the config with its rules and
/// file_sd targets, and every alert driven through `promtool test rules` (fires when it should, not before).
@Suite(.requiresTool("promtool")) struct PrometheusFilesTests {
    static let plan = try! PlanLoader.load(directory: Products.examplePlan)

    /// The three files as the bundle lays them out in /etc/prometheus.
    func withFiles(_ body: (TemporaryDirectory) throws -> Void) throws {
        try TemporaryDirectory.with("edgekit-prometheus") { dir in
            for file in RelayFiles.files(plan: Self.plan) where file.path.hasPrefix("/etc/prometheus/") {
                try file.contents.write(to: dir.file((file.path as NSString).lastPathComponent), atomically: true, encoding: .utf8)
            }
            try body(dir)
        }
    }

    @Test func configRulesAndTargetsPassPromtool() throws {
        try withFiles { dir in
            let config = try Promtool.run(["check", "config", "prometheus.yml"], in: dir.path)
            #expect(config.status == 0, "\(config.output)")
            #expect(config.output.contains("SUCCESS: 1 rule files found"), "\(config.output)")
            let rules = try Promtool.run(["check", "rules", "edgekit-rules.yml"], in: dir.path)
            #expect(rules.status == 0, "\(rules.output)")
            #expect(rules.output.contains("SUCCESS: 7 rules found"), "\(rules.output)")
            // Every router of the plan is a target at its tunnel address, labelled with site and slot.
            let data = try Data(contentsOf: dir.file("edgekit-routers.json"))
            let groups = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
            let expected = Self.plan.sites.flatMap { site in
                site.routers.map { "[\($0.tunnelAddress)]:9100 \(site.name) \($0.slot)" }
            }
            let found = groups.map { group -> String in
                let labels = group["labels"] as? [String: String] ?? [:]
                return "\((group["targets"] as? [String])?.joined() ?? "") \(labels["site"] ?? "") \(labels["slot"] ?? "")"
            }
            #expect(found == expected)
            #expect(expected.count == 3)
        }
    }

    /// Each alert with synthetic series, one-minute steps: not before its `for:` has passed, then
    /// with the router's labels. `promtool test rules` fails on any alert missing, extra or different.
    @Test func everyAlertFiresWhenItShould() throws {
        let r1 = #"job="edgekit-routers",instance="[fd3b::1:1:1]:9100",site="site-a",slot="1""#
        let r2 = #"job="edgekit-routers",instance="[fd3b::1:1:2]:9100",site="site-a",slot="2""#
        let b1 = #"job="edgekit-routers",instance="[fd3b::1:2:1]:9100",site="site-b",slot="1""#
        let relay = #"job="edgekit-relay",instance="[::1]:9821""#
        let tests = """
            rule_files:
              - edgekit-rules.yml
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'up{\(r1)}'
                    values: '1 1 0x20'
                  - series: 'up{\(r2)}'
                    values: '1x22'
                  - series: 'up{\(b1)}'
                    values: '1x22'
                  - series: 'up{\(relay)}'
                    values: '1x22'
                  # site-a loses its live master at 3m; site-b never had one at the relay.
                  - series: 'edgekit_relay_site_master_up{\(relay),site="site-a"}'
                    values: '1 1 1 0x20'
                  - series: 'edgekit_relay_router_handshake_age_seconds{\(relay),site="site-a",slot="2",tunnel="fd3b::1:1:2"}'
                    values: '20+60x22'
                  - series: 'edgekit_agent_last_apply_success{\(r2)}'
                    values: '1 1 0x20'
                  - series: 'edgekit_agent_drift_files{\(b1)}'
                    values: '0 0 2x20'
                  # site-b's update to version 5 is on trial, then its board comes back to the old system.
                  - series: 'edgekit_relay_router_update{\(relay),site="site-b",slot="1",tunnel="fd3b::1:2:1",version="5",state="failed"}'
                    values: '0 0 1x20'
                  - series: 'edgekit_relay_router_update{\(relay),site="site-b",slot="1",tunnel="fd3b::1:2:1",version="5",state="trial"}'
                    values: '1 1 0x20'
                alert_rule_test:
                  - eval_time: 3m
                    alertname: EdgekitRouterDown
                  - eval_time: 5m
                    alertname: EdgekitRouterDown
                    exp_alerts:
                      - exp_labels: {severity: critical, \(r1.replacingOccurrences(of: "=", with: ": "))}
                        exp_annotations: {summary: "router site-a slot 1 does not answer through the tunnel"}
                  - eval_time: 2m
                    alertname: EdgekitSiteHasNoMaster
                    exp_alerts:
                      - exp_labels: {severity: critical, site: site-b}
                        exp_annotations: {summary: "site site-b has no live VRRP master at the relay"}
                  - eval_time: 5m
                    alertname: EdgekitSiteHasNoMaster
                    exp_alerts:
                      - exp_labels: {severity: critical, site: site-a}
                        exp_annotations: {summary: "site site-a has no live VRRP master at the relay"}
                      - exp_labels: {severity: critical, site: site-b}
                        exp_annotations: {summary: "site site-b has no live VRRP master at the relay"}
                  - eval_time: 3m
                    alertname: EdgekitHandshakeStale
                  - eval_time: 5m
                    alertname: EdgekitHandshakeStale
                    exp_alerts:
                      - exp_labels: {severity: warning, \(relay.replacingOccurrences(of: "=", with: ": ")), site: site-a, slot: "2", tunnel: "fd3b::1:1:2"}
                        exp_annotations: {summary: "router site-a slot 2: no WireGuard handshake for 320 s"}
                  - eval_time: 1m
                    alertname: EdgekitApplyFailed
                  - eval_time: 2m
                    alertname: EdgekitApplyFailed
                    exp_alerts:
                      - exp_labels: {severity: warning, \(r2.replacingOccurrences(of: "=", with: ": "))}
                        exp_annotations: {summary: "router site-a slot 2: the last apply failed"}
                  - eval_time: 11m
                    alertname: EdgekitDrift
                  - eval_time: 13m
                    alertname: EdgekitDrift
                    exp_alerts:
                      - exp_labels: {severity: warning, \(b1.replacingOccurrences(of: "=", with: ": "))}
                        exp_annotations: {summary: "router site-b slot 1: 2 files drifted from the applied generation"}
                  - eval_time: 10m
                    alertname: EdgekitRelayDown
                  - eval_time: 1m
                    alertname: EdgekitUpdateFailed
                  - eval_time: 2m
                    alertname: EdgekitUpdateFailed
                    exp_alerts:
                      - exp_labels: {severity: warning, \(relay.replacingOccurrences(of: "=", with: ": ")), site: site-b, slot: "1", tunnel: "fd3b::1:2:1", version: "5", state: failed}
                        exp_annotations: {summary: "router site-b slot 1: system version 5 failed its trial boot; it runs its old system"}

            """
        try withFiles { dir in
            try tests.write(to: dir.file("edgekit-tests.yml"), atomically: true, encoding: .utf8)
            let result = try Promtool.run(["test", "rules", "edgekit-tests.yml"], in: dir.path)
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("SUCCESS"), "\(result.output)")
        }
    }
}
