import EdgeModel
import EdgeRender
import Foundation

/// Looks at the router's health once per interval from a thread of its own (like `KeepalivedWatch`):
/// the uplink's carrier and default route, and one probe of the relay. Writes health.json every
/// look and keepalived's track file when the verdict changes; reports verdict changes.
final class HealthWatch: @unchecked Sendable {
    private let paths: AgentPaths
    private let interval: TimeInterval
    private let report: @Sendable (HealthReport) -> Void
    private let lock = NSLock()
    private var stopped = false
    private var tracker: HealthTracker

    init(paths: AgentPaths, every interval: Duration, misses: Int, rise: Int, report: @escaping @Sendable (HealthReport) -> Void) {
        self.paths = paths
        let (seconds, attoseconds) = interval.components
        self.interval = Double(seconds) + Double(attoseconds) / 1e18
        self.report = report
        tracker = HealthTracker(misses: misses, rise: rise, healthy: HealthReport.tracked(paths: paths) == .healthy)
    }

    func start() {
        let thread = Thread { [self] in watch() }
        thread.name = "health-watch"
        thread.start()
    }

    /// The thread ends within one interval.
    func stop() {
        lock.withLock { stopped = true }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

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

    private func watch() {
        // An agent killed inside a yield's two seconds left keepalived in FAULT: end that first.
        let yield = paths.live(ConfigPaths.yieldTrackFile)
        if (try? String(contentsOfFile: yield, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "1" {
            try? HealthReport.replace(yield, with: Data("0\n".utf8))
        }
        var probe: RelayProbe?
        var probed = ""
        var since = DocumentCoding.timestamp(Date())
        var first = true
        while !isStopped {
            let started = ProcessInfo.processInfo.systemUptime
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
                    roundTrip = probe?.echo(timeout: min(interval, 1))
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
            if changed, tracker.verdict == .unhealthy, VRRPNotify.current(paths: paths) == .master { yieldMastership() }
            first = false
            let rest = interval - (ProcessInfo.processInfo.systemUptime - started)
            if rest > 0 { Thread.sleep(forTimeInterval: rest) }
        }
    }
}
