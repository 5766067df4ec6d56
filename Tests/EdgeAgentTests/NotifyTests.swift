import Foundation
import Testing

/// `edgekit-agent notify [--root DIR] master|backup|fault`, keepalived's hook, with the built binary.
@Suite struct NotifyTests {
    @Test("notify --root: state file under that root only; a bad state or root is one line, exit 1, nothing written")
    func notifyHonoursRoot() throws {
        try Scratch.with { scratch in
            let root = scratch.path("root")
            try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
            let hostState = "/run/edgekit/vrrp-state"
            let hostBefore = FileManager.default.contents(atPath: hostState)
            let before = treeHash(root)

            let bad = try runTool("edgekit-agent", ["notify", "--root", root, "sideways"])
            #expect(bad.status == 1, "\(bad)")
            #expect(bad.stderrLines == ["notify: VRRP state \"sideways\" is not master, backup, fault or stopped; nothing was recorded"], "\(bad)")
            #expect(treeHash(root) == before, "a refused state writes nothing under --root")

            let missing = scratch.path("no-such-root")
            let noRoot = try runTool("edgekit-agent", ["notify", "--root", missing, "master"])
            #expect(noRoot.status == 1, "\(noRoot)")
            #expect(noRoot.stderrLines == ["--root \(missing): no such directory; give the root the agent runs with (/ on the appliance)"],
                    "\(noRoot)")
            #expect(!FileManager.default.fileExists(atPath: missing), "a missing root is not created")

            for (state, given) in [("backup", root), ("fault", root + "/"), ("master", root + "//")] {
                let result = try runTool("edgekit-agent", ["notify", "--root", given, state])
                #expect(result.status == 0 && result.stdout.isEmpty && result.stderr.isEmpty, "\(result)")
                #expect(try String(contentsOfFile: root + "/run/edgekit/vrrp-state", encoding: .utf8) == state + "\n")
            }
            let status = try runTool("edgekit-agent", ["status", "--root", root, "--format", "json"])
            let fields = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            #expect(fields?["vrrp"] as? String == "master", "\(status)")
            #expect(FileManager.default.contents(atPath: hostState) == hostBefore, "nothing written to the host's /run/edgekit")
        }
    }
}
