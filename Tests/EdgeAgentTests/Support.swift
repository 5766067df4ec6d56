import EdgeCrypto
import EdgeModel
import Foundation
import Testing
import TestSupport

/// Where `swift build` put the executables (TestSupport's one locator).
let binDirectory = Products.binDirectory
let packageRoot = Products.packageRoot
let examplePlanPath = packageRoot.appendingPathComponent("profiles/example").path

struct ToolResult: CustomStringConvertible {
    var status: Int32
    var signalled: Bool
    var stdout: String
    var stderr: String
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    var description: String { "exit \(status)\(signalled ? " (signal)" : "")\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
}

/// Runs a program with no stdin; output through files so daemons it leaves behind cannot hold a pipe.
func runProgram(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-agent-out-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: scratch.path + ".out", contents: nil)
    FileManager.default.createFile(atPath: scratch.path + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: scratch.path + ".out")
        try? FileManager.default.removeItem(atPath: scratch.path + ".err")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path + ".out"))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path + ".err"))
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return ToolResult(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                      stdout: (try? String(contentsOfFile: scratch.path + ".out", encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: scratch.path + ".err", encoding: .utf8)) ?? "")
}

func runTool(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    try runProgram(binDirectory.appendingPathComponent(name).path, arguments, environment: environment)
}

/// Runs a system tool (not one of ours).
func runSystem(_ tool: String, _ arguments: [String]) throws -> ToolResult {
    let candidates = ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].map { $0 + tool }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("\(tool) is not installed; run ./build.sh to install it")
        throw CocoaError(.fileNoSuchFile)
    }
    return try runProgram(path, arguments)
}

/// A scratch folder with the fixed test master key (0x00…0x1f) in `secrets/`, removed afterwards.
struct Scratch {
    let dir: URL
    var secrets: String { dir.appendingPathComponent("secrets").path }

    static func with<T>(_ body: (Scratch) throws -> T) throws -> T {
        let scratch = try create()
        defer { try? FileManager.default.removeItem(at: scratch.dir) }
        return try body(scratch)
    }

    static func withAsync<T>(_ body: (Scratch) async throws -> T) async throws -> T {
        let scratch = try create()
        defer { try? FileManager.default.removeItem(at: scratch.dir) }
        return try await body(scratch)
    }

    static func create() throws -> Scratch {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-agent-test-\(UUID().uuidString)")
        let secrets = dir.appendingPathComponent("secrets")
        try FileManager.default.createDirectory(at: secrets, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        FileManager.default.createFile(atPath: secrets.appendingPathComponent("master.key").path,
                                       contents: Data((Data(0..<32).base64EncodedString() + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        return Scratch(dir: dir)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A root laid out like a site-a image: site identity (0600), operator key, site stamp, and
    /// `/etc/hostname` already the stamp's (as the rootfs tarball has it; HostnameTests starts from
    /// the disk image's shared `edgekit` instead).
    func makeRoot(_ name: String = "root", site: String = "site-a") throws -> String {
        let root = path(name)
        try FileManager.default.createDirectory(atPath: root + "/etc/edgekit", withIntermediateDirectories: true)
        let identity = try runTool("edgekit", ["keys", "identity", "--plan", examplePlanPath, "--secrets", secrets,
                                               "--site", site, "--out", root + "/etc/edgekit/site.identity"])
        try #require(identity.status == 0, "\(identity)")
        let show = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath, "--secrets", secrets, "--format", "json"])
        let json = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
        let operatorKey = try #require(json?["operator_public_key"] as? String, "\(show)")
        try Data(operatorKey.utf8).write(to: URL(fileURLWithPath: root + "/etc/edgekit/operator.pub"))
        try Data("{\"plan\": \"example\", \"site\": \"\(site)\", \"hostname\": \"\(site)-edge\"}\n".utf8)
            .write(to: URL(fileURLWithPath: root + "/etc/edgekit/site.json"))
        try Data("\(site)-edge\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/hostname"))
        return root
    }

    /// A FAT stick image built by `edgekit stick build`.
    func stickImage(_ name: String, slot: Int = 2, serial: UInt64) throws -> String {
        let out = path(name)
        let result = try runTool("edgekit", ["stick", "build", "--plan", examplePlanPath, "--secrets", secrets, "--site", "site-a",
                                             "--router", String(slot), "--serial", String(serial), "--out", out])
        try #require(result.status == 0, "\(result)")
        return out
    }

    /// A folder stick (a mounted stick) holding one `profile.age`, sealed in-process.
    func stickFolder(_ name: String, slot: Int = 2, serial: UInt64) throws -> String {
        let folder = path(name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let plan = BadProfileCorpus.plan
        let site = plan.site(named: "site-a")!
        let sealed = try BadProfileCorpus.keys.sealedProfile(plan: plan, site: site, router: site.router(slot: slot)!,
                                                             serial: serial, issuedAt: Date(timeIntervalSince1970: TimeInterval(serial)))
        try sealed.write(to: URL(fileURLWithPath: folder + "/profile.age"))
        return folder
    }

    /// `edgekit-agent apply --root ROOT --stick STICK …`
    func apply(_ root: String, _ stick: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> ToolResult {
        try runTool("edgekit-agent", ["apply", "--root", root, "--stick", stick] + extra, environment: environment)
    }
}

/// Every entry under `dir` with type, mode, owner, and bytes or link target: equal only when
/// nothing at all changed.
func treeHash(_ dir: String) -> [String: String] {
    var result: [String: String] = [:]
    guard let walker = FileManager.default.enumerator(atPath: dir) else { return result }
    for case let relative as String in walker {
        let full = dir + "/" + relative
        var info = stat()
        guard lstat(full, &info) == 0 else { continue }
        let meta = "\(String(info.st_mode, radix: 8)) \(info.st_uid):\(info.st_gid)"
        switch info.st_mode & S_IFMT {
        case S_IFLNK:
            result[relative] = meta + " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")
        case S_IFREG:
            let data = FileManager.default.contents(atPath: full) ?? Data()
            result[relative] = meta + " " + data.base64EncodedString()
        default:
            result[relative] = meta
        }
    }
    return result
}

/// Inode number and modification time (to the nanosecond) of `dir` and every entry under it, links
/// not followed: equal only when no file or directory was replaced, rewritten or gained or lost an
/// entry, even with the same bytes (which `treeHash` cannot tell).
func treeIdentity(_ dir: String) -> [String: String] {
    var result: [String: String] = [:]
    func record(_ relative: String, _ full: String) {
        var info = stat()
        guard lstat(full, &info) == 0 else { return }
        result[relative] = "inode \(info.st_ino) mtime \(info.st_mtim.tv_sec).\(String(format: "%09ld", info.st_mtim.tv_nsec))"
    }
    record(".", dir)
    guard let walker = FileManager.default.enumerator(atPath: dir) else { return result }
    for case let relative as String in walker { record(relative, dir + "/" + relative) }
    return result
}

/// The entries whose identity differs between two `treeIdentity` snapshots, for messages.
func changedEntries(_ before: [String: String], _ after: [String: String]) -> [String] {
    Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
        .map { "\($0): \(before[$0] ?? "absent") -> \(after[$0] ?? "absent")" }
}

/// What every reader of the configuration sees: each file outside the agent's own state, links
/// followed (a dangling link is no file), with mode, owner and bytes; plus the applied serial.
func liveView(_ root: String) -> [String: String] {
    var result: [String: String] = [:]
    guard let walker = FileManager.default.enumerator(atPath: root) else { return result }
    for case let relative as String in walker {
        if relative.hasPrefix("var/lib/edgekit") || relative.hasPrefix("run/") || relative == "run" { continue }
        // A new link is made as `.NAME.edgekit-new` next to its path, then renamed: no reader opens
        // that name (exact paths, or *.conf / *.network / *.link / *.netdev globs), so until the rename
        // it is not configuration. Recovery removes it (the tree comparison after recovery checks).
        if relative.hasSuffix(".edgekit-new") { continue }
        let full = root + "/" + relative
        var info = stat()
        guard stat(full, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
        let data = FileManager.default.contents(atPath: full) ?? Data()
        result[relative] = "\(String(info.st_mode, radix: 8)) \(info.st_uid):\(info.st_gid) \(data.base64EncodedString())"
    }
    let manifest = FileManager.default.contents(atPath: root + "/var/lib/edgekit/current/manifest.json")
        .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    result["(serial)"] = "\(manifest?["serial"] ?? "none")"
    return result
}

/// Copies a tree with modes, owners and links.
func copyTree(_ from: String, _ to: String) throws {
    try? FileManager.default.removeItem(atPath: to)
    let result = try runSystem("cp", ["-a", from, to])
    try #require(result.status == 0, "\(result)")
}

/// A program started in the background by `startProgram`, with its output in files.
final class Started: @unchecked Sendable {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    /// The wait status once reaped.
    private(set) var waitStatus: Int32?

    init(pid: pid_t, stdoutPath: String, stderrPath: String) {
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Reaps the process if it has ended; true when it has.
    @discardableResult
    func poll() -> Bool {
        if waitStatus != nil { return true }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        waitStatus = status
        return true
    }

    /// Waits up to `seconds` for the end; true when it ended.
    func wait(seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !poll() {
            if Date() > deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// The exit code when it exited normally, nil when it is running or was killed by a signal.
    var exitCode: Int32? { waitStatus.flatMap { $0 & 0x7f == 0 ? ($0 >> 8) & 0xff : nil } }
    /// The signal that ended it, if one did.
    var signal: Int32? { waitStatus.flatMap { $0 & 0x7f != 0 && $0 & 0x7f != 0x7f ? $0 & 0x7f : nil } }

    /// SIGKILL and reap, and remove the output files: cleanup.
    func discard() {
        if !poll() {
            kill(pid, SIGKILL)
            _ = wait(seconds: 5)
        }
        unlink(stdoutPath)
        unlink(stderrPath)
    }
}

/// Starts a program in the background with stdout and stderr in files, stdin from /dev/null, an empty
/// signal mask and every signal at its default. Swift Testing's threads block SIGTERM and others,
/// and a child inherits the spawning thread's mask: without this a daemon under test would never
/// see the SIGTERM the test sends.
func startProgram(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Started {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-agent-bg-\(UUID().uuidString)").path
    let started = Started(pid: 0, stdoutPath: base + ".out", stderrPath: base + ".err")
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, started.stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, started.stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let code = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard code == 0 else {
        Issue.record("cannot start \(path): \(String(cString: strerror(code)))")
        throw CocoaError(.executableLoad)
    }
    return Started(pid: pid, stdoutPath: started.stdoutPath, stderrPath: started.stderrPath)
}

/// Polls `condition` every 50 ms for up to `seconds`; true as soon as it holds.
func waitUntil(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// The first path of `tool` in the usual system directories.
func systemTool(_ tool: String) -> String? {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Whether `pid` runs and is not a zombie.
func isRunning(_ pid: pid_t) -> Bool {
    guard pid > 0, kill(pid, 0) == 0,
          let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let state = stat.split(separator: ")").last?.split(separator: " ").first else { return false }
    return state != "Z"
}

/// Stand-ins for every tool `--services processes` runs, for tests about what the agent does with
/// its services rather than about the daemons themselves (NamespaceTests runs the real ones). Each
/// appends `call TOOL ARG…` and its whole environment (`env K=V` lines) to `record`; radvd,
/// keepalived and wireguard-go then stay up (wireguard-go first creates the control socket path the
/// agent waits for, so the agent must run with a private /run: `runIsolated`). keepalived exits 1
/// at start when its config file contains `$EDGEKIT_TEST_KEEPALIVED_FAILS_ON` (passed down through
/// the agent's environment). `wg show wg-relay latest-handshakes` says the test plan's relay has
/// had no handshake yet, and `wg show wg-relay endpoints` that it has no endpoint.
struct FakeTools {
    static let names = ["sysctl", "nft", "ip", "wg", "radvd", "keepalived", "wireguard-go"]
    /// The test plan's relay key, which the agent finds its tunnel by.
    static let relayKey = BadProfileCorpus.keys.relayWireGuardKey().publicKeyBase64
    let directory: String
    let record: String

    /// With `recording`, also wrappers on PATH for these real tools: each records its call, then
    /// execs the tool (for the children the agent runs by name, such as the stick readers).
    init(in scratch: Scratch, _ name: String = "fakes", recording real: [String] = []) throws {
        directory = scratch.path(name)
        record = scratch.path(name + ".record")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: record, contents: nil)
        for tool in real {
            let path = try #require(systemTool(tool), "\(tool) is not installed: run ./build.sh deps")
            let body = """
                #!/bin/sh
                { printf 'call %s' '\(tool)'; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; env | sed 's/^/env /'; } >> '\(record)'
                exec '\(path)' "$@"

                """
            FileManager.default.createFile(atPath: directory + "/" + tool, contents: Data(body.utf8), attributes: [.posixPermissions: 0o755])
        }
        for tool in Self.names {
            var body = """
                #!/bin/sh
                { printf 'call %s' '\(tool)'; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'; env | sed 's/^/env /'; } >> '\(record)'

                """
            switch tool {
            case "wg":
                body += """
                    [ "$1 $2 $3" = "show wg-relay latest-handshakes" ] && printf '%s\\t0\\n' '\(Self.relayKey)'
                    [ "$1 $2 $3" = "show wg-relay endpoints" ] && printf '%s\\t(none)\\n' '\(Self.relayKey)'
                    exit 0

                    """
            case "keepalived":
                body += """
                    cfg=""; prev=""
                    for a in "$@"; do [ "$prev" = "-f" ] && cfg="$a"; prev="$a"; done
                    if [ -n "$EDGEKIT_TEST_KEEPALIVED_FAILS_ON" ] && grep -q "$EDGEKIT_TEST_KEEPALIVED_FAILS_ON" "$cfg"; then
                        echo "keepalived: configuration rejected (test stand-in)" >&2; exit 1
                    fi
                    exec sleep 600

                    """
            case "radvd":
                body += "exec sleep 600\n"
            case "wireguard-go":
                body += "mkdir -p /run/wireguard && : > \"/run/wireguard/$2.sock\" && exec sleep 600\n"
            default:
                body += "exit 0\n"
            }
            FileManager.default.createFile(atPath: directory + "/" + tool, contents: Data(body.utf8), attributes: [.posixPermissions: 0o755])
        }
    }

    /// For the agent: every tool replaced, by override and on PATH (the supervisor runs `wg` by name).
    var environment: [String: String] {
        var env = ["PATH": directory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")]
        for tool in Self.names { env["EDGEKIT_AGENT_TOOL_" + tool.uppercased().replacingOccurrences(of: "-", with: "_")] = directory + "/" + tool }
        return env
    }

    var text: String { (try? String(contentsOfFile: record, encoding: .utf8)) ?? "" }
    /// `TOOL ARG…` of every call so far.
    var calls: [String] { text.split(separator: "\n").filter { $0.hasPrefix("call ") }.map { String($0.dropFirst(5)) } }
    func clear() { FileManager.default.createFile(atPath: record, contents: nil) }

    /// Stops the stand-in daemons the agent started under `root` (their pid files) and forgets them.
    static func stopDaemons(under root: String) {
        let processes = root + "/run/edgekit/processes"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: processes)) ?? [] where name.hasSuffix(".pid") {
            if let pid = pid_t(((try? String(contentsOfFile: processes + "/" + name, encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                kill(pid, SIGKILL)
            }
        }
        try? FileManager.default.removeItem(atPath: processes)
    }
}

/// `edgekit-agent ARGS` in a private mount namespace with its own tmpfs /run (wireguard-go's control
/// socket path never meets the host's) and a network namespace of its own with only loopback (nothing
/// it runs can touch the host's network), else as `runTool`. Loopback must be up: Foundation's
/// Process needs it (CFSocket's wakeup pair), and without it the agent waits forever on its first child.
func runIsolated(_ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    try runProgram(systemTool("unshare")!, isolatedCommand(arguments), environment: environment)
}

/// The `unshare` arguments of `runIsolated`, for `startProgram`; `setup` is more shell run first.
func isolatedCommand(_ arguments: [String], setup: String = "") -> [String] {
    let agent = binDirectory.appendingPathComponent("edgekit-agent").path
    return ["-m", "-n", "--propagation", "private", "sh", "-c",
            "\(systemTool("ip")!) link set lo up && mount -t tmpfs tmpfs /run && \(setup.isEmpty ? "" : setup + " && ")exec \"$0\" \"$@\"",
            agent] + arguments
}

/// The tree under `root` as `treeHash` sees it, without the runtime directory (pid files and daemon logs).
func storedTree(_ root: String) -> [String: String] {
    treeHash(root).filter { !($0.key == "run" || $0.key.hasPrefix("run/")) }
}
