import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation
import Testing
import TestSupport

@Suite struct ApplyTests {
    /// Every key `status --format json` prints, whether or not it has a value (null then).
    static let statusKeys: Set<String> = [
        "stick", "stick_path", "plan", "site", "slot", "generation", "previous_generation", "serial", "failed_services",
        "vrrp", "handshake_age_seconds", "tunnel", "registration", "agent", "last_apply", "note",
        "drift", "drifted_files", "drift_problem", "health", "ports", "system", "update",
    ]

    /// `status --format json`, checked to carry every key.
    static func status(_ root: String) throws -> [String: Any] {
        let result = try runTool("edgekit-agent", ["status", "--root", root, "--format", "json"])
        try #require(result.status == 0, "\(result)")
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(Set(fields.keys) == statusKeys, "status --format json must print every key: \(result.stdout)")
        return fields
    }

    @Test("apply writes every rendered file and the key, a second apply changes nothing, serials only grow")
    func goodPath() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickImage("stick.img", serial: 1000)

            // Dry run: says what it would do, changes nothing.
            let pristine = treeHash(root)
            let dry = try scratch.apply(root, stick, ["--dry-run"])
            #expect(dry.status == 0, "\(dry)")
            #expect(dry.stdout.contains("would add /etc/radvd.conf"))
            #expect(dry.stdout.contains("would restart: sysctl, networkd, tunnel, nftables, keepalived, radvd"))
            #expect(treeHash(root) == pristine)

            let first = try scratch.apply(root, stick)
            #expect(first.status == 0, "\(first)")
            #expect(first.stdout.hasPrefix("applied generation 1 (site site-a router 2, serial 1000)"), "\(first)")

            // Every rendered file, byte for byte and with its mode, as EdgeRender makes it.
            let plan = BadProfileCorpus.plan
            let site = plan.site(named: "site-a")!
            let router = site.router(slot: 2)!
            let keys = BadProfileCorpus.keys
            let rendered = EdgeRouterConfig.files(plan: plan, site: site, router: router,
                                                  relayPublicKeys: [keys.relayWireGuardKey().publicKeyBase64])
            // keepalived.conf is the exception: the profile carries only its own router, so the
            // agent renders a one-router VRRP instance (no preempt_delay) where the whole plan has a
            // pair. Known gap in ProfileDocument.model(); checked against that model instead.
            let (profilePlan, profileSite, profileRouter) = try BadProfileCorpus.good().model()
            let ownKeepalived = EdgeRouterConfig.files(plan: profilePlan, site: profileSite, router: profileRouter,
                                                       relayPublicKeys: [keys.relayWireGuardKey().publicKeyBase64])
                .first { $0.path == ConfigPaths.keepalived }!
            for var file in rendered {
                if file.path == ConfigPaths.keepalived { file = ownKeepalived }
                let live = root + file.path
                #expect(FileManager.default.contents(atPath: live) == Data(file.contents.utf8), "\(file.path)")
                var info = stat()
                #expect(stat(live, &info) == 0 && info.st_mode & 0o7777 == file.mode, "\(file.path) mode")
            }
            let keyPath = root + ConfigPaths.routerWireGuardKey
            let key = try String(contentsOfFile: keyPath, encoding: .utf8)
            #expect(key == keys.routerSecret(site: site, router: router).wireGuardKey.privateKeyBase64 + "\n")
            var info = stat()
            #expect(stat(keyPath, &info) == 0 && info.st_mode & 0o7777 == 0o600, "the key must be 0600")
            #expect(!first.stdout.contains(key.trimmingCharacters(in: .whitespacesAndNewlines)), "the key is never printed")

            var status = try Self.status(root)
            #expect(status["serial"] as? Int == 1000)
            #expect(status["generation"] as? Int == 1)
            #expect(status["slot"] as? Int == 2)
            #expect(status["site"] as? String == "site-a")

            // Idempotent: same stick, not one byte changed and nothing restarted; not one file or
            // directory under --root rewritten or replaced either (inode numbers and mtimes).
            let applied = treeHash(root)
            let identity = treeIdentity(root)
            let again = try scratch.apply(root, stick)
            #expect(again.status == 0, "\(again)")
            #expect(again.stdout == "generation 1 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\n")
            #expect(treeHash(root) == applied)
            #expect(treeIdentity(root) == identity, "the second apply touched: \(changedEntries(identity, treeIdentity(root)))")

            // An older stick is refused, with nothing changed.
            let older = try scratch.stickImage("older.img", serial: 999)
            let refused = try scratch.apply(root, older)
            #expect(refused.status == 1)
            #expect(refused.stderrLines == ["\(older): profile serial 999 is older than the last applied serial 1000; use the newest stick"])
            #expect(treeHash(root) == applied)

            // A newer stick makes generation 2 and keeps 1; only the applied profile changed, so no
            // service needs a restart.
            let newer = try scratch.stickImage("newer.img", serial: 1001)
            let update = try scratch.apply(root, newer)
            #expect(update.status == 0, "\(update)")
            #expect(update.stdout.contains("applied generation 2 (site site-a router 2, serial 1001)"))
            #expect(update.stdout.contains("previous generation 1 kept"))
            #expect(update.stdout.contains("change /etc/edgekit/profile.json"))
            #expect(update.stdout.contains("not restarting (--services none): nothing"), "\(update)")
            let generations = try FileManager.default.contentsOfDirectory(atPath: root + "/var/lib/edgekit/generations").sorted()
            #expect(generations == ["1", "2"])
            status = try Self.status(root)
            #expect(status["serial"] as? Int == 1001)
            #expect(status["generation"] as? Int == 2)
            #expect(status["previous_generation"] as? Int == 1)

            // Another slot's stick changes the files that differ and names their services.
            let slot1 = try scratch.stickImage("slot1.img", slot: 1, serial: 1002)
            let move = try scratch.apply(root, slot1)
            #expect(move.status == 0, "\(move)")
            #expect(move.stdout.contains("change /etc/keepalived/keepalived.conf"))
            #expect(!move.stdout.contains("change /etc/radvd.conf"), "radvd.conf is the same for both slots")
            #expect(move.stdout.contains("not restarting (--services none): networkd, tunnel, nftables, keepalived"), "each slot has its own LAN address: \(move)")
        }
    }

    /// The idempotence, with services that really are started: `--services processes` with
    /// stand-in tools (`FakeTools`), so every spawn is recorded. The second apply of the same stick
    /// spawns nothing, every daemon keeps its pid, and no entry under --root (the generation store,
    /// the live links, the runtime directory with its pid files and logs) gets a new inode or mtime.
    @Test("a second apply of the same stick touches no file (inodes, mtimes) and restarts nothing (pids, no spawn at all)", .requiresRoot(andTools: "unshare"))
    func secondApplyTouchesNothing() throws {
        try Scratch.with { scratch in
            let fakes = try FakeTools(in: scratch)
            let root = try scratch.makeRoot()
            defer { FakeTools.stopDaemons(under: root) }
            let stick = try scratch.stickImage("stick.img", serial: 1000)
            func apply() throws -> ToolResult {
                try runIsolated(["apply", "--root", root, "--stick", stick, "--services", "processes"], environment: fakes.environment)
            }
            let first = try apply()
            try #require(first.status == 0, "\(first)")
            #expect(first.stdout.contains("restarted (processes): sysctl, networkd, tunnel, nftables, keepalived, radvd"), "\(first)")
            let processes = root + "/run/edgekit/processes"
            func pids() -> [String: pid_t] {
                var result: [String: pid_t] = [:]
                for name in ["radvd", "keepalived", "wireguard-go"] {
                    result[name] = pid_t(((try? String(contentsOfFile: "\(processes)/\(name).pid", encoding: .utf8)) ?? "")
                        .trimmingCharacters(in: .whitespacesAndNewlines))
                }
                return result
            }
            let daemons = pids()
            for (name, pid) in daemons { #expect(isRunning(pid ?? 0), "\(name) is not running after the first apply") }
            let content = treeHash(root)
            let identity = treeIdentity(root)
            fakes.clear()

            let second = try apply()
            #expect(second.status == 0, "\(second)")
            #expect(second.stdout == "generation 1 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\n", "\(second)")
            #expect(fakes.calls.isEmpty, "the second apply ran: \(fakes.calls)")
            #expect(pids() == daemons)
            for (name, pid) in daemons { #expect(isRunning(pid ?? 0), "\(name) was stopped by the second apply") }
            #expect(treeHash(root) == content)
            #expect(treeIdentity(root) == identity, "the second apply touched: \(changedEntries(identity, treeIdentity(root)))")
        }
    }

    @Test("the key file belongs to systemd-network when the root has that user")
    func keyOwner() throws {
        guard geteuid() == 0 else { return }  // only root can give files away
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            try Data("root:x:0:0:root:/root:/bin/sh\nsystemd-network:x:4242:4343:systemd Network Management:/:/usr/sbin/nologin\n".utf8)
                .write(to: URL(fileURLWithPath: root + "/etc/passwd"))
            let result = try scratch.apply(root, try scratch.stickFolder("stick", serial: 1000))
            #expect(result.status == 0, "\(result)")
            var info = stat()
            #expect(stat(root + ConfigPaths.routerWireGuardKey, &info) == 0)
            #expect(info.st_uid == 4242 && info.st_gid == 4343 && info.st_mode & 0o7777 == 0o600)
        }
    }

    @Test("run with no stick keeps the last generation, says so on stderr and in status; notify records VRRP")
    func noStickAtBoot() throws {
        let probe = try runSystem("blkid", ["-c", "/dev/null", "-t", "LABEL=EDGEPROFILE", "-o", "device"])
        guard probe.stdout.isEmpty else {
            print("skipped: this machine has a device labelled EDGEPROFILE (\(probe.stdout)); the test needs none")
            return
        }
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let empty = try runTool("edgekit-agent", ["run", "--once", "--root", root])
            #expect(empty.stderrLines.contains("edgekit-agent: no profile stick found (label EDGEPROFILE); nothing applied yet"), "\(empty)")
            let before = try ApplyTests.status(root)
            #expect(before["generation"] is NSNull && before["serial"] is NSNull && before["stick_path"] is NSNull, "\(before)")
            #expect(before["note"] as? String == "no stick at boot: nothing applied yet", "\(before)")

            #expect(try scratch.apply(root, try scratch.stickFolder("stick", serial: 1000)).status == 0)
            let started = Date()
            let notify = try runTool("edgekit-agent", ["notify", "master", "--root", root])
            #expect(notify.status == 0, "\(notify)")
            // At once: no waiting on the registration, which takes its deadline. Under qemu-aarch64
            // (the suite's second pass) starting the 59 MB agent alone took 4 s on a busy machine.
            let bound: TimeInterval = ProcessInfo.processInfo.environment["QEMU_LD_PREFIX"] == nil ? 2 : 15
            #expect(Date().timeIntervalSince(started) < bound, "notify must return at once")

            // relay.example.net does not resolve in the test: the real client gives up at the deadline.
            let run = try runTool("edgekit-agent", ["run", "--once", "--root", root, "--registration-deadline", "2"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stderrLines.contains("edgekit-agent: no profile stick found (label EDGEPROFILE); keeping generation 1"), "\(run)")
            #expect(run.stderr.contains("no answer from relay relay.example.net port 51821"), "\(run)")
            let status = try ApplyTests.status(root)
            #expect(status["note"] as? String == "no stick at boot: running the last applied generation 1")
            #expect(status["stick"] as? String == "none")
            #expect(status["vrrp"] as? String == "master")
            #expect(status["generation"] as? Int == 1)
            #expect(status["serial"] as? Int == 1000)
            #expect((status["registration"] as? String)?.hasPrefix("failed: no answer from relay relay.example.net port 51821") == true, "\(status)")
            // --once has ended: the record stays, but the agent is not running.
            #expect((status["agent"] as? String)?.hasPrefix("not running (stopped at ") == true, "\(status)")
            #expect(status["last_apply"] as? String == "edgekit-agent: no profile stick found (label EDGEPROFILE); keeping generation 1")
            let text = try runTool("edgekit-agent", ["status", "--root", root])
            #expect(text.stdout.contains("no stick at boot: running the last applied generation 1"), "\(text)")
        }
    }
}
