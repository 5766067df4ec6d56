import ArgumentParser
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Runs a root command with edgekit's exit-code contract (README.md, "Commands"):
/// 0 success, 1 a failure the user can fix (printed as one line per problem), 2 usage.
public enum CommandRunner {
    public static func main(_ root: any ParsableCommand.Type, arguments: [String]? = nil) async -> Never {
        let tool = root.configuration.commandName ?? "edgekit"
        do {
            var command = try root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let exitCode as ExitCode {
            exit(exitCode.rawValue)
        } catch let failure as any UserFacingError {
            for line in failure.lines { Output.error(line) }
            exit(1)
        } catch let error as CommandError {
            Output.error(error.message)
            exit(1)
        } catch {
            let code = root.exitCode(for: error)
            let message = root.fullMessage(for: error)
            if code == .success {
                // --help and --version: data, so stdout.
                print(message)
                exit(0)
            }
            if code == .validationFailure {
                Output.error(message)
                Output.error("Run '\(tool) --help' for usage.")
                exit(2)
            }
            // Library errors describe themselves in operator words (they name the input and the fix).
            // Through Any: the error's own type is asked at run time on either toolchain (Swift 6.0
            // calls the cast from `any Error` always true and warns).
            if let described = (error as Any) as? any CustomStringConvertible {
                Output.error(described.description)
                exit(1)
            }
            // Anything else is an unexpected failure: say what it was, still exit 1, never trap.
            Output.error("\(tool): \(message.isEmpty ? String(describing: error) : message)")
            exit(1)
        }
    }
}

/// An error whose text is written for the operator: one or more complete lines, no prefix added.
public protocol UserFacingError: Error {
    var lines: [String] { get }
}

/// A one-line failure raised by a command itself (bad flag combination, file exists, …).
public struct CommandError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// stdout for data, stderr for diagnostics and progress (STYLE.md, "Output").
public enum Output {
    public static func error(_ line: String) {
        StandardStream.error.write(line + "\n")
    }

    public static func data(_ text: String) {
        StandardStream.output.write(text)
    }

    /// True when stderr is a terminal (progress bars only then).
    public static var isTerminal: Bool { isatty(2) == 1 }
}

/// `--format text|json`, shared by every command that prints data.
public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}
