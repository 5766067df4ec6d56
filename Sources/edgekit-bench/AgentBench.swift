import Foundation

/// `edgekit-bench agent AGENT EDGEKIT PLAN_DIR [RUNS]` (bench/agent.sh): the agent targets of
/// issue 6, measured on the given agent binary as separate processes, the way systemd runs it.
///
/// - apply: a fresh image root (site-a's identity, operator key and stamp, nothing applied) and a
///   FAT stick image built by `edgekit stick build` for site-a router 1; `apply --root R --stick
///   STICK --services none` from process start to exit: read the stick (mtools), unseal, verify,
///   render, write and fsync the generation, switch. Service restarts are excluded (`none`
///   restarts nothing); everything else is in, process start-up included.
/// - no-op re-apply: the same stick again on an applied root.
/// - size of the binary as given (bench/agent.sh passes the stripped static appliance binary).
/// - resident memory of `run --services none` on the applied root, sampled while it supervises.
enum AgentBench {
    static func main(agent: String, edgekit: String, plan: String, runs: Int) throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-bench-agent-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        // Throw-away secrets, an image root for site-a, a stick for its router 1.
        let secrets = work + "/secrets"
        try check(edgekit, ["keys", "init", "--plan", plan, "--secrets", secrets])
        let template = work + "/image-root"
        try FileManager.default.createDirectory(atPath: template + "/etc/edgekit", withIntermediateDirectories: true)
        try check(edgekit, ["keys", "identity", "--plan", plan, "--secrets", secrets, "--site", "site-a",
                            "--out", template + "/etc/edgekit/site.identity"])
        let show = try check(edgekit, ["keys", "show", "--plan", plan, "--secrets", secrets, "--format", "json"])
        guard let keys = try JSONSerialization.jsonObject(with: Data(show.utf8)) as? [String: Any],
              let operatorKey = keys["operator_public_key"] as? String else {
            throw BenchFailure("edgekit keys show gave no operator_public_key: \(show)")
        }
        try Data(operatorKey.utf8).write(to: URL(fileURLWithPath: template + "/etc/edgekit/operator.pub"))
        let planName = URL(fileURLWithPath: plan).lastPathComponent
        try Data("{\"plan\": \"\(planName)\", \"site\": \"site-a\", \"hostname\": \"site-a-edge\"}\n".utf8)
            .write(to: URL(fileURLWithPath: template + "/etc/edgekit/site.json"))
        // Already the stamp's hostname (as the rootfs tarball has it): the figures are the stick's apply.
        try Data("site-a-edge\n".utf8).write(to: URL(fileURLWithPath: template + "/etc/hostname"))
        let stick = work + "/stick.img"
        try check(edgekit, ["stick", "build", "--plan", plan, "--secrets", secrets, "--site", "site-a", "--router", "1",
                            "--serial", "1000", "--out", stick])

        // (a) apply onto a fresh copy of the image root each time.
        var applies: [Double] = []
        var applied = ""
        for run in 0..<runs {
            let root = work + "/root-\(run)"
            try check("/bin/cp", ["-a", template, root])
            let (milliseconds, output) = try timed(agent, ["apply", "--root", root, "--stick", stick, "--services", "none"])
            guard output.hasPrefix("applied generation 1 ") else { throw BenchFailure("apply did not apply: \(output)") }
            applies.append(milliseconds)
            if run == 0 { applied = root } else { try FileManager.default.removeItem(atPath: root) }
        }
        line("apply, stick → files in place, services excluded (median of \(runs))", applies, target: 200)

        // (b) the same stick again: nothing to write, nothing to restart.
        var noops: [Double] = []
        for _ in 0..<runs * 2 {
            let (milliseconds, output) = try timed(agent, ["apply", "--root", applied, "--stick", stick, "--services", "none"])
            guard output.contains("nothing changed, nothing restarted") else { throw BenchFailure("re-apply changed something: \(output)") }
            noops.append(milliseconds)
        }
        line("no-op re-apply (median of \(runs * 2))", noops, target: 50)

        // (c) size.
        let size = (try FileManager.default.attributesOfItem(atPath: agent)[.size] as? NSNumber)?.intValue ?? 0
        let mebibytes = Double(size) / 1_048_576
        print(String(format: "agent binary %@: %.1f MiB (%d bytes) (target ≤ 20 MiB stripped, issue 20) %@", agent, mebibytes, size,
                     mebibytes <= 20 ? "PASS" : "MISSED"))

        // (d) resident memory while supervising: after the boot apply (no-op), a registration
        // attempt and a tunnel check have happened; sampled once a second for 5 s.
        let (pid, log) = try spawn(agent, ["run", "--root", applied, "--stick", stick, "--services", "none",
                                           "--registration-deadline", "2", "--tunnel-check-interval", "1"], output: work + "/run.log")
        var reaped = false
        defer {
            if !reaped {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        let socket = applied + "/run/edgekit/agent.sock"
        let started = Date()
        while !FileManager.default.fileExists(atPath: socket) {
            guard Date().timeIntervalSince(started) < 30 else { throw BenchFailure("run never listened: \(contents(log))") }
            usleep(20_000)
        }
        Thread.sleep(forTimeInterval: 5)
        var rss: [Double] = [], hwm = 0.0
        for _ in 0..<5 {
            let status = contents("/proc/\(pid)/status")
            rss.append(kibibytes(status, "VmRSS:"))
            hwm = max(hwm, kibibytes(status, "VmHWM:"))
            Thread.sleep(forTimeInterval: 1)
        }
        let resident = median(rss) / 1024
        let last = contents("/proc/\(pid)/status")
        print(String(format: "  of it: anonymous (heap, stacks) %.1f MiB, file-backed (the binary's and libraries' pages in use) %.1f MiB",
                     kibibytes(last, "RssAnon:") / 1024, kibibytes(last, "RssFile:") / 1024))
        print(String(format: "run while supervising: VmRSS %.1f MiB (median of 5 samples, 5-9 s after start), VmHWM %.1f MiB (target ≤ 15 MiB, issue 20) %@",
                     resident, hwm / 1024, resident <= 15 ? "PASS" : "MISSED"))
        let stopping = DispatchTime.now().uptimeNanoseconds
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped = true
        let stopMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - stopping) / 1_000_000
        let exitCode = status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        print(String(format: "run: SIGTERM → exit %d in %.1f ms", exitCode, stopMilliseconds))
        if exitCode != 0 { throw BenchFailure("run did not exit 0 on SIGTERM: \(contents(log))") }
    }

    /// The median against the target, with the spread: fsync latency on a shared disk varies a lot.
    static func line(_ what: String, _ samples: [Double], target: Double) {
        let value = median(samples)
        print(String(format: "%@: %.1f ms, range %.1f–%.1f ms (target < %.0f ms) %@", what, value, samples.min() ?? 0,
                     samples.max() ?? 0, target, value < target ? "PASS" : "MISSED"))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    static func contents(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// `VmRSS:\t   1234 kB` → 1234.
    static func kibibytes(_ status: String, _ field: String) -> Double {
        let line = status.split(separator: "\n").first { $0.hasPrefix(field) } ?? ""
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return words.count >= 2 ? Double(words[1]) ?? 0 : 0
    }

    /// Runs to the end; stdout, or a failure with stderr.
    @discardableResult
    static func check(_ tool: String, _ arguments: [String]) throws -> String {
        let (pid, log) = try spawn(tool, arguments, output: nil)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let output = contents(log)
        unlink(log)
        unlink(log + ".err")
        guard status == 0 else { throw BenchFailure("\(tool) \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }

    /// Wall time from spawn to reaped exit, in milliseconds, and stdout; a non-zero exit is a failure.
    static func timed(_ tool: String, _ arguments: [String]) throws -> (Double, String) {
        let start = DispatchTime.now().uptimeNanoseconds
        let (pid, log) = try spawn(tool, arguments, output: nil)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
        let output = contents(log)
        let errors = contents(log + ".err")
        unlink(log)
        unlink(log + ".err")
        guard status == 0 else { throw BenchFailure("\(tool) \(arguments.joined(separator: " ")) failed: \(errors)") }
        return (milliseconds, output)
    }

    /// posix_spawn with stdout to `output` (a fresh temporary file by default), stderr next to it.
    static func spawn(_ tool: String, _ arguments: [String], output: String?) throws -> (pid_t, String) {
        let log = output ?? FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-bench-\(UUID().uuidString)").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, output == nil ? log + ".err" : log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The bench runs on Swift's threads, which block SIGTERM: the agent must see ours.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, tool, &actions, &attributes, argv, environ)
        guard code == 0 else { throw BenchFailure("cannot start \(tool): \(String(cString: strerror(code)))") }
        return (pid, log)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
