import EdgeCrypto
import EdgeRender
import Foundation
import Testing
import TestSupport

/// DESIGN.md "Secrets": the router's WireGuard private key and its router secret are never in a
/// child's argv or environment, never printed or logged. Every tool the agent runs is replaced by a
/// recording stand-in (`FakeTools`: the service tools through EDGEKIT_AGENT_TOOL_*, and on PATH, where
/// the supervisor finds `wg` and the stick reader finds blkid/mdir/mtype, those as recording wrappers
/// around the real tools); then an `apply` and a `run` (boot apply of another slot's stick with
/// restarts, registration attempts, a stale-tunnel check that re-resolves the relay and sets its
/// endpoint) are searched for every form of both secrets of both sticks.
@Suite struct SecretsTests {
    @Test("the router key and secret never reach a child's argv or environment, stdout, stderr or the runtime logs", .requiresRoot(andTools: "unshare"))
    func secretsStayOutOfChildrenAndLogs() throws {
        try Scratch.with { scratch in
            let fakes = try FakeTools(in: scratch, recording: ["blkid", "mdir", "mtype"])
            let root = try scratch.makeRoot()
            defer { FakeTools.stopDaemons(under: root) }
            let stickA = try scratch.stickImage("a.img", slot: 2, serial: 1000)
            let stickB = try scratch.stickImage("b.img", slot: 1, serial: 1001)

            // Every form the secrets could leak in: base64 (the key file's and the profile's) and hex.
            let site = try #require(BadProfileCorpus.plan.site(named: "site-a"))
            var secrets: [String: String] = [:]
            for slot in [1, 2] {
                let secret = BadProfileCorpus.keys.routerSecret(site: site, router: try #require(site.router(slot: slot)))
                secrets["slot \(slot) router secret (base64)"] = secret.bytes.base64EncodedString()
                secrets["slot \(slot) router secret (hex)"] = secret.bytes.map { String(format: "%02x", $0) }.joined()
                secrets["slot \(slot) WireGuard key (base64)"] = secret.wireGuardKey.privateKeyBase64
                secrets["slot \(slot) WireGuard key (hex)"] = secret.wireGuardKey.privateKey.map { String(format: "%02x", $0) }.joined()
            }

            let applied = try runIsolated(["apply", "--root", root, "--stick", stickA, "--services", "processes"],
                                          environment: fakes.environment)
            try #require(applied.status == 0, "\(applied)")

            // run: the relay's name resolves (to loopback, in the agent's own network namespace) so the
            // stale-tunnel path sets an endpoint; the relay never answers, so registration is retried.
            let hosts = scratch.path("hosts")
            try Data("127.0.0.1 localhost\n127.0.0.1 relay.example.net\n".utf8).write(to: URL(fileURLWithPath: hosts))
            let agent = try startProgram(systemTool("unshare")!, isolatedCommand(
                ["run", "--root", root, "--stick", stickB, "--services", "processes", "--registration-deadline", "1",
                 "--tunnel-check-interval", "1", "--handshake-stale-after", "1"],
                setup: "mount --bind \(hosts) /etc/hosts"), environment: fakes.environment)
            defer { agent.discard() }
            let endpointSet = waitUntil(60) { fakes.calls.contains { $0.hasPrefix("wg set wg-relay peer ") && $0.contains(" endpoint 127.0.0.1:") } || agent.poll() }
            #expect(endpointSet && !agent.poll(), "run never set the relay endpoint: \(agent.stderr)")
            #expect(waitUntil(30) { agent.stderr.contains("registration (backup): failed") }, "\(agent.stderr)")
            kill(agent.pid, SIGTERM)
            #expect(agent.wait(seconds: 10) && agent.exitCode == 0, "\(agent.stderr)")

            // The record must really hold what the children got (else the search below proves nothing).
            let calls = fakes.calls
            #expect(calls.contains("wg set wg-relay private-key \(root)/etc/edgekit/wireguard.key"), "the key goes by file: \(calls)")
            #expect(calls.contains { $0.hasPrefix("keepalived ") } && calls.contains { $0.hasPrefix("wireguard-go ") }, "\(calls)")
            #expect(calls.contains { $0.hasPrefix("mtype ") } && calls.contains { $0.hasPrefix("wg show wg-relay latest-handshakes") }, "\(calls)")
            #expect(fakes.text.contains("env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1"), "environments are recorded")
            #expect(agent.stderr.contains("applied generation 2 (site site-a router 1, serial 1001)"), "\(agent.stderr)")
            let keyFile = try String(contentsOfFile: root + "/var/lib/edgekit/current/files/etc/edgekit/wireguard.key", encoding: .utf8)
            #expect(keyFile == secrets["slot 1 WireGuard key (base64)"]! + "\n", "the forms searched for are the real ones")

            // Where they could show: every child's argv and environment; the agent's output; every file
            // under the runtime directory (daemon logs, status); anywhere in the tree but the key file.
            var places: [String: String] = [
                "a child's argv or environment": fakes.text,
                "apply's stdout": applied.stdout, "apply's stderr": applied.stderr,
                "run's stdout": agent.stdout, "run's stderr (its log)": agent.stderr,
            ]
            let walker = FileManager.default.enumerator(atPath: root)
            while let relative = walker?.nextObject() as? String {
                var info = stat()
                guard lstat(root + "/" + relative, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                if relative.hasPrefix("var/lib/edgekit/generations/") && relative.hasSuffix("/files/etc/edgekit/wireguard.key") { continue }
                places[relative] = String(decoding: FileManager.default.contents(atPath: root + "/" + relative) ?? Data(), as: UTF8.self)
            }
            #expect(places.keys.contains { $0.hasPrefix("run/edgekit/processes/") && $0.hasSuffix(".log") }, "\(places.keys.sorted())")
            for (what, value) in secrets.sorted(by: { $0.key < $1.key }) {
                for (place, text) in places.sorted(by: { $0.key < $1.key }) {
                    let leaked = text.contains(value)
                    #expect(!leaked, "\(what) appears in \(place)")
                }
            }
        }
    }
}
