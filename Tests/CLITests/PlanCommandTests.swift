import Foundation
import Testing

@Suite struct PlanCommandTests {
    @Test func initThenCheckThenShow() throws {
        try withTemporaryDirectory { dir in
            let planDir = dir.appendingPathComponent("corp").path
            let made = try runTool("edgekit", ["plan", "init", planDir, "--name", "corp", "--relay", "relay.corp.example:4500", "--sites", "3"])
            #expect(made.status == 0, "\(made.stderr)")
            #expect(made.stderr.contains("wrote \(planDir)/plan.yaml"))
            let checked = try runTool("edgekit", ["plan", "check", planDir])
            #expect(checked.status == 0)
            #expect(checked.stdout == "plan corp is valid: 3 site(s), 6 router(s)\n")
            let shown = try runTool("edgekit", ["plan", "show", planDir, "--format", "json"])
            #expect(shown.status == 0)
            let json = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
            let relay = json?["relay"] as? [String: Any]
            #expect(relay?["wireguard_port"] as? Int == 4500)
            #expect(relay?["registration_port"] as? Int == 4501)
            #expect((json?["sites"] as? [Any])?.count == 3)
            let text = try String(contentsOfFile: planDir + "/plan.yaml", encoding: .utf8)
            #expect(text.hasPrefix("# edgekit network plan"), "plan init writes a commented plan")
        }
    }

    @Test func initRefusesToOverwrite() throws {
        try withTemporaryDirectory { dir in
            let planDir = dir.path
            #expect(try runTool("edgekit", ["plan", "init", planDir, "--name", "a", "--relay", "r.example"]).status == 0)
            let before = treeSnapshot(dir)
            let again = try runTool("edgekit", ["plan", "init", planDir, "--name", "b", "--relay", "r.example"])
            #expect(again.status == 1)
            #expect(again.stderrLines == ["\(planDir)/plan.yaml already exists; edit it, or choose another folder"])
            #expect(treeSnapshot(dir) == before)
        }
    }

    @Test func initWithBadInputWritesNothing() throws {
        try withTemporaryDirectory { dir in
            let planDir = dir.appendingPathComponent("p").path
            let bad = try runTool("edgekit", ["plan", "init", planDir, "--name", "Bad_Name", "--relay", "relay.example.net"])
            #expect(bad.status == 1)
            #expect(bad.stderrLines == ["cannot create a plan from --name \"Bad_Name\" --relay \"relay.example.net\": plan name \"Bad_Name\" is not DNS-safe: use 1–63 lower-case letters, digits and inner hyphens"])
            let port = try runTool("edgekit", ["plan", "init", planDir, "--name", "ok", "--relay", "relay.example.net:0"])
            #expect(port.status == 1)
            #expect(port.stderrLines == ["--relay \"relay.example.net:0\": port \"0\" must be 1-65535"])
            #expect(!FileManager.default.fileExists(atPath: planDir))
        }
    }

    @Test func checkReportsEveryProblemWithLineNumbers() throws {
        try withTemporaryDirectory { dir in
            let plan = """
                name: net
                ula: fd00:1:2::/48
                tunnel: fd00:9:9::/64
                relay:
                  host: relay.example.net
                sites:
                  - name: a
                    index: 1
                    vrrp_id: 300
                    routers:
                      - slot: 1
                        priority: 100
                        colour: red

                """
            try Data(plan.utf8).write(to: dir.appendingPathComponent("plan.yaml"))
            let result = try runTool("edgekit", ["plan", "check", dir.path])
            #expect(result.status == 1)
            #expect(result.stdout.isEmpty)
            #expect(result.stderrLines == [
                "plan.yaml:9: site \"a\" vrrp_id is 300, outside 1–255",
                "plan.yaml:13: unknown key \"colour\" in site \"a\" router 1 (allowed: slot, priority, generation, uplink, lan, tunnel_address, uplink_mtu)",
            ])
        }
    }

    @Test func missingPlanFolderIsOneClearLine() throws {
        let result = try runTool("edgekit", ["plan", "check", "/nonexistent/edgekit-plan"])
        #expect(result.status == 1)
        #expect(result.stderrLines == ["/nonexistent/edgekit-plan/plan.yaml: plan folder /nonexistent/edgekit-plan does not exist"])
    }

    @Test func usageErrorsExitTwoAndHelpExitsZero() throws {
        let usage = try runTool("edgekit", ["plan", "show"])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("Missing expected argument '<directory>'"))
        let badFormat = try runTool("edgekit", ["plan", "show", "x", "--format", "yaml"])
        #expect(badFormat.status == 2)
        let help = try runTool("edgekit", ["plan", "init", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("RFC 4193"))
    }

    @Test func showMatchesTheGoldenFilesOfTheModelTests() throws {
        let golden = packageRoot.appendingPathComponent("Tests/EdgeModelTests/Fixtures/golden")
        let text = try runTool("edgekit", ["plan", "show", packageRoot.appendingPathComponent("profiles/example").path])
        #expect(text.status == 0)
        #expect(text.stdout == (try String(contentsOf: golden.appendingPathComponent("plan-show.txt"), encoding: .utf8)))
        let json = try runTool("edgekit", ["plan", "show", packageRoot.appendingPathComponent("profiles/example").path, "--format", "json"])
        #expect(json.stdout == (try String(contentsOf: golden.appendingPathComponent("plan-show.json"), encoding: .utf8)))
    }

    /// Issue 16 items 2 and 6 through the CLI: one line, exit 1, at once.
    @Test func hostilePlansGetOneLineAtOnce() throws {
        try withTemporaryDirectory { dir in
            let planDir = dir.path
            let bomb = packageRoot.appendingPathComponent("Tests/EdgeModelTests/Fixtures/bad-plans/31-alias-as-mapping-key.yaml")
            try FileManager.default.copyItem(atPath: bomb.path, toPath: planDir + "/plan.yaml")
            let start = Date()
            let aliases = try runTool("edgekit", ["plan", "check", planDir])
            #expect(Date().timeIntervalSince(start) < 5, "plan check of the alias plan must not expand it")
            #expect(aliases.status == 1)
            #expect(aliases.stderrLines == ["plan.yaml:1: YAML anchor \"&a0\": anchors and aliases are not allowed in a plan; write each value out"])

            try FileManager.default.removeItem(atPath: planDir + "/plan.yaml")
            try FileManager.default.createSymbolicLink(atPath: planDir + "/plan.yaml", withDestinationPath: "/dev/zero")
            let zero = try runTool("edgekit", ["plan", "show", planDir])
            #expect(zero.status == 1)
            #expect(zero.stderrLines == ["\(planDir)/plan.yaml: not a file but a character device (a link to /dev/zero); plan.yaml must be a text file"])

            try FileManager.default.removeItem(atPath: planDir + "/plan.yaml")
            let newline = "name: \"net\\nwork\"\nula: fd00:1:2::/48\ntunnel: fd00:9:9::/64\nrelay:\n  host: relay.example.net\nsites: []\n"
            try Data(newline.utf8).write(to: URL(fileURLWithPath: planDir + "/plan.yaml"))
            let escaped = try runTool("edgekit", ["plan", "check", planDir])
            #expect(escaped.status == 1)
            #expect(escaped.stderrLines == [
                "plan.yaml:1: plan name \"net\\nwork\" is not DNS-safe: use 1–63 lower-case letters, digits and inner hyphens",
                "plan.yaml:6: sites is empty; a plan needs at least one site",
            ])
        }
    }
}
