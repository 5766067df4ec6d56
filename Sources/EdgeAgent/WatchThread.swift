import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A thread of its own for one of the agent's watches (`KeepalivedWatch`, `HealthWatch`): neither a
/// slow pass of the supervisor's loop nor a cooperative thread pool kept busy by other work may
/// delay them. Calls its pass once per interval, the pass's own time included, until stopped.
final class WatchThread: @unchecked Sendable {
    let interval: TimeInterval
    private let lock = ThreadLock()
    private var stopped = false

    init(every interval: Duration) {
        let (seconds, attoseconds) = interval.components
        self.interval = Double(seconds) + Double(attoseconds) / 1e18
    }

    func start(_ pass: @escaping @Sendable () -> Void) {
        Threads.start { [self] in
            while !lock.withLock({ stopped }) {
                let started = ProcessInfo.processInfo.systemUptime
                pass()
                let rest = interval - (ProcessInfo.processInfo.systemUptime - started)
                if rest > 0 { Threads.sleep(rest) }
            }
        }
    }

    /// The thread ends after its current pass and sleep: within one interval and one pass.
    func stop() {
        lock.withLock { stopped = true }
    }
}
