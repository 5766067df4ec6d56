import EdgeModel
import EdgeRender
import Foundation
import Testing
import TestSupport

/// Issue 17.3: keepalived killed with -9 on the master of a real VRRP pair, the router otherwise up.
/// Two `edgekit-agent run --services processes` (site-a routers 1 and 2, real keepalived, radvd,
/// nftables and wireguard-go) in namespaces whose LAN ports meet on a bridge in a third, "server",
/// namespace, which pings the link-local VIP every 100 ms and captures ICMPv6 with the senders' MACs.
/// The crashed router must drop both VIPs at once and send no RA afterwards, the backup must take
/// over (after the priority-0 advertisement the agent sends for the dead keepalived), and from then
/// on every answer for `fe80::1` must come from the backup (no flapping).
@Suite(.serialized) struct SplitBrainTests {
    @Test("kill -9 of keepalived on the master: its VIPs and RAs go at once, the backup takes over, no next-hop flapping",
          .requiresRoot(andTools: "ip", "unshare", "radvd", "keepalived", "wireguard-go", "wg", "nft", "tcpdump", "ping"), .slow)
    func keepalivedKilledOnTheMaster() throws {
        try Scratch.with { scratch in
            let plan = BadProfileCorpus.plan
            let site = try #require(plan.site(named: "site-a"))
            let llVIP = "\(site.linkLocalVIP)/64", siteVIP = "\(site.vip)/\(site.prefix.length)"
            let server = UniqueName.next("eksbs"), r1 = UniqueName.next("eksbr"), r2 = UniqueName.next("eksbr")
            let ipTool = try #require(systemTool("ip"))
            var started: [Started] = []
            defer {
                for process in started { process.discard() }
                // Everything still running in these namespaces was started by this test.
                for ns in [r1, r2, server] {
                    if let pids = try? runSystem("ip", ["netns", "pids", ns]) {
                        for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
                    }
                    _ = try? runSystem("ip", ["netns", "del", ns])
                }
            }
            func ip(_ arguments: String...) throws {
                let result = try runSystem("ip", arguments)
                try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result)")
            }
            for ns in [server, r1, r2] {
                try ip("netns", "add", ns)
                try ip("-n", ns, "link", "set", "lo", "up")
            }
            // No multicast snooping: VRRP and RAs reach every port whatever MLD said.
            try ip("-n", server, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            try ip("-n", server, "link", "set", "br0", "up")
            for (index, ns) in [r1, r2].enumerated() {
                try ip("-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "p\(index + 1)", "netns", server)
                try ip("-n", server, "link", "set", "p\(index + 1)", "master", "br0", "up")
                try ip("-n", ns, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
                try ip("-n", ns, "link", "set", "uplink0p", "up")
            }
            func mac(_ ns: String) throws -> String {
                let out = try runSystem("ip", ["-n", ns, "-o", "link", "show", "lan0"]).stdout
                let words = out.split(separator: " ")
                let at = try #require(words.firstIndex(of: "link/ether"), "\(out)")
                return String(words[at + 1])
            }
            func vips(_ ns: String) -> Set<String> {
                let out = (try? runSystem("ip", ["-n", ns, "-6", "-o", "addr", "show", "dev", "lan0"]).stdout) ?? ""
                return Set(out.split(separator: " ").map(String.init).filter { $0 == llVIP || $0 == siteVIP })
            }
            let both: Set<String> = [llVIP, siteVIP]

            // Each router: a private /run (wireguard-go's socket; /run/edgekit, keepalived's track file,
            // is the agent's under its --root) and a private /usr/local/bin whose edgekit-agent
            // (keepalived's notify hook) adds the router's --root, as lab/lab.sh does.
            let agent = binDirectory.appendingPathComponent("edgekit-agent").path
            var roots: [String: String] = [:]
            for (slot, ns) in [(1, r1), (2, r2)] {
                let root = try scratch.makeRoot("root\(slot)")
                roots[ns] = root
                let stick = try scratch.stickFolder("stick\(slot)", slot: slot, serial: 1000)
                let script = """
                    mount -t tmpfs -o mode=0755 tmpfs /run && mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin || exit 90
                    mkdir -p '\(root)/run/edgekit' && ln -s '\(root)/run/edgekit' /run/edgekit || exit 91
                    printf '#!/bin/sh\\nexec %s "$@" --root %s\\n' '\(agent)' '\(root)' > /usr/local/bin/edgekit-agent
                    chmod 0755 /usr/local/bin/edgekit-agent
                    exec '\(agent)' run --root '\(root)' --stick '\(stick)' --services processes
                    """
                started.append(try startProgram(ipTool, ["netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script]))
            }
            let logs = { started.prefix(2).enumerated().map { "--- agent \($0.offset + 1):\n\($0.element.stderr)" }.joined(separator: "\n") }

            // Router 1 (priority 200) becomes master, router 2 (100) backup.
            let settled = waitUntil(60) { vips(r1) == both && vips(r2).isEmpty }
            try #require(settled, "router 1 never became master alone: r1 \(vips(r1)), r2 \(vips(r2))\n\(logs())")
            let mac1 = try mac(r1), mac2 = try mac(r2)

            let capture = try startProgram(ipTool, ["netns", "exec", server, "tcpdump", "-l", "-n", "-e", "-tt", "-i", "br0", "icmp6"])
            started.append(capture)
            let ping = try startProgram(ipTool, ["netns", "exec", server, "ping", "-6", "-D", "-n", "-i", "0.1", "-W", "1", "\(site.linkLocalVIP)%br0"])
            started.append(ping)
            let answering = waitUntil(15) { ping.stdout.contains("bytes from") }
            try #require(answering, "the server gets no answer from \(site.linkLocalVIP): \(ping.stdout)\(ping.stderr)")
            // The kernel's address events on router 1, stamped as they arrive: when the VIPs left its
            // LAN port, without the delay of starting an `ip` per look on a loaded machine.
            let addressEvents = try startProgram(ipTool, ["-n", r1, "-ts", "monitor", "address"])
            started.append(addressEvents)
            Thread.sleep(forTimeInterval: 1)

            // kill -9 of every keepalived process of router 1 (parent and VRRP child).
            let pids = try runSystem("ip", ["netns", "pids", r1]).stdout.split(separator: "\n").compactMap { pid_t($0) }
            let keepalived = pids.filter { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("keepalived") == true
            }
            try #require(!keepalived.isEmpty, "no keepalived runs in router 1")
            let killedAt = Date()
            for pid in keepalived { kill(pid, SIGKILL) }

            var seenDropped: TimeInterval?, takenOver: TimeInterval?
            var r1HeldAgain = false, r2LostIt = false
            while Date().timeIntervalSince(killedAt) < 25 {
                let now = Date().timeIntervalSince(killedAt)
                let held1 = vips(r1), held2 = vips(r2)
                if seenDropped == nil, held1.isEmpty { seenDropped = now }
                if seenDropped != nil, !held1.isEmpty { r1HeldAgain = true }
                if takenOver == nil, held2 == both { takenOver = now }
                if takenOver != nil, held2 != both { r2LostIt = true }
                usleep(50_000)
            }
            kill(addressEvents.pid, SIGTERM)
            _ = addressEvents.wait(seconds: 3)
            kill(capture.pid, SIGTERM)
            kill(ping.pid, SIGINT)
            _ = capture.wait(seconds: 3)
            _ = ping.wait(seconds: 3)

            // What the server saw: RAs and echo replies, by sender MAC and time since the kill.
            let killEpoch = killedAt.timeIntervalSince1970
            struct Seen { var time: TimeInterval; var mac: String }
            func seen(_ what: String) -> [Seen] {
                capture.stdout.split(separator: "\n").filter { $0.contains(what) }.compactMap { line in
                    let words = line.split(separator: " ")
                    guard words.count > 1, let time = Double(words[0]) else { return nil }
                    return Seen(time: time - killEpoch, mac: String(words[1]))
                }
            }
            let adverts = seen("router advertisement"), replies = seen("echo reply")
            // "[2026-12-06T01:15:26.107092] Deleted 3: lan0    inet6 fe80::1/64 scope link": both VIPs
            // gone is the later of their deletions; the polling loop only confirms they stayed gone.
            let stamp = DateFormatter()
            stamp.locale = Locale(identifier: "en_US_POSIX")
            stamp.timeZone = .current
            stamp.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
            let deletions = addressEvents.stdout.split(separator: "\n").filter { $0.contains("Deleted") && $0.contains(" lan0 ") }
            func deleted(_ vip: String) -> TimeInterval? {
                deletions.filter { $0.split(separator: " ").contains(Substring(vip)) }.compactMap { line -> TimeInterval? in
                    guard line.hasPrefix("["), let end = line.firstIndex(of: "]"),
                          let date = stamp.date(from: String(line[line.index(after: line.startIndex)..<end])) else { return nil }
                    return date.timeIntervalSince(killedAt)
                }.first { $0 >= 0 }
            }
            let deletedAt = both.compactMap(deleted)
            let dropped = seenDropped != nil && deletedAt.count == both.count ? deletedAt.max() : nil
            // ping -D: "[EPOCH] 64 bytes from …"; the longest silence from the kill to the end.
            let answered = ping.stdout.split(separator: "\n").filter { $0.contains("bytes from") }.compactMap { line -> Double? in
                guard line.hasPrefix("["), let end = line.firstIndex(of: "]") else { return nil }
                return Double(line[line.index(after: line.startIndex)..<end])
            }
            let times = [killEpoch] + answered.filter { $0 > killEpoch }
            let gap = zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .infinity

            let figures = "VIPs dropped by the crashed master \(dropped.map { String(format: "%.2f s", $0) } ?? "never") after the kill (target ≤ 3 s; "
                + "seen by polling \(seenDropped.map { String(format: "%.2f s", $0) } ?? "never")); "
                + "backup holds both \(takenOver.map { String(format: "%.2f s", $0) } ?? "never"); longest gap in answers from \(site.linkLocalVIP) \(String(format: "%.2f s", gap))"
            print("split brain: \(figures)")
            let context = "\(figures)\nr1 \(mac1), r2 \(mac2)\n\(deletions.joined(separator: "\n"))\n\(capture.stdout.suffix(4000))\n\(logs())"

            #expect(replies.contains { $0.time < 0 && $0.mac == mac1 }, "before the kill router 1 answers for the VIP: \(context)")
            #expect(dropped.map { $0 <= 3 } == true, "the crashed master keeps its VIPs: \(context)")
            #expect(!r1HeldAgain, "the crashed master held a VIP again: \(context)")
            // The agent sends the priority-0 advertisement the dead master could not: the backup
            // takes over after its skew time (0.6 s), well before the 3.6 s Master_Down_Interval.
            #expect(takenOver.map { $0 <= 3.5 } == true, "the backup does not take over before Master_Down_Interval: \(context)")
            #expect(!r2LostIt, "the new master lost the VIPs again: \(context)")
            if let dropped {
                let late = adverts.filter { $0.mac == mac1 && $0.time > dropped + 0.2 }
                #expect(late.isEmpty, "router 1 advertised after dropping its VIPs: \(late.map(\.time)) \(context)")
            }
            if let takenOver {
                // From a second after the takeover, every answer for fe80::1 comes from router 2.
                let after = replies.filter { $0.time > takenOver + 1 }
                #expect(after.count > 50 && after.allSatisfy { $0.mac == mac2 }, "next hop flapping after the takeover: \(after.filter { $0.mac != mac2 }.count) of \(after.count) answers from router 1: \(context)")
                #expect(adverts.contains { $0.mac == mac2 && $0.time > takenOver }, "the new master advertises: \(context)")
            }
            #expect(gap <= 3, "the VIP went unanswered for \(gap) s (target ≤ 3 s): \(context)")
            // The crashed router's agent says what it did, and no longer claims master.
            let status = try runTool("edgekit-agent", ["status", "--root", try #require(roots[r1]), "--format", "json"])
            let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            #expect(json?["vrrp"] as? String == "fault", "\(status)")
            #expect(started[0].stderr.contains("keepalived is not running"), "\(logs())")
        }
    }
}
