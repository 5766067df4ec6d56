import Foundation
import Testing

/// Runs the stock Debian `age`, `age-keygen` and `signify-openbsd` for interop tests.
///
/// Interop is the point of implementing these formats, so a missing tool is a test failure
/// (with the fix spelled out), never a silent skip.
struct ToolResult: Sendable {
    var status: Int32
    var stdout: Data
    var stderr: Data

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

enum Tool {
    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String {
            "required tool '\(name)' is not installed; run ./build.sh (it installs age and signify-openbsd)"
        }
    }

    /// The absolute path of `name` on PATH (or in /usr/bin), or nil.
    static func path(_ name: String) -> String? {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in searchPath.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Fails the current test (by recording an issue and throwing) if `name` is missing.
    static func require(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        guard let path = path(name) else {
            Issue.record(Missing(name: name), sourceLocation: sourceLocation)
            throw Missing(name: name)
        }
        return path
    }

    /// Runs `name` with `arguments` in `directory`, feeding `stdin`, and collects its output.
    @discardableResult
    static func run(_ name: String, _ arguments: [String], in directory: URL? = nil, stdin: Data = Data(),
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> ToolResult {
        _ = ignoreSIGPIPE
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try require(name, sourceLocation: sourceLocation))
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read both pipes concurrently with the process so large outputs cannot deadlock it.
        let outBox = DataBox(), errBox = DataBox()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { outBox.set(output.fileHandleForReading.readDataToEndOfFile()) }
        DispatchQueue.global().async(group: group) { errBox.set(errors.fileHandleForReading.readDataToEndOfFile()) }
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        group.wait()
        return ToolResult(status: process.terminationStatus, stdout: outBox.get(), stderr: errBox.get())
    }

    /// A tool that exits without reading its stdin must not kill the test runner with SIGPIPE.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    private final class DataBox: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
        func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
    }
}

/// A fresh temporary directory per test, removed afterwards.
struct TempDirectory: ~Copyable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("edgecrypto-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func write(_ name: String, _ data: Data) throws -> URL {
        let target = file(name)
        try data.write(to: target)
        return target
    }

    func write(_ name: String, _ text: String) throws -> URL { try write(name, Data(text.utf8)) }

    func read(_ name: String) throws -> Data { try Data(contentsOf: file(name)) }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Deterministic pseudo-random test data (so failures reproduce), fast enough for hundreds of KiB.
func testBytes(_ count: Int, seed: UInt64 = 0x5EED) -> Data {
    var state = seed
    var out = Data(count: count)
    out.withUnsafeMutableBytes { buffer in
        for i in buffer.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            buffer[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
    }
    return out
}
