import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// SIGTERM and SIGINT as the end of `edgekit-agent run` (docs/agent.md, "Stopping"): caught on Dispatch
/// signal sources instead of ending the process, and turned into the cancellation of the work
/// `run(grace:_:)` runs.
///
/// Not swift-service-lifecycle: the agent builds with Swift 6.0 for aarch64, which cannot resolve it
/// (docs/architecture.md, "Toolchains").
public final class ShutdownSignals: @unchecked Sendable {
    private let lock = ThreadLock()
    private var received: Int32?
    private var actions: [@Sendable () -> Void] = []
    private var sources: [any DispatchSourceSignal] = []

    private init() {}

    /// Catches `signals` from now on. Returns once the signal sources are in place, so no signal
    /// sent after it returns is missed.
    public static func catching(_ signals: [Int32] = [SIGTERM, SIGINT]) async -> ShutdownSignals {
        let shutdown = ShutdownSignals()
        let queue = DispatchQueue(label: "edgekit-agent.signals")
        for number in signals {
            // Ignored, so that the signal only reaches the source: Darwin's kqueue needs it; on Linux
            // libdispatch puts a handler of its own in place when it registers the source.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak shutdown] in shutdown?.receive(number) }
            await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
                source.setRegistrationHandler { registered.resume() }
                source.resume()
            }
            shutdown.lock.withLock { shutdown.sources.append(source) }
        }
        return shutdown
    }

    deinit {
        for source in sources { source.cancel() }
    }

    /// The first signal caught, or nil while none was.
    public var caught: Int32? {
        lock.withLock { received }
    }

    func receive(_ number: Int32) {
        let due: [@Sendable () -> Void] = lock.withLock {
            guard received == nil else { return [] }
            received = number
            defer { actions = [] }
            return actions
        }
        for action in due { action() }
    }

    /// Calls `action` once, when the first signal is caught (at once when it was already).
    func whenCaught(_ action: @escaping @Sendable () -> Void) {
        let now = lock.withLock {
            if received == nil { actions.append(action) }
            return received != nil
        }
        if now { action() }
    }

    /// Runs `work` in a task of its own until it returns. A signal cancels the task and leaves it
    /// `grace` to return; false when it did not (the caller exits without it).
    public func run(grace: Duration, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        let ended = Blocking.Handoff<Bool>()
        let task = Task {
            await work()
            ended.finish(true)
        }
        whenCaught {
            task.cancel()
            Task {
                try? await Task.sleep(for: grace)
                ended.finish(false)
            }
        }
        return await withCheckedContinuation { continuation in _ = ended.install(continuation) } ?? false
    }
}
