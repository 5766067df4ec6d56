import Foundation
import Testing

/// `edgekit-agent run` as a service (SIGTERM/SIGINT graceful shutdown), with the built binary on
/// scratch roots. No root needed.
@Suite struct RunServiceTests {
    static var agentPath: String { binDirectory.appendingPathComponent("edgekit-agent").path }

    /// Starts `run --services none` on an applied root, waits for its notify socket, pokes it with
    /// `notify master`, sends `signal`, and hands `check` the ended process, how long it took to end
    /// and the root.
    func runAndStop(_ scratch: Scratch, signal: Int32, _ check: (Started, TimeInterval, String) throws -> Void) throws {
        let root = try scratch.makeRoot()
        let stick = try scratch.stickFolder("stick", slot: 2, serial: 1000)
        let socket = root + "/run/edgekit/agent.sock"
        let agent = try startProgram(Self.agentPath, ["run", "--root", root, "--stick", stick, "--services", "none",
                                                      "--registration-deadline", "2"])
        defer { agent.discard() }
        let listening = waitUntil(60) { FileManager.default.fileExists(atPath: socket) || agent.poll() }
        try #require(listening && !agent.poll(), "the agent never listened on \(socket): \(agent.stderr)")

        // notify with the same --root reaches this agent: it logs the transition and registers as master.
        let notify = try runTool("edgekit-agent", ["notify", "--root", root, "master"])
        #expect(notify.status == 0 && notify.stderr.isEmpty, "\(notify)")
        #expect(waitUntil(5) { agent.stderr.contains("VRRP state: master") }, "\(agent.stderr)")

        let sent = Date()
        kill(agent.pid, signal)
        let ended = agent.wait(seconds: 10)
        let elapsed = Date().timeIntervalSince(sent)
        try #require(ended, "still running 10 s after signal \(signal): \(agent.stderr)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the notify socket must be removed")
        #expect(FileManager.default.fileExists(atPath: root + "/run/edgekit/status.json"), "status stays for `status`")
        try check(agent, elapsed, root)
    }

    @Test("run: SIGTERM ends the loop within a second, one line, notify socket removed, exit 0")
    func sigtermStopsPromptly() throws {
        try Scratch.with { scratch in
            try runAndStop(scratch, signal: SIGTERM) { agent, elapsed, root in
                #expect(agent.exitCode == 0, "exit \(String(describing: agent.exitCode)), signal \(String(describing: agent.signal)): \(agent.stderr)")
                #expect(elapsed < 1.5, "took \(elapsed) s to stop")
                let stopLines = agent.stderr.split(separator: "\n").filter { $0.contains("stopped supervising") }
                #expect(stopLines.count == 1, "\(agent.stderr)")
                #expect(stopLines.first?.hasSuffix("graceful shutdown (SIGTERM or SIGINT): stopped supervising; removed "
                                                   + root + "/run/edgekit/agent.sock; the router's services keep running") == true,
                        "\(agent.stderr)")
                let status = try ApplyTests.status(root)
                #expect((status["agent"] as? String)?.hasPrefix("not running (stopped at ") == true, "\(status)")
                #expect(status["stick"] as? String == "found", "the last stick stays known: \(status)")
            }
        }
    }

    @Test("run: SIGINT is a graceful shutdown too")
    func sigintStopsPromptly() throws {
        try Scratch.with { scratch in
            try runAndStop(scratch, signal: SIGINT) { agent, elapsed, _ in
                #expect(agent.exitCode == 0, "\(agent.stderr)")
                #expect(elapsed < 1.5, "took \(elapsed) s to stop")
            }
        }
    }

    @Test("a stick that appears after the boot found none is applied without a restart, and registered")
    func stickInsertedLater() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let late = scratch.path("late-stick")
            let agent = try startProgram(Self.agentPath, ["run", "--root", root, "--stick", late, "--services", "none",
                                                          "--registration-deadline", "2"])
            defer { agent.discard() }
            let noStick = "no profile stick found (label EDGEPROFILE); nothing applied yet"
            try #require(waitUntil(60) { agent.stderr.contains(noStick) || agent.poll() } && !agent.poll(), "\(agent.stderr)")
            #expect(try ApplyTests.status(root)["stick"] as? String == "none")
            // Plugged in: the folder appears at once (built beside it, then renamed into place).
            let built = try scratch.stickFolder("stick-built", slot: 2, serial: 1000)
            let inserted = Date()
            #expect(rename(built, late) == 0)
            let applied = waitUntil(20) { (try? ApplyTests.status(root))?["generation"] as? Int == 1 }
            let seconds = Date().timeIntervalSince(inserted)
            let status = try ApplyTests.status(root)
            #expect(applied, "the late stick was not applied: \(status)\n\(agent.stderr)")
            print("late stick: applied \(String(format: "%.2f", seconds)) s after it appeared (target: without a reboot, within seconds)")
            #expect(status["stick"] as? String == "found" && status["stick_path"] as? String == late, "\(status)")
            #expect(status["note"] is NSNull, "the boot's no-stick note goes with the apply: \(status)")
            #expect(agent.stderr.contains("stick: \(late) appeared; applying it"), "\(agent.stderr)")
            // And it registers the new generation (no relay here: the attempt fails, but it is made).
            let attempted = waitUntil(20) { ((try? ApplyTests.status(root))?["registration"] as? String)?.hasPrefix("failed") == true }
            #expect(attempted, "\((try? ApplyTests.status(root)) ?? [:])")
            // Still there a while later: applied once, not again at every look.
            Thread.sleep(forTimeInterval: 2.5)
            #expect(agent.stderr.components(separatedBy: "appeared; applying it").count == 2, "\(agent.stderr)")
        }
    }

    @Test("status: running while run runs, not running once it is killed; a manual apply updates the stick fields")
    func statusFollowsTheAgent() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", slot: 2, serial: 1000)
            let agent = try startProgram(Self.agentPath, ["run", "--root", root, "--stick", stick, "--services", "none",
                                                          "--registration-deadline", "2"])
            defer { agent.discard() }
            let socket = root + "/run/edgekit/agent.sock"
            try #require(waitUntil(60) { FileManager.default.fileExists(atPath: socket) || agent.poll() } && !agent.poll(), "\(agent.stderr)")
            var status = try ApplyTests.status(root)
            #expect(status["agent"] as? String == "running (services: none)", "\(status)")
            #expect(status["stick"] as? String == "found" && status["stick_path"] as? String == stick, "\(status)")
            // No tunnel here: the keys are there all the same, empty ones null.
            #expect(status["tunnel"] as? String == "absent" && status["handshake_age_seconds"] is NSNull, "\(status)")
            #expect(status["failed_services"] is NSNull && status["note"] is NSNull, "\(status)")
            // Health while run runs: unhealthy here (no uplink port, no relay), with the reason.
            let healthy = waitUntil(10) { ((try? ApplyTests.status(root))?["health"] as? [String: Any]) != nil }
            status = try ApplyTests.status(root)
            let health = try #require(status["health"] as? [String: Any], "\(status)")
            #expect(health["verdict"] as? String == "unhealthy" && (health["reason"] as? String)?.contains("uplink") == true, "\(health)")
            #expect(healthy && health["probe_answered"] as? Bool == false, "\(health)")
            #expect(try String(contentsOfFile: root + "/run/edgekit/health", encoding: .utf8) == "1\n")

            // Killed, not stopped: the record says running, the pid says otherwise.
            kill(agent.pid, SIGKILL)
            #expect(agent.wait(seconds: 10))
            status = try ApplyTests.status(root)
            #expect(status["agent"] as? String == "not running (pid \(agent.pid) ended without stopping cleanly)", "\(status)")
            #expect(status["health"] is NSNull, "no agent, no health: \(status)")
            let text = try runTool("edgekit-agent", ["status", "--root", root])
            #expect(text.stdout.contains("agent         not running (pid \(agent.pid) ended without stopping cleanly)"), "\(text)")

            // A manual apply updates what status says of the stick.
            let newer = try scratch.stickFolder("newer", slot: 2, serial: 1001)
            #expect(try scratch.apply(root, newer).status == 0)
            status = try ApplyTests.status(root)
            #expect(status["stick"] as? String == "found" && status["stick_path"] as? String == newer, "\(status)")
            #expect((status["last_apply"] as? String)?.hasPrefix("applied generation 2 (site site-a router 2, serial 1001) from \(newer)") == true,
                    "\(status)")
            let older = try scratch.stickFolder("older", slot: 2, serial: 999)
            let refused = try scratch.apply(root, older)
            #expect(refused.status == 1)
            status = try ApplyTests.status(root)
            #expect(status["stick"] as? String == "refused" && status["stick_path"] as? String == older, "\(status)")
            #expect(status["last_apply"] as? String == refused.stderrLines.first, "\(status)")

            // The runtime record is the one file an apply of the same stick may rewrite (its last
            // line changes from "applied" to "already applied"); once it says so, not even that.
            #expect(try scratch.apply(root, newer).status == 0)
            let identity = treeIdentity(root)
            let again = try scratch.apply(root, newer)
            #expect(again.stdout.hasPrefix("generation 2 already applied"), "\(again)")
            #expect(treeIdentity(root) == identity, "\(changedEntries(identity, treeIdentity(root)))")
        }
    }

    @Test("run: flags that make no sense are usage errors")
    func runValidatesIntervals() throws {
        let result = try runTool("edgekit-agent", ["run", "--root", "/nonexistent", "--tunnel-check-interval", "0"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("--tunnel-check-interval must be at least 1 second, not 0"), "\(result)")
    }
}
