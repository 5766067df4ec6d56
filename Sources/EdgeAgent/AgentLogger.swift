import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import Registration

/// The agent's log: one line per event, on stderr under `run` (the journal, under systemd). The
/// lines are those swift-log's `StreamLogHandler` wrote, byte for byte, so the docs, the lab's and
/// the tests' greps and journal searches still match: local time, level, label, the details sorted
/// by key, the module that logged, the message.
///
///     2026-11-22T10:15:04+0100 info edgekit-agent: [EdgeAgent] VRRP state: master
///     2026-11-22T10:15:05+0100 info edgekit-agent: attempts=1 claim=master relay=192.0.2.1:51821 … [Registration] registered with the relay
///
/// Not swift-log itself: the agent builds with Swift 6.0 for aarch64, which cannot resolve swift-log
/// (docs/architecture.md, "Toolchains").
public struct AgentLogger: Sendable {
    /// swift-log's levels of the same names, least severe first; the agent uses these five.
    public enum Level: Sendable, Comparable {
        case debug, info, notice, warning, error
    }

    /// One line before it is written.
    public struct Entry: Sendable {
        public var level: Level
        public var message: String
        /// Details as key → value, written before the module.
        public var metadata: [String: String]
        /// The module that logged (`EdgeAgent`, `Registration`).
        public var source: String
    }

    /// Lines below this level are dropped before they are made.
    public var level: Level
    let sink: @Sendable (Entry) -> Void

    /// A logger that hands each line at `level` or above to `sink` (tests collect them).
    public init(level: Level = .info, sink: @escaping @Sendable (Entry) -> Void) {
        self.level = level
        self.sink = sink
    }

    /// Lines on stderr, labelled `label`, as `StreamLogHandler.standardError(label:)` wrote them.
    public static func standardError(label: String, level: Level = .info) -> AgentLogger {
        let lock = ThreadLock()
        return AgentLogger(level: level) { entry in
            let line = Data(entry.line(label: label, time: Date()).utf8)
            // One line at a time: the supervisor, its watches and registrations log from several threads.
            lock.withLock { StandardStream.error.write(bytes: Array(line)) }
        }
    }

    /// Logs `message` at `level`. `source` is the module that logged, by default the caller's.
    public func log(level: Level, _ message: @autoclosure () -> String, metadata: @autoclosure () -> [String: String] = [:],
                    source: String? = nil, fileID: String = #fileID) {
        guard level >= self.level else { return }
        sink(Entry(level: level, message: message(), metadata: metadata(), source: source ?? Self.module(fileID)))
    }

    public func debug(_ message: @autoclosure () -> String, fileID: String = #fileID) {
        log(level: .debug, message(), fileID: fileID)
    }

    public func info(_ message: @autoclosure () -> String, fileID: String = #fileID) {
        log(level: .info, message(), fileID: fileID)
    }

    public func notice(_ message: @autoclosure () -> String, fileID: String = #fileID) {
        log(level: .notice, message(), fileID: fileID)
    }

    public func warning(_ message: @autoclosure () -> String, fileID: String = #fileID) {
        log(level: .warning, message(), fileID: fileID)
    }

    public func error(_ message: @autoclosure () -> String, fileID: String = #fileID) {
        log(level: .error, message(), fileID: fileID)
    }

    /// What `RegistrationClient` logs, into this log, under the module name `Registration`.
    public var registration: RegistrationLog {
        RegistrationLog { [self] level, message, metadata in
            let mapped: Level = switch level {
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .error: .error
            }
            log(level: mapped, message, metadata: metadata, source: "Registration")
        }
    }

    /// The module part of a `#fileID` ("EdgeAgent/Supervisor.swift" → "EdgeAgent"), as swift-log
    /// names a line's source.
    static func module(_ fileID: String) -> String {
        fileID.firstIndex(of: "/").map { String(fileID[..<$0]) } ?? "n/a"
    }
}

extension AgentLogger.Entry {
    /// `StreamLogHandler`'s line: "TIME LEVEL LABEL: [KEY=VALUE …] [SOURCE] MESSAGE\n", the time local
    /// as strftime's `%Y-%m-%dT%H:%M:%S%z`.
    func line(label: String, time: Date) -> String {
        let details = metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        return "\(Self.timestamp(time)) \(level)\(label.isEmpty ? "" : " ")\(label):\(details) [\(source)] \(message)\n"
    }

    static func timestamp(_ time: Date) -> String {
        var seconds = time_t(time.timeIntervalSince1970.rounded(.down))
        var local = tm()
        guard localtime_r(&seconds, &local) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 255)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
