import EdgeModel
import EdgeRender
import Foundation

/// Looks at the router's health once per interval from a thread of its own (like `KeepalivedWatch`):
/// the uplink's carrier and default route, and one probe of the relay. Writes health.json every
/// look and keepalived's track file when the verdict changes; reports verdict changes.
final class HealthWatch: @unchecked Sendable {
    private let paths: AgentPaths
    private let thread: WatchThread
    private let report: @Sendable (HealthReport) -> Void
    // Only the watch's thread reads and writes these.
    private var tracker: HealthTracker
    private var probe: RelayProbe?
    private var probed = ""
    private var since = DocumentCoding.timestamp(Date())
    private var first = true

    init(paths: AgentPaths, every interval: Duration, misses: Int, rise: Int, report: @escaping @Sendable (HealthReport) -> Void) {
        self.paths = paths
        thread = WatchThread("health-watch", every: interval)
        self.report = report
        tracker = HealthTracker(misses: misses, rise: rise, healthy: HealthReport.tracked(paths: paths) == .healthy)
    }

    func start() {
        thread.start { [self] in pass() }
    }

    func stop() {
        thread.stop()
    }

    /// A master that turns unhealthy hands the VIPs over at once rather than waiting for its peer's
    /// Master_Down_Interval (three advertisements: a backup ignores a master's lower priority):
    /// the yield track file puts keepalived in FAULT, whose priority-0 advertisement makes the
    /// backup master after its skew time; two seconds later the instance is back as a backup with
    /// its lowered priority. A peer that is unhealthy too has the lower priority still, so this
    /// router takes the site back after one Master_Down_Interval: one bounce, not a flap.
    /// A single-router site's keepalived.conf does not track the file.
    private func yieldMastership() {
        let file = paths.live(ConfigPaths.yieldTrackFile)
        do {
            try HealthReport.replace(file, with: Data("1\n".utf8))
            Thread.sleep(forTimeInterval: 2)
            try HealthReport.replace(file, with: Data("0\n".utf8))
        } catch {
            FileHandle.standardError.write(Data("edgekit-agent: health: cannot yield mastership: \(error)\n".utf8))
        }
    }

    private func pass() {
        if first {
            // An agent killed inside a yield's two seconds left keepalived in FAULT: end that first.
            let yield = paths.live(ConfigPaths.yieldTrackFile)
            if (try? String(contentsOfFile: yield, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "1" {
                try? HealthReport.replace(yield, with: Data("0\n".utf8))
            }
        }
        // The applied generation says which uplink and which relay; a new apply may change them.
        let target = HealthTarget.applied(paths: paths)
        var roundTrip: TimeInterval?
        var sample = HealthTracker.Sample(uplinkProblem: "nothing applied yet", relayAnswered: false)
        var relay = "(none)"
        if let target {
            relay = "\(target.relayTunnelAddress)"
            if probed != relay {
                probe = RelayProbe(address: relay)
                probed = relay
            }
            sample.uplinkProblem = UplinkState.problem(interface: target.uplink)
            if sample.uplinkProblem == nil {
                roundTrip = probe?.echo(timeout: min(thread.interval, 1))
            }
            sample.relayAnswered = roundTrip != nil
        }
        let changed = tracker.record(sample, relay: relay)
        if changed { since = DocumentCoding.timestamp(Date()) }
        let health = HealthReport(verdict: tracker.verdict, reason: tracker.reason, since: since, relay: relay,
                                  probeAnswered: sample.relayAnswered, roundTripSeconds: roundTrip)
        do {
            try health.save(paths: paths)
        } catch {
            FileHandle.standardError.write(Data("edgekit-agent: health: \(error)\n".utf8))
        }
        if changed || first { report(health) }
        first = false
        if changed, tracker.verdict == .unhealthy, VRRPNotify.current(paths: paths) == .master { yieldMastership() }
    }
}
