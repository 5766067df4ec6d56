import EdgeCrypto
import EdgeModel
import Foundation
import Testing
import TestSupport

/// `edgekit-agent run --services processes` in a network namespace with a real wireguard-go tunnel
/// to a stand-in relay (wireguard-go in a second namespace) whose name a dnsmasq serves: the tunnel
/// never handshakes while the name does not resolve, WireGuard follows the name once it does, and
/// again when the relay moves to another address. Then SIGTERM: exit 0, the daemons keep running and
/// still take SIGTERM themselves. Needs root; skips with the reason otherwise.
@Suite(.serialized) struct StaleTunnelTests {

    @Test("stale tunnel: the relay's name is resolved again through DNS and WireGuard follows it; SIGTERM leaves the daemons running", .requiresRoot(andTools: "ip", "unshare", "nsenter", "wireguard-go", "wg", "dnsmasq", "nft", "radvd", "keepalived", "sysctl"), .slow)
    func staleTunnelFollowsDNS() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", slot: 2, serial: 1000)
            let plan = BadProfileCorpus.plan
            let site = try #require(plan.site(named: "site-a"))
            let router = try #require(site.router(slot: 2))
            let routerKey = BadProfileCorpus.keys.routerSecret(site: site, router: router).wireGuardKey.publicKeyBase64
            let relayKey = BadProfileCorpus.keys.relayWireGuardKey()

            // Unique per test process: namespaces, and the stand-in relay's interface, whose control
            // socket lives in the host's /run/wireguard. The router's wg-relay lives in a private /run.
            let tag = "ekt6\(getpid() % 1_000_000)"
            let routerNS = tag + "d", relayNS = tag + "r", relayInterface = tag + "w"
            var background: [Started] = []
            defer {
                for ns in [routerNS, relayNS] {
                    // Everything in these namespaces was started by this test (the agent's daemons too).
                    if let pids = try? runSystem("ip", ["netns", "pids", ns]) {
                        for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
                    }
                }
                background.forEach { $0.discard() }
                for ns in [routerNS, relayNS] { _ = try? runSystem("ip", ["netns", "del", ns]) }
                unlink("/var/run/wireguard/\(relayInterface).sock")
            }
            func run(_ tool: String, _ arguments: [String]) throws -> String {
                let result = try runSystem(tool, arguments)
                try #require(result.status == 0, "\(tool) \(arguments.joined(separator: " ")): \(result)")
                return result.stdout
            }
            func ip(_ arguments: String...) throws { _ = try run("ip", arguments) }

            // router namespace: uplink0 (10.66.0.1) to the relay namespace, lan0 a veth of its own.
            // relay namespace: DNS on .53, the relay's old address .2 and new address .3.
            try ip("netns", "add", routerNS)
            try ip("netns", "add", relayNS)
            try ip("-n", routerNS, "link", "set", "lo", "up")
            try ip("-n", relayNS, "link", "set", "lo", "up")
            try ip("-n", routerNS, "link", "add", "uplink0", "type", "veth", "peer", "name", "ekup0", "netns", relayNS)
            try ip("-n", routerNS, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
            try ip("-n", routerNS, "link", "set", "lan0p", "up")
            try ip("-n", routerNS, "addr", "add", "10.66.0.1/24", "dev", "uplink0")
            for address in ["10.66.0.53/24", "10.66.0.2/24", "10.66.0.3/24"] {
                try ip("-n", relayNS, "addr", "add", address, "dev", "ekup0")
            }
            try ip("-n", relayNS, "link", "set", "ekup0", "up")
            // Registration datagrams that reach the relay's new address.
            _ = try run("ip", ["netns", "exec", relayNS, "nft",
                               "add table inet ekt6; add chain inet ekt6 input { type filter hook input priority 0; }; "
                               + "add rule inet ekt6 input ip daddr 10.66.0.3 udp dport \(plan.relay.registrationPort) counter"])
            func registrationsAtNewAddress() throws -> Int {
                let ruleset = try run("ip", ["netns", "exec", relayNS, "nft", "list", "table", "inet", "ekt6"])
                guard let range = ruleset.range(of: #"counter packets (\d+)"#, options: .regularExpression) else { return -1 }
                return Int(ruleset[range].split(separator: " ").last ?? "") ?? -1
            }

            // The stand-in relay: wireguard-go with the relay's key, which knows the router as a peer.
            let relayKeyFile = scratch.path("relay.key")
            FileManager.default.createFile(atPath: relayKeyFile, contents: Data((relayKey.privateKeyBase64 + "\n").utf8),
                                           attributes: [.posixPermissions: 0o600])
            background.append(try startProgram(systemTool("ip")!, ["netns", "exec", relayNS, "wireguard-go", "-f", relayInterface],
                                               environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"]))
            try #require(waitUntil(10) { FileManager.default.fileExists(atPath: "/var/run/wireguard/\(relayInterface).sock") },
                         "wireguard-go \(relayInterface) did not start: \(background[0].stderr)")
            _ = try run("ip", ["netns", "exec", relayNS, "wg", "set", relayInterface, "private-key", relayKeyFile,
                               "listen-port", "\(plan.relay.wireguardPort)", "peer", routerKey,
                               "allowed-ips", "\(IPv6Prefix.host(router.tunnelAddress))"])
            try ip("-n", relayNS, "link", "set", relayInterface, "up")
            func relay(_ field: String) throws -> String {
                try run("ip", ["netns", "exec", relayNS, "wg", "show", relayInterface, field])
            }

            // DNS for the relay's name, from a hosts file the test rewrites (SIGHUP re-reads it);
            // nothing else of example.net resolves.
            let hosts = scratch.path("relay.hosts")
            let dnsLog = scratch.path("dnsmasq.log")
            FileManager.default.createFile(atPath: hosts, contents: Data())
            let dns = try startProgram(systemTool("ip")!, [
                "netns", "exec", relayNS, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--addn-hosts=\(hosts)", "--local=/example.net/", "--listen-address=10.66.0.53", "--bind-interfaces",
                "--user=root", "--group=root", "--pid-file=\(scratch.path("dnsmasq.pid"))", "--log-queries",
                "--log-facility=\(dnsLog)",
            ])
            background.append(dns)
            try #require(waitUntil(10) { ((try? String(contentsOfFile: dnsLog, encoding: .utf8)) ?? "").contains("started") },
                         "dnsmasq did not start: \(dns.stderr)")
            func relayResolves(to address: String?) {
                let text = address.map { "\($0) \(plan.relay.host)\n" } ?? ""
                try? Data(text.utf8).write(to: URL(fileURLWithPath: hosts))
                kill(dns.pid, SIGHUP)
            }

            // The router: a private /run (its wg-relay control socket), the namespace's DNS, no host names.
            let resolv = scratch.path("resolv.conf")
            try Data("nameserver 10.66.0.53\noptions timeout:1 attempts:1\n".utf8).write(to: URL(fileURLWithPath: resolv))
            let etcHosts = scratch.path("hosts")
            try Data("127.0.0.1 localhost\n".utf8).write(to: URL(fileURLWithPath: etcHosts))
            let agentPath = binDirectory.appendingPathComponent("edgekit-agent").path
            let script = "mount -t tmpfs tmpfs /run && mount --bind \(resolv) /etc/resolv.conf && mount --bind \(etcHosts) /etc/hosts "
                + "&& exec \(agentPath) run --root \(root) --stick \(stick) --services processes --registration-deadline 2 "
                + "--tunnel-check-interval 1 --handshake-stale-after 3"
            let agent = try startProgram(systemTool("ip")!, ["netns", "exec", routerNS, "unshare", "-m", "--propagation", "private",
                                                             "sh", "-c", script])
            background.append(agent)
            let processes = root + "/run/edgekit/processes"
            func daemonPid(_ name: String) -> pid_t {
                pid_t(((try? String(contentsOfFile: "\(processes)/\(name).pid", encoding: .utf8)) ?? "")
                    .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            /// `wg show wg-relay FIELD` inside the router (its mount namespace holds the socket).
            func routerTunnel(_ field: String) -> String {
                let pid = daemonPid("wireguard-go")
                guard pid > 0 else { return "" }
                return (try? runSystem("nsenter", ["-t", "\(pid)", "-m", "-n", "wg", "show", "wg-relay", field]))?.stdout ?? ""
            }
            /// `status --format json` inside the router (its mount namespace holds the tunnel's socket).
            func routerStatus() -> [String: Any] {
                let pid = daemonPid("wireguard-go")
                let result = try? runSystem("nsenter", ["-t", "\(pid)", "-m", "-n", agentPath, "status", "--root", root, "--format", "json"])
                let fields = (try? JSONSerialization.jsonObject(with: Data((result?.stdout ?? "").utf8))) as? [String: Any] ?? [:]
                #expect(Set(fields.keys) == ApplyTests.statusKeys, "\(String(describing: result))")
                return fields
            }
            func routerEndpoint() -> String { routerTunnel("endpoints").split(separator: "\t").last.map(String.init)?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "" }
            func routerHandshake() -> Int { Int(routerTunnel("latest-handshakes").split(separator: "\t").last?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0 }

            // 1. The name does not resolve: the tunnel comes up without an endpoint; one warning.
            let unresolved = "tunnel: relay.example.net does not resolve; trying again with backoff"
            try #require(waitUntil(60) { agent.stderr.contains(unresolved) || agent.poll() }, "\(agent.stderr)")
            try #require(!agent.poll(), "the agent ended: \(agent.stderr)")
            #expect(routerEndpoint() == "(none)", "\(routerTunnel("endpoints"))")
            #expect(routerHandshake() == 0)

            // 2. The name resolves: WireGuard is pointed at it and handshakes, with no other traffic.
            relayResolves(to: "10.66.0.2")
            #expect(waitUntil(40) { routerEndpoint() == "10.66.0.2:\(plan.relay.wireguardPort)" },
                    "endpoint \(routerTunnel("endpoints")); agent: \(agent.stderr)")
            #expect(waitUntil(15) { routerHandshake() > 0 }, "no handshake after the endpoint was set: \(agent.stderr)")
            #expect(agent.stderr.components(separatedBy: unresolved).count == 2, "warned once: \(agent.stderr)")
            // `status` sees the real handshake: the tunnel line and its age, while the agent runs.
            let status = routerStatus()
            #expect((status["tunnel"] as? String)?.hasPrefix("handshake ") == true, "\(status)")
            #expect((status["handshake_age_seconds"] as? Int).map { $0 >= 0 && $0 < 60 } == true, "\(status)")
            #expect(status["agent"] as? String == "running (services: processes)", "\(status)")

            // 3. The relay moves to .3 (old address gone) and DNS says so: with the handshake stale
            //    (--handshake-stale-after 3), the agent follows the name and registers at the new address.
            let receivedBefore = Int(try relay("transfer").split(separator: "\t").dropFirst().first ?? "") ?? 0
            relayResolves(to: "10.66.0.3")
            try ip("-n", relayNS, "addr", "del", "10.66.0.2/24", "dev", "ekup0")
            #expect(waitUntil(40) { routerEndpoint() == "10.66.0.3:\(plan.relay.wireguardPort)" },
                    "endpoint \(routerTunnel("endpoints")); agent: \(agent.stderr)")
            // The keepalive sent on the endpoint change reaches the relay: only possible through .3.
            #expect(waitUntil(15) { (Int((try? relay("transfer"))?.split(separator: "\t").dropFirst().first ?? "") ?? 0) > receivedBefore },
                    "the relay received nothing at its new address")
            #expect(waitUntil(15) { (try? registrationsAtNewAddress()) ?? 0 > 0 }, "no registration reached 10.66.0.3")
            #expect(agent.stderr.contains("tunnel: relay.example.net is at 10.66.0.2:\(plan.relay.wireguardPort); relay endpoint set, registering again"))
            #expect(agent.stderr.contains("tunnel: relay.example.net is at 10.66.0.3:\(plan.relay.wireguardPort); relay endpoint set, registering again"))
            let queries = (try? String(contentsOfFile: dnsLog, encoding: .utf8)) ?? ""
            #expect(queries.contains("query[A] relay.example.net from 10.66.0.1"), "the router asked the namespace's DNS")

            // 4. SIGTERM: exit 0 promptly, socket removed; the daemons keep running and take SIGTERM.
            let daemons = ["wireguard-go", "keepalived", "radvd"].map { ($0, daemonPid($0)) }
            for (name, pid) in daemons {
                #expect(isRunning(pid), "\(name) is not running before the agent stops")
            }
            let sent = Date()
            kill(agent.pid, SIGTERM)
            #expect(agent.wait(seconds: 10), "the agent did not stop: \(agent.stderr)")
            let elapsed = Date().timeIntervalSince(sent)
            #expect(agent.exitCode == 0, "\(agent.stderr)")
            #expect(elapsed < 2, "took \(elapsed) s")
            #expect(!FileManager.default.fileExists(atPath: root + "/run/edgekit/agent.sock"))
            #expect(agent.stderr.contains("stopped supervising"), "\(agent.stderr)")
            let stopped = routerStatus()
            #expect((stopped["agent"] as? String)?.hasPrefix("not running (stopped at ") == true, "\(stopped)")
            for (name, pid) in daemons {
                #expect(isRunning(pid), "\(name) must outlive the agent (services are not the agent's to stop)")
            }
            // As the lab's graceful stop does: each daemon ends on SIGTERM (the agent's own threads
            // block SIGTERM; its children must not inherit that).
            for (_, pid) in daemons { kill(pid, SIGTERM) }
            for (name, pid) in daemons {
                #expect(waitUntil(10) { !isRunning(pid) }, "\(name) ignored SIGTERM")
            }
        }
    }
}
