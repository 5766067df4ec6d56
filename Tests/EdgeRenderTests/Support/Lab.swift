import Foundation
import Synchronization
import Testing

/// What a finished program did.
struct ProgramResult: CustomStringConvertible {
    var command: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String {
        "`\(command.joined(separator: " "))` exited \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)"
    }
}

/// Runs the network tools the renderers are checked with, in throw-away network namespaces.
///
/// A `Lab` owns what it creates: namespaces (unique names, `ekr<pid>x<n>`), background processes and a
/// temporary directory. `tearDown()` removes all of it; call it from `defer` so it runs when a test
/// fails. Nothing here touches the host's own interfaces or addresses.
final class Lab {
    private static let counter = Mutex(0)

    let directory: URL
    private(set) var namespaces: [String] = []
    private var processes: [Process] = []


    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edgekit-render-\(getpid())-\(Lab.nextNumber())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    static func nextNumber() -> Int {
        counter.withLock { value in
            value += 1
            return value
        }
    }

    /// The absolute path of `name`, or a test failure telling how to install it.
    static func tool(_ name: String, package: String? = nil) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw LabError("\(name) is missing: run ./build.sh to install \(package ?? name)")
    }

    /// Runs a program to completion. Output goes through files, so large outputs cannot dead-lock.
    @discardableResult
    func run(_ command: [String], input: String? = nil, environment: [String: String] = [:]) throws -> ProgramResult {
        let process = try makeProcess(command, environment: environment)
        let number = Lab.nextNumber()
        let out = directory.appendingPathComponent("out-\(number)")
        let err = directory.appendingPathComponent("err-\(number)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try inputPipe.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        return ProgramResult(
            command: command, status: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Runs a program and fails the test unless it exits 0.
    @discardableResult
    func mustRun(_ command: [String]) throws -> ProgramResult {
        let result = try run(command)
        guard result.status == 0 else {
            throw LabError("\(result)")
        }
        return result
    }

    /// Starts a long-running program whose output goes to `log`; `tearDown` kills it.
    func start(_ command: [String], log: String, environment: [String: String] = [:]) throws -> Process {
        let process = try makeProcess(command, environment: environment)
        let logURL = directory.appendingPathComponent(log)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
        processes.append(process)
        return process
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }

    private func makeProcess(_ command: [String], environment: [String: String]) throws -> Process {
        let process = Process()
        let executable = command[0].hasPrefix("/") ? command[0] : try Lab.tool(command[0])
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(command.dropFirst())
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        return process
    }

    /// Writes `contents` to a file in the lab directory and returns its path.
    /// `systemd-analyze verify` of a unit at `path` holding `contents`, inside a scratch root with
    /// systemd's own units and an executable stand-in at each of `standIns` (verify checks that the
    /// unit's Exec= programs exist).
    func verifyUnit(_ path: String, _ contents: String, standIns: [String]) throws -> ProgramResult {
        let root = directory.appendingPathComponent("root-\(Lab.nextNumber())")
        let units = root.appendingPathComponent("usr/lib/systemd")
        try FileManager.default.createDirectory(at: units, withIntermediateDirectories: true)
        try mustRun(["cp", "-a", "/lib/systemd/system", units.path])
        for tool in standIns {
            _ = try write(root.lastPathComponent + tool, "#!/bin/sh\n", mode: 0o755)
        }
        _ = try write(root.lastPathComponent + path, contents)
        return try run(["systemd-analyze", "verify", "--man=no", "--root=\(root.path)", path])
    }

    func write(_ name: String, _ contents: String, mode: Int = 0o644) throws -> String {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        return url.path
    }

    // MARK: Namespaces

    /// A new, empty network namespace with loopback up and duplicate address detection off (the lab's
    /// addresses are unique by construction, and DAD would only add seconds).
    func namespace(_ role: String) throws -> String {
        let name = "ekr\(getpid())x\(Lab.nextNumber())\(role)"
        try mustRun(["ip", "netns", "add", name])
        namespaces.append(name)
        try mustRun(["ip", "-n", name, "link", "set", "lo", "up"])
        try sysctl(name, "net.ipv6.conf.all.accept_dad", "0")
        try sysctl(name, "net.ipv6.conf.default.accept_dad", "0")
        return name
    }

    func sysctl(_ namespace: String, _ key: String, _ value: String) throws {
        try mustRun(["ip", "netns", "exec", namespace, "sysctl", "-qw", "\(key)=\(value)"])
    }

    /// A veth pair: `name` in `namespace`, `peerName` in `peerNamespace`, both up.
    func veth(_ namespace: String, _ name: String, _ peerNamespace: String, _ peerName: String) throws {
        try mustRun(["ip", "-n", namespace, "link", "add", name, "type", "veth",
                     "peer", "name", peerName, "netns", peerNamespace])
        try mustRun(["ip", "-n", namespace, "link", "set", name, "up"])
        try mustRun(["ip", "-n", peerNamespace, "link", "set", peerName, "up"])
    }

    /// `ip -n NS ARGS…`
    func ip(_ namespace: String, _ arguments: String...) throws {
        try mustRun(["ip", "-n", namespace] + arguments)
    }

    /// `ip netns exec NS COMMAND…`
    func exec(_ namespace: String, _ command: [String], input: String? = nil) throws -> ProgramResult {
        try run(["ip", "netns", "exec", namespace] + command, input: input)
    }

    /// Polls `condition` every 100 ms until it holds or `timeout` passes; returns the elapsed time
    /// when it held, nil on timeout.
    func waitFor(_ timeout: Duration, _ condition: () throws -> Bool) rethrows -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < timeout {
            if try condition() { return clock.now - start }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try condition() ? clock.now - start : nil
    }

    /// Kills every process the lab started, deletes its namespaces and its directory.
    func tearDown() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        for namespace in namespaces.reversed() {
            _ = try? run(["ip", "netns", "del", namespace])
        }
        namespaces.removeAll()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
