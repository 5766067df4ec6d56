import Foundation

/// Debian's `promtool` (package prometheus): checks exposition text, configs and rules, and runs
/// rule unit tests. Tests skip with `.requiresTool("promtool")` where it is missing.
public enum Promtool {
    /// Runs `promtool ARGUMENTS` with `input` on stdin (nil: none); exit status and stdout+stderr.
    public static func run(_ arguments: [String], input: String? = nil, in directory: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["promtool"] + arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `promtool check metrics` on exposition text: nil when it passes (lint included), else its words.
    public static func problems(inMetrics text: String) throws -> String? {
        let result = try run(["check", "metrics"], input: text)
        return result.status == 0 ? nil : "promtool check metrics exit \(result.status): \(result.output)"
    }
}
