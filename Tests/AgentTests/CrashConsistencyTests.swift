import Foundation
import Testing

/// Kills the agent (SIGKILL, as a power cut would stop it) at every step of an apply, through the
/// debug-only EDGEKIT_AGENT_CRASH_AT hook: what readers see must be exactly the old or the new
/// generation, and the next apply must finish with exactly the tree of a clean apply.
@Suite struct CrashConsistencyTests {
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
}
