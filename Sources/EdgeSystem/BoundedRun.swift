import Dispatch
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One run of a tool whose output was read only up to a limit (`SystemCommand.runBounded`).
public struct BoundedResult: Sendable {
    /// The exit status; meaningless when `signal` is set.
    public var status: Int32
    /// The signal that ended the tool, if one did (also when it was stopped for printing too much).
    public var signal: Int32?
    /// At most the limit's bytes of stdout.
    public var stdout: Data
    /// At most `BoundedResult.errorLimit` bytes of stderr.
    public var stderr: Data
    /// The tool printed more than the limit on stdout and was killed.
    public var exceeded: Bool

    /// How much stderr is kept: enough for any diagnostic, never a flood.
    public static let errorLimit = 64 * 1024

    public var succeeded: Bool { status == 0 && signal == nil && !exceeded }

    /// Why the tool failed, on one line: its first stderr line that is not noise (lines starting
    /// with one of `skipping`, e.g. a version banner), else how it ended. Print it through
    /// `Printable.escaped`: it is the tool's text, and may echo the input.
    public func reason(skipping prefixes: [String] = []) -> String {
        let lines = String(decoding: stderr, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingSpaces() }
            .filter { line in !line.isEmpty && !prefixes.contains { line.hasPrefix($0) } }
        if let first = lines.first { return first }
        if let signal { return "killed by signal \(signal)" }
        return "exit \(status)"
    }
}

/// Text from outside (file names, labels, tool output) made safe to print on one line.
public enum Printable {
    /// `text` with control characters (newline, escape, DEL, …) written as `\n`, `\t`, `\r` or
    /// `\u{1b}`, so an echoed value can neither break the one-line rule nor drive a terminal.
    public static func escaped(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value):
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}

extension SystemCommand {
    /// Runs `tool` reading at most `outputLimit` bytes of its stdout: a tool that prints more is
    /// killed and the result says `exceeded`, so reading an untrusted file through a tool (mtype,
    /// debugfs cat) costs at most the limit in memory whatever the file claims or holds.
    /// `stdinFile`: the tool reads that file as its standard input (else /dev/null).
    public static func runBounded(_ tool: String, _ arguments: [String], stdinFile: String? = nil, outputLimit: Int) throws -> BoundedResult {
        guard let path = find(tool) else { throw SystemCommandError.missingTool(tool) }
        let started: SpawnedTool
        do {
            started = try SpawnedTool.start(path, arguments, environment: nil, stdin: stdinFile.map { .file($0) } ?? .null, stdout: .pipe, stderr: .pipe)
        } catch {
            throw SystemCommandError.cannotStart(tool, error.description)
        }
        // stderr is drained on another thread (kept up to its limit, the rest discarded) so a
        // tool that writes much there never blocks.
        let errorData = LockedData()
        let group = DispatchGroup()
        group.enter()
        let errors = started.errors!
        DispatchQueue.global().async {
            errorData.set(SystemCommand.readCapped(errors, limit: BoundedResult.errorLimit, drain: true).data)
            close(errors)
            group.leave()
        }
        let (output, exceeded) = readCapped(started.output!, limit: outputLimit, drain: false)
        if exceeded { kill(started.pid, SIGKILL) }
        close(started.output!)
        group.wait()
        let (status, signal) = started.wait()
        return BoundedResult(status: signal == nil ? status : 128 + status, signal: signal,
                             stdout: output, stderr: errorData.get(), exceeded: exceeded)
    }

    /// Reads `fd` until end of file or until more than `limit` bytes came (then `exceeded`);
    /// with `drain`, bytes past the limit are read and dropped until end of file.
    static func readCapped(_ fd: Int32, limit: Int, drain: Bool) -> (data: Data, exceeded: Bool) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                return (data, false)
            }
            if count == 0 { return (data, false) }
            let room = max(0, limit - data.count)
            data.append(contentsOf: buffer[0..<min(count, room)])
            if count > room, !drain { return (data, true) }
        }
    }
}
