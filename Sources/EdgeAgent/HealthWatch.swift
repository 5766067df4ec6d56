import EdgeModel
import EdgeRender
import EdgeSystem
import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Looks at the router's health once per interval from a thread of its own (like `KeepalivedWatch`):
/// the uplink's carrier and default route, and one probe of each relay, all relays at once. The
/// router is healthy while at least one relay answers. With several relays it also chooses the
/// relay the site's traffic goes through (`PathChoice`) and points the plan's /48 at that relay's
/// tunnel. Writes health.json every look and keepalived's track file when the verdict changes;
/// reports verdict changes and path changes.
final class HealthWatch: @unchecked Sendable {
    private let paths: AgentPaths
    private let thread: WatchThread
    private let report: @Sendable (HealthReport) -> Void
    private let rise: Int
    private let relayMisses: Int
    private let holdDown: TimeInterval
    private let ipTool: String
    private let clock: @Sendable () -> Date
    // Only the watch's thread reads and writes these.
    private var tracker: HealthTracker
    private var probes: [String: RelayProbe] = [:]
    private var target: HealthTarget?
    private var choice = PathChoice(relays: [])
    private var routed: String?
    private var nextRouteCheck = Date.distantPast
    private var since = DocumentCoding.timestamp(Date())
    private var first = true

    init(paths: AgentPaths, every interval: Duration, misses: Int, rise: Int, relayMisses: Int = 2, holdDown: TimeInterval = 10,
         ipTool: String = "ip", clock: @escaping @Sendable () -> Date = { Date() },
         report: @escaping @Sendable (HealthReport) -> Void) {
        self.paths = paths
        thread = WatchThread(every: interval)
        self.report = report
        self.rise = rise
        self.relayMisses = relayMisses
        self.holdDown = holdDown
        self.ipTool = ipTool
        self.clock = clock
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
            Threads.sleep(2)
            try HealthReport.replace(file, with: Data("0\n".utf8))
        } catch {
            StandardStream.error.write("edgekit-agent: health: cannot yield mastership: \(error)\n")
        }
    }

    private func pass() {
        if first {
            // An agent killed inside a yield's two seconds left keepalived in FAULT: end that first.
            let yield = paths.live(ConfigPaths.yieldTrackFile)
            if (try? String(contentsOfFile: yield, encoding: .utf8))?.trimmingWhitespace() == "1" {
                try? HealthReport.replace(yield, with: Data("0\n".utf8))
            }
        }
        // The applied generation says which uplink and which relays; a new apply may change them.
        let applied = HealthTarget.applied(paths: paths)
        if applied != target {
            target = applied
            probes = [:]
            for relay in applied?.relays ?? [] { probes[relay.name] = RelayProbe(address: "\(relay.tunnelAddress)") }
            choice = PathChoice(relays: applied?.relays.map(\.name) ?? [], misses: relayMisses, rise: rise, holdDown: holdDown)
            routed = nil
        }
        var sample = HealthTracker.Sample(uplinkProblem: "nothing applied yet", relayAnswered: false)
        var roundTrips: [String: TimeInterval] = [:]
        if let target {
            sample.uplinkProblem = UplinkState.problem(interface: target.uplink)
            if sample.uplinkProblem == nil { roundTrips = probeAll(target.relays) }
            sample.relayAnswered = !roundTrips.isEmpty
            let answers = Dictionary(uniqueKeysWithValues: target.relays.map { ($0.name, roundTrips[$0.name] != nil) })
            _ = choice.record(answers, at: clock())
            route(target)
        }
        let chosen = target?.relays.first { $0.name == (choice.chosen ?? target?.relays.first?.name) }
        let relay = chosen.map { "\($0.tunnelAddress)" } ?? "(none)"
        let several = (target?.relays.count ?? 0) > 1
        let changed = several ? tracker.record(sample, relays: "any of the relays " + (target?.relays.map(\.name).joined(separator: ", ") ?? ""))
                              : tracker.record(sample, relay: relay)
        if changed { since = DocumentCoding.timestamp(Date()) }
        var health = HealthReport(verdict: tracker.verdict, reason: tracker.reason, since: since, relay: relay,
                                  probeAnswered: chosen.map { roundTrips[$0.name] != nil } ?? false,
                                  roundTripSeconds: chosen.flatMap { roundTrips[$0.name] })
        if let target, target.relays.count > 1 {
            health.relays = target.relays.map { relay in
                let path = choice.paths.first { $0.name == relay.name }
                return HealthReport.RelayPath(name: relay.name, address: "\(relay.tunnelAddress)", interface: relay.interface,
                                              up: path?.up ?? false, chosen: relay.name == choice.chosen,
                                              probeAnswered: roundTrips[relay.name] != nil, roundTripSeconds: roundTrips[relay.name])
            }
        }
        do {
            try health.save(paths: paths)
        } catch {
            StandardStream.error.write("edgekit-agent: health: \(error)\n")
        }
        if changed || first { report(health) }
        first = false
        if changed, tracker.verdict == .unhealthy, VRRPNotify.current(paths: paths) == .master { yieldMastership() }
    }

    /// One echo to every relay at once; the round trips of those that answered, by name.
    private func probeAll(_ relays: [HealthTarget.Relay]) -> [String: TimeInterval] {
        let timeout = min(thread.interval, 1)
        let probes = relays.map { self.probes[$0.name] }
        let answers = ConcurrentAnswers(count: relays.count)
        DispatchQueue.concurrentPerform(iterations: relays.count) { index in
            answers.set(index, probes[index]?.echo(timeout: timeout))
        }
        var roundTrips: [String: TimeInterval] = [:]
        for (index, relay) in relays.enumerated() {
            if let rtt = answers.value(index) { roundTrips[relay.name] = rtt }
        }
        return roundTrips
    }

    /// With several relays: the plan /48 through the chosen relay's tunnel, at a metric below
    /// networkd's routes (`RouterTunnel.chosenMetric`). Set when the choice changes and looked at
    /// again every 10 s (networkd drops routes it does not know when it reconfigures a link).
    private func route(_ target: HealthTarget) {
        guard target.relays.count > 1, let chosen = choice.chosen,
              let relay = target.relays.first(where: { $0.name == chosen }) else { return }
        let now = clock()
        guard chosen != routed || now >= nextRouteCheck else { return }
        nextRouteCheck = now.addingTimeInterval(10)
        let arguments = ["-6", "route", "replace", "\(target.ula)", "dev", relay.interface, "metric", "\(RouterTunnel.chosenMetric)"]
        guard let result = try? SystemCommand.run(ipTool, arguments), result.succeeded else {
            StandardStream.error.write("edgekit-agent: relays: cannot route \(target.ula) through \(relay.interface)\n")
            routed = nil
            return
        }
        if chosen != routed {
            let from = routed.map { " (was relay \($0))" } ?? ""
            StandardStream.error.write("edgekit-agent: relays: \(target.ula) goes through relay \(chosen) on \(relay.interface)\(from)\n")
        }
        routed = chosen
    }
}

/// Results written by concurrent probes, each to its own slot.
private final class ConcurrentAnswers: @unchecked Sendable {
    private let lock = ThreadLock()
    private var values: [TimeInterval?]

    init(count: Int) { values = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: TimeInterval?) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }

    func value(_ index: Int) -> TimeInterval? {
        lock.lock()
        defer { lock.unlock() }
        return values[index]
    }
}
