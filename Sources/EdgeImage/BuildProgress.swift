import Foundation

/// What a build reports while it runs. The command line shows it as a live bar on a terminal and as
/// one line per finished step otherwise (CLISupport's `ProgressDisplay`); benchmarks and tests that
/// call the builder directly pass `.silent`.
///
/// Steps are named; several may run at once (sites stamped in parallel), so every event names its step.
public struct BuildProgress: Sendable {
    public enum Unit: Sendable, Equatable {
        case bytes
        case percent
        case items
    }

    public enum Event: Sendable, Equatable {
        /// A step began; `total` is its size in `unit` when known.
        case begin(step: String, total: Int?, unit: Unit)
        /// The step got this far, in its unit; `detail` is e.g. mmdebstrap's current phase.
        case advance(step: String, completed: Int, total: Int?, detail: String?)
        /// The step ended; `summary` says what it made (the display adds the elapsed time).
        case end(step: String, summary: String)
        /// A one-off line: a cached level reused, a wait for a lock.
        case note(String)
    }

    public let report: @Sendable (Event) -> Void

    public init(_ report: @escaping @Sendable (Event) -> Void) {
        self.report = report
    }

    public static let silent = BuildProgress { _ in }

    public func note(_ text: String) {
        report(.note(text))
    }

    /// Runs `body` as the step `name`: begin, the body's advances, end with the summary the body
    /// returns. A step that throws reports no end; the error says what went wrong.
    public func step<T>(_ name: String, total: Int? = nil, unit: Unit = .bytes,
                        _ body: (StepReporter) throws -> (T, summary: String)) rethrows -> T {
        report(.begin(step: name, total: total, unit: unit))
        let (value, summary) = try body(StepReporter(step: name, report: report))
        report(.end(step: name, summary: summary))
        return value
    }
}

/// Handed to a running step to say how far it got.
public struct StepReporter: Sendable {
    public let step: String
    let report: @Sendable (BuildProgress.Event) -> Void

    /// `total` nil keeps the step's total, except with a new `detail` (a new phase), which starts
    /// with the total given here.
    public func advance(_ completed: Int, of total: Int? = nil, detail: String? = nil) {
        report(.advance(step: step, completed: completed, total: total, detail: detail))
    }
}

/// Calls `body` with the size of `path` every `interval` while `work` runs: progress for a tool
/// that writes a file and says nothing (mke2fs -d). Reports allocated bytes, which is what a sparse
/// image really costs.
func watchingFileGrowth<T>(_ path: String, every interval: TimeInterval = 0.2, _ body: @escaping @Sendable (Int) -> Void,
                           while work: () throws -> T) rethrows -> T {
    let done = DispatchSemaphore(value: 0)
    let watcher = Thread {
        while done.wait(timeout: .now() + interval) == .timedOut {
            var info = stat()
            if stat(path, &info) == 0 { body(Int(info.st_blocks) * 512) }
        }
    }
    watcher.start()
    defer { done.signal() }
    return try work()
}

/// Human sizes for progress lines: 712 MB, 1.32 GB (SI, as `ls -h --si` and disk vendors count).
public func byteCount(_ bytes: Int) -> String {
    let value = Double(bytes)
    if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
    if value >= 1e6 { return String(format: "%.0f MB", value / 1e6) }
    if value >= 1e3 { return String(format: "%.0f kB", value / 1e3) }
    return "\(bytes) B"
}

/// Work on its own thread (two cores: two jobs at once), joined with `wait()`; `result()` waits
/// and returns its value or rethrows its error.
final class BackgroundJob<Value: Sendable>: @unchecked Sendable {
    private let group = DispatchGroup()
    private var outcome: Result<Value, any Error>?

    init(_ work: @escaping @Sendable () throws -> Value) {
        group.enter()
        let thread = Thread { [self] in
            outcome = Result { try work() }
            group.leave()
        }
        thread.start()
    }

    func wait() {
        group.wait()
    }

    func result() throws -> Value {
        group.wait()
        return try outcome!.get()
    }
}

/// A byte count that several threads add to, reporting the running total (hashing progress).
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    private let report: @Sendable (Int) -> Void

    init(_ report: @escaping @Sendable (Int) -> Void) {
        self.report = report
    }

    func add(_ bytes: Int) {
        lock.lock()
        total += bytes
        let now = total
        lock.unlock()
        report(now)
    }
}
