import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif


/// Shows long-running work on stderr the way SwiftPM does (STYLE.md, "Output and CLI conventions").
///
/// On a terminal: the running step as a bar redrawn in place with `\r` (percent, bytes or items where
/// known, and the elapsed time), and a summary line when a step ends. Anywhere else (CI logs, pipes):
/// only the summary lines, exactly one per step, and no control characters at all.
///
/// Several steps may run at once (sites stamped in parallel); the bar shows the oldest one.
public final class ProgressDisplay: @unchecked Sendable {
    public enum Unit: Sendable {
        case bytes
        case percent
        case items
    }

    private struct Running {
        var total: Int?
        var unit: Unit
        var completed = 0
        var detail: String?
        var started: Date
    }

    public let isTerminal: Bool
    private let descriptor: Int32
    private let lock = ThreadLock()
    private var running: [(step: String, state: Running)] = []
    private var barShown = false
    private var lastDraw = Date.distantPast
    private var ticker: DispatchSourceTimer?

    /// - Parameters:
    ///   - descriptor: where to write (stderr).
    ///   - terminal: draw bars; by default when `descriptor` is a terminal.
    public init(descriptor: Int32 = 2, terminal: Bool? = nil) {
        self.descriptor = descriptor
        isTerminal = terminal ?? (isatty(descriptor) == 1)
        if isTerminal {
            // Redraw even when a step reports nothing (mke2fs, mmdebstrap between phases): the
            // elapsed time keeps moving, so the operator sees the build is alive.
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "edgekit.progress"))
            timer.schedule(deadline: .now() + 0.25, repeating: 0.25)
            timer.setEventHandler { [weak self] in self?.redraw() }
            timer.resume()
            ticker = timer
        }
    }

    deinit {
        ticker?.cancel()
    }

    public func begin(_ step: String, total: Int?, unit: Unit) {
        lock.lock()
        defer { lock.unlock() }
        running.removeAll { $0.step == step }
        running.append((step, Running(total: total, unit: unit, started: Date())))
        if isTerminal { drawBar() }
    }

    public func advance(_ step: String, completed: Int, total: Int?, detail: String?) {
        lock.lock()
        defer { lock.unlock() }
        guard let index = running.firstIndex(where: { $0.step == step }) else { return }
        running[index].state.completed = completed
        // A new phase (detail) brings its own total, or none: mmdebstrap's phases each count to 100 %,
        // and its hooks count nothing.
        let newPhase = detail != nil && detail != running[index].state.detail
        if newPhase || total != nil { running[index].state.total = total }
        if let detail { running[index].state.detail = detail }
        // A new phase shows at once; amounts at most ten times a second (the ticker does the rest).
        if isTerminal, index == 0, newPhase || Date().timeIntervalSince(lastDraw) >= 0.1 { drawBar() }
    }

    /// Ends `step` with one line: its summary and how long it took.
    public func end(_ step: String, summary: String) {
        lock.lock()
        defer { lock.unlock() }
        var seconds = 0.0
        if let index = running.firstIndex(where: { $0.step == step }) {
            seconds = Date().timeIntervalSince(running[index].state.started)
            running.remove(at: index)
        }
        writeLine(summary + String(cFormat: " (%.1f s)", seconds))
    }

    /// A line that is not a step (a cached level reused, a wait for a lock).
    public func note(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        writeLine(text)
    }

    /// Runs `body` and takes the bar off the screen afterwards, so an error starts on its own line.
    public func showing<T>(_ body: () throws -> T) rethrows -> T {
        defer { stop() }
        return try body()
    }

    /// Takes the bar off the screen so what follows (an error) starts on a clean line.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        ticker?.cancel()
        ticker = nil
        running.removeAll()
        if barShown { write("\r\u{1B}[K") }
        barShown = false
    }

    // MARK: Drawing (lock held)

    private func redraw() {
        lock.lock()
        defer { lock.unlock() }
        drawBar()
    }

    private func writeLine(_ text: String) {
        let line = ProgressDisplay.printable(text)
        if isTerminal {
            write((barShown ? "\r\u{1B}[K" : "") + line + "\n")
            barShown = false
            drawBar()
        } else {
            write(line + "\n")
        }
    }

    private func drawBar() {
        guard isTerminal, let (step, state) = running.first else { return }
        var text = ProgressDisplay.barText(step: step, completed: state.completed, total: state.total, unit: state.unit,
                                           detail: state.detail, elapsed: Date().timeIntervalSince(state.started),
                                           width: terminalWidth())
        if running.count > 1 { text += " (+\(running.count - 1))" }
        write("\r" + text + "\u{1B}[K")
        barShown = true
        lastDraw = Date()
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { return }
            offset += written
        }
    }

    private func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(descriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
        return 80
    }

    // MARK: Text

    /// One bar line, at most `width - 1` columns so the terminal never wraps it (a wrapped line
    /// cannot be redrawn with `\r`).
    static func barText(step: String, completed: Int, total: Int?, unit: Unit, detail: String?, elapsed: TimeInterval, width: Int) -> String {
        let clock = String(cFormat: "%d:%02d", Int(elapsed) / 60, Int(elapsed) % 60)
        var amount = ""
        var fraction: Double?
        if let total, total > 0 {
            fraction = min(1, max(0, Double(completed) / Double(total)))
        }
        switch unit {
        case .percent:
            break
        case .bytes:
            amount = total.map { "\(ProgressDisplay.bytes(completed))/\(ProgressDisplay.bytes($0))" } ?? (completed > 0 ? ProgressDisplay.bytes(completed) : "")
        case .items:
            amount = total.map { "\(completed)/\($0)" } ?? (completed > 0 ? "\(completed)" : "")
        }
        let title = printable(detail.map { "\(step): \($0)" } ?? step)
        var tail = [amount, clock].filter { !$0.isEmpty }.joined(separator: "  ")
        if let fraction {
            let percent = String(cFormat: "%3d%%", Int(fraction * 100))
            let barWidth = max(10, min(30, width - 1 - title.count - tail.count - percent.count - 6))
            let filled = Int(fraction * Double(barWidth))
            let bar = String(repeating: "=", count: filled) + (filled < barWidth ? ">" + String(repeating: " ", count: barWidth - filled - 1) : "")
            tail = "\(percent) [\(bar)]  " + tail
        }
        let room = width - 1 - tail.count - 2
        let shown = title.count <= room ? title : String(title.prefix(max(0, room - 1))) + "…"
        return String((shown + "  " + tail).prefix(width - 1))
    }

    static func bytes(_ count: Int) -> String {
        let value = Double(count)
        if value >= 1e9 { return String(cFormat: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(cFormat: "%.0f MB", value / 1e6) }
        if value >= 1e3 { return String(cFormat: "%.0f kB", value / 1e3) }
        return "\(count) B"
    }

    /// Text without control characters (tools' output may carry escape sequences).
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : $0 }))
    }
}
