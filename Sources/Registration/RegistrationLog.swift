/// Where `RegistrationClient` says what happened on the way: a relay's answer, a failed attempt, a
/// relay too old for the report. Each side hands the lines to its own log, with the level, message
/// and details swift-log's `Logger` took, so they read as they always did.
///
/// Not swift-log itself: Registration is part of the agent, and the agent builds with Swift 6.0 for
/// aarch64, which cannot resolve swift-log (docs/architecture.md, "Toolchains").
///
///     let client = try RegistrationClient(profile: document, log: .none)
public struct RegistrationLog: Sendable {
    /// swift-log's levels of the same names; Registration uses these four.
    public enum Level: String, Sendable {
        case debug, info, notice, error
    }

    /// Takes one line: its level, message and details (key → value).
    public typealias Sink = @Sendable (_ level: Level, _ message: String, _ metadata: [String: String]) -> Void

    let sink: Sink?

    public init(_ sink: @escaping Sink) {
        self.sink = sink
    }

    private init() {
        sink = nil
    }

    /// Drops every line (tests, tools that only want the result).
    public static let none = RegistrationLog()

    func debug(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [String: String] = [:]) {
        sink?(.debug, message(), metadata())
    }

    func info(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [String: String] = [:]) {
        sink?(.info, message(), metadata())
    }

    func notice(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [String: String] = [:]) {
        sink?(.notice, message(), metadata())
    }

    func error(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [String: String] = [:]) {
        sink?(.error, message(), metadata())
    }
}
