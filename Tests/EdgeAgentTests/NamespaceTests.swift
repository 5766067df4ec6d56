import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation
import Synchronization
import Testing
import TestSupport

/// `apply --services processes` in a network namespace with `uplink0`/`lan0` veths: radvd,
/// keepalived and the wireguard-go tunnel really run and the ruleset is loaded; a second apply
/// restarts nothing; a keepalived that refuses the new generation's config brings the previous one
/// back. Needs root (namespaces); skips with the reason otherwise.
@Suite(.serialized) struct NamespaceTests {
    static let counter = Mutex(0)

    /// A network namespace of the test's own (PREFIX, the process id and a counter: unique), with
    /// its loopback up. Pair it with `deleteNamespace` in a `defer`.
    static func addNamespace(prefix: String) throws -> String {
        let number = counter.withLock { $0 += 1; return $0 }
        let ns = "\(prefix)\(getpid())x\(number)"
        try ip(["netns", "add", ns])
        do {
            try ip(["-n", ns, "link", "set", "lo", "up"])
        } catch {
            deleteNamespace(ns)
            throw error
        }
        return ns
    }

    /// Kills everything still running in `ns` (all of it started by the test) and deletes it.
    static func deleteNamespace(_ ns: String) {
        if let pids = try? runSystem("ip", ["netns", "pids", ns]) {
            for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
        }
        _ = try? runSystem("ip", ["netns", "del", ns])
    }

    /// `ip ARGUMENTS`, required to succeed.
    static func ip(_ arguments: [String]) throws {
        let result = try runSystem("ip", arguments)
        try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result)")
    }


    /// Output of one script section (`=== NAME` … up to the next).
    static func sections(_ output: String) -> [String: String] {
        var result: [String: String] = [:]
        var name = ""
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("=== ") { name = String(line.dropFirst(4)); continue }
            result[name, default: ""] += line + "\n"
        }
        return result
    }

    @Test("apply with child processes in a namespace: daemons run, tunnel up, ruleset loaded; rollback on a failing service", .requiresRoot(andTools: "ip", "unshare", "radvd", "keepalived", "wireguard-go", "wg", "nft"), .slow)
    func applyInNamespace() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stickA = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let stickB = try scratch.stickFolder("b", slot: 1, serial: 1001)
            // Stands in for keepalived: refuses slot 1's config (priority 200), runs the real one otherwise.
            let fake = scratch.path("fake-keepalived")
            FileManager.default.createFile(atPath: fake, contents: Data("""
                #!/bin/sh
                cfg=""; prev=""
                for a in "$@"; do [ "$prev" = "-f" ] && cfg="$a"; prev="$a"; done
                if grep -q "priority 200" "$cfg"; then echo "keepalived: configuration rejected (test stand-in)" >&2; exit 1; fi
                exec /usr/sbin/keepalived "$@"

                """.utf8), attributes: [.posixPermissions: 0o755])

            let ns = try Self.addNamespace(prefix: "eka")
            defer { Self.deleteNamespace(ns) }
            for name in ["uplink0", "lan0"] {
                try Self.ip(["-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "p"])
                try Self.ip(["-n", ns, "link", "set", name + "p", "up"])
            }
            let agent = binDirectory.appendingPathComponent("edgekit-agent").path
            let processes = root + "/run/edgekit/processes"
            // A private mount namespace with its own /run: wireguard-go's control socket
            // (/run/wireguard/wg-relay.sock) never meets the host's or another test's.
            let script = """
                mount -t tmpfs tmpfs /run || exit 90
                cleanup() { for f in \(processes)/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.5; }
                trap cleanup EXIT
                pids() { for n in radvd keepalived wireguard-go; do p=$(cat \(processes)/$n.pid 2>/dev/null); echo "$n $p $(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null)"; done; }
                echo "=== apply1"; \(agent) apply --root \(root) --stick \(stickA) --services processes 2>&1; echo "rc=$?"
                echo "=== wg"; wg show wg-relay dump 2>&1
                echo "=== nft"; nft list ruleset 2>&1 | grep '^table'
                echo "=== pids1"; pids
                echo "=== lan"; ip -6 addr show dev lan0 2>&1
                echo "=== forwarding"; sysctl -n net.ipv6.conf.all.forwarding
                tree() { find \(root) -path '\(processes)/*.log' -prune -o -printf '%i %T@ %p\\n' | sort -k3; }
                echo "=== tree1"; tree
                echo "=== apply2"; \(agent) apply --root \(root) --stick \(stickA) --services processes 2>&1; echo "rc=$?"
                echo "=== tree2"; tree
                echo "=== pids2"; pids
                echo "=== rollback"; EDGEKIT_AGENT_TOOL_KEEPALIVED=\(fake) \(agent) apply --root \(root) --stick \(stickB) --services processes 2>&1; echo "rc=$?"
                echo "=== status"; \(agent) status --root \(root) --format json
                echo "=== pids3"; pids
                """
            let result = try runSystem("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script])
            let out = Self.sections(result.stdout)
            let plan = BadProfileCorpus.plan
            let site = plan.site(named: "site-a")!
            let router = site.router(slot: 2)!

            #expect(out["apply1"]?.contains("applied generation 1") == true, "\(result)")
            #expect(out["apply1"]?.contains("restarted (processes): sysctl, networkd, tunnel, nftables, keepalived, radvd") == true, "\(result)")
            #expect(out["apply1"]?.contains("rc=0") == true, "\(result)")
            // wg show dump: interface line (private key, public key, port, fwmark), then the relay peer.
            let wg = (out["wg"] ?? "").split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
            #expect(wg.count == 2, "\(result)")
            if wg.count == 2 {
                #expect(wg[0][1] == BadProfileCorpus.keys.routerSecret(site: site, router: router).wireGuardKey.publicKeyBase64)
                #expect(wg[0][2] == "\(plan.relay.wireguardPort)")
                #expect(wg[1][0] == BadProfileCorpus.keys.relayWireGuardKey().publicKeyBase64)
                #expect(wg[1][3] == "\(IPv6Prefix.host(plan.relay.tunnelAddress)),\(plan.ula)")
            }
            #expect(out["nft"]?.contains("table inet edgekit") == true, "\(result)")
            // The lab mirrors networkd: lan0 carries what 20-edgekit-lan.network says.
            #expect(out["lan"]?.contains("inet6 \(router.lanAddress)/64") == true, "the router's own LAN address: \(result)")
            #expect(out["forwarding"] == "1\n", "\(result)")
            let pids1 = out["pids1"] ?? ""
            for daemon in ["radvd", "keepalived", "wireguard-go"] {
                let line = pids1.split(separator: "\n").first { $0.hasPrefix(daemon + " ") } ?? ""
                #expect(line.split(separator: " ").count > 2 && line.contains("/\(daemon)"), "\(daemon) is not running: \(result)")
            }
            #expect(out["apply2"]?.contains("nothing changed, nothing restarted") == true, "\(result)")
            #expect(out["pids2"] == pids1, "a second apply must restart nothing")
            // …and touch nothing: every inode number and mtime under --root as before, with the real
            // daemons running. Their own logs are left out: keepalived appends to its log on its own
            // (VRRP state changes), whatever the agent does.
            #expect((out["tree1"] ?? "").split(separator: "\n").count > 40, "\(result)")
            #expect(out["tree2"] == out["tree1"], "the second apply touched files under --root: \(result)")

            let expected = "keepalived did not come up with generation 2 (exited at start: keepalived: configuration rejected (test stand-in)); rolled back to generation 1"
            #expect(out["rollback"]?.contains(expected + "\nrc=1") == true, "\(result)")
            let status = try JSONSerialization.jsonObject(with: Data((out["status"] ?? "").utf8)) as? [String: Any]
            #expect(status?["generation"] as? Int == 1, "\(result)")
            // The tunnel is there (wireguard-go), the relay is not: no handshake, and the age says so with null.
            #expect(status?["tunnel"] as? String == "up, no handshake yet", "\(result)")
            #expect(status?.keys.contains("handshake_age_seconds") == true && status?["handshake_age_seconds"] is NSNull, "\(result)")
            #expect(status?["serial"] as? Int == 1000, "\(result)")
            let keepalived = (out["pids3"] ?? "").split(separator: "\n").first { $0.hasPrefix("keepalived ") } ?? ""
            #expect(keepalived.contains("/usr/sbin/keepalived") || keepalived.contains(" keepalived "), "keepalived runs the old generation again: \(result)")
            #expect(keepalived.contains(root + "/etc/keepalived/keepalived.conf"), "\(result)")
            #expect(try String(contentsOfFile: root + "/etc/keepalived/keepalived.conf", encoding: .utf8).contains("priority 100"))
        }
    }

    /// Real ports, a real rename: two veths in a namespace stand in for a Pi 4's onboard port and its
    /// USB adapter (the fake sysfs under --root says which is which, with the veths' MAC addresses;
    /// veths have no device of their own). The first apply pins them and the ports are renamed by
    /// MAC (`ChildProcessServices` does what udev does with the `.link` files); after a "reboot" that
    /// names them the other way round, an apply of another slot's stick keeps both roles.
    @Test("auto ports in a namespace: pinned by MAC, renamed, and kept when the kernel's order swaps", .requiresRoot(andTools: "ip", "unshare", "radvd", "keepalived", "wireguard-go", "wg", "nft"), .slow)
    func pinnedPortsInNamespace() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let sysfs = try FakeSysfs(root: root)
            let onboard = PortPinningApplyTests.onboard, adapter = PortPinningApplyTests.adapter
            let stickA = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let stickB = try scratch.stickFolder("b", slot: 1, serial: 1001)
            let ns = try Self.addNamespace(prefix: "ekp")
            defer { Self.deleteNamespace(ns) }
            /// The kernel's names after a boot: eth0 probed first. The peers stay up, so each port has carrier.
            func boot(adapterFirst: Bool) throws {
                for name in ["eth0", "eth1", "uplink0", "lan0"] { _ = try? runSystem("ip", ["-n", ns, "link", "del", name]) }
                let (first, second) = adapterFirst ? (adapter, onboard) : (onboard, adapter)
                for (index, mac) in [first, second].enumerated() {
                    try Self.ip(["-n", ns, "link", "add", "eth\(index)", "address", mac, "type", "veth", "peer", "name", "peer\(index)"])
                    try Self.ip(["-n", ns, "link", "set", "peer\(index)", "up"])
                }
                try PortPinningApplyTests.pi4(sysfs, swapped: !adapterFirst)
            }
            let agent = binDirectory.appendingPathComponent("edgekit-agent").path
            let processes = root + "/run/edgekit/processes"
            func run(_ stick: String) throws -> String {
                let script = """
                    mount -t tmpfs tmpfs /run || exit 90
                    cleanup() { for f in \(processes)/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.5; rm -f \(processes)/*.pid; }
                    trap cleanup EXIT
                    echo "=== apply"; \(agent) apply --root \(root) --stick \(stick) --services processes 2>&1; echo "rc=$?"
                    echo "=== links"; ip -br link show | awk '{ split($1, n, "@"); print n[1], $3 }'
                    echo "=== lan"; ip -6 addr show dev lan0 2>&1
                    """
                let result = try runSystem("ip", ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script])
                return result.stdout + result.stderr
            }

            try boot(adapterFirst: true)
            let first = try run(stickA)
            let out1 = Self.sections(first)
            let site = BadProfileCorpus.plan.site(named: "site-a")!
            #expect(out1["apply"]?.contains("ports: uplink auto: pinned \(onboard) (eth1, onboard)\nports: LAN auto: pinned \(adapter) (eth0, USB)\n") == true, "\(first)")
            #expect(out1["apply"]?.contains("rc=0") == true, "\(first)")
            // The onboard port (eth1 this boot) is the uplink, the adapter (eth0) the LAN.
            #expect(out1["links"]?.contains("uplink0 \(onboard)\n") == true && out1["links"]?.contains("lan0 \(adapter)\n") == true, "\(first)")
            #expect(out1["lan"]?.contains("inet6 \(site.router(slot: 2)!.lanAddress)/64") == true, "\(first)")
            let links = (PortPinningApplyTests.link(root, ConfigPaths.uplinkLink), PortPinningApplyTests.link(root, ConfigPaths.lanLink))

            // Next boot the onboard port probes first (eth0): another stick (slot 1, its own LAN
            // address, so networkd is restarted and the ports renamed again) keeps both roles.
            try boot(adapterFirst: false)
            let second = try run(stickB)
            let out2 = Self.sections(second)
            #expect(out2["apply"]?.contains("applied generation 2") == true && out2["apply"]?.contains("rc=0") == true, "\(second)")
            #expect(out2["apply"]?.contains("ports:") == false, "nothing to pin again: \(second)")
            #expect(out2["apply"]?.contains(".link") == false, "the .link files stay: \(second)")
            #expect(out2["links"]?.contains("uplink0 \(onboard)\n") == true && out2["links"]?.contains("lan0 \(adapter)\n") == true, "\(second)")
            #expect(out2["lan"]?.contains("inet6 \(site.router(slot: 1)!.lanAddress)/64") == true, "\(second)")
            #expect(PortPinningApplyTests.link(root, ConfigPaths.uplinkLink) == links.0)
            #expect(PortPinningApplyTests.link(root, ConfigPaths.lanLink) == links.1)
        }
    }
}
