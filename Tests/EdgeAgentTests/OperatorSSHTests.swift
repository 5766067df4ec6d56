import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import Synchronization
import Testing
import TestSupport

/// Operator SSH with Debian's real sshd (issue 18.3): a "relay" namespace holds a wireguard-go peer
/// of the router's tunnel; the router is `edgekit-agent apply --services processes` in its own
/// namespace, so sshd, nftables and wireguard-go run from the applied generation. From the relay
/// side, the operator's key logs in to the tunnel address with the host key `edgekit keys
/// known-hosts` printed (StrictHostKeyChecking=yes); the same stick on a spare router keeps that host
/// key; a password, an unknown key and anything from the uplink side are refused.
@Suite(.serialized) struct OperatorSSHTests {
    static let counter = Mutex(0)

    /// The example plan plus one operator with `publicKey`, written as plan.yaml under `folder`.
    static func plan(operatorKey publicKey: String, folder: String) throws -> Plan {
        let text = try String(contentsOfFile: examplePlanPath + "/plan.yaml", encoding: .utf8)
            + "\noperators:\n  - name: alice\n    ssh_keys:\n      - \(publicKey)\n"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/plan.yaml"))
        return try PlanLoader.load(directory: folder)
    }

    @Test("ssh from the relay side to the tunnel address with the operator key; same host key on the spare; password, unknown key and uplink refused",
          .requiresRoot(andTools: "ip", "unshare", "nsenter", "wireguard-go", "wg", "nft", "radvd", "keepalived", "sshd", "ssh", "ssh-keygen"),
          .slow)
    func operatorSSHThroughTheTunnel() throws {
        try Scratch.with { scratch in
            for name in ["operator", "stranger"] {
                let made = try runSystem("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "\(name)@test", "-f", scratch.path(name)])
                try #require(made.status == 0, "\(made)")
            }
            let operatorKey = try String(contentsOfFile: scratch.path("operator.pub"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let planFolder = scratch.path("plan")
            let plan = try Self.plan(operatorKey: operatorKey, folder: planFolder)
            let site = plan.site(named: "site-a")!
            let router = site.router(slot: 1)!
            let keys = BadProfileCorpus.keys
            let routerPublic = keys.routerSecret(site: site, router: router).wireGuardKey.publicKeyBase64

            // The stick, and known_hosts as the operator gets it: from the CLI, master secret only.
            let stick = scratch.path("stick")
            try FileManager.default.createDirectory(atPath: stick, withIntermediateDirectories: true)
            try keys.sealedProfile(plan: plan, site: site, router: router, serial: 1000, issuedAt: Date(timeIntervalSince1970: 1000))
                .write(to: URL(fileURLWithPath: stick + "/profile.age"))
            let knownHosts = try runTool("edgekit", ["keys", "known-hosts", "--plan", planFolder, "--secrets", scratch.secrets])
            try #require(knownHosts.status == 0, "\(knownHosts)")
            try Data(knownHosts.stdout.utf8).write(to: URL(fileURLWithPath: scratch.path("known_hosts")))
            let found = try runSystem("ssh-keygen", ["-F", "\(router.tunnelAddress)", "-f", scratch.path("known_hosts")])
            #expect(found.status == 0 && found.stdout.contains("ssh-ed25519"), "ssh-keygen -F finds the router: \(found)")
            try Data((keys.relayWireGuardKey().privateKeyBase64 + "\n").utf8).write(to: URL(fileURLWithPath: scratch.path("relay.key")))
            chmod(scratch.path("relay.key"), 0o600)

            let number = Self.counter.withLock { $0 += 1; return $0 }
            let tag = "\(getpid() % 100000)x\(number)"
            let relayNS = "eksr\(tag)", routerNS = "eksa\(tag)", spareNS = "eksb\(tag)"
            let relayWG = "eksw\(tag)"
            func ip(_ arguments: [String]) throws {
                let result = try runSystem("ip", arguments)
                try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result)")
            }
            func inRelay(_ command: [String], _ environment: [String] = []) throws -> ToolResult {
                try runSystem("ip", ["netns", "exec", relayNS, "env"] + environment + command)
            }
            var created: [String] = []
            defer {
                // Every process in these namespaces was started by this test.
                for ns in created {
                    if let pids = try? runSystem("ip", ["netns", "pids", ns]) {
                        for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
                    }
                    _ = try? runSystem("ip", ["netns", "del", ns])
                }
                unlink("/run/wireguard/\(relayWG).sock")
            }
            for ns in [relayNS, routerNS, spareNS] {
                try ip(["netns", "add", ns])
                created.append(ns)
                try ip(["-n", ns, "link", "set", "lo", "up"])
            }
            // Uplinks: relay "up-a" ↔ router uplink0, relay "up-b" ↔ spare uplink0. LAN veths stay inside.
            let uplinkAddress = ["a": "fd00:5eed:a::2", "b": "fd00:5eed:b::2"]
            for (side, ns) in [("a", routerNS), ("b", spareNS)] {
                try ip(["-n", relayNS, "link", "add", "up-\(side)", "type", "veth", "peer", "name", "uplink0", "netns", ns])
                try ip(["-n", relayNS, "-6", "addr", "add", "fd00:5eed:\(side)::1/64", "dev", "up-\(side)", "nodad"])
                try ip(["-n", relayNS, "link", "set", "up-\(side)", "up"])
                try ip(["-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"])
                try ip(["-n", ns, "link", "set", "lan0p", "up"])
            }

            // The router: apply in a private mount namespace whose /run is its own tmpfs (mode 0755,
            // so sshd's StrictModes accepts the path to authorized_keys; wireguard-go's socket and
            // sshd's /run/sshd stay private), with --root bound at /run/r.
            let agent = binDirectory.appendingPathComponent("edgekit-agent").path
            func startRouter(_ ns: String, root: String, uplink: String) throws -> ToolResult {
                let script = """
                    mount -t tmpfs -o mode=0755 tmpfs /run || exit 90
                    mkdir /run/r && mount --bind \(root) /run/r || exit 91
                    \(agent) apply --root /run/r --stick \(stick) --services processes 2>&1; echo "rc=$?"
                    ip -6 addr add \(uplink)/64 dev uplink0 nodad
                    """
                return try runSystem("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script])
            }
            let rootA = try scratch.makeRoot("router")
            let applied = try startRouter(routerNS, root: rootA, uplink: uplinkAddress["a"]!)
            #expect(applied.stdout.contains("restarted (processes): sysctl, networkd, tunnel, nftables, keepalived, radvd, ssh"), "\(applied)")
            #expect(applied.stdout.contains("rc=0"), "\(applied)")

            // The relay's end of the tunnel: wireguard-go with the relay key, the router as its peer.
            // In the foreground: a daemonizing wireguard-go leaves a child this process would wait on.
            let wgGo = try startProgram("/usr/sbin/ip", ["netns", "exec", relayNS, "wireguard-go", "-f", relayWG],
                                        environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"])
            defer { wgGo.discard() }
            try #require(waitUntil(5) { FileManager.default.fileExists(atPath: "/run/wireguard/\(relayWG).sock") }, "wireguard-go did not start")
            func peer(endpoint: String) throws {
                let set = try inRelay(["wg", "set", relayWG, "private-key", scratch.path("relay.key"), "peer", routerPublic,
                                       "allowed-ips", "\(router.tunnelAddress)/128", "endpoint", "[\(endpoint)]:\(plan.relay.wireguardPort)",
                                       "persistent-keepalive", "1"])
                try #require(set.status == 0, "\(set)")
            }
            try peer(endpoint: uplinkAddress["a"]!)
            try ip(["-n", relayNS, "-6", "addr", "add", "\(plan.relay.tunnelAddress)/128", "dev", relayWG, "nodad"])
            try ip(["-n", relayNS, "link", "set", relayWG, "up"])

            func ssh(_ target: String, key: String = "operator", _ extra: [String] = []) throws -> ToolResult {
                try inRelay(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=4", "-o", "IdentitiesOnly=yes",
                             "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(scratch.path("known_hosts"))",
                             "-o", "GlobalKnownHostsFile=/dev/null", "-i", scratch.path(key)] + extra
                            + ["root@\(target)", "echo logged-in-as-$(id -un)"])
            }

            // The uplink side first: the tunnel address routed over the uplink, and the uplink address.
            try ip(["-n", relayNS, "-6", "route", "add", "\(router.tunnelAddress)/128", "via", uplinkAddress["a"]!, "dev", "up-a"])
            let viaUplink = try ssh("\(router.tunnelAddress)")
            #expect(viaUplink.status == 255 && viaUplink.stderr.contains("timed out"), "tcp/22 from the uplink is dropped: \(viaUplink)")
            let uplinkAddressLogin = try ssh(uplinkAddress["a"]!, ["-o", "StrictHostKeyChecking=no"])
            #expect(uplinkAddressLogin.status == 255 && !uplinkAddressLogin.stdout.contains("logged-in"), "\(uplinkAddressLogin)")

            // Through the tunnel.
            try ip(["-n", relayNS, "-6", "route", "replace", "\(router.tunnelAddress)/128", "dev", relayWG])
            var login = try ssh("\(router.tunnelAddress)")
            for _ in 0..<10 where login.status != 0 {
                Thread.sleep(forTimeInterval: 0.5)  // the first handshake
                login = try ssh("\(router.tunnelAddress)")
            }
            #expect(login.status == 0 && login.stdout == "logged-in-as-root\n", "the operator key logs in: \(login)")

            let password = try ssh("\(router.tunnelAddress)", ["-o", "PubkeyAuthentication=no",
                                                                "-o", "PreferredAuthentications=password,keyboard-interactive"])
            #expect(password.status == 255 && password.stderr.contains("Permission denied (publickey)"), "no password login: \(password)")
            let stranger = try ssh("\(router.tunnelAddress)", key: "stranger")
            #expect(stranger.status == 255 && stranger.stderr.contains("Permission denied (publickey)"), "an unknown key: \(stranger)")

            // The router fails; its stick goes into the spare, which comes up with the same host key.
            if let pids = try? runSystem("ip", ["netns", "pids", routerNS]) {
                for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
            }
            let rootB = try scratch.makeRoot("spare")
            let spare = try startRouter(spareNS, root: rootB, uplink: uplinkAddress["b"]!)
            #expect(spare.stdout.contains("rc=0"), "\(spare)")
            try peer(endpoint: uplinkAddress["b"]!)
            var again = try ssh("\(router.tunnelAddress)")
            for _ in 0..<10 where again.status != 0 {
                Thread.sleep(forTimeInterval: 0.5)
                again = try ssh("\(router.tunnelAddress)")
            }
            #expect(again.status == 0 && again.stdout == "logged-in-as-root\n",
                    "the spare answers with the host key known_hosts holds (StrictHostKeyChecking=yes): \(again)")
            let hostKey = { (root: String) in FileManager.default.contents(atPath: root + ConfigPaths.sshHostKey) }
            #expect(hostKey(rootA) != nil && hostKey(rootA) == hostKey(rootB))
            // One line per router, each with its own key.
            let hostKeys = knownHosts.stdout.split(separator: "\n").map { $0.split(separator: " ")[2] }
            #expect(hostKeys.count == 3 && Set(hostKeys).count == 3, "\(knownHosts)")
        }
    }
}
