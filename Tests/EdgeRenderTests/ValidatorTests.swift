import EdgeModel
import EdgeRender
import Foundation
import Testing
import TestSupport

/// The suite of everything that runs real tools in namespaces; serialized, so namespace tests never
/// compete for the two CPUs and VRRP timing stays meaningful.
@Suite("Real tools", .serialized, .requiresRoot, .slow)
struct RealTools {}

extension RealTools {
    /// Every rendered file is accepted by the program that reads it, and a broken one is refused (so
    /// these tests can fail).
    @Suite("Validators")
    struct Validators {
        /// A namespace holding the interfaces `names` (veth pairs inside it), up.
        func namespace(with names: [String], in lab: Lab) throws -> String {
            let ns = try lab.namespace("v")
            for (index, name) in names.enumerated() {
                try lab.ip(ns, "link", "add", name, "type", "veth", "peer", "name", "peer\(index)")
                try lab.ip(ns, "link", "set", name, "up")
            }
            return ns
        }

        @Test("radvd --configtest accepts every router's radvd.conf and refuses a broken one")
        func radvd() throws {
            _ = try Lab.tool("radvd")
            let lab = try Lab()
            defer { lab.tearDown() }
            let ns = try namespace(with: ["lan0"], in: lab)
            for (name, files) in try Fixtures.allRenderings() where !name.hasPrefix("relay") {
                let path = try lab.write("\(name)-radvd.conf", files.file(ConfigPaths.radvd).contents)
                let result = try lab.exec(ns, ["radvd", "--configtest", "-C", path])
                #expect(result.status == 0, "\(result)")
                #expect(result.stderr.contains("syntax ok"), "\(result)")
            }
            let (_, _, _, files) = try Fixtures.router("site-a", slot: 1)
            let broken = try files.file(ConfigPaths.radvd).contents
                .replacingOccurrences(of: "AdvRoutePreference high;", with: "AdvRoutePreference highest;")
            let result = try lab.exec(ns, ["radvd", "--configtest", "-C", lab.write("broken-radvd.conf", broken)])
            #expect(result.status != 0, "radvd accepted a broken config: \(result)")
        }

        @Test("keepalived -t accepts every router's keepalived.conf and refuses broken ones")
        func keepalived() throws {
            _ = try Lab.tool("keepalived")
            let lab = try Lab()
            defer { lab.tearDown() }
            // dmz0: the DMZ's VLAN (docs/dmz.md), where a site with one holds the link-local VIP too.
            let ns = try namespace(with: ["lan0", "dmz0"], in: lab)
            for (name, files) in try Fixtures.allRenderings() where !name.hasPrefix("relay") {
                let path = try lab.write("\(name)-keepalived.conf", files.file(ConfigPaths.keepalived).contents)
                let result = try lab.exec(ns, ["keepalived", "-t", "-f", path])
                #expect(result.status == 0, "\(result)")
                #expect(result.stdout.isEmpty && result.stderr.isEmpty, "keepalived warned: \(result)")
            }
            let original = try Fixtures.router("site-a", slot: 1).files.file(ConfigPaths.keepalived).contents
            let breakages = [
                ("priority 200", "priority 2000"),   // out of range
                ("advert_int", "advert_interval"),   // unknown keyword
                ("interface lan0", "interface lan9"), // interface not in this namespace
            ]
            for (from, to) in breakages {
                let broken = original.replacingOccurrences(of: from, with: to)
                #expect(broken != original)
                let result = try lab.exec(ns, ["keepalived", "-t", "-f", lab.write("broken-keepalived.conf", broken)])
                #expect(result.status != 0, "keepalived accepted \(to): \(result)")
            }
        }

        @Test("nft -c accepts every router's and the relay's ruleset and refuses a broken one")
        func nftables() throws {
            _ = try Lab.tool("nft", package: "nftables")
            let lab = try Lab()
            defer { lab.tearDown() }
            let ns = try lab.namespace("v")
            for (name, files) in try Fixtures.allRenderings() {
                let path = try lab.write("\(name)-nftables.conf", files.file(ConfigPaths.nftables).contents)
                let result = try lab.exec(ns, ["nft", "-c", "-f", path])
                #expect(result.status == 0, "\(name): \(result)")
                #expect(result.stderr.isEmpty, "\(name): \(result)")
            }
            let original = try Fixtures.router("site-a", slot: 1).files.file(ConfigPaths.nftables).contents
            let broken = original.replacingOccurrences(of: "ct state invalid drop", with: "ct state invalid dorp")
            let result = try lab.exec(ns, ["nft", "-c", "-f", lab.write("broken-nftables.conf", broken)])
            #expect(result.status != 0, "nft accepted a broken ruleset: \(result)")
        }

        /// The relay's NAT64 unit (docs/nat64.md): accepted, with stand-ins for tayga and ip, whose
        /// real runs the lab does.
        @Test("systemd-analyze verify accepts the NAT64 unit and flags a broken one")
        func nat64Unit() throws {
            _ = try Lab.tool("systemd-analyze", package: "systemd")
            let lab = try Lab()
            defer { lab.tearDown() }
            let unit = try RelayFiles.files(plan: Fixtures.twoRelaysWithClientsPlan()).file(ConfigPaths.nat64Service)
            func verify(_ contents: String) throws -> ProgramResult {
                try lab.verifyUnit(unit.path, contents, standIns: ["/usr/sbin/tayga", "/usr/sbin/ip"])
            }
            let good = try verify(unit.contents)
            #expect(good.status == 0 && good.stderr.isEmpty, "\(good)")
            let broken = try verify(unit.contents.replacingOccurrences(of: "Type=exec", with: "Type=exce"))
            #expect(broken.stderr.contains("exce"), "\(broken)")
        }

        /// unbound's own checker takes the DNS64 drop-in (with its forwarders) and refuses a broken copy.
        @Test("unbound-checkconf accepts the DNS64 drop-in and refuses a broken one")
        func dns64DropIn() throws {
            let checker = try Lab.tool("unbound-checkconf", package: "unbound")
            let lab = try Lab()
            defer { lab.tearDown() }
            let file = try RelayFiles.files(plan: Fixtures.twoRelaysWithClientsPlan()).file(ConfigPaths.dns64Config)
            #expect(file.contents.contains("dns64-prefix: fd5e:d9e1:7c2a:fffe::/96\n") && file.contents.contains("forward-addr: 2620:fe::fe"))
            let good = try lab.run([checker, try lab.write("dns64.conf", file.contents)])
            #expect(good.status == 0, "\(good)")
            let bad = try lab.run([checker, try lab.write("bad.conf", file.contents.replacingOccurrences(of: "dns64-prefix:", with: "dns64-prefx:"))])
            #expect(bad.status != 0, "\(bad)")
        }

        @Test("systemd-analyze verify accepts the relay unit and flags a broken one")
        func systemdUnits() throws {
            _ = try Lab.tool("systemd-analyze", package: "systemd")
            let lab = try Lab()
            defer { lab.tearDown() }
            let unit = try RelayFiles.files(plan: Fixtures.examplePlan()).file(ConfigPaths.relayService)

            func verify(_ contents: String) throws -> ProgramResult {
                try lab.verifyUnit(unit.path, contents, standIns: [ConfigPaths.relayExecutable])
            }
            let good = try verify(unit.contents)
            #expect(good.status == 0, "\(good)")
            #expect(good.stderr.isEmpty, "systemd-analyze warned: \(good)")

            let broken = try verify(unit.contents.replacingOccurrences(of: "ProtectHome=yes", with: "ProtectHomes=yes"))
            #expect(broken.stderr.contains("Unknown key 'ProtectHomes'"), "\(broken)")
        }

        /// networkd has no validator: every key must be one this file type allows (our allow-list) and
        /// one the installed systemd really knows (its gperf key tables, compiled into the binaries).
        @Test("networkd .link/.network/.netdev files use only keys systemd knows")
        func networkdKeys() throws {
            let networkd = try #require(FileManager.default.contents(atPath: "/lib/systemd/systemd-networkd"),
                                        "run ./build.sh to install systemd-networkd")
            let udevd = try #require(FileManager.default.contents(atPath: "/lib/systemd/systemd-udevd"),
                                     "run ./build.sh to install udev")
            let allowed: [String: [String: Set<String>]] = [
                "link": ["Match": ["OriginalName", "MACAddress", "Type"], "Link": ["Name"]],
                "network": [
                    "Match": ["Name"],
                    "Network": ["Address", "DHCP", "IPv6AcceptRA", "IPv6SendRA", "LinkLocalAddressing",
                                "ConfigureWithoutCarrier", "VLAN"],
                    "DHCPv4": ["SendHostname", "UseMTU"], "Route": ["Destination", "Metric", "Table"], "Link": ["RequiredForOnline"],
                    "RoutingPolicyRule": ["From", "Table", "Priority"],
                ],
                "netdev": [
                    "NetDev": ["Name", "Kind", "MTUBytes"], "VLAN": ["Id"], "WireGuard": ["PrivateKeyFile", "ListenPort"],
                    "WireGuardPeer": ["PublicKey", "Endpoint", "AllowedIPs", "PersistentKeepalive"],
                ],
            ]
            var checked = 0
            var endpoints = 0
            var macMatches = 0
            // The preview (`auto`: OriginalName=) and a device's pinned ports (`auto`: MACAddress=).
            for (name, files) in try Fixtures.allRenderings() + Fixtures.meshRenderings() + [Fixtures.pinnedPortsRendering()] {
                for file in files where file.path.hasPrefix(ConfigPaths.networkdDirectory + "/") {
                    let type = String(file.path.split(separator: ".").last ?? "")
                    // A server's mesh key (PrivateKeyFile=): one line of base64, 32 bytes.
                    if type == "key" {
                        let key = file.contents.trimmingCharacters(in: .newlines)
                        #expect(file.mode == 0o600 && Data(base64Encoded: key)?.count == 32, "\(name)\(file.path)")
                        continue
                    }
                    let table = try #require(allowed[type], "\(file.path): unknown networkd file type")
                    let binary = type == "link" ? udevd : networkd
                    var section: String?
                    for line in file.contents.split(separator: "\n").map(String.init) {
                        if line.isEmpty || line.hasPrefix("#") { continue }
                        if line.hasPrefix("[") {
                            section = String(line.dropFirst().dropLast())
                            #expect(line.hasSuffix("]") && table[section!] != nil, "\(name)\(file.path): section \(line)")
                            continue
                        }
                        let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                        guard parts.count == 2, let section, !parts[1].isEmpty else {
                            Issue.record("\(name)\(file.path): not KEY=VALUE in a section: \(line)")
                            continue
                        }
                        let key = parts[0]
                        #expect(table[section]?.contains(key) == true, "\(name)\(file.path): [\(section)] \(key) not allowed")
                        let needle = Data([0] + Array("\(section).\(key)".utf8) + [0])
                        #expect(binary.range(of: needle) != nil, "\(name)\(file.path): systemd does not know [\(section)] \(key)")
                        if ["Address", "Destination", "AllowedIPs", "From"].contains(key) {
                            #expect(IPv6Prefix(parts[1]) != nil || parts[1].split(separator: "/").count == 2
                                    && IPv6Address(parts[1].split(separator: "/")[0]) != nil,
                                    "\(name)\(file.path): \(key)=\(parts[1]) is not an IPv6 prefix")
                        }
                        // A mesh peer's endpoint is a literal address: [IPv6]:port (systemd.netdev(5), Endpoint=).
                        if key == "Endpoint", parts[1].hasPrefix("[") {
                            let pieces = parts[1].dropFirst().split(separator: "]:", maxSplits: 1)
                            #expect(pieces.count == 2 && IPv6Address(pieces[0]) != nil && UInt16(pieces[1]) != nil,
                                    "\(name)\(file.path): Endpoint=\(parts[1])")
                            endpoints += 1
                        }
                        if key == "MACAddress" {
                            let octets = parts[1].split(separator: ":")
                            #expect(octets.count == 6 && octets.allSatisfy { $0.count == 2 && UInt8($0, radix: 16) != nil },
                                    "\(name)\(file.path): MACAddress=\(parts[1])")
                            macMatches += 1
                        }
                        checked += 1
                    }
                }
            }
            #expect(checked > 50)
            #expect(endpoints == 6, "the three mesh servers have two peers each")
            #expect(macMatches == 2, "the pinned uplink and LAN match by MAC")
            // The check itself must be able to fail.
            #expect(networkd.range(of: Data([0] + Array("Network.IPv6AcceptRAs".utf8) + [0])) == nil)
        }

        /// udev's own `.link` code (`udevadm test-builtin net_setup_link`, in a namespace whose sysfs
        /// shows only its veths and a private /etc/systemd/network holding only our files): the pinned
        /// form names the port with each MAC address, the preview's form the kernel's eth0/eth1, and a
        /// port with another MAC address is left alone (so the test can fail).
        @Test("udev applies the .link files: pinned MACs and the kernel-order form name the right ports")
        func linkFiles() throws {
            _ = try Lab.tool("udevadm", package: "udev")
            _ = try Lab.tool("unshare", package: "util-linux")
            let lab = try Lab()
            defer { lab.tearDown() }
            let ns = try lab.namespace("k")
            // eth0 carries the pinned LAN MAC and eth1 the uplink's: the kernel's order is the other way round.
            let ports = [("eth0", "00:e0:4c:68:00:01"), ("eth1", "dc:a6:32:01:02:03"), ("eth2", "02:00:00:00:00:07")]
            for (index, (name, mac)) in ports.enumerated() {
                try lab.ip(ns, "link", "add", name, "address", mac, "type", "veth", "peer", "name", "kp\(index)")
            }

            /// ID_NET_NAME (empty when no file matched) of each port, with `files` the only ones of ours.
            func names(_ files: [RenderedFile], _ label: String) throws -> [String: String] {
                let folder = lab.directory.appendingPathComponent("link-\(label)-\(Lab.nextNumber())")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for file in files { _ = try lab.write(folder.lastPathComponent + "/" + (file.path as NSString).lastPathComponent, file.contents) }
                var script = "set -e; mount -t tmpfs tmpfs /etc/systemd/network; cp \(folder.path)/*.link /etc/systemd/network/\n"
                for (name, _) in ports {
                    script += "echo \"edgekit-port \(name)\"; udevadm test-builtin net_setup_link /sys/class/net/\(name) 2>&1\n"
                }
                let result = try lab.exec(ns, ["unshare", "-m", "--propagation", "private", "sh", "-c", script])
                #expect(result.status == 0, "\(result)")
                var found: [String: String] = [:]
                var port = ""
                for line in result.stdout.split(separator: "\n") {
                    if line.hasPrefix("edgekit-port ") { port = String(line.dropFirst("edgekit-port ".count)); found[port] = ""; continue }
                    if line.hasPrefix("ID_NET_LINK_FILE=/etc/systemd/network/10-edgekit-") { found[port, default: ""] += "ours:" }
                    if line.hasPrefix("ID_NET_NAME=") { found[port, default: ""] += line.dropFirst("ID_NET_NAME=".count) }
                }
                return found
            }

            let pinned = try Fixtures.pinnedPortsRendering().files
            #expect(pinned.count == 2)
            let byMAC = try names(pinned, "pinned")
            #expect(byMAC["eth1"] == "ours:uplink0" && byMAC["eth0"] == "ours:lan0", "\(byMAC)")
            #expect(byMAC["eth2"]?.hasPrefix("ours:") == false, "a port with another MAC is not ours: \(byMAC)")

            let preview = try Fixtures.router("site-a", slot: 1).files.filter { $0.path.hasSuffix(".link") }
            #expect(preview.count == 2)
            let byOrder = try names(preview, "preview")
            #expect(byOrder["eth0"] == "ours:uplink0" && byOrder["eth1"] == "ours:lan0", "\(byOrder)")
            #expect(byOrder["eth2"]?.hasPrefix("ours:") == false, "\(byOrder)")
        }

        @Test("wg setconf loads the tunnel file into a wireguard-go interface")
        func wireguardSetconf() throws {
            _ = try Lab.tool("wg", package: "wireguard-tools")
            _ = try Lab.tool("wireguard-go")
            _ = try Lab.tool("unshare", package: "util-linux")
            let lab = try Lab()
            defer { lab.tearDown() }
            let (plan, _, _, files) = try Fixtures.router("site-a", slot: 1)
            let config = try lab.write("wg-relay.conf", files.file(ConfigPaths.routerTunnelSetconf).contents)
            let key = try lab.write("wireguard.key", lab.mustRun(["wg", "genkey"]).stdout, mode: 0o600)
            // The relay's name, as the lab's resolver sees it (bind-mounted over /etc/hosts below).
            let hosts = try lab.write("hosts", "127.0.0.1 localhost\n192.0.2.10 \(plan.relay.host)\n")
            let ns = try lab.namespace("w")
            let tunnel = InterfaceNames.routerTunnel
            // A private mount namespace: wireguard-go's control socket (/run/wireguard) and /etc/hosts
            // are replaced only for this script, never on the host.
            let script = """
                set -e
                mount -t tmpfs tmpfs /run
                mount --bind \(hosts) /etc/hosts
                WG_PROCESS_FOREGROUND=1 wireguard-go \(tunnel) >/dev/null 2>&1 &
                pid=$!
                trap 'kill $pid' EXIT
                i=0
                while [ ! -S /run/wireguard/\(tunnel).sock ]; do
                    i=$((i + 1)); [ $i -lt 100 ] || { echo "wireguard-go did not start" >&2; exit 3; }
                    sleep 0.1
                done
                wg setconf \(tunnel) \(config)
                wg set \(tunnel) private-key \(key)
                wg show \(tunnel) dump
                """
            let result = try lab.exec(ns, ["unshare", "-m", "--propagation", "private", "sh", "-c", script])
            #expect(result.status == 0, "\(result)")
            let lines = result.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
            // Interface line: private-key public-key listen-port fwmark.
            #expect(lines.first?[2] == "\(plan.relay.wireguardPort)", "\(result)")
            // Peer line: public-key preshared-key endpoint allowed-ips handshake rx tx keepalive.
            let peer = try #require(lines.count == 2 ? lines[1] : nil, "\(result)")
            #expect(peer[0] == Fixtures.relayPublicKey)
            #expect(peer[2] == "192.0.2.10:\(plan.relay.wireguardPort)")
            #expect(peer[3] == "\(IPv6Prefix.host(plan.relay.tunnelAddress)),\(plan.ula)")
            #expect(peer[7] == "\(plan.defaults.keepalive)")
        }
    
        /// wg-quick's own parser (`wg-quick strip`) reads every server's wg-quick file, and `wg setconf`
        /// loads what it leaves into a wireguard-go interface: key, port, peers, endpoints and
        /// AllowedIPs as rendered. A broken file is refused.
        @Test("wg-quick strip and wg setconf accept every server's wg-quick file and refuse a broken one")
        func wgQuickMesh() throws {
            _ = try Lab.tool("wg", package: "wireguard-tools")
            _ = try Lab.tool("wg-quick", package: "wireguard-tools")
            _ = try Lab.tool("wireguard-go")
            _ = try Lab.tool("unshare", package: "util-linux")
            let lab = try Lab()
            defer { lab.tearDown() }
            let ns = try lab.namespace("m")
            let plan = try Fixtures.meshPlan()
            let interface = InterfaceNames.serverMesh

            /// strip, then setconf into a fresh wireguard-go interface in a private /run; prints the dump.
            func load(_ contents: String, as label: String) throws -> ProgramResult {
                let folder = lab.directory.appendingPathComponent("wgq-\(label)-\(Lab.nextNumber())")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let path = try lab.write(folder.lastPathComponent + "/\(interface).conf", contents, mode: 0o600)
                let script = """
                    set -e
                    mount -t tmpfs tmpfs /run
                    wg-quick strip \(path) > \(folder.path)/stripped.conf
                    WG_PROCESS_FOREGROUND=1 wireguard-go \(interface) >/dev/null 2>&1 &
                    pid=$!
                    trap 'kill $pid' EXIT
                    i=0
                    while [ ! -S /run/wireguard/\(interface).sock ]; do
                        i=$((i + 1)); [ $i -lt 100 ] || { echo "wireguard-go did not start" >&2; exit 3; }
                        sleep 0.1
                    done
                    wg setconf \(interface) \(folder.path)/stripped.conf
                    wg show \(interface) dump
                    """
                return try lab.exec(ns, ["env", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                                         "unshare", "-m", "--propagation", "private", "sh", "-c", script])
            }

            for server in plan.servers {
                let (_, _, files) = try Fixtures.mesh(server.name, format: .wgQuick, plan: plan)
                let result = try load(files[0].contents, as: server.name)
                #expect(result.status == 0, "\(server.name): \(result)")
                let lines = result.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
                // Interface: private-key public-key listen-port fwmark.
                #expect(lines.first?[0] == Fixtures.meshKeys[server.name]!.privateKey, "\(result)")
                #expect(lines.first?[1] == Fixtures.meshKeys[server.name]!.publicKey, "\(result)")
                #expect(lines.first?[2] == "58001", "\(result)")
                // Peers: public-key preshared-key endpoint allowed-ips ...; every other server.
                let peers = lines.dropFirst().map { ($0[0], $0[2], $0[3]) }
                let expected = plan.servers.filter { $0.name != server.name }.map {
                    (Fixtures.meshKeys[$0.name]!.publicKey, "[\($0.siteAddress)]:58001", "\($0.meshAddress)/128")
                }
                #expect(peers.map(\.0).sorted() == expected.map(\.0).sorted(), "\(result)")
                for (key, endpoint, allowed) in expected {
                    #expect(peers.contains { $0 == (key, endpoint, allowed) }, "\(server.name): no peer \(key) \(endpoint) \(allowed) in \(result)")
                }
            }
            let good = try Fixtures.mesh("sa", format: .wgQuick, plan: plan).files[0].contents
            let broken = good.replacingOccurrences(of: "AllowedIPs = fd9a:61c4:b7e:1::b/128", with: "AllowedIPs = fd9a:61c4:b7e:1::zz/128")
            #expect(broken != good)
            let refused = try load(broken, as: "broken")
            #expect(refused.status != 0, "a broken AllowedIPs was accepted: \(refused)")
        }
    }
}
