import EdgeModel

/// systemd-networkd files of an edge router: NIC naming, uplink, LAN and the tunnel to the relay.
///
/// Why networkd rather than wg-quick for the tunnel: docs/network.md, "WireGuard".
enum RouterNetworkd {
    /// A `.link` file that gives an `auto` or MAC-matched NIC its stable name, or nil when the plan
    /// names the interface (its name is then already known and stable). `pinned` is the MAC address
    /// edgekit-agent pinned for an `auto` port on the device; without one (`edgekit render`, or a
    /// device where the agent found no port for the role) the match falls back to the kernel's
    /// name in probe order, `autoKernelName`.
    static func link(_ match: InterfaceMatch, stableName: String, role: String, autoKernelName: String,
                     pinned: String? = nil) -> String? {
        let matchLines: String
        switch match {
        case .name:
            return nil
        case .mac(let mac):
            matchLines = """
                # The plan pins the \(role) port by MAC address (systemd.link(5), [Match] MACAddress=).
                MACAddress=\(mac)
                """
        case .auto:
            if let pinned {
                matchLines = """
                    # plan: \(role) auto. edgekit-agent chose this port at first apply (onboard before USB, then
                    # by device path) and pinned its MAC address, so the port keeps its role whatever order the
                    # kernel probes the ports in (docs/network.md, "Interface names").
                    MACAddress=\(pinned)
                    Type=ether
                    """
            } else {
                matchLines = """
                    # plan: \(role) auto. On the device edgekit-agent pins the \(role) port by MAC address at
                    # first apply (onboard before USB, then by device path) and matches MACAddress= instead.
                    # Until it has found a port for the role: the kernel's name in probe order, before udev
                    # renames anything (docs/network.md, "Interface names").
                    OriginalName=\(autoKernelName)
                    Type=ether
                    """
            }
        }
        return """
            # edgekit: gives the \(role) port the stable name \(stableName), which radvd, keepalived and
            # nftables use; sorts before 99-default.link so it wins (systemd.link(5), "first match").
            [Match]
            \(matchLines)

            [Link]
            Name=\(stableName)

            """
    }

    static func uplinkNetwork(router: Router) -> String {
        """
        # edgekit: the uplink. Any network, any ISP: addresses, routes and DNS come from DHCPv4,
        # DHCPv6 and router advertisements (systemd.network(5), DHCP=, IPv6AcceptRA=).
        [Match]
        Name=\(InterfaceNames.uplink(of: router))

        [Network]
        DHCP=yes
        # networkd handles RAs in user space, per link, so this keeps working although IPv6
        # forwarding is on (the kernel alone would need accept_ra=2).
        IPv6AcceptRA=yes
        LinkLocalAddressing=ipv6

        [DHCPv4]
        # The router's name is the site's business, not the ISP's.
        SendHostname=no
        # The MTU the ISP hands out (DHCP option 26, RFC 2132 section 5.1; off by default in networkd):
        # PPPoE or DS-Lite access networks carry less than 1500. An RA's MTU option is used already
        # ([IPv6AcceptRA] UseMTU= defaults to yes). edgekit-agent sizes the tunnel from the result.
        UseMTU=yes

        """
    }

    static func lanNetwork(site: Site, router: Router) -> String {
        // An address on a link with its prefix length (systemd.network(5), Address=): the host
        // bits must stay, so this is not an IPv6Prefix (which would clear them).
        let lanAddress = "\(router.lanAddress)/\(site.prefix.length)"
        return """
            # edgekit: the site LAN (\(site.name), \(site.prefix)). The routers are the only source of
            # RAs here (radvd) and never DHCP clients on it.
            [Match]
            Name=\(InterfaceNames.lan(of: router))

            [Network]
            # The router's own address; keepalived adds the VIPs (\(site.linkLocalVIP), \(site.vip)) on the master.
            Address=\(lanAddress)
            DHCP=no
            # A router must not learn routes from its peer's RAs on the LAN.
            IPv6AcceptRA=no
            # radvd sends the RAs (from the VRRP link-local VIP), not networkd.
            IPv6SendRA=no
            LinkLocalAddressing=ipv6
            # The LAN can be down (no switch yet) without holding up boot.
            ConfigureWithoutCarrier=yes\(site.dmz?.vlan == nil ? "" : """

            # The DMZ's VLAN rides this port (docs/dmz.md).
            VLAN=\(DMZ.vlanInterface)
            """)

            [Link]
            RequiredForOnline=no

            """
    }

    /// The DMZ's VLAN on the LAN port (docs/dmz.md); nil for a DMZ on a port of its own.
    static func dmzNetdev(site: Site, dmz: DMZ) -> String? {
        guard case .vlan(let id) = dmz.link else { return nil }
        return """
            # edgekit: the DMZ of \(site.name) (\(dmz.prefix)): 802.1Q VLAN \(id) on the LAN port (docs/dmz.md).
            [NetDev]
            Name=\(dmz.interface)
            Kind=vlan

            [VLAN]
            Id=\(id)

            """
    }

    /// The DMZ's link: its public /64 on-link (radvd announces it) and the rule that sends what
    /// comes from it to the relay that routes it, whose tunnel is the default route of its table.
    static func dmzNetwork(site: Site, dmz: DMZ) -> String {
        """
        # edgekit: the DMZ of \(site.name) (\(dmz.linkDescription)): public \(dmz.prefix), routed by relay \(dmz.relay) (docs/dmz.md).
        [Match]
        Name=\(dmz.interface)

        [Network]
        DHCP=no
        IPv6AcceptRA=no
        # radvd sends the RAs (from the VRRP link-local VIP, which keepalived adds here too).
        IPv6SendRA=no
        LinkLocalAddressing=ipv6
        ConfigureWithoutCarrier=yes

        [Route]
        # The DMZ's hosts, on this link (no router address in it: radvd and the VIP are enough).
        Destination=\(dmz.prefix)

        [RoutingPolicyRule]
        # What comes from the DMZ goes to the relay that routes its prefix: never out of the uplink (the
        # ISP would drop the source) and never to the site LAN or another site (the firewall).
        From=\(dmz.prefix)
        Table=\(ConfigPaths.dmzTable)
        Priority=\(ConfigPaths.dmzRulePriority)

        [Link]
        RequiredForOnline=no

        """
    }

    /// Why this router's rendered tunnel MTU is not its uplink's - 80 (`Defaults.tunnelMTUNote`), or "".
    static func tunnelMTUNote(_ plan: Plan, _ router: Router) -> String {
        Defaults.tunnelMTUNote(payload: plan.uplinkMTU(of: router) - Defaults.wireGuardOverhead, relayMTU: plan.defaults.tunnelMTU)
    }

    static func tunnelNetdev(plan: Plan, site: Site, router: Router, tunnel: RouterTunnel, relayPublicKey: String) -> String {
        let relay = tunnel.relay
        return """
            # edgekit: WireGuard tunnel to the relay \(relay.host) (systemd.netdev(5), [WireGuard]).
            [NetDev]
            Name=\(tunnel.interface)
            Kind=wireguard
            # Uplink MTU \(plan.uplinkMTU(of: router)) minus 80 bytes of WireGuard over IPv6 (40 IPv6 + 8 UDP + 32 WireGuard)\(Self.tunnelMTUNote(plan, router)).
            # At run time edgekit-agent sets it from the uplink's real MTU and the relay's address family.
            MTUBytes=\(plan.tunnelMTU(of: router))

            [WireGuard]
            # Never inline: the agent writes the key 0600, owned by systemd-network, which reads it.
            PrivateKeyFile=\(ConfigPaths.routerWireGuardKey)
            # A fixed port, so nftables can allow WireGuard on the uplink by port.
            ListenPort=\(tunnel.listenPort(in: plan))

            [WireGuardPeer]
            PublicKey=\(relayPublicKey)
            # A DNS name: the relay may move; the agent re-resolves it when handshakes go stale.
            Endpoint=\(relay.host):\(relay.wireguardPort)
            # The relay itself and every site of the plan; nothing else rides the tunnel.
            AllowedIPs=\(IPv6Prefix.host(relay.tunnelAddress))
            AllowedIPs=\(plan.ula)\(site.dmz?.relay == relay.name ? """

            # And the internet, for the DMZ only: what may enter and leave by the tunnel is the
            # firewall's and the DMZ rule's business (docs/dmz.md); WireGuard adds no route.
            AllowedIPs=::/0
            """ : "")
            # Keeps NAT and CG-NAT mappings open so the relay can reach us (wg(8), PersistentKeepalive).
            PersistentKeepalive=\(plan.defaults.keepalive)

            """
    }

    static func tunnelNetwork(plan: Plan, site: Site, router: Router, tunnel: RouterTunnel) -> String {
        // One relay: the /48 route as it always was. Several: a metric per tunnel, the site's
        // preferred relay lowest; the agent's path choice overrides it (RouterTunnel.chosenMetric).
        let metric = plan.relays.count == 1 ? "" : """

            # Relay \(tunnel.relay.name): number \(tunnel.metric(for: site, in: plan) - RouterTunnel.baseMetric + 1) in this site's order of relays.
            # edgekit-agent routes the /48 through the tunnel it chose (metric \(RouterTunnel.chosenMetric)).
            Metric=\(tunnel.metric(for: site, in: plan))
            """
        // Several relays: clients connect through the first only, so their /64 goes there whichever
        // relay the /48 takes (docs/clients.md, "Several relays"). Rendered with or without clients:
        // the device renders from its profile, which knows the client prefix but not the clients.
        let clients = plan.relays.count > 1 && tunnel.relay == plan.clientRelay ? """

            [Route]
            # The plan's clients (laptops, phones): they connect through this relay only.
            Destination=\(plan.clientPrefix)

            [Route]
            # The relay's NAT64 and DNS64 run on this relay only (docs/nat64.md).
            Destination=\(plan.nat64.network)


            """ : "\n"
        return """
            # edgekit: addresses and routes of the tunnel to the relay \(tunnel.relay.host).
            [Match]
            Name=\(tunnel.interface)

            [Network]
            Address=\(IPv6Prefix.host(router.tunnelAddress))
            # WireGuard is layer 3 only: no link-local address, no RAs, no DHCP.
            LinkLocalAddressing=no
            IPv6AcceptRA=no
            DHCP=no

            [Route]
            # The relay's tunnel address.
            Destination=\(IPv6Prefix.host(tunnel.relay.tunnelAddress))

            [Route]
            # The other sites; the own /64 is more specific and stays on the LAN.
            Destination=\(plan.ula)\(metric)
            \(clients)\(site.dmz?.relay == tunnel.relay.name ? """
            [Route]
            # The DMZ's default route, in the table only its traffic uses (docs/dmz.md).
            Destination=::/0
            Table=\(ConfigPaths.dmzTable)


            """ : "")[Link]
            # The uplink decides when the router is online; the tunnel follows it.
            RequiredForOnline=no

            """
    }
}

/// systemd-networkd files of the relay's WireGuard interface.
enum RelayNetworkd {
    static func tunnelNetdev(plan: Plan, relay: Relay) -> String {
        """
        # edgekit relay: one WireGuard interface, no peers here. edgekit-relay adds one peer per
        # registered router at run time (systemd.netdev(5), [WireGuard]).
        [NetDev]
        Name=\(InterfaceNames.relayTunnel)
        Kind=wireguard
        # Routers send at most uplink MTU - 80; the relay forwards what they send unchanged.
        MTUBytes=\(plan.defaults.tunnelMTU)

        [WireGuard]
        # Never inline: the key file is 0600, owned by systemd-network, which reads it.
        PrivateKeyFile=\(ConfigPaths.relayWireGuardKey)
        ListenPort=\(relay.wireguardPort)

        """
    }

    static func tunnelNetwork(plan: Plan, relay: Relay) -> String {
        """
        # edgekit relay: addresses and routes of the WireGuard interface.
        [Match]
        Name=\(InterfaceNames.relayTunnel)

        [Network]
        Address=\(IPv6Prefix.host(relay.tunnelAddress))
        LinkLocalAddressing=no
        IPv6AcceptRA=no
        DHCP=no

        [Route]
        # Routers' tunnel addresses; WireGuard picks the peer by AllowedIPs.
        Destination=\(plan.tunnel)

        [Route]
        # Every site /64; each is in the AllowedIPs of exactly one peer, the site's VRRP master.
        Destination=\(plan.ula)

        """
    }
}
