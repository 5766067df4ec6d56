import Foundation
import Testing
import TestSupport

/// `edgekit fleet status` as an operator runs it (docs/fleet.md, "Fleet status"): the relay's status
/// JSON, from ssh or a saved file, as one table line per router; one line and exit 1 when the relay
/// cannot be reached or does not answer with its status. The lab test with a real relay is
/// RelayLabTests.fleetViewShowsEachRoutersReport.
@Suite struct FleetCommandTests {
    /// What `edgekit-relay status --format json` prints (the fields the fleet view reads, and one it does not).
    static let status = """
        {"owners": [], "peers": [], "revocations": [], "routers": [
          {"claim": "master", "public_key": "B1=", "registered_age_seconds": 300, "registered_at": "2027-01-15T08:00:00Z",
           "routes_site_prefix": true, "serial": 1000, "site": "site-b", "slot": 1, "state": "down",
           "generation": 2, "agent_version": "0.1.0", "health": "unhealthy", "health_reason": "uplink eth0 has no carrier (link down)",
           "system_version": 3, "update_state": "failed", "update_version": 4},
          {"claim": "backup", "handshake_age_seconds": 4, "public_key": "A2=", "registered_age_seconds": 40,
           "registered_at": "2027-01-15T08:04:20Z", "routes_site_prefix": false, "serial": 1000, "site": "site-a", "slot": 2, "state": "up"},
          {"claim": "master", "handshake_age_seconds": 12, "public_key": "A1=", "registered_age_seconds": 40,
           "registered_at": "2027-01-15T08:04:20Z", "routes_site_prefix": true, "serial": 1000, "site": "site-a", "slot": 1, "state": "up",
           "generation": 3, "agent_version": "0.1.0", "health": "healthy", "health_reason": "uplink up", "unknown_later_field": 1,
           "system_version": 4, "update_state": "blessed", "update_version": 4}
        ]}
        """

    static let table = """
        SITE    SLOT  CLAIM   STATE  HANDSHAKE  GENERATION  AGENT  SYSTEM        HEALTH
        site-b  1     master  down   never      2           0.1.0  3 (4 failed)  unhealthy (uplink eth0 has no carrier (link down))
        site-a  2     backup  up     4 s ago    -           -      -             - (no report: agent older than the fleet view)
        site-a  1     master  up     12 s ago   3           0.1.0  4             healthy

        """

    func script(_ dir: URL, _ name: String, _ body: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data("#!/bin/sh\n\(body)\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        return path
    }

    @Test func aSavedStatusPrintsOneLinePerRouterInTheRelaysOrder() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("status.json").path
            try Data(Self.status.utf8).write(to: URL(fileURLWithPath: file))
            let text = try runTool("edgekit", ["fleet", "status", "--from", file])
            #expect(text.status == 0 && text.stderr.isEmpty, "\(text.stderr)")
            #expect(text.stdout == Self.table, "\n\(text.stdout)")
            let json = try runTool("edgekit", ["fleet", "status", "--from", file, "--format", "json"])
            #expect(json.status == 0, "\(json.stderr)")
            let routers = (try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["routers"] as? [[String: Any]]
            #expect(routers?.map { $0["site"] as? String ?? "?" } == ["site-b", "site-a", "site-a"])
            #expect(routers?.first?["health_reason"] as? String == "uplink eth0 has no carrier (link down)")
            #expect(routers?[1]["generation"] == nil)
            #expect(routers?.first?["update_state"] as? String == "failed" && routers?.first?["update_version"] as? Int == 4)
        }
    }

    @Test func overSSHTheRelayIsAskedForItsStatusJSON() throws {
        try withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("status.json").path
            try Data(Self.status.utf8).write(to: URL(fileURLWithPath: file))
            // Stands in for ssh: records its arguments, answers with the saved status.
            let args = dir.appendingPathComponent("args").path
            let ssh = try script(dir, "ssh", "echo \"$@\" > \(args)\ncat \(file)")
            let result = try runTool("edgekit", ["fleet", "status", "--relay", "root@relay.example.net", "--ssh-command", "\(ssh) -p 2222"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == Self.table)
            #expect(try String(contentsOfFile: args, encoding: .utf8) == "-p 2222 root@relay.example.net edgekit-relay status --format json\n")
        }
    }

    @Test func anUnreachableRelayOrAnAnswerThatIsNotItsStatusIsOneLineAndExit1() throws {
        try withTemporaryDirectory { dir in
            let unreachable = try script(dir, "unreachable", "echo 'ssh: connect to host relay.example.net port 22: Connection refused' >&2\nexit 255")
            let garbage = try script(dir, "garbage", "echo 'Welcome to relay!'")
            let wrongShape = try script(dir, "wrong", "echo '{\"routers\": [{\"site\": \"a\"}]}'")
            let cases: [(arguments: [String], line: String)] = [
                (["--relay", "relay.example.net", "--ssh-command", unreachable],
                 "cannot read the relay's status from relay.example.net (\(unreachable) relay.example.net edgekit-relay status --format json): ssh: connect to host relay.example.net port 22: Connection refused"),
                (["--relay", "relay.example.net", "--ssh-command", garbage],
                 "relay relay.example.net: not the JSON of `edgekit-relay status --format json`: top level: The given data was not valid JSON."),
                (["--relay", "relay.example.net", "--ssh-command", wrongShape],
                 "relay relay.example.net: not the JSON of `edgekit-relay status --format json`: .routers[0]: missing \"slot\""),
                (["--relay", "relay.example.net", "--ssh-command", dir.appendingPathComponent("absent").path],
                 "cannot run \"\(dir.appendingPathComponent("absent").path)\" to reach the relay relay.example.net: not found or not executable (install OpenSSH's client, or give --ssh-command)"),
                (["--relay=-oProxyCommand=x"],
                 "--relay \"-oProxyCommand=x\" is not a host name (give the relay's ssh destination, e.g. root@relay.example.net)"),
                (["--from", dir.appendingPathComponent("none.json").path],
                 "--from \(dir.appendingPathComponent("none.json").path): cannot read it (save one with: ssh RELAY edgekit-relay status --format json > FILE)"),
            ]
            for (arguments, line) in cases {
                let before = treeSnapshot(dir)
                let result = try runTool("edgekit", ["fleet", "status"] + arguments)
                #expect(result.status == 1 && result.stdout.isEmpty, "\(arguments): \(result.status) \(result.stdout)")
                #expect(result.stderrLines == [line], "\(arguments)")
                #expect(treeSnapshot(dir) == before, "nothing changed")
            }
            let usage = try runTool("edgekit", ["fleet", "status"])
            #expect(usage.status == 2 && usage.stderrLines.first == "Error: give exactly one of --relay HOST or --from FILE")
        }
    }
}
