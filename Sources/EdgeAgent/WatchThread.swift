import Foundation

/// A thread of its own for one of the agent's watches (`KeepalivedWatch`, `HealthWatch`): neither a
/// slow pass of the supervisor's loop nor a cooperative thread pool kept busy by other work may
/// delay them. Calls its pass once per interval, the pass's own time included, until stopped.
final class WatchThread: @unchecked Sendable {
    let name: String
    let interval: TimeInterval
    private let lock = NSLock()
    private var stopped = false

    init(_ name: String, every interval: Duration) {
        self.name = name
        let (seconds, attoseconds) = interval.components
        self.interval = Double(seconds) + Double(attoseconds) / 1e18
    }

    func start(_ pass: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while !lock.withLock({ stopped }) {
                let started = ProcessInfo.processInfo.systemUptime
                pass()
                let rest = interval - (ProcessInfo.processInfo.systemUptime - started)
                if rest > 0 { Thread.sleep(forTimeInterval: rest) }
            }
        }
        thread.name = name
        thread.start()
    }

    /// The thread ends after its current pass and sleep: within one interval and one pass.
    func stop() {
        lock.withLock { stopped = true }
    }
}
