import Foundation
import Testing
import TestSupport

/// `edgekit mesh render|bundle` as an operator runs them: paths on stdout, one line and exit 1 on
/// bad input with nothing written, and the sticks of a plan unchanged by adding servers.
@Suite struct MeshCommandTests {
    /// A plan folder holding `text`.
    func planFolder(_ dir: URL, _ name: String, _ text: String) throws -> String {
        let folder = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: folder.appendingPathComponent("plan.yaml"))
        return folder.path
    }

    @Test func renderPrintsThePathsItWrote() throws {
        try withSecrets { secrets, dir in
            let plan = try planFolder(dir, "mesh", try MeshPlanFixture.text())
            let out = dir.appendingPathComponent("sa").path
            let result = try runTool("edgekit", ["mesh", "render", "--server", "sa", "--plan", plan, "--secrets", secrets, "--out", out])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == """
                \(out)/etc/systemd/network/50-edgekit-mesh.key
                \(out)/etc/systemd/network/50-edgekit-mesh.netdev
                \(out)/etc/systemd/network/50-edgekit-mesh.network

                """)
            let bundle = try runTool("edgekit", ["mesh", "bundle", "--format", "wg-quick", "--plan", plan, "--secrets", secrets,
                                                 "--out", dir.appendingPathComponent("all").path])
            #expect(bundle.status == 0, "\(bundle.stderr)")
            #expect(bundle.stdout.split(separator: "\n").map { String($0.dropFirst(dir.path.count)) }
                    == ["/all/sa/etc/wireguard/wg-mesh.conf", "/all/sb/etc/wireguard/wg-mesh.conf", "/all/sc/etc/wireguard/wg-mesh.conf"])
        }
    }

    @Test func badInputIsOneLineExitOneAndWritesNothing() throws {
        try withSecrets { secrets, dir in
            let plan = try planFolder(dir, "mesh", try MeshPlanFixture.text())
            let before = treeSnapshot(dir)
            let out = dir.appendingPathComponent("out").path
            let unknown = try runTool("edgekit", ["mesh", "render", "--server", "sd", "--plan", plan, "--secrets", secrets, "--out", out])
            #expect(unknown.status == 1)
            #expect(unknown.stderrLines == ["--server sd: no such server in plan example (servers: sa, sb, sc)"])
            let none = try runTool("edgekit", ["mesh", "bundle", "--plan", examplePlanPath, "--secrets", secrets, "--out", out])
            #expect(none.status == 1)
            #expect(none.stderrLines == ["plan example has no servers: add \"mesh:\" and \"servers:\" to plan.yaml (docs/plan.md, \"The servers' mesh\")"])
            let format = try runTool("edgekit", ["mesh", "render", "--server", "sa", "--format", "wgquick", "--plan", plan, "--secrets", secrets, "--out", out])
            #expect(format.status == 2, "a usage error: \(format.stderr)")
            let badPlan = try planFolder(dir, "bad", try MeshPlanFixture.text().replacingOccurrences(of: "    site: site-b\n", with: "    site: site-z\n"))
            let bad = try runTool("edgekit", ["mesh", "bundle", "--plan", badPlan, "--secrets", secrets, "--out", out])
            #expect(bad.status == 1)
            #expect(bad.stderrLines.count == 1 && bad.stderrLines.first?.contains("server \"sb\" site \"site-z\" is not a site of the plan (sites: site-a, site-b)") == true,
                    "\(bad.stderrLines)")
            let after = treeSnapshot(dir).filter { !$0.key.hasPrefix("bad") }
            #expect(after == before)
        }
    }

    @Test func helpTeachesTheCommands() throws {
        let help = try runTool("edgekit", ["mesh", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("edgekit mesh render --plan P --server db1 --out db1\n"), "\(help.stdout)")
        #expect(help.stdout.contains("docs/mesh.md"))
        let render = try runTool("edgekit", ["mesh", "render", "--help"])
        #expect(render.stdout.contains("--format <format>"))
        #expect(render.stdout.contains("wg-quick up wg-mesh"))
    }

    /// What the sticks hold (the profile document, as `profile inspect` shows it) and what the
    /// router gets (`edgekit render`) are the same whether or not the plan has servers.
    @Test func addingServersChangesNoStickNorRenderedRouter() throws {
        try withSecrets { secrets, dir in
            let without = try planFolder(dir, "without", try MeshPlanFixture.exampleText())
            let with = try planFolder(dir, "with", try MeshPlanFixture.text())
            var inspected: [String] = []
            var rendered: [[String: Data]] = []
            for plan in [without, with] {
                let name = (plan as NSString).lastPathComponent
                let stick = dir.appendingPathComponent("\(name).img").path
                let built = try runTool("edgekit", ["stick", "build", "--plan", plan, "--secrets", secrets, "--site", "site-a", "--router", "2",
                                                    "--serial", "9", "--out", stick])
                #expect(built.status == 0, "\(built.stderr)")
                let shown = try runTool("edgekit", ["profile", "inspect", stick, "--plan", plan, "--secrets", secrets, "--format", "json"])
                #expect(shown.status == 0, "\(shown.stderr)")
                inspected.append(shown.stdout)
                let out = dir.appendingPathComponent("render-\(name)")
                #expect(try runTool("edgekit", ["render", "--plan", plan, "--secrets", secrets, "--site", "site-a", "--router", "2",
                                                "--out", out.path]).status == 0)
                rendered.append(treeSnapshot(out))
            }
            #expect(inspected[0] == inspected[1] && inspected[0].contains("\"serial\""))
            #expect(rendered[0] == rendered[1] && rendered[0].count > 5)
        }
    }
}
