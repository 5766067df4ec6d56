import EdgeModel

/// nftables rulesets (nft(8)): one file each, loaded whole with `nft -f`, replacing whatever was there.
enum Nftables {
    /// ICMPv6 a node must accept (RFC 4890 section 4.4): neighbor discovery, only with hop limit 255
    /// (RFC 4861 section 6.1.2: proves the sender is on the link), errors (PMTU discovery dies without
    /// packet-too-big, RFC 8201) and echo.
    static let icmpv6Input = """
            # Neighbor discovery, types 133-137 (RFC 4861); hop limit 255 proves it came from the link
            # itself (RFC 4861 section 6.1).
            icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept
            # Multicast listener discovery, link-local only (RFC 4890 section 4.4.1): switches with MLD
            # snooping need it to deliver VRRP and ND multicast.
            icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } ip6 saddr fe80::/10 accept
            # Errors 1-4 (packet-too-big keeps path MTU discovery working, RFC 8201) and echo for debugging.
            icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply } accept
            # IPv4 errors ("fragmentation needed" is IPv4 PMTU discovery, RFC 1191) and echo.
            icmp type { destination-unreachable, time-exceeded, parameter-problem, echo-request, echo-reply } accept
    """

    /// One value as itself (the ruleset of a one-relay plan reads as it always did), several as an
    /// anonymous set: `{ a, b }`.
    static func set(_ values: [String]) -> String {
        values.count == 1 ? values[0] : "{ " + values.joined(separator: ", ") + " }"
    }

    /// The router's tunnel interfaces, quoted, for `iifname`/`oifname`.
    static func tunnelInterfaces(_ plan: Plan) -> String {
        set(RouterTunnel.interfaces(of: plan).map { "\"\($0)\"" })
    }

    static func edgeRouter(plan: Plan, site: Site, router: Router) -> String {
        let uplink = InterfaceNames.uplink(of: router)
        let lan = InterfaceNames.lan(of: router)
        let tunnels = RouterTunnel.all(of: plan)
        let tunnel = tunnelInterfaces(plan)
        let ports = set(tunnels.map { "\($0.listenPort(in: plan))" })
        let relayAddresses = set(plan.relays.map { "\($0.tunnelAddress)" })
        return """
            #!/usr/sbin/nft -f
            # edgekit: firewall of \(site.hostname(slot: router.slot)). Loaded whole, so it is exactly what runs.
            flush ruleset

            table inet edgekit {
                chain input {
                    type filter hook input priority filter; policy drop;

                    # Answers to what the router started itself (DNS, registration, NTP).
                    ct state established,related accept
                    # Nothing conntrack cannot place is legitimate.
                    ct state invalid drop
                    iif "lo" accept

            \(icmpv6Input)

                    # DHCPv4 replies are often broadcast, so conntrack does not see them as replies (RFC 2131 section 4.1).
                    iifname "\(uplink)" udp sport 67 udp dport 68 accept
                    # DHCPv6 replies to the client port (RFC 8415 section 7.2).
                    iifname "\(uplink)" udp dport 546 accept
                    # WireGuard from the relays; each tunnel listens on a fixed port.
                    iifname "\(uplink)" udp dport \(ports) accept
                    # Prometheus on a relay scrapes the node exporter, which listens on the tunnel address only.
                    iifname \(tunnel) ip6 saddr \(relayAddresses) ip6 daddr \(router.tunnelAddress) tcp dport \(NodeExporter.port) accept
                    # VRRPv3 adverts from the peer router: IP protocol 112 to ff02::12 (RFC 5798 section 5.1.2).
                    iifname "\(lan)" meta l4proto 112 ip6 daddr ff02::12 accept\(SSHServer.firewallRules(plan: plan, site: site, router: router))
                }

                chain forward {
                    type filter hook forward priority filter; policy drop;

                    # Between the site and the other sites, before any conntrack verdict: the router that
                    # forwards an answer is not always the one that saw the question (the relay routes the
                    # site /64 to the old master for a moment after a VRRP move; answers return through
                    # another relay), and to conntrack an ICMPv6 echo reply without its request is invalid.
                    # Site LAN to the other sites of the plan: from our /64, to the /48 but not our /64.
                    iifname "\(lan)" oifname \(tunnel) ip6 saddr \(site.prefix) ip6 daddr \(plan.ula) ip6 daddr != \(site.prefix) accept
                    # Other sites to our LAN: only to our /64, and only from the rest of the /48.
                    iifname \(tunnel) oifname "\(lan)" ip6 saddr \(plan.ula) ip6 saddr != \(site.prefix) ip6 daddr \(site.prefix) accept\(dmzRules(plan: plan, site: site))

                    ct state established,related accept
                    ct state invalid drop
                }

                chain clamp {
                    type filter hook forward priority mangle; policy accept;

                    # Clamp TCP MSS to the route MTU, which is the tunnel's (\(plan.tunnelMTU(of: router)) as rendered; edgekit-agent
                    # re-sets it from the uplink's MTU), so TCP works even where ICMPv6 packet-too-big gets lost.
                    oifname \(tunnel) tcp flags syn tcp option maxseg size set rt mtu
                }
            }

            """
    }

    /// The DMZ's forward rules (docs/dmz.md): its public /64 to and from the internet through the
    /// relay that routes it, never to or from the plan's /48. Nothing between the DMZ and the LAN is
    /// accepted, so the chain's policy drops it both ways.
    static func dmzRules(plan: Plan, site: Site) -> String {
        guard let dmz = site.dmz, let tunnel = RouterTunnel.all(of: plan).first(where: { $0.relay.name == dmz.relay }) else { return "" }
        return """

                    # The DMZ (\(dmz.prefix)) and the internet, through relay \(dmz.relay) only; never the /48.
                    iifname "\(dmz.interface)" oifname "\(tunnel.interface)" ip6 saddr \(dmz.prefix) ip6 daddr != \(plan.ula) accept
                    iifname "\(tunnel.interface)" oifname "\(dmz.interface)" ip6 saddr != \(plan.ula) ip6 daddr \(dmz.prefix) accept
            """
    }

    /// The relay's DMZ rules (docs/dmz.md): the internet to its public prefix (each /64 goes on to its
    /// site's master) and back, never to or from the plan's /48.
    static func publicPrefixRules(plan: Plan, relay: Relay, tunnel: String) -> String {
        guard let prefix = relay.publicPrefix else { return "" }
        return "\n        # The sites' DMZs (\(prefix)) and the internet; never the plan's /48.\n"
            + "        iifname != \"\(tunnel)\" oifname \"\(tunnel)\" ip6 saddr != \(plan.ula) ip6 daddr \(prefix) accept\n"
            + "        iifname \"\(tunnel)\" oifname != \"\(tunnel)\" ip6 saddr \(prefix) ip6 daddr != \(plan.ula) accept"
    }

    /// The relay's forward rule for the plan's clients (docs/clients.md): from a client to any site
    /// (not to another client); the sites' answers pass as established. Only on the relay the
    /// clients connect through, and only when the plan has clients; otherwise nothing.
    static func clientRule(plan: Plan, relay: Relay, tunnel: String) -> String {
        guard !plan.clients.isEmpty, relay == plan.clientRelay else { return "" }
        return "\n        # Clients (laptops, phones) to every site of the plan; the sites answer as established.\n"
            + "        iifname \"\(tunnel)\" oifname \"\(tunnel)\" ip6 saddr \(plan.clientPrefix) ip6 daddr \(plan.ula) ip6 daddr != \(plan.clientPrefix) accept"
    }

    static func relay(plan: Plan, relay: Relay) -> String {
        let tunnel = InterfaceNames.relayTunnel
        let ports = plan.defaults.serverWireGuardPorts
        return """
            #!/usr/sbin/nft -f
            # edgekit relay firewall. Loaded whole, so it is exactly what runs.
            flush ruleset

            table inet edgekit {
                chain input {
                    type filter hook input priority filter; policy drop;

                    ct state established,related accept
                    ct state invalid drop
                    iif "lo" accept

            \(icmpv6Input)

                    # WireGuard from the edge routers.
                    udp dport \(relay.wireguardPort) accept
                    # Registration; edgekit-relay stays silent to anything unauthenticated.
                    udp dport \(relay.registrationPort) accept
                    # SSH, so the operator keeps access to the VPS (docs/network.md, "Relay firewall").
                    tcp dport 22 accept
                    # The routers fetch update bundles through their tunnels (docs/updates.md, "From the relay").
                    iifname "\(tunnel)" ip6 saddr \(plan.tunnel) ip6 daddr \(relay.tunnelAddress) tcp dport \(RelayConfig.defaultUpdatePort) accept\(NAT64Files.inputRules(plan: plan, relay: relay))
                }

                chain forward {
                    type filter hook forward priority filter; policy drop;

                    # Between sites, only the servers' own WireGuard mesh, inside the plan's /48. Before
                    # any conntrack verdict: with several relays a site's answers may come back through
                    # another relay, so this one sees one direction of a flow only.
                    iifname "\(tunnel)" oifname "\(tunnel)" ip6 saddr \(plan.ula) ip6 daddr \(plan.ula) udp dport \(ports.lowerBound)-\(ports.upperBound) accept
                    # And ICMPv6, which that mesh needs for path MTU discovery and errors (RFC 4890); an
                    # echo reply or error without its request here is "invalid" to conntrack.
                    iifname "\(tunnel)" oifname "\(tunnel)" ip6 saddr \(plan.ula) ip6 daddr \(plan.ula) meta l4proto ipv6-icmp accept\(clientRule(plan: plan, relay: relay, tunnel: tunnel))\(publicPrefixRules(plan: plan, relay: relay, tunnel: tunnel))\(NAT64Files.forwardRules(plan: plan, relay: relay, tunnel: tunnel))

                    ct state established,related accept
                    ct state invalid drop
                }

                chain output {
                    type filter hook output priority filter; policy accept;

                    # Traffic between sites leaves by the interface it came in by, which is when a router
                    # sends a redirect (RFC 4861 section 8.2). Behind WireGuard it helps no one (a peer's
                    # only way to another site is still this relay) and tells peers about each other. The
                    # kernel sends none while the tunnel has no link-local address (LinkLocalAddressing=no
                    # in the .network); this holds without relying on that.
                    oifname "\(tunnel)" icmpv6 type nd-redirect drop
                }\(NAT64Files.natChain(plan: plan, relay: relay))
            }

            """
    }
}
