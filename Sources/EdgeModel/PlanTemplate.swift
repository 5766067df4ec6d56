/// Writes a fresh, commented `plan.yaml` for `edgekit plan init`.
public enum PlanTemplate {
    /// A random RFC 4193 /48: `fd` followed by a 40-bit Global ID from the system CSPRNG.
    ///
    /// RFC 4193 section 3.2.2 suggests hashing the time and an EUI-64, but only requires that the
    /// Global ID be pseudo-random (section 3.2, citing RFC 4086); the kernel's getrandom(2),
    /// behind `SystemRandomNumberGenerator`, satisfies that directly and needs no MAC address.
    public static func randomULA<G: RandomNumberGenerator>(using generator: inout G) -> IPv6Prefix {
        let globalID = UInt64.random(in: 0..<(1 << 40), using: &generator)
        return IPv6Prefix(address: IPv6Address(high: (0xfd << 56) | (globalID << 16), low: 0), length: 48)
    }

    /// The text of a new plan with `sites` sites, two routers each.
    public static func text<G: RandomNumberGenerator>(
        name: String, relayHost: String, relayPort: UInt16, sites: Int, using generator: inout G
    ) -> String {
        let ula = randomULA(using: &generator)
        var tunnel48 = randomULA(using: &generator)
        while tunnel48 == ula { tunnel48 = randomULA(using: &generator) }
        let tunnel = IPv6Prefix(address: tunnel48.address, length: 64)
        let registrationPort = relayPort == 65535 ? relayPort - 1 : relayPort + 1
        var lines: [String] = [
            "# edgekit network plan. Reference: docs/plan.md. Check with `edgekit plan check DIR`.",
            "",
            "# DNS-safe name of the whole network; signed into every profile and certificate.",
            "name: \(name)",
            "# The plan's RFC 4193 unique local /48 (fd00::/8 + 40 random bits). Sites get /64s inside it.",
            "ula: \(ula)",
            "# Router and relay tunnel /128s come from here; it must lie outside the /48.",
            "# The relay is <tunnel>::1, router SLOT of site INDEX is <tunnel>::1:INDEX:SLOT.",
            "tunnel: \(tunnel)",
            "",
            "relay:",
            "  # DNS name of the relay VPS; routers re-resolve it when the tunnel goes stale.",
            "  host: \(relayHost)",
            "  wireguard_port: \(relayPort)",
            "  registration_port: \(registrationPort)",
            "",
            "defaults:",
            "  # The most the uplinks carry (1420 or more; a site or router may set its own uplink_mtu, e.g.",
            "  # 1492 PPPoE, 1460 DS-Lite, 1428 LTE). The agent sizes the tunnel from the real uplink, at most",
            "  # uplink_mtu - 80; the servers' mesh gets the smallest uplink_mtu - 160 (docs/network.md, MTU).",
            "  uplink_mtu: 1500",
            "  # WireGuard PersistentKeepalive to the relay, seconds.",
            "  keepalive: 25",
            "  # VRRPv3 advertisement interval, seconds (0.01 steps). Failover takes about 3 of these.",
            "  vrrp_advert_interval: 1",
            "  # UDP ports of the servers' own WireGuard mesh that the relay forwards inside the /48.",
            "  server_wireguard_ports: 58000-60000",
            "",
            "sites:",
        ]
        for i in 1...max(1, sites) {
            lines += [
                "  - name: site\(i)",
                "    # Subnet number inside the /48: this site's /64 is \(ula.subnet(UInt64(i), length: 64)!).",
                "    index: \(i)",
                "    # VRRP virtual router id (1-255), unique on the site LAN.",
                "    vrrp_id: 51",
                "    # Shared router address on the LAN (default <site /64>::1); link-local VIP defaults to fe80::1.",
                "    # vip: \(ula.subnet(UInt64(i), length: 64)!.host(1)!)",
                "    routers:",
                "      # slot: 1..16; priority: 1-254, highest live router is VRRP master;",
                "      # generation: bump to rotate this router's keys;",
                "      # uplink/lan: auto (first/second Ethernet port), an interface name, or a MAC.",
                "      - slot: 1",
                "        priority: 200",
                "        generation: 1",
                "        uplink: auto",
                "        lan: auto",
                "      - slot: 2",
                "        priority: 100",
                "        generation: 1",
                "        uplink: auto",
                "        lan: auto",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
