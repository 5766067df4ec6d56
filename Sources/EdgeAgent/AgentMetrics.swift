import EdgeRender
import EdgeSystem
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The router's `edgekit_*` series for Prometheus: `edgekit.prom` in the node exporter's textfile
/// collector directory (Debian's `prometheus-node-exporter` reads `/var/lib/prometheus/node-exporter`),
/// made from what `edgekit-agent status` shows (`AgentStatus.gather`) and the runtime record's last
/// apply. Written atomically (`AtomicFile`: a reader sees the old file or the new one, never half)
/// and only when its text changed. docs/agent.md, "Metrics".
public enum AgentMetrics {
    /// The node exporter's textfile collector directory (Debian's default `--collector.textfile.directory`).
    public static let textfileDirectory = NodeExporter.textfileDirectory
    public static let fileName = "edgekit.prom"

    /// The results of an apply, one-hot in `edgekit_agent_last_apply`.
    static let applyResults = ["applied", "no_stick", "refused", "service_failed"]
    static let vrrpStates = ["master", "backup", "fault", "unknown"]

    /// The text exposition (format 0.0.4). `lastApplyResult` is the runtime record's, nil when no
    /// agent recorded one on this root.
    public static func exposition(_ status: AgentStatus, lastApplyResult: String?, now: Date) -> String {
        var out = [String]()
        func family(_ name: String, _ help: String, _ type: String = "gauge") {
            out.append("# HELP \(name) \(help)")
            out.append("# TYPE \(name) \(type)")
        }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int) {
            let text = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
            out.append("\(name)\(text) \(value)")
        }
        // Not `site`/`slot`: Prometheus gives every series those from the plan's targets; these say what
        // the router itself applied (they differ when a stick of another router is in it).
        family("edgekit_agent_info", "The router this is by its applied profile: plan, site and slot (site from the image before any apply).")
        sample("edgekit_agent_info", [("plan", status.plan ?? ""), ("profile_site", status.site ?? ""),
                                      ("profile_slot", status.slot.map(String.init) ?? "")], 1)
        family("edgekit_system_version", "The running system's version (--system-version of its image or update bundle), by board; absent on images from before versions.")
        if let system = status.system { sample("edgekit_system_version", [("board", system.board)], Int(clamping: system.version)) }
        family("edgekit_system_update", "1 for the state of the last update install (trial, blessed, failed), by the version it installed; absent when none was.")
        if let update = status.update {
            for state in ["trial", "blessed", "failed"] {
                sample("edgekit_system_update", [("version", String(update.version)), ("state", state)], update.state.rawValue == state ? 1 : 0)
            }
        }
        family("edgekit_agent_generation", "The applied generation; absent when nothing is applied.")
        if let generation = status.generation { sample("edgekit_agent_generation", [], generation) }
        family("edgekit_agent_serial", "Serial of the applied profile; absent when nothing is applied.")
        if let serial = status.serial { sample("edgekit_agent_serial", [], Int(clamping: serial)) }
        family("edgekit_agent_last_apply", "1 for the result of the last apply (by run at boot, or a manual apply since).")
        if let result = lastApplyResult {
            for name in applyResults { sample("edgekit_agent_last_apply", [("result", name)], name == result ? 1 : 0) }
        }
        family("edgekit_agent_last_apply_success", "1 when the last apply applied its stick or kept the generation for want of one; 0 when the stick was refused or a service did not come up.")
        if let result = lastApplyResult {
            sample("edgekit_agent_last_apply_success", [], result == "applied" || result == "no_stick" ? 1 : 0)
        }
        family("edgekit_agent_failed_services", "Services known not to run with the applied generation.")
        sample("edgekit_agent_failed_services", [], status.failedServices?.count ?? 0)
        family("edgekit_agent_vrrp_state", "1 for keepalived's last VRRP state as notify recorded it (unknown: none yet).")
        for state in vrrpStates { sample("edgekit_agent_vrrp_state", [("state", state)], state == status.vrrp ? 1 : 0) }
        family("edgekit_agent_registered", "1 when the last registration with the relay was accepted.")
        sample("edgekit_agent_registered", [], status.registration.hasPrefix("registered") ? 1 : 0)
        family("edgekit_agent_running", "1 while edgekit-agent run supervises this router.")
        sample("edgekit_agent_running", [], status.agent.hasPrefix("running") ? 1 : 0)
        family("edgekit_agent_tunnel_last_handshake_timestamp_seconds", "UNIX time of the tunnel's last handshake with the relay; absent with none or no tunnel.")
        if let age = status.handshakeAgeSeconds {
            sample("edgekit_agent_tunnel_last_handshake_timestamp_seconds", [], Int(now.timeIntervalSince1970) - age)
        }
        family("edgekit_agent_healthy", "1 while the router is healthy (uplink up, relay answering; keepalived tracks it), 0 while not; absent when no agent runs.")
        if let health = status.health { sample("edgekit_agent_healthy", [], health.verdict == .healthy ? 1 : 0) }
        // One series per relay (label: its tunnel address); with several relays also `chosen`, the one
        // the site's traffic goes through (docs/relay.md, "Running several relays").
        let probes: [(relay: String, answered: Bool, rtt: Double?, chosen: Bool?)] = status.health.map { health in
            health.relays.map { $0.map { ($0.address, $0.probeAnswered, $0.roundTripSeconds, $0.chosen) } }
                ?? [(health.relay, health.probeAnswered, health.roundTripSeconds, nil)]
        } ?? []
        family("edgekit_agent_relay_probe_success", "1 when the last health probe of the relay (ICMPv6 echo through the tunnel) was answered.")
        for probe in probes { sample("edgekit_agent_relay_probe_success", [("relay", probe.relay)], probe.answered ? 1 : 0) }
        family("edgekit_agent_relay_probe_rtt_seconds", "Round trip of the last answered health probe of the relay.")
        for probe in probes {
            if let rtt = probe.rtt {
                out.append("edgekit_agent_relay_probe_rtt_seconds{relay=\"\(escape(probe.relay))\"} \(String(cFormat: "%.6f", rtt))")
            }
        }
        family("edgekit_agent_relay_chosen", "With several relays: 1 for the relay the site's traffic to the other sites goes through, 0 for the others.")
        for probe in probes {
            if let chosen = probe.chosen { sample("edgekit_agent_relay_chosen", [("relay", probe.relay)], chosen ? 1 : 0) }
        }
        family("edgekit_agent_drift_files", "Live files that differ from the applied generation's manifest; absent when that cannot be checked.")
        if let drift = status.drift { sample("edgekit_agent_drift_files", [], drift) }
        family("edgekit_agent_drift_checkable", "1 when the applied generation has a manifest drift is checked against.")
        sample("edgekit_agent_drift_checkable", [], status.drift == nil ? 0 : 1)
        return out.joined(separator: "\n") + "\n"
    }

    static func escape(_ value: String) -> String {
        value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            .replacing("\n", with: "\\n")
    }

    /// Gathers the status and writes `edgekit.prom` under the root's textfile directory when that
    /// directory exists (the image has the node exporter) and the text changed. Returns whether it wrote.
    @discardableResult
    public static func publish(paths: AgentPaths, now: Date = Date()) throws -> Bool {
        let directory = paths.live(textfileDirectory)
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory else { return false }
        let status = AgentStatus.gather(paths: paths, now: now)
        let text = exposition(status, lastApplyResult: RuntimeState.load(paths: paths)?.lastApplyResult, now: now)
        let path = directory + "/" + fileName
        if FileManager.default.contents(atPath: path) == Data(text.utf8) { return false }
        // World-readable: the node exporter runs as user prometheus. AtomicFile names its temporary
        // file with a leading dot, which the collector skips (it reads *.prom only).
        try AtomicFile.write(Data(text.utf8), to: path, mode: 0o644, replace: true)
        return true
    }
}
