@testable import EdgeAgent
import Foundation
import TestSupport
import Testing

/// With several relays the agent's status and metrics show every relay's probe and which one the
/// site's traffic goes through; with one relay they read as before.
@Suite struct RelayPathReportTests {
    static func status(_ health: HealthReport) -> AgentStatus {
        AgentStatus(stick: "none", stickPath: nil, plan: "example", site: "site-a", slot: 1, generation: 1, previousGeneration: nil,
                    serial: 1000, failedServices: nil, vrrp: "master", handshakeAgeSeconds: 4, tunnel: "wg-relay",
                    registration: "registered", agent: "running (services: processes)", lastApply: nil, note: nil,
                    drift: 0, driftedFiles: [], driftProblem: nil, health: health)
    }

    static let twoRelays = HealthReport(
        verdict: .healthy, reason: "uplink up; any of the relays two, relay answered 3 probes in a row", since: "2026-12-06T05:00:00Z",
        relay: "fd3b:4f10:a8c6::2", probeAnswered: true, roundTripSeconds: 0.0021,
        relays: [
            .init(name: "two", address: "fd3b:4f10:a8c6::2", interface: "wg-relay1", up: true, chosen: true, probeAnswered: true, roundTripSeconds: 0.0021),
            .init(name: "relay", address: "fd3b:4f10:a8c6::1", interface: "wg-relay", up: false, chosen: false, probeAnswered: false, roundTripSeconds: nil),
        ])

    @Test func statusHasOneLinePerRelay() {
        let lines = Self.status(Self.twoRelays).lines
        #expect(lines.contains("relay         two (fd3b:4f10:a8c6::2 on wg-relay1) up, last probe answered in 2.1 ms; the site's traffic goes through it"), "\(lines)")
        #expect(lines.contains("relay         relay (fd3b:4f10:a8c6::1 on wg-relay) down, last probe not answered"), "\(lines)")
    }

    @Test("the metrics carry every relay's probe and the chosen one; promtool accepts them", .requiresTool("promtool"))
    func metricsPerRelay() throws {
        let text = AgentMetrics.exposition(Self.status(Self.twoRelays), lastApplyResult: "ok", now: Date(timeIntervalSince1970: 1_000_000))
        let samples = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
        #expect(samples.isSuperset(of: [
            #"edgekit_agent_relay_probe_success{relay="fd3b:4f10:a8c6::2"} 1"#, #"edgekit_agent_relay_probe_success{relay="fd3b:4f10:a8c6::1"} 0"#,
            #"edgekit_agent_relay_probe_rtt_seconds{relay="fd3b:4f10:a8c6::2"} 0.002100"#,
            #"edgekit_agent_relay_chosen{relay="fd3b:4f10:a8c6::2"} 1"#, #"edgekit_agent_relay_chosen{relay="fd3b:4f10:a8c6::1"} 0"#,
        ]), "\(text)")
        #expect(!text.contains(#"edgekit_agent_relay_probe_rtt_seconds{relay="fd3b:4f10:a8c6::1"}"#))
        #expect(try Promtool.problems(inMetrics: text) == nil)

        // One relay: one probe series, no `chosen`.
        var one = Self.twoRelays
        one.relays = nil
        let single = AgentMetrics.exposition(Self.status(one), lastApplyResult: "ok", now: Date(timeIntervalSince1970: 1_000_000))
        #expect(single.split(separator: "\n").filter { $0.hasPrefix("edgekit_agent_relay_probe_success") }
                == [#"edgekit_agent_relay_probe_success{relay="fd3b:4f10:a8c6::2"} 1"#])
        #expect(!single.split(separator: "\n").contains { $0.hasPrefix("edgekit_agent_relay_chosen{") })
    }
}
