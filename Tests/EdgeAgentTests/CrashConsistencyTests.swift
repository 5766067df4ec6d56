import Foundation
import Testing
import TestSupport

/// Kills the agent (SIGKILL, as a power cut would stop it) at every step of an apply, through the
/// debug-only EDGEKIT_AGENT_CRASH_AT hook: what readers see must be exactly the old or the new
/// generation, and the next apply must finish with exactly the tree of a clean apply.
@Suite(.slow) struct CrashConsistencyTests {
    func crashEveryStep(scratch: Scratch, start: String, stick: String, old: [String: String], new: [String: String],
                        clean: [String: String]) throws -> Int {
        var step = 1
        while step < 1000 {
            let root = scratch.path("crash-\(step)")
            try copyTree(start, root)
            defer { try? FileManager.default.removeItem(atPath: root) }
            let crashed = try scratch.apply(root, stick, [], environment: ["EDGEKIT_AGENT_CRASH_AT": String(step)])
            if crashed.status == 0 && !crashed.signalled { break }  // past the last step
            #expect(crashed.signalled && crashed.status == SIGKILL, "step \(step): \(crashed)")
            let seen = liveView(root)
            #expect(seen == old || seen == new, "step \(step): the live files are a mix of generations")
            let recovered = try scratch.apply(root, stick)
            #expect(recovered.status == 0, "step \(step): \(recovered)")
            #expect(treeHash(root) == clean, "step \(step): the tree after recovery differs from a clean apply")
            step += 1
        }
        return step - 1
    }

    @Test("power loss at any step of a first apply and of an update leaves old or new, never a mix")
    func crashAtEveryStep() throws {
        try Scratch.with { scratch in
            let fresh = try scratch.makeRoot("fresh")
            // An image file the agent takes over: generation 0 must keep it visible until the switch.
            try FileManager.default.createDirectory(atPath: fresh + "/etc/keepalived", withIntermediateDirectories: true)
            try Data("# the image's placeholder\n".utf8).write(to: URL(fileURLWithPath: fresh + "/etc/nftables.conf"))
            let stickA = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let stickB = try scratch.stickFolder("b", slot: 1, serial: 1001)

            let afterA = scratch.path("after-a")
            try copyTree(fresh, afterA)
            try #require(try scratch.apply(afterA, stickA).status == 0)
            let afterB = scratch.path("after-b")
            try copyTree(afterA, afterB)
            try #require(try scratch.apply(afterB, stickB).status == 0)

            let firstSteps = try crashEveryStep(scratch: scratch, start: fresh, stick: stickA, old: liveView(fresh),
                                                new: liveView(afterA), clean: treeHash(afterA))
            let updateSteps = try crashEveryStep(scratch: scratch, start: afterA, stick: stickB, old: liveView(afterA),
                                                 new: liveView(afterB), clean: treeHash(afterB))
            #expect(firstSteps > 50 && updateSteps > 50, "the hook must cover every write, fsync and rename")
            print("crashed at each of \(firstSteps) steps of a first apply and \(updateSteps) of an update")
        }
    }

    /// The rollback path under crashes: `--services processes` with stand-in tools (`FakeTools`),
    /// whose keepalived refuses slot 1's config, so stick B (slot 1) over generation 1 (slot 2) fails
    /// and is rolled back. The agent is killed at each step from the switch to B to the end of the
    /// rollback: (a) after the switch but before the rollback is journalled, (b) during the
    /// rollback, (c) after it, while pruning. Each time the next apply of B must end the device on
    /// generation 1 exactly as a clean rollback does, with keepalived running A's config, and exit 1
    /// saying so; it must never call the half-applied B "already applied".
    @Test("power loss after the switch to a generation whose service fails, or during its rollback: recovery rolls back", .requiresRoot(andTools: "unshare"))
    func crashDuringRollback() throws {
        try Scratch.with { scratch in
            let fakes = try FakeTools(in: scratch)
            var environment = fakes.environment
            environment["EDGEKIT_TEST_KEEPALIVED_FAILS_ON"] = "priority 200"
            func apply(_ root: String, _ stick: String, _ extra: [String: String] = [:]) throws -> ToolResult {
                try runIsolated(["apply", "--root", root, "--stick", stick, "--services", "processes"],
                                environment: environment.merging(extra) { $1 })
            }
            let stickA = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let stickB = try scratch.stickFolder("b", slot: 1, serial: 1001)
            let afterA = try scratch.makeRoot("after-a")
            let first = try apply(afterA, stickA)
            try #require(first.status == 0, "\(first)")
            FakeTools.stopDaemons(under: afterA)
            // What B's files would look like live, had its services come up.
            let bLive = scratch.path("b-live")
            try copyTree(afterA, bLive)
            try #require(try scratch.apply(bLive, stickB).status == 0)

            let base = "keepalived did not come up with generation 2 (exited at start: keepalived: configuration rejected (test stand-in)); rolled back to generation 1"
            let clean = scratch.path("clean")
            try copyTree(afterA, clean)
            let traced = try apply(clean, stickB, ["EDGEKIT_AGENT_TRACE_STEPS": "1"])
            FakeTools.stopDaemons(under: clean)
            try #require(traced.status == 1 && traced.stderrLines.last == base, "\(traced)")
            #expect(liveView(clean) == liveView(afterA), "a clean rollback shows generation 1 again")
            let rolledBack = storedTree(clean)

            // The steps, by number: where the switch to B is, where the rollback is journalled, and where it ends.
            let steps = traced.stderrLines.filter { $0.hasPrefix("step ") }.map { String($0.split(separator: ":", maxSplits: 1)[1].dropFirst()) }
            let switches = steps.indices.filter { steps[$0].hasPrefix("rename ") && steps[$0].hasSuffix("/var/lib/edgekit/current") }
            let journals = steps.indices.filter { steps[$0] == "rename journal" }
            let removals = steps.indices.filter { steps[$0] == "remove journal" }
            try #require(switches.count == 2 && journals.count == 2 && removals.count == 1, "\(steps)")
            // Step numbers count from 1; a crash at step N happens just before that step's operation.
            let afterSwitch = switches[0] + 2, rollbackJournalled = journals[1] + 2, rollbackDone = removals[0] + 2

            var seen: [Character: Int] = [:]
            for step in afterSwitch...steps.count {
                let phase: Character = step < rollbackJournalled ? "a" : step < rollbackDone ? "b" : "c"
                let root = scratch.path("crash-\(step)")
                try copyTree(afterA, root)
                defer {
                    FakeTools.stopDaemons(under: root)
                    try? FileManager.default.removeItem(atPath: root)
                }
                let crashed = try apply(root, stickB, ["EDGEKIT_AGENT_CRASH_AT": String(step)])
                #expect(crashed.signalled && crashed.status == SIGKILL, "step \(step) (\(steps[step - 1])): \(crashed)")
                let live = liveView(root)
                #expect(live == liveView(afterA) || live == liveView(bLive), "step \(step): the live files are a mix of generations")

                let recovered = try apply(root, stickB)
                let expected = phase == "a" ? "finishing an apply that a crash interrupted: " + base
                    : phase == "b" ? "finishing a rollback that a crash interrupted: " + base : base
                #expect(recovered.status == 1 && recovered.stderrLines == [expected],
                        "step \(step) (\(steps[step - 1]), phase \(phase)): \(recovered)")
                #expect(storedTree(root) == rolledBack, "step \(step) (\(steps[step - 1])): the tree differs from a clean rollback's")
                let keepalived = pid_t(((try? String(contentsOfFile: root + "/run/edgekit/processes/keepalived.pid", encoding: .utf8)) ?? "")
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                // The stand-in execs sleep once it has accepted its config, so its pid running is
                // keepalived up, and the live file is what it read.
                #expect(isRunning(keepalived), "step \(step): keepalived must run again after the rollback")
                #expect(try String(contentsOfFile: root + "/etc/keepalived/keepalived.conf", encoding: .utf8).contains("priority 100"))
                if seen[phase] == nil {
                    // Once per phase: B is still not "already applied"; it is tried again and rolled back again.
                    let again = try apply(root, stickB)
                    #expect(again.status == 1 && again.stderrLines == [base], "step \(step): \(again)")
                }
                seen[phase, default: 0] += 1
            }
            #expect(seen["a", default: 0] >= 2 && seen["b", default: 0] >= 5 && seen["c", default: 0] >= 1, "\(seen)")
            print("crashed at each of \(steps.count - afterSwitch + 1) steps after the switch to a failing generation: \(seen)")
        }
    }

    /// When even the rollback cannot bring a service back, the current generation is one whose
    /// service is down: an apply of its own stick retries it and says so, and only says "nothing
    /// restarted" once it runs.
    @Test("a service that did not come up after a rollback is retried by the next apply of the same stick, never reported as fine", .requiresRoot(andTools: "unshare"))
    func failedServiceIsRetried() throws {
        try Scratch.with { scratch in
            let fakes = try FakeTools(in: scratch)
            let root = try scratch.makeRoot()
            defer { FakeTools.stopDaemons(under: root) }
            func apply(_ stick: String, failingOn pattern: String?) throws -> ToolResult {
                try runIsolated(["apply", "--root", root, "--stick", stick, "--services", "processes"],
                                environment: fakes.environment.merging(["EDGEKIT_TEST_KEEPALIVED_FAILS_ON": pattern ?? ""]) { $1 })
            }
            let stickA = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let stickB = try scratch.stickFolder("b", slot: 1, serial: 1001)
            try #require(try apply(stickA, failingOn: nil).status == 0)

            // keepalived now refuses every config: B fails, and so does A's again after the rollback.
            let failed = try apply(stickB, failingOn: "vrrp_instance")
            let reason = "exited at start: keepalived: configuration rejected (test stand-in)"
            #expect(failed.status == 1 && failed.stderrLines == [
                "keepalived did not come up with generation 2 (\(reason)); rolled back to generation 1, but after the rollback: keepalived: \(reason)",
            ], "\(failed)")
            let status = try ApplyTests.status(root)
            #expect(status["generation"] as? Int == 1)
            #expect(status["failed_services"] as? [String] == ["keepalived"], "\(status)")

            let stillDown = try apply(stickA, failingOn: "vrrp_instance")
            #expect(stillDown.status == 1 && stillDown.stderrLines == [
                "generation 1 is applied, but keepalived still does not come up with it (\(reason)); apply again once the cause is fixed, or apply a newer stick",
            ], "\(stillDown)")

            fakes.clear()
            let fixed = try apply(stickA, failingOn: nil)
            #expect(fixed.status == 0, "\(fixed)")
            #expect(fixed.stdout == """
                generation 1 already applied (site site-a router 2, serial 1000): nothing changed, but keepalived had not come up with it
                restarted (processes): keepalived

                """, "\(fixed)")
            #expect(fakes.calls.filter { !$0.hasPrefix("keepalived ") }.isEmpty, "only keepalived is restarted: \(fakes.calls)")
            #expect(try ApplyTests.status(root)["failed_services"] is NSNull)

            let quiet = try apply(stickA, failingOn: nil)
            #expect(quiet.stdout == "generation 1 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\n", "\(quiet)")
        }
    }
}
