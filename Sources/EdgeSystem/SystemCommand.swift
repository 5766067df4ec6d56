import EdgeErrors
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One run of a system tool: what it printed and how it ended.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data

    public var succeeded: Bool { status == 0 }
    public var output: String { String(decoding: stdout, as: UTF8.self) }
    public var errorText: String { String(decoding: stderr, as: UTF8.self).trimmingWhitespace() }
}

/// Runs the standard tools edgekit relies on (mtools, blkid, mkfs.vfat, wg, nft, …).
///
/// Secrets never go in `arguments` (visible in /proc); pass them on stdin or in 0600 files.
public enum SystemCommand {
    /// The directories searched for tools, in order; sbin included because Debian keeps
    /// mkfs.vfat, blkid and nft there and a non-root PATH may lack it.
    static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The full path of `tool`, or nil when it is not installed.
    public static func find(_ tool: String) -> String? {
        if tool.contains("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
        let fromEnvironment = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for dir in fromEnvironment + searchPath {
            let candidate = dir.appendingPath(tool)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `tool` and waits. Throws only when it cannot start; a non-zero exit is in the result.
    public static func run(_ tool: String, _ arguments: [String], stdin: Data? = nil,
                           environment: [String: String]? = nil) throws -> CommandResult {
        guard let path = find(tool) else { throw SystemCommandError.missingTool(tool) }
        let started: SpawnedTool
        do {
            started = try SpawnedTool.start(path, arguments, environment: environment,
                                          stdin: stdin == nil ? .null : .pipe, stdout: .pipe, stderr: .pipe)
        } catch {
            throw SystemCommandError.cannotStart(tool, error.description)
        }
        if let stdin { started.feed(stdin) }
        // Drain stderr concurrently with stdout, so a tool that fills one pipe cannot deadlock us.
        let errorData = LockedData()
        let group = DispatchGroup()
        group.enter()
        let errors = started.errors!
        DispatchQueue.global().async {
            errorData.set(readCapped(errors, limit: .max, drain: false).data)
            close(errors)
            group.leave()
        }
        let outData = readCapped(started.output!, limit: .max, drain: false).data
        close(started.output!)
        group.wait()
        return CommandResult(status: started.wait().status, stdout: outData, stderr: errorData.get())
    }

    /// Runs a long job with its stderr passed straight to ours, so the operator sees its progress;
    /// stdout is discarded. Returns the exit status.
    public static func runShowingProgress(_ tool: String, _ arguments: [String], environment: [String: String]? = nil) throws -> Int32 {
        guard let path = find(tool) else { throw SystemCommandError.missingTool(tool) }
        let started: SpawnedTool
        do {
            started = try SpawnedTool.start(path, arguments, environment: environment, stdin: .null, stdout: .parentError, stderr: .parentError)
        } catch {
            throw SystemCommandError.cannotStart(tool, error.description)
        }
        return started.wait().status
    }

    /// Runs `tool` and throws its stderr as a one-line error when it fails.
    @discardableResult
    public static func check(_ tool: String, _ arguments: [String], stdin: Data? = nil, what: String,
                             environment: [String: String]? = nil) throws -> CommandResult {
        let result = try run(tool, arguments, stdin: stdin, environment: environment)
        guard result.succeeded else {
            let detail = result.errorText.split(separator: "\n").first.map(String.init) ?? "exit \(result.status)"
            throw SystemCommandError.failed(tool, what: what, detail: detail)
        }
        return result
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = ThreadLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// A system tool that is missing, would not start, or failed. Codes: `system.missing-tool`,
/// `system.cannot-start`, `system.tool-failed`; the input is the tool's name.
public enum SystemCommandError: EdgeError, Equatable {
    case missingTool(String)
    case cannotStart(String, String)
    case failed(String, what: String, detail: String)

    public var description: String {
        switch self {
        case .missingTool(let tool): "\(tool) is not installed (./build.sh installs it; on an appliance it is part of the image)"
        case .cannotStart(let tool, let why): "cannot start \(tool): \(why)"
        case .failed(let tool, let what, let detail): "\(what) failed: \(tool): \(detail)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .missingTool: "system.missing-tool"
        case .cannotStart: "system.cannot-start"
        case .failed: "system.tool-failed"
        }
    }

    public var input: String? {
        switch self {
        case .missingTool(let tool), .cannotStart(let tool, _), .failed(let tool, _, _): tool
        }
    }
}
