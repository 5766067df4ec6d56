#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// keepalived started by this agent (`--services processes`) and gone since (kill -9, a crash):
/// takes its VIPs off the LAN port at once, which also silences radvd (it sends only from the
/// link-local VIP), sends the priority-0 advertisement a stopping master sends, so the peer takes
/// over after its skew time rather than three advertisement intervals (`VirtualAddresses.handOver`),
/// and records VRRP `fault`, which re-registers this router as not master. When keepalived runs
/// again it starts as backup and the election decides. systemd units do the same through
/// `ExecStopPost=` (overlays); there `isRunning` is nil and this does nothing.
///
/// It looks from a thread of its own, not from the supervisor's actor: neither a slow pass of the
/// loop nor a cooperative pool kept busy by other work (a CI machine building images beside the
/// router) may hold the VIPs on a crashed master (issue 17.3, "at once").
final class KeepalivedWatch: @unchecked Sendable {
    enum Change: Sendable {
        /// keepalived was found gone: the VIPs removed (none left is `[]`), and why recording
        /// `fault` failed, if it did.
        case gone(removed: [String], recordFailure: String?)
        /// keepalived runs again after it was found gone.
        case back
    }

    private let agent: Agent
    private let thread: WatchThread
    private let report: @Sendable (Change) -> Void
    /// Found gone at the last pass (only the watch's thread reads and writes it).
    private var gone = false

    init(agent: Agent, every interval: Duration, report: @escaping @Sendable (Change) -> Void) {
        self.agent = agent
        thread = WatchThread(every: interval)
        self.report = report
    }

    func start() {
        thread.start { [self] in pass() }
    }

    func stop() {
        thread.stop()
    }

    private func pass() {
        guard let running = agent.services.isRunning(.keepalived) else {
            gone = false
            return
        }
        if running {
            if gone { report(.back) }
            gone = false
            return
        }
        guard !gone else { return }
        gone = true
        let removed = VirtualAddresses.handOver(paths: agent.paths, ip: agent.services.ipTool)
        var recordFailure: String?
        do {
            try VRRPNotify.record(.fault, paths: agent.paths)
        } catch {
            recordFailure = "\(error)"
        }
        report(.gone(removed: removed, recordFailure: recordFailure))
    }
}
