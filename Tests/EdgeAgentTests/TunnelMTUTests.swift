import EdgeAgent
import EdgeModel
import Foundation
import PlanYAML
import Testing
import TestSupport

/// The tunnel MTU the agent sets from the uplink that is really there (docs/network.md, "MTU"):
/// the math, and the real thing with wireguard-go between two namespaces.
@Suite struct TunnelMTUTests {
    // MARK: The math

    @Test("tunnel MTU = min(link MTU, plan uplink_mtu) - 60 over IPv4 / - 80 over IPv6, at most the relay's, else a multiple of 16")
    func math() {
        let cases: [(link: Int, plan: Int, family: TunnelMTU.OuterFamily, tunnel: Int)] = [
            (1500, 1500, .ipv6, 1420), (1500, 1500, .ipv4, 1420),   // the relay's wg-edgekit is 1420
            // Below the relay's, down to a multiple of 16: the relay pads to 16 bytes up to its 1420.
            (1492, 1500, .ipv6, 1408), (1492, 1500, .ipv4, 1420),   // PPPoE
            (1460, 1500, .ipv6, 1376), (1460, 1500, .ipv4, 1392),   // DS-Lite
            (1500, 1460, .ipv4, 1392),                              // DS-Lite behind a 1500 link: the plan caps it
            (1428, 1500, .ipv6, 1344), (1428, 1500, .ipv4, 1360),   // LTE
            (1420, 1500, .ipv6, 1328), (1420, 1500, .ipv4, 1360),
            (9000, 1500, .ipv6, 1420),                              // a jumbo link does not make the internet bigger
            (1280, 1500, .ipv6, 1280), (576, 1500, .ipv4, 1280),    // never below IPv6's minimum
        ]
        for c in cases {
            #expect(TunnelMTU.tunnelMTU(linkMTU: c.link, plannedUplinkMTU: c.plan, relayMTU: 1420, family: c.family) == c.tunnel, "\(c)")
        }
        // A plan whose uplinks carry more lets IPv4 use its 20 bytes.
        #expect(TunnelMTU.tunnelMTU(linkMTU: 1500, plannedUplinkMTU: 1520, relayMTU: 1440, family: .ipv4) == 1440)
        // What the rounding is for: the relay pads a packet of the tunnel's size to 16 bytes, up to
        // its own MTU; that must still fit what the uplink carries.
        for relay in [1340, 1412, 1420, 1440] {
            for payload in 1280...1600 {
                let tunnel = Defaults.tunnelMTU(payload: payload, relayMTU: relay)
                let padded = min((tunnel + 15) / 16 * 16, relay)
                #expect(padded <= payload && tunnel <= relay && tunnel >= 1280, "payload \(payload), relay \(relay): tunnel \(tunnel)")
            }
        }
        #expect(Defaults.tunnelMTUNote(payload: 1420, relayMTU: 1420) == "")
        #expect(Defaults.tunnelMTUNote(payload: 1440, relayMTU: 1420) == ", no more than the relay's 1420")
        #expect(Defaults.tunnelMTUNote(payload: 1380, relayMTU: 1420).hasPrefix(", down to a multiple of 16"))
        #expect(TunnelMTU.OuterFamily.ipv4.overhead == 20 + 8 + 32)
        #expect(TunnelMTU.OuterFamily.ipv6.overhead == 40 + 8 + 32)
        // The plan's floor: 1280 inside the servers' mesh (80) inside the tunnel over IPv4 (60).
        #expect(Defaults.minimumUplinkMTU == 1420)
        #expect(TunnelMTU.tunnelMTU(linkMTU: Defaults.minimumUplinkMTU, plannedUplinkMTU: 1500, relayMTU: 1420, family: .ipv4)
                - Defaults.wireGuardOverhead == 1280)
    }

    @Test("the relay endpoint's family, as wg show endpoints prints it")
    func endpointFamily() {
        #expect(TunnelMTU.family(ofEndpoint: "192.0.2.1:51820") == .ipv4)
        #expect(TunnelMTU.family(ofEndpoint: "[2001:db8::1]:51820") == .ipv6)
        #expect(TunnelMTU.family(ofEndpoint: "[::ffff:192.0.2.1]:51820") == .ipv4)
        #expect(TunnelMTU.family(ofEndpoint: nil) == nil)
        #expect(TunnelMTU.family(ofEndpoint: "") == nil)
    }

    @Test("a plan's uplink_mtu override reaches the router and the tunnel it renders")
    func planOverride() throws {
        let text = try String(contentsOfFile: examplePlanPath + "/plan.yaml", encoding: .utf8)
            .replacingOccurrences(of: "    vrrp_id: 52\n", with: "    vrrp_id: 52\n    uplink_mtu: 1492\n")
        let plan = try PlanLoader.parse(text)
        let router = try #require(plan.site(named: "site-b")?.router(slot: 1))
        #expect(plan.uplinkMTU(of: router) == 1492)
        #expect(plan.tunnelMTU(of: router) == 1408)
        #expect(plan.site(named: "site-a")?.routers.map(\.uplinkMTU) == [nil, nil])
    }

    // MARK: Real uplinks

    /// One uplink as the tests' namespaces build it: its MTU, the family the relay is reached over,
    /// and the tunnel MTU the agent must set.
    struct Uplink: Sendable, CustomStringConvertible {
        var name: String
        var mtu: Int
        var family: TunnelMTU.OuterFamily
        var tunnel: Int
        var description: String { "\(name) \(mtu) over \(family.rawValue)" }
    }

    /// In this order each step changes the tunnel MTU (the relay's 1420 caps PPPoE over IPv4).
    static let uplinks = [
        Uplink(name: "PPPoE", mtu: 1492, family: .ipv6, tunnel: 1408),
        Uplink(name: "PPPoE", mtu: 1492, family: .ipv4, tunnel: 1420),
        Uplink(name: "DS-Lite", mtu: 1460, family: .ipv4, tunnel: 1392),
        Uplink(name: "DS-Lite", mtu: 1460, family: .ipv6, tunnel: 1376),
        Uplink(name: "LTE", mtu: 1428, family: .ipv6, tunnel: 1344),
        Uplink(name: "LTE", mtu: 1428, family: .ipv4, tunnel: 1360),
        Uplink(name: "LTE", mtu: 1420, family: .ipv6, tunnel: 1328),
        Uplink(name: "LTE", mtu: 1420, family: .ipv4, tunnel: 1360),
    ]

    /// A router namespace and a relay namespace joined by a veth "uplink", wireguard-go in both. For
    /// each uplink MTU and relay address family in turn (one tunnel, never restarted), the agent's
    /// watch sets the router tunnel's MTU (read back with `ip link`), and a full-size ping with DF
    /// crosses the tunnel at that size without any IPv4 or IPv6 fragment created or reassembled on
    /// either side, while one byte more is refused. A control at the old fixed 1420 on the 1420 uplink
    /// shows the counters do see fragmentation.
    @Test("the tunnel MTU follows PPPoE, DS-Lite and LTE uplinks; full-size packets cross unfragmented",
          .requiresRoot(andTools: "ip", "wireguard-go", "wg", "ping", "python3", "ss"), .slow)
    func followsRealUplinks() throws {
        let router = UniqueName.next("ekmr")
        let relay = UniqueName.next("ekms")
        let routerTunnel = UniqueName.next("wgmr")
        let relayTunnel = UniqueName.next("wgms")
        let scratch = try TemporaryDirectory("edgekit-mtu")
        let ipTool = try #require(systemTool("ip"))
        var daemons: [Started] = []
        defer {
            for daemon in daemons { daemon.discard() }
            // Everything running in the namespaces (the two wireguard-go) was started here.
            for ns in [router, relay] {
                if let pids = try? runSystem("ip", ["netns", "pids", ns]) {
                    for pid in pids.stdout.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
                }
                _ = try? runSystem("ip", ["netns", "del", ns])
            }
            for name in [routerTunnel, relayTunnel] { unlink("/run/wireguard/\(name).sock") }
            scratch.remove()
        }
        @discardableResult
        func run(_ arguments: [String], _ ns: String? = nil) throws -> ToolResult {
            let result = try runSystem("ip", ns.map { ["netns", "exec", $0] + arguments } ?? arguments)
            try #require(result.status == 0, "\(ns.map { "[\($0)] " } ?? "")\(arguments.joined(separator: " ")): \(result)")
            return result
        }
        try run(["netns", "add", router])
        try run(["netns", "add", relay])
        try run(["-n", router, "link", "add", "up0", "type", "veth", "peer", "name", "up0p", "netns", relay])
        for (ns, link, last) in [(router, "up0", 1), (relay, "up0p", 2)] {
            try run(["-n", ns, "link", "set", "lo", "up"])
            try run(["-n", ns, "addr", "add", "192.0.2.\(last)/24", "dev", link])
            try run(["-n", ns, "addr", "add", "fd00:5eed::\(last)/64", "dev", link, "nodad"])
            try run(["-n", ns, "link", "set", link, "up"])
        }
        // Keys in 0600 files (never argv), each side the other's only peer.
        var publicKeys: [String] = []
        for side in ["router", "relay"] {
            let key = try run(["wg", "genkey"], router).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let file = scratch.file("\(side).key").path
            try #require(FileManager.default.createFile(atPath: file, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600]))
            let pub = try runShell("wg pubkey < \(file)").trimmingCharacters(in: .whitespacesAndNewlines)
            publicKeys.append(pub)
        }
        let sides = [(ns: router, tunnel: routerTunnel, port: 40001, peer: 1, inner: 1),
                     (ns: relay, tunnel: relayTunnel, port: 40002, peer: 0, inner: 2)]
        for (index, side) in sides.enumerated() {
            let name = index == 0 ? "router" : "relay"
            // wireguard-go in the foreground, started like the tests' other daemons (`startProgram`:
            // output in files, no pipe of the test's held open), and killed by the cleanup above.
            daemons.append(try startProgram(ipTool, ["netns", "exec", side.ns, "wireguard-go", "-f", side.tunnel],
                                            environment: ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"]))
            let up = waitUntil(10) { FileManager.default.fileExists(atPath: "/run/wireguard/\(side.tunnel).sock") }
            try #require(up, "wireguard-go \(side.tunnel) did not start")
            try run(["wg", "set", side.tunnel, "private-key", scratch.file("\(name).key").path, "listen-port", "\(side.port)",
                     "peer", publicKeys[side.peer], "allowed-ips", "fd00:7e57::/64"], side.ns)
            try run(["-n", side.ns, "addr", "add", "fd00:7e57::\(side.inner)/64", "dev", side.tunnel, "nodad"])
            try run(["-n", side.ns, "link", "set", side.tunnel, "up"])
        }
        // The agent's `ip`, inside the router's namespace (the lab wraps tools the same way).
        let ip = scratch.file("ip").path
        try #require(FileManager.default.createFile(atPath: ip, contents: Data("#!/bin/sh\nexec \(ipTool) -n \(router) \"$@\"\n".utf8),
                                                    attributes: [.posixPermissions: 0o755]))
        var watch = TunnelMTUWatch(interval: 0, ip: ip)
        let logger = AgentLogger.standardError(label: "test")
        var now = Date(timeIntervalSince1970: 1_000_000)
        let wireguardPid = try run(["netns", "pids", router]).stdout

        func setUplink(_ mtu: Int, _ family: TunnelMTU.OuterFamily) throws {
            try run(["-n", router, "link", "set", "up0", "mtu", "\(mtu)"])
            try run(["-n", relay, "link", "set", "up0p", "mtu", "\(mtu)"])
            for (side, other) in [(sides[0], sides[1]), (sides[1], sides[0])] {
                let address = family == .ipv4 ? "192.0.2.\(other.inner):\(other.port)" : "[fd00:5eed::\(other.inner)]:\(other.port)"
                try run(["wg", "set", side.tunnel, "peer", publicKeys[side.peer], "endpoint", address], side.ns)
            }
        }
        /// IPv4 and IPv6 fragments created and reassembly requests of a namespace, summed.
        func fragments(_ ns: String) throws -> Int {
            let v4 = try run(["cat", "/proc/net/snmp"], ns).stdout.split(separator: "\n").filter { $0.hasPrefix("Ip: ") }
            let header = v4.first?.split(separator: " ") ?? [], values = v4.last?.split(separator: " ") ?? []
            var total = 0
            for key in ["FragCreates", "ReasmReqds"] {
                if let at = header.firstIndex(of: Substring(key)), at < values.count { total += Int(values[at]) ?? 0 }
            }
            for line in try run(["cat", "/proc/net/snmp6"], ns).stdout.split(separator: "\n") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count == 2, ["Ip6FragCreates", "Ip6ReasmReqds"].contains(String(parts[0])) { total += Int(parts[1]) ?? 0 }
            }
            return total
        }
        /// A ping of `size` payload bytes (IPv6 + ICMPv6 headers add 48) with fragmentation forbidden.
        func ping(_ size: Int) throws -> ToolResult {
            try runSystem("ip", ["netns", "exec", router, "ping", "-6", "-n", "-M", "do", "-c", "3", "-i", "0.2", "-W", "2",
                                 "-s", "\(size)", "fd00:7e57::2"])
        }

        var previous = 1420
        for uplink in Self.uplinks {
            try setUplink(uplink.mtu, uplink.family)
            let endpoint = WireGuardTunnel(interfacePrefix: routerTunnel).endpoint(relayPublicKey: publicKeys[1])
            #expect(TunnelMTU.family(ofEndpoint: endpoint) == uplink.family, "\(uplink): endpoint \(endpoint ?? "none")")
            now += 1
            let outcome = watch.check(now: now, uplink: "up0", tunnel: routerTunnel, plannedUplinkMTU: 1500, relayMTU: 1420,
                                      endpoint: endpoint, logger: logger)
            let expected: TunnelMTUWatch.Outcome = uplink.tunnel == previous ? .unchanged(mtu: previous)
                : .set(from: previous, to: uplink.tunnel, uplinkMTU: uplink.mtu, family: uplink.family)
            #expect(outcome == expected, "\(uplink)")
            previous = uplink.tunnel
            let link = try run(["-n", router, "-o", "link", "show", "dev", routerTunnel]).stdout
            #expect(link.contains(" mtu \(uplink.tunnel) "), "\(uplink): \(link)")
            // The relay's side of this test link carries the replies at the same size.
            try run(["-n", relay, "link", "set", relayTunnel, "mtu", "\(uplink.tunnel)"])

            let before = try fragments(router) + fragments(relay)
            let full = try ping(uplink.tunnel - 48)
            #expect(full.status == 0 && full.stdout.contains("\(uplink.tunnel - 40) bytes from"), "\(uplink): \(full)")
            let after = try fragments(router) + fragments(relay)
            #expect(after == before, "\(uplink): \(after - before) fragments for full-size packets")
            let over = try ping(uplink.tunnel - 47)
            #expect(over.status != 0 && (over.stderr + over.stdout).contains("message too long"), "\(uplink): one byte over: \(over)")
        }
        #expect(try run(["netns", "pids", router]).stdout == wireguardPid, "the tunnel was never restarted")

        // Control: the old fixed 1420 on a 1420 uplink over IPv4 fragments every full-size packet,
        // and the counters above see it.
        try setUplink(1420, .ipv4)
        try run(["-n", router, "link", "set", routerTunnel, "mtu", "1420"])
        try run(["-n", relay, "link", "set", relayTunnel, "mtu", "1420"])
        let before = try fragments(router) + fragments(relay)
        let old = try ping(1420 - 48)
        let after = try fragments(router) + fragments(relay)
        #expect(old.status == 0 && after - before >= 6, "the control must fragment (\(after - before)): \(old)")
        // …and the watch puts the tunnel back to 1360 at its next look, with no restart.
        now += 1
        let back = watch.check(now: now, uplink: "up0", tunnel: routerTunnel, plannedUplinkMTU: 1500, relayMTU: 1420,
                               endpoint: WireGuardTunnel(interfacePrefix: routerTunnel).endpoint(relayPublicKey: publicKeys[1]),
                               logger: logger)
        #expect(back == .set(from: 1420, to: 1360, uplinkMTU: 1420, family: .ipv4))
        // 20 MB of TCP each way on a PPPoE, a DS-Lite and an LTE uplink (issue 19.3: the old fixed
        // 1420 fragmented 36,030 packets of such a transfer on the LTE one), with the relay's side at
        // the 1420 of the real relay's interface: every byte arrives (the same SHA-256) and not one
        // fragment is created or reassembled on either side. Towards the router, the sender keeps to
        // the MSS the router's end announced from its tunnel MTU, and the relay's WireGuard pads those
        // packets to 16 bytes up to its own 1420: at DS-Lite's 1400 (not a multiple of 16) that made
        // 1408-byte packets and some 73,000 fragments per transfer; at 1392 it makes none.
        try run(["-n", relay, "link", "set", relayTunnel, "mtu", "1420"])
        /// Sends 20 MiB of seeded random bytes from `sender` to a receiver listening on `address` in
        /// `receiver`: "BYTES SHA256" as the sender counted it, and as the receiver did.
        func transfer(from sender: String, to receiver: String, address: String, port: Int) throws -> (sent: String, received: String) {
            let listener = try startProgram(ipTool, ["netns", "exec", receiver, "python3", "-c", """
                import hashlib, socket
                s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("\(address)", \(port))); s.listen(1); s.settimeout(60)
                c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
                while True:
                    b = c.recv(65536)
                    if not b: break
                    h.update(b); n += len(b)
                print(n, h.hexdigest())
                """])
            daemons.append(listener)
            let listening = waitUntil(10) {
                (try? runSystem("ip", ["netns", "exec", receiver, "ss", "-Htln", "sport = :\(port)"]))?.stdout.contains("\(port)") == true
            }
            try #require(listening, "the receiver did not listen: \(listener.stderr)")
            let sent = try runSystem("ip", ["netns", "exec", sender, "python3", "-c", """
                import hashlib, random, socket
                s = socket.create_connection(("\(address)", \(port)), timeout=60)
                r = random.Random(\(port)); h = hashlib.sha256(); n = 0
                for _ in range(20):
                    block = r.randbytes(1 << 20); s.sendall(block); h.update(block); n += len(block)
                s.close()
                print(n, h.hexdigest())
                """])
            try #require(sent.status == 0, "\(sent)")
            try #require(listener.wait(seconds: 60), "the receiver did not finish: \(listener.stderr)")
            return (sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                    listener.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        var port = 5001
        for uplink in [Uplink(name: "PPPoE", mtu: 1492, family: .ipv4, tunnel: 1420),
                       Uplink(name: "DS-Lite", mtu: 1460, family: .ipv4, tunnel: 1392),
                       Uplink(name: "LTE", mtu: 1420, family: .ipv4, tunnel: 1360)] {
            try setUplink(uplink.mtu, uplink.family)
            now += 1
            _ = watch.check(now: now, uplink: "up0", tunnel: routerTunnel, plannedUplinkMTU: 1500, relayMTU: 1420,
                            endpoint: WireGuardTunnel(interfacePrefix: routerTunnel).endpoint(relayPublicKey: publicKeys[1]),
                            logger: logger)
            let link = try run(["-n", router, "-o", "link", "show", "dev", routerTunnel]).stdout
            #expect(link.contains(" mtu \(uplink.tunnel) "), "\(uplink): \(link)")
            for (sender, receiver, address, direction) in [(router, relay, "fd00:7e57::2", "router → relay"),
                                                           (relay, router, "fd00:7e57::1", "relay → router")] {
                let before = try fragments(router) + fragments(relay)
                let sums = try transfer(from: sender, to: receiver, address: address, port: port)
                port += 1
                let after = try fragments(router) + fragments(relay)
                #expect(sums.sent.hasPrefix("\(20 << 20) ") && sums.received == sums.sent,
                        "\(uplink), \(direction): sent \(sums.sent), received \(sums.received)")
                #expect(after == before, "\(uplink), \(direction): \(after - before) fragments for 20 MB of TCP at tunnel MTU \(uplink.tunnel)")
                print("TunnelMTUTests: 20 MB \(direction), \(uplink), tunnel MTU \(uplink.tunnel): \(after - before) fragments")
            }
        }
        // The plan's uplink_mtu caps a link that claims more (DS-Lite behind a 1500 Ethernet link).
        try setUplink(1500, .ipv4)
        now += 1
        let capped = watch.check(now: now, uplink: "up0", tunnel: routerTunnel, plannedUplinkMTU: 1460, relayMTU: 1420,
                                 endpoint: WireGuardTunnel(interfacePrefix: routerTunnel).endpoint(relayPublicKey: publicKeys[1]),
                                 logger: logger)
        #expect(capped == .set(from: 1360, to: 1392, uplinkMTU: 1500, family: .ipv4))
    }
}

/// `sh -c COMMAND`'s standard output; the test fails if it exits non-zero.
private func runShell(_ command: String) throws -> String {
    let result = try runSystem("sh", ["-c", command])
    try #require(result.status == 0, "\(command): \(result)")
    return result.stdout
}
