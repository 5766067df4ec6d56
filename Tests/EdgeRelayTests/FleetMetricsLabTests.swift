import EdgeCrypto
import EdgeImage
import EdgeModel
import EdgeRender
import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `prometheus` in the relay's namespace scrapes the real `edgekit-relay serve` and each
/// router's real `prometheus-node-exporter` through real wireguard-go tunnels, with the config,
/// rules and file_sd targets of the relay bundle (scrape interval shortened to 1 s). Each router is
/// a namespace with its own uplink veth to the relay: the real `edgekit-agent` applies its stick
/// there (`--services none`), registers with the relay and writes `edgekit.prom`; the tunnel is
/// wireguard-go with the agent's rendered `wg-relay.conf` and key, and the node exporter runs with
/// the agent's rendered `ARGS`. Not covered here: keepalived, radvd, nftables and systemd (the
/// agent's other tests and lab/lab.sh run those).
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"),
       .requiresTool("prometheus", "prometheus-node-exporter", "promtool"), .slow)
struct FleetMetricsLabTests {
    static let scrapeSeconds = 1

    @Test func prometheusScrapesRelayAndRoutersThroughTheTunnels() throws {
        let lab = try FleetLab()
        defer { lab.close() }
        do {
            try lab.start()
            try check(lab)
        } catch {
            let targets = (try? lab.http("/api/v1/targets")) ?? "(no answer)"
            Issue.record("relay log:\n\(lab.log("relay").suffix(3000))\nprometheus log:\n\(lab.log("prometheus").suffix(2000))\ntargets:\n\(targets.suffix(3000))")
            throw error
        }
    }

    func check(_ lab: FleetLab) throws {
        // Every target of the bundle's config answers: the relay and the plan's three routers.
        let up = try lab.waitForValue("up == 1 for the relay and 3 routers", timeout: 30) { () -> [String: Double]? in
            let values = try lab.query("up")
            return values.count == 4 && values.values.allSatisfy { $0 == 1 } ? values : nil
        }
        #expect(up.keys.sorted() == ["[::1]:9821", "[fd3b:4f10:a8c6::1:1:1]:9100", "[fd3b:4f10:a8c6::1:1:2]:9100",
                                     "[fd3b:4f10:a8c6::1:2:1]:9100"])
        // The relay's view, through Prometheus: three peers, site-a's master is slot 1, every router up.
        #expect(try lab.query("edgekit_relay_peers").values.first == 3)
        #expect(try lab.query(#"edgekit_relay_site_master_slot{site="site-a"}"#).values.first == 1)
        _ = try lab.waitForValue("every router up at the relay", timeout: 15) { () -> Bool? in
            let values = try lab.query("edgekit_relay_router_up", by: "tunnel")
            return values.count == 3 && values.values.allSatisfy { $0 == 1 } ? true : nil
        }
        #expect(try lab.query(#"edgekit_relay_registrations_total{result="accepted"}"#).values.first == 3)
        // The agents' series, carried by the node exporters' textfile collector, with the plan's labels.
        let generations = try lab.query(#"edgekit_agent_generation{job="edgekit-routers"}"#, by: "hostname")
        #expect(generations == ["site-a-r1": 1, "site-a-r2": 1, "site-b-r1": 1])
        #expect(try lab.query(#"edgekit_agent_vrrp_state{state="master"}"#, by: "hostname")
                == ["site-a-r1": 1, "site-a-r2": 0, "site-b-r1": 1])
        #expect(try lab.query("edgekit_agent_registered", by: "hostname") == ["site-a-r1": 1, "site-a-r2": 1, "site-b-r1": 1])
        // What each real agent reported in its REGISTER (issue 18.2, the fleet view), as the relay serves it:
        // generation 1 applied, this build's agent version.
        #expect(try lab.query("edgekit_relay_router_generation", by: "tunnel")
                == ["fd3b:4f10:a8c6::1:1:1": 1, "fd3b:4f10:a8c6::1:1:2": 1, "fd3b:4f10:a8c6::1:2:1": 1])
        #expect(try lab.query("edgekit_relay_router_agent_info", by: "version") == ["0.1.0": 1])
        // The system each agent runs and site-b's failed update, as the relay heard them, and its alert.
        #expect(try lab.query("edgekit_relay_router_system_version", by: "tunnel")
                == ["fd3b:4f10:a8c6::1:1:1": 3, "fd3b:4f10:a8c6::1:1:2": 3, "fd3b:4f10:a8c6::1:2:1": 3])
        #expect(try lab.query(#"edgekit_relay_router_update{state="failed",version="4"}"#, by: "site") == ["site-b": 1])
        #expect(try lab.query(#"edgekit_system_update{state="failed",version="4"}"#, by: "hostname") == ["site-b-r1": 1],
                "the agent's own series says the same")
        _ = try lab.waitForValue("EdgekitUpdateFailed firing for site-b", timeout: 15) { () -> Bool? in
            try lab.query(#"ALERTS{alertname="EdgekitUpdateFailed",alertstate="firing"}"#, by: "site") == ["site-b": 1] ? true : nil
        }
        // What the relay serves, as scraped, passes promtool's lint.
        let exposition = try lab.relayMetrics()
        #expect(try Promtool.problems(inMetrics: exposition) == nil)
        #expect(exposition.contains(#"edgekit_relay_site_master_up{site="site-b"} 1"#))
        #expect(try lab.relayHTTP("/").hasPrefix("HTTP/1.0 404"))

        // site-a's master dies hard (its exporter and its tunnel killed): Prometheus records it
        // down within two scrape intervals (the sample's own timestamp, not when we asked).
        let master = "[fd3b:4f10:a8c6::1:1:1]:9100"
        let killed = Date().timeIntervalSince1970
        lab.killRouter(0)
        let downAt = try lab.waitForValue("the killed master down", timeout: 15) { () -> Double? in
            guard try lab.query(#"up{instance="\#(master)"}"#).values.first == 0 else { return nil }
            return try lab.query(#"timestamp(up{instance="\#(master)"})"#).values.first
        }
        let seen = Date().timeIntervalSince1970 - killed
        print("FleetMetricsLabTests: master killed -> up=0 sample after \(String(format: "%.2f", downAt - killed)) s (scrape interval \(Self.scrapeSeconds) s); seen through the API after \(String(format: "%.2f", seen)) s")
        #expect(downAt - killed <= Double(2 * Self.scrapeSeconds), "up=0 sampled \(downAt - killed) s after the kill")
        #expect(try lab.query(#"up{job="edgekit-routers"}"#, by: "hostname") == ["site-a-r1": 0, "site-a-r2": 1, "site-b-r1": 1])
        // Its alert is pending (for: 2m in the bundle's rules).
        _ = try lab.waitForValue("EdgekitRouterDown pending for site-a-r1", timeout: 10) { () -> Bool? in
            try lab.query(#"ALERTS{alertname="EdgekitRouterDown",alertstate="pending"}"#, by: "hostname") == ["site-a-r1": 1] ? true : nil
        }

        // An apply that fails on site-a-r2 (an older stick, refused) fires EdgekitApplyFailed.
        #expect(try lab.query(#"ALERTS{alertname="EdgekitApplyFailed"}"#).isEmpty)
        let refused = try lab.agent(1, ["apply", "--stick", lab.stick(1, serial: 999), "--services", "none"])
        #expect(refused.status == 1, "\(refused.err)")
        #expect(refused.err.contains("older"), "\(refused.err)")
        _ = try lab.waitForValue("EdgekitApplyFailed firing for site-a-r2", timeout: 15) { () -> Bool? in
            try lab.query(#"ALERTS{alertname="EdgekitApplyFailed",alertstate="firing"}"#, by: "hostname") == ["site-a-r2": 1] ? true : nil
        }
    }
}

/// Update bundles from the relay (docs/updates.md, "From the relay"): the real `edgekit-relay serve`
/// with a bundles folder, the real agent in each router's namespace asking through its wireguard-go
/// tunnel (`update --from-relay --check`): site-a's backup gets version 5 and checks it, its master
/// is held back until the backup reports 5 blessed, site-b is not offered again the version that
/// failed its trial boot there.
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"),
       .requiresTool("prometheus", "prometheus-node-exporter", "promtool"), .slow)
struct RelayUpdateLabTests {
    /// A small signed system for `site` at `version` (the agent checks it whole; it is never installed here).
    static func bundle(site: String, version: UInt64, to path: String, scratch: String,
                       key: Signify.SecretKey = Fixture.keys.operatorKey) throws {
        let disk = scratch + "/root-\(site)-\(version).img"
        // Random bytes: zstd cannot shrink them, so the bundle streams in many chunks.
        var generator = SystemRandomNumberGenerator()
        let root = Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try root.write(to: URL(fileURLWithPath: disk))
        try Data("kernel\n".utf8).write(to: URL(fileURLWithPath: scratch + "/vmlinuz"))
        try UpdateBundleWriter.write(to: path, plan: Fixture.plan.name, site: site, release: SystemRelease(board: "pc-uefi", version: version),
                                     system: "0123456789abcdef", root: (file: disk, offset: 0, bytes: root.count),
                                     files: [.init(name: "vmlinuz", path: scratch + "/vmlinuz")], key: key,
                                     mtime: 0, progress: .silent)
    }

    /// Makes member `index`'s root look booted by systemd-boot from slot A, as a router's is: the
    /// timer's `--scheduled` asks the relay only where a bundle could be installed.
    static func bootFromSlotA(_ root: String) throws {
        for folder in ["/proc", "/sys/firmware/efi/efivars"] {
            try FileManager.default.createDirectory(atPath: root + folder, withIntermediateDirectories: true)
        }
        try Data("root=PARTUUID=\(SystemSlot.a.partitionUUID) rw\n".utf8).write(to: URL(fileURLWithPath: root + "/proc/cmdline"))
        FileManager.default.createFile(atPath: root + "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", contents: Data())
    }

    @Test func routersFetchFromTheRelayBackupFirst() throws {
        let lab = try FleetLab()
        defer { lab.close() }
        try lab.start()
        let bundles = lab.path("bundles")
        #expect(FileManager.default.fileExists(atPath: bundles), "the relay makes its bundles folder")
        let out = lab.path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Self.bundle(site: "site-a", version: 5, to: out + "/site-a-5.update", scratch: lab.path(""))
        try Self.bundle(site: "site-b", version: 4, to: out + "/site-b-4.update", scratch: lab.path(""))
        try "not a bundle\n".write(toFile: bundles + "/README.txt", atomically: true, encoding: .utf8)
        let updates = { (index: Int) in lab.members[index].root + "/var/lib/edgekit/updates" }
        for index in [0, 1] { try Self.bootFromSlotA(lab.members[index].root) }

        // The operator publishes through `edgekit fleet update`; ssh stands in as a script that runs
        // the relay's command in its namespace, with the lab's config.
        let ssh = lab.path("ssh")
        try """
            #!/bin/sh
            shift; [ "$1" = edgekit-relay ] || exit 255; shift; command=$1; shift
            exec ip netns exec \(lab.relayNamespace) \(binDirectory.appendingPathComponent("edgekit-relay").path) "$command" --config \(lab.path("relay.json")) "$@"

            """.write(toFile: ssh, atomically: true, encoding: .utf8)
        chmod(ssh, 0o755)
        let edgekit = binDirectory.appendingPathComponent("edgekit").path
        let published = try sh(edgekit, ["fleet", "update", "--relay", "root@relay.lab", "--ssh-command", ssh,
                                         out + "/site-a-5.update", out + "/site-b-4.update"], allowFailure: true)
        #expect(published.status == 0, "\(published.err)")
        let bundleBytes = (try FileManager.default.attributesOfItem(atPath: out + "/site-a-5.update")[.size] as? Int) ?? 0
        #expect(published.out.hasPrefix("published site-a-5.update: plan example, site site-a, board pc-uefi, version 5, \(bundleBytes) bytes\n"
                                        + "published site-b-4.update: plan example, site site-b, board pc-uefi, version 4, "), "\(published.out)")
        for line in ["site-a-5.update rolls out:",
                     "  site-a router 2 (backup) runs 3: takes version 5 at its next hourly check",
                     "  site-a router 1 (master) runs 3: takes version 5 once router 2 runs it, blessed",
                     "  site-b router 1 (master) runs 3: version 4 failed its trial boot there; it is not offered this bundle"] {
            #expect(published.out.contains(line + "\n"), "\(line)\n\(published.out)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: bundles).sorted() == ["README.txt", "site-a-5.update", "site-b-4.update"])
        #expect(FileManager.default.contents(atPath: bundles + "/site-a-5.update") == FileManager.default.contents(atPath: out + "/site-a-5.update"))
        let status = try sh(ssh, ["root@relay.lab", "edgekit-relay", "status"], allowFailure: true)
        #expect(status.out.hasSuffix("update bundles: 2\n  site-a-5.update: site-a version 5, \(bundleBytes) bytes\n  site-b-4.update: site-b version 4, "
                                     + "\((try FileManager.default.attributesOfItem(atPath: out + "/site-b-4.update")[.size] as? Int) ?? 0) bytes\n"), "\(status.out)")
        // What the relay's routers would refuse is refused at publishing, and leaves nothing behind.
        let foreign = try Signify.SecretKey(seed: Data(repeating: 9, count: 32), keyNumber: Data(repeating: 9, count: 8))
        try Self.bundle(site: "site-a", version: 6, to: out + "/site-a-6.update", scratch: lab.path(""), key: foreign)
        let refused = try sh(edgekit, ["fleet", "update", "--relay", "root@relay.lab", "--ssh-command", ssh, out + "/site-a-6.update"], allowFailure: true)
        #expect(refused.status == 1, "\(refused.out)")
        #expect(refused.err.contains("cannot publish site-a-6.update on root@relay.lab") && refused.err.contains("its signature does not verify with the operator key"),
                "\(refused.err)")
        try FileManager.default.copyItem(atPath: out + "/site-a-5.update", toPath: out + "/site-a-7.update")
        let misnamed = try sh(edgekit, ["fleet", "update", "--relay", "root@relay.lab", "--ssh-command", ssh, out + "/site-a-7.update"], allowFailure: true)
        #expect(misnamed.status == 1 && misnamed.err.contains("site-a-7.update: holds site site-a, board pc-uefi, version 5, so the routers look for it as site-a-5.update; rename it"),
                "\(misnamed.err)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: bundles).sorted() == ["README.txt", "site-a-5.update", "site-b-4.update"],
                "nothing refused was kept, no partial file")

        // site-a's master (member 0) first: held back, nothing fetched.
        let early = try lab.agent(0, ["update", "--from-relay", "--check"])
        #expect(early.status == 0, "\(early.err)")
        #expect(early.out == "update: the relay holds this router back for now: site site-a router 2 (backup) runs version 3, not yet 5 blessed; the backup updates first\n",
                "\(early.out)")
        #expect(!FileManager.default.fileExists(atPath: updates(0)))

        // While another update holds the backup's update lock, its timer fetches nothing.
        let lockPath = lab.members[1].root + "/var/lib/edgekit/update.lock"
        try FileManager.default.createDirectory(atPath: lab.members[1].root + "/var/lib/edgekit", withIntermediateDirectories: true)
        let held = open(lockPath, O_RDWR | O_CREAT, 0o600)
        try #require(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0)
        let locked = try lab.agent(1, ["update", "--from-relay", "--scheduled", "--check"])
        close(held)
        #expect(locked.status == 0 && locked.out == "update: the relay offers site-a-5.update; not fetched now: another update is fetching or installing\n",
                "\(locked.out)\(locked.err)")
        #expect(!FileManager.default.fileExists(atPath: updates(1)))

        // The backup (member 1) is offered version 5, fetches it through the tunnel and checks it
        // whole, as its hourly timer does.
        let backup = try lab.agent(1, ["update", "--from-relay", "--scheduled", "--check"])
        #expect(backup.status == 0, "\(backup.err)\n\(lab.log("relay").suffix(3000))")
        #expect(backup.err.contains("the relay offers site-a-5.update (version 5, "), "\(backup.err)")
        #expect(backup.err.contains("fetching site-a-5.update from relay relay: 100 % (3 of 3 MiB)"), "\(backup.err)")
        #expect(backup.out.contains("ok: plan example, site site-a, board pc-uefi, version 5 (this system: 3)"), "\(backup.out)")
        let fetched = updates(1) + "/site-a-5.update"
        #expect(FileManager.default.contents(atPath: fetched) == FileManager.default.contents(atPath: bundles + "/site-a-5.update"),
                "the fetched bundle is the served one, byte for byte")
        #expect(try FileManager.default.contentsOfDirectory(atPath: updates(1)) == ["site-a-5.update"], "no partial file left")
        // An HTTP/1.0 client reads until the relay ends the stream: it gets the whole bundle, then
        // the end (the relay shuts its output down once every byte is sent; closing at once dropped
        // the queued tail, keeping the connection open left such a client waiting).
        let copy = lab.path("http10.update")
        let http10 = try sh("ip", ["netns", "exec", lab.members[1].namespace, "/usr/bin/python3", "-c", """
            import socket, sys
            connection = socket.create_connection((sys.argv[1], 9822), timeout=30)
            connection.sendall(b"GET /bundles/site-a-5.update HTTP/1.0\\r\\n\\r\\n")
            response = b""
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                response += chunk
            head, body = response.split(b"\\r\\n\\r\\n", 1)
            open(sys.argv[2], "wb").write(body)
            print(head.split(b"\\r\\n")[0].decode())
            """, Fixture.plan.relay.tunnelAddress.description, copy], allowFailure: true)
        #expect(http10.status == 0 && http10.out == "HTTP/1.0 200 OK\n", "\(http10)")
        #expect(FileManager.default.contents(atPath: copy) == FileManager.default.contents(atPath: bundles + "/site-a-5.update"),
                "HTTP/1.0: \((try? FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int) ?? 0) bytes")

        // site-b's root was not booted from a slot: its timer does not even ask.
        let unslotted = try lab.agent(2, ["update", "--from-relay", "--scheduled"])
        #expect(unslotted.status == 0 && unslotted.out.hasPrefix("update: not asking the relay now: this system was not booted from a system slot"),
                "\(unslotted.out)\(unslotted.err)")
        // site-b came back from version 4: not offered again.
        let siteB = try lab.agent(2, ["update", "--from-relay", "--check"])
        #expect(siteB.status == 0, "\(siteB.err)")
        #expect(siteB.out == "update: the relay has nothing newer for this router: version 4 failed its trial boot on this router; it needs a newer bundle than site-b-4.update\n",
                "\(siteB.out)")

        // The backup runs 5, blessed, and says so in its next registration: now the master gets it.
        try DocumentCoding.encode(SystemRelease(board: "pc-uefi", version: 5))
            .write(to: URL(fileURLWithPath: lab.members[1].root + SystemRelease.path))
        try DocumentCoding.encode(UpdateRecord(version: 5, slot: .b, from: 3, state: .blessed))
            .write(to: URL(fileURLWithPath: lab.members[1].root + "/var/lib/edgekit/update.json"))
        let again = try lab.agent(1, ["run", "--once", "--stick", lab.stick(1, serial: 1000), "--services", "none", "--registration-deadline", "10"])
        #expect(again.status == 0 && again.err.contains("registered as"), "\(again.err)")
        let nothing = try lab.agent(1, ["update", "--from-relay", "--check"])
        #expect(nothing.out == "update: the relay has nothing newer for this router: no bundle newer than version 5 for site site-a or board pc-uefi\n", "\(nothing.out)")
        let master = try lab.agent(0, ["update", "--from-relay", "--check"])
        #expect(master.status == 0, "\(master.err)")
        #expect(master.out.contains("ok: plan example, site site-a, board pc-uefi, version 5 (this system: 3)"), "\(master.out)\(master.err)")

        // A bundle that changes on the relay after it was named: the agent refuses what it fetched.
        let served = bundles + "/site-a-5.update"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: served))
        bytes[bytes.count - 2048] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: served))
        let flipped = try lab.agent(0, ["update", "--from-relay", "--check"])
        #expect(flipped.status == 1, "\(flipped.out)")
        #expect(flipped.err.split(separator: "\n").last?.contains("site-a-5.update") == true, "\(flipped.err)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: updates(0))) == [], "a refused bundle is not kept")
        // The timer does not fetch the same offer again (an SD card's data partition, a metered uplink).
        let timer = try lab.agent(0, ["update", "--from-relay", "--scheduled", "--check"])
        #expect(timer.status == 0, "\(timer.err)")
        #expect(timer.out.hasPrefix("update: the relay offers site-a-5.update again, refused here before (")
                && timer.out.hasSuffix("); not fetched: publish a newer version\n"), "\(timer.out)")
        #expect(!timer.err.contains("fetching"), "\(timer.err)")
    }
}

/// A relay namespace (wireguard-go, edgekit-relay serve, prometheus) and one namespace per router of
/// the example plan, each joined to the relay by its own veth pair. Unique names; `close()` kills
/// every process in them and removes namespaces, sockets and files, also after a failure.
final class FleetLab: @unchecked Sendable {
    struct Member {
        var site: Site
        var router: Router
        var namespace: String
        var tunnel: String
        var root: String
        var relaySide: String
    }

    let tag: String
    let relayNamespace: String
    let relayInterface: String
    let directory: URL
    var members: [Member] = []
    var namespaces: [String] { [relayNamespace] + members.map(\.namespace) }
    var interfaces: [String] { [relayInterface] + members.map(\.tunnel) }
    let prometheusPort = 9090

    init() throws {
        labCounterLock.lock()
        labCounter += 1
        tag = "\(getpid() % 100_000)\(labCounter)"
        labCounterLock.unlock()
        relayNamespace = "ekmR\(tag)"
        relayInterface = "ekm\(tag)w"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (site, router) in Fixture.plan.sites.flatMap({ site in site.routers.map { (site, $0) } }) {
            let index = members.count
            members.append(Member(site: site, router: router, namespace: "ekmN\(tag)x\(index)", tunnel: "ekm\(tag)t\(index)",
                                  root: directory.appendingPathComponent("root\(index)").path, relaySide: "10.79.\(index).1"))
        }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    func log(_ name: String) -> String { (try? String(contentsOfFile: path("\(name).log"), encoding: .utf8)) ?? "" }

    func start() throws {
        try sh("ip", ["netns", "add", relayNamespace])
        try sh("ip", ["-n", relayNamespace, "link", "set", "lo", "up"])
        try startWireGuard(relayNamespace, relayInterface)
        try sh("ip", ["-n", relayNamespace, "-6", "addr", "add", "\(Fixture.plan.relay.tunnelAddress)/\(Fixture.plan.tunnel.length)",
                      "dev", relayInterface, "nodad"])
        for (index, member) in members.enumerated() {
            try sh("ip", ["netns", "add", member.namespace])
            try sh("ip", ["-n", member.namespace, "link", "set", "lo", "up"])
            try sh("ip", ["-n", relayNamespace, "link", "add", "ekm\(tag)a\(index)", "type", "veth", "peer", "name", "ekm\(tag)b\(index)",
                          "netns", member.namespace])
            try sh("ip", ["-n", relayNamespace, "addr", "add", "\(member.relaySide)/30", "dev", "ekm\(tag)a\(index)"])
            try sh("ip", ["-n", relayNamespace, "link", "set", "ekm\(tag)a\(index)", "up"])
            try sh("ip", ["-n", member.namespace, "addr", "add", "10.79.\(index).2/30", "dev", "ekm\(tag)b\(index)"])
            try sh("ip", ["-n", member.namespace, "link", "set", "ekm\(tag)b\(index)", "up"])
            // `ip netns exec` shows /etc/netns/NAME/hosts as /etc/hosts: the relay's name resolves
            // to this router's own link to the relay.
            try FileManager.default.createDirectory(atPath: "/etc/netns/\(member.namespace)", withIntermediateDirectories: true)
            try "\(member.relaySide) \(Fixture.plan.relay.host)\n".write(toFile: "/etc/netns/\(member.namespace)/hosts", atomically: true, encoding: .utf8)
        }
        try startRelay()
        for index in members.indices { try startRouter(index) }
        try startPrometheus()
    }

    @discardableResult
    func spawn(_ namespace: String, _ arguments: [String], log name: String, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: path("\(name).log"), contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path("\(name).log")))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    func startWireGuard(_ namespace: String, _ interface: String) throws {
        // Stopped with everything else in its namespace by close().
        _ = try WireGuardGo.start(in: namespace, interface, logDirectory: directory)
    }

    func startRelay() throws {
        let key = path("relay.key")
        _ = FileManager.default.createFile(atPath: key, contents: Data((Fixture.keys.relayWireGuardKey().privateKeyBase64 + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        try Fixture.keys.operatorKey.publicKey.fileText(comment: "example operator").write(toFile: path("operator.pub"), atomically: true, encoding: .utf8)
        // The rendered relay.json, pointed at this lab's interface and files.
        var config = RelayConfig(plan: Fixture.plan)
        config.interface = relayInterface
        config.listenAddress = "0.0.0.0"
        config.privateKeyFile = key
        config.operatorPublicKeyFile = path("operator.pub")
        config.stateDatabase = path("state.sqlite")
        #expect(config.updateAddresses == [Fixture.plan.relay.tunnelAddress.description])
        config.bundlesDirectory = path("bundles")
        #expect(config.metricsAddresses == ["::1", Fixture.plan.relay.tunnelAddress.description])
        try config.encoded().write(toFile: path("relay.json"), atomically: true, encoding: .utf8)
        try spawn(relayNamespace, [binDirectory.appendingPathComponent("edgekit-relay").path, "serve", "--config", path("relay.json")], log: "relay")
        try waitFor("edgekit-relay to serve metrics on ::1 and the tunnel address") {
            self.log("relay").components(separatedBy: "serving metrics").count == 3 && self.log("relay").contains("serving updates")
        }
    }

    /// A sealed stick folder for member `index` (the plan's router) with `serial`.
    func stick(_ index: Int, serial: UInt64) throws -> String {
        let member = members[index]
        let folder = path("stick\(index)-\(serial)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Fixture.keys.sealedProfile(plan: Fixture.plan, site: member.site, router: member.router, serial: serial,
                                       issuedAt: Date(timeIntervalSince1970: TimeInterval(serial)))
            .write(to: URL(fileURLWithPath: folder + "/profile.age"))
        return folder
    }

    /// `edgekit-agent ARGUMENTS --root ROOT` in member `index`'s namespace.
    func agent(_ index: Int, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let member = members[index]
        return try sh("ip", ["netns", "exec", member.namespace, binDirectory.appendingPathComponent("edgekit-agent").path]
                      + arguments + ["--root", member.root], allowFailure: true)
    }

    /// The image's files (identity, operator key, stamp) and the node exporter's textfile folder;
    /// the agent applies the stick, claims master for slot 1, registers; then the tunnel and the exporter.
    func startRouter(_ index: Int) throws {
        let member = members[index]
        let root = member.root
        try FileManager.default.createDirectory(atPath: root + "/etc/edgekit", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + NodeExporter.textfileDirectory, withIntermediateDirectories: true)
        try Fixture.keys.siteIdentityFile(site: member.site.name).write(toFile: root + "/etc/edgekit/site.identity", atomically: true, encoding: .utf8)
        chmod(root + "/etc/edgekit/site.identity", 0o600)
        try Fixture.keys.operatorKey.publicKey.fileText(comment: "example operator").write(toFile: root + "/etc/edgekit/operator.pub", atomically: true, encoding: .utf8)
        let hostname = member.site.hostname(slot: member.router.slot)
        try "{\"plan\": \"example\", \"site\": \"\(member.site.name)\", \"hostname\": \"\(hostname)\"}\n"
            .write(toFile: root + "/etc/edgekit/site.json", atomically: true, encoding: .utf8)
        try "\(hostname)\n".write(toFile: root + "/etc/hostname", atomically: true, encoding: .utf8)
        // Every router runs system version 3; site-b's update to 4 was installed in an earlier boot
        // and the board came back to 3: its trial failed (docs/updates.md, "Trial boot").
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/edgekit", withIntermediateDirectories: true)
        try DocumentCoding.encode(SystemRelease(board: "pc-uefi", version: 3)).write(to: URL(fileURLWithPath: root + SystemRelease.path))
        if member.site.name == "site-b" {
            try FileManager.default.createDirectory(atPath: root + "/var/lib/edgekit", withIntermediateDirectories: true)
            try DocumentCoding.encode(UpdateRecord(version: 4, slot: .b, from: 3, state: .trial, installedInBoot: "an earlier boot"))
                .write(to: URL(fileURLWithPath: root + "/var/lib/edgekit/update.json"))
        }

        let notify = try agent(index, ["notify", member.router.slot == 1 ? "master" : "backup"])
        try #require(notify.status == 0, "\(notify.err)")
        let run = try agent(index, ["run", "--once", "--stick", stick(index, serial: 1000), "--services", "none", "--registration-deadline", "10"])
        try #require(run.status == 0, "\(run.err)")
        try #require(run.err.contains("registered as"), "\(run.err)")
        if member.site.name == "site-b" {
            #expect(run.err.contains("system version 4 (slot b) failed its trial boot"), "\(run.err)")
        }

        // The tunnel as the agent rendered it (wg-relay.conf: the relay by name, its /128 and the /48),
        // under this lab's interface name.
        try startWireGuard(member.namespace, member.tunnel)
        try sh("ip", ["netns", "exec", member.namespace, "wg", "setconf", member.tunnel, root + ConfigPaths.routerTunnelSetconf])
        try sh("ip", ["netns", "exec", member.namespace, "wg", "set", member.tunnel, "private-key", root + ConfigPaths.routerWireGuardKey])
        try sh("ip", ["-n", member.namespace, "-6", "addr", "add", "\(member.router.tunnelAddress)/128", "dev", member.tunnel, "nodad"])
        try sh("ip", ["-n", member.namespace, "-6", "route", "add", "\(Fixture.plan.relay.tunnelAddress)/128", "dev", member.tunnel])

        // The node exporter with the rendered ARGS; only the textfile folder moves under the root.
        let defaults = try String(contentsOfFile: root + ConfigPaths.nodeExporterArguments, encoding: .utf8)
        let line = try #require(defaults.split(separator: "\n").first { $0.hasPrefix("ARGS=") })
        let arguments = line.dropFirst("ARGS=\"".count).dropLast().split(separator: " ").map { argument -> String in
            argument.hasPrefix("--collector.textfile.directory=")
                ? "--collector.textfile.directory=" + root + NodeExporter.textfileDirectory : String(argument)
        }
        #expect(arguments.contains("--web.listen-address=[\(member.router.tunnelAddress)]:9100"))
        try spawn(member.namespace, ["prometheus-node-exporter"] + arguments, log: "node-exporter-\(index)")
    }

    func startPrometheus() throws {
        let folder = path("prometheus")
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        for file in RelayFiles.files(plan: Fixture.plan) where file.path.hasPrefix("/etc/prometheus/") {
            var contents = file.contents
            if file.path == ConfigPaths.prometheusConfig {
                contents = PrometheusFiles.config(plan: Fixture.plan, scrapeIntervalSeconds: FleetMetricsLabTests.scrapeSeconds)
            }
            try contents.write(toFile: folder + "/" + (file.path as NSString).lastPathComponent, atomically: true, encoding: .utf8)
        }
        try spawn(relayNamespace, ["prometheus", "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
                                   "--web.listen-address=127.0.0.1:\(prometheusPort)"], log: "prometheus")
        try waitFor("prometheus to answer", timeout: 30) {
            (try? self.http("/-/ready").hasPrefix("HTTP/1.0 200")) == true || (try? self.http("/-/ready").hasPrefix("HTTP/1.1 200")) == true
        }
    }

    /// One HTTP/1.0 GET to 127.0.0.1:PORT (Prometheus) in the relay's namespace; the whole response.
    func http(_ target: String, port: Int? = nil) throws -> String {
        try get(target, host: "127.0.0.1", port: UInt16(port ?? prometheusPort), headers: "Host: localhost\r\n")
    }

    /// The relay's own exposition from `::1` in its namespace (what Prometheus scrapes).
    func relayMetrics() throws -> String {
        let response = try relayHTTP("/metrics")
        let parts = response.components(separatedBy: "\r\n\r\n")
        try #require(parts.count >= 2 && parts[0].hasPrefix("HTTP/1.0 200"), "\(response.prefix(300))")
        #expect(parts[0].contains("text/plain; version=0.0.4"))
        return parts.dropFirst().joined(separator: "\r\n\r\n")
    }

    /// One HTTP/1.0 GET of `target` from the relay's endpoint at `[::1]:9821`; the whole response.
    func relayHTTP(_ target: String) throws -> String {
        try get(target, host: "::1", port: UInt16(RelayConfig.defaultMetricsPort))
    }

    /// One HTTP/1.0 GET to `host` (an IPv4 or IPv6 literal) in the relay's namespace; reads until the
    /// server closes (HTTP/1.0), with a 5 s receive timeout.
    private func get(_ target: String, host: String, port: UInt16, headers: String = "") throws -> String {
        try Lab.inNamespace(relayNamespace) { () -> String in
            let family = host.contains(":") ? AF_INET6 : AF_INET
            let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw LabError("socket failed") }
            defer { Glibc.close(fd) }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var storage = sockaddr_storage()
            let length: Int
            if family == AF_INET6 {
                length = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                        address.pointee.sin6_family = sa_family_t(AF_INET6)
                        address.pointee.sin6_port = port.bigEndian
                        inet_pton(AF_INET6, host, &address.pointee.sin6_addr)
                        return MemoryLayout<sockaddr_in6>.size
                    }
                }
            } else {
                length = withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                        address.pointee.sin_family = sa_family_t(AF_INET)
                        address.pointee.sin_port = port.bigEndian
                        inet_pton(AF_INET, host, &address.pointee.sin_addr)
                        return MemoryLayout<sockaddr_in>.size
                    }
                }
            }
            let connected = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(length)) }
            }
            guard connected == 0 else { throw LabError("cannot connect to [\(host)]:\(port)") }
            let request = Array("GET \(target) HTTP/1.0\r\n\(headers)\r\n".utf8)
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var response = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                response += buffer[0..<n]
            }
            return String(decoding: response, as: UTF8.self)
        }
    }

    /// An instant query: each result's `instance` (or label `by`) → value.
    func query(_ expression: String, by label: String = "instance") throws -> [String: Double] {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&+=#")
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? expression
        let response = try http("/api/v1/query?query=\(encoded)")
        guard let body = response.components(separatedBy: "\r\n\r\n").dropFirst().first,
              let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              object["status"] as? String == "success",
              let data = object["data"] as? [String: Any], let results = data["result"] as? [[String: Any]] else {
            throw LabError("query \(expression) failed: \(response.suffix(500))")
        }
        var values: [String: Double] = [:]
        for result in results {
            let metric = result["metric"] as? [String: String] ?? [:]
            let value = (result["value"] as? [Any])?.last as? String
            values[metric[label] ?? ""] = value.flatMap(Double.init)
        }
        return values
    }

    /// site-a's router `index` dies hard: every process in its namespace killed (-9).
    func killRouter(_ index: Int) {
        let namespace = members[index].namespace
        if let pids = try? sh("ip", ["netns", "pids", namespace], allowFailure: true).out {
            for pid in pids.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
        }
    }

    func waitFor(_ what: String, timeout: TimeInterval = 15, _ condition: () throws -> Bool) throws {
        _ = try waitForValue(what, timeout: timeout) { try condition() ? true : nil }
    }

    func waitForValue<T>(_ what: String, timeout: TimeInterval = 15, _ value: () throws -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        var lastError: (any Error)?
        while Date() < deadline {
            do {
                if let found = try value() { return found }
            } catch {
                lastError = error
            }
            usleep(100_000)
        }
        throw LabError("timed out waiting for \(what)" + (lastError.map { " (last error: \($0))" } ?? ""))
    }

    func close() {
        for namespace in namespaces {
            if let pids = try? sh("ip", ["netns", "pids", namespace], allowFailure: true).out {
                for pid in pids.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
            }
        }
        usleep(200_000)
        for namespace in namespaces {
            _ = try? sh("ip", ["netns", "del", namespace], allowFailure: true)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(namespace)")
        }
        for interface in interfaces { try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(interface).sock") }
        try? FileManager.default.removeItem(at: directory)
    }
}
