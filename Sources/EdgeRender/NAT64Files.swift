import EdgeModel

/// The relay's NAT64 and DNS64 (docs/nat64.md), for plans where a site has `nat64: true`: tayga
/// translates between the plan's NAT64 /96 and a private IPv4 pool the relay masquerades; unbound
/// answers the sites' hosts with AAAA records made from A records (DNS64, RFC 6147). On the plan's
/// first relay only.
public enum NAT64Files {
    /// tayga's TUN interface on the relay.
    public static let interface = "nat64"

    /// tayga.conf(5).
    static func tayga(plan: Plan) -> String {
        let nat64 = plan.nat64
        return """
            # edgekit: NAT64 for sites with nat64: true (tayga.conf(5); docs/nat64.md).
            tun-device \(interface)
            # IPv4 hosts appear to the sites as <prefix>::a.b.c.d (RFC 6052, a network-specific prefix
            # inside the plan's /48: the routers already send it here and let its answers in).
            prefix \(nat64.prefix)
            # tayga's own addresses: the source of the ICMP errors it makes.
            ipv6-addr \(nat64.translator)
            ipv4-addr \(NAT64.translatorIPv4)
            # Each IPv6 host gets an address of this pool; the relay masquerades the pool (nftables).
            dynamic-pool \(NAT64.pool)
            data-dir /var/lib/tayga

            """
    }

    /// The unit that makes the TUN interface, its routes and the resolver's address, then runs tayga.
    static func service(plan: Plan) -> String {
        let nat64 = plan.nat64
        return """
            # edgekit: NAT64 (tayga) for sites with nat64: true (docs/nat64.md).
            [Unit]
            Description=edgekit NAT64 (tayga) for the plan's IPv6-only sites
            After=network-online.target systemd-networkd.service
            Wants=network-online.target

            [Service]
            Type=exec
            StateDirectory=tayga
            ExecStartPre=/usr/sbin/tayga --config \(ConfigPaths.taygaConfig) --mktun
            ExecStartPre=/usr/sbin/ip link set \(interface) up
            # The IPv4 pool and the NAT64 /64 (the /96, tayga's and the resolver's addresses) into tayga.
            ExecStartPre=/usr/sbin/ip route replace \(NAT64.pool) dev \(interface)
            ExecStartPre=/usr/sbin/ip -6 route replace \(nat64.network) dev \(interface)
            # The DNS64 resolver's address, which the sites' routers announce (RDNSS); unbound binds it.
            ExecStartPre=/usr/sbin/ip -6 addr replace \(nat64.resolver)/128 dev \(interface) nodad
            ExecStart=/usr/sbin/tayga --config \(ConfigPaths.taygaConfig) --nodetach
            ExecStopPost=/usr/sbin/tayga --config \(ConfigPaths.taygaConfig) --rmtun
            Restart=on-failure
            RestartSec=2s

            [Install]
            WantedBy=multi-user.target

            """
    }

    /// unbound.conf(5) drop-in: DNS64 for the plan's /48 on the resolver's address.
    static func unbound(plan: Plan) -> String {
        let nat64 = plan.nat64
        let forward = nat64.dnsForward.isEmpty ? "" : """

            # Ask these resolvers instead of the root (nat64.dns_forward in the plan).
            forward-zone:
              name: "."
            \(nat64.dnsForward.map { "  forward-addr: \($0)" }.joined(separator: "\n"))

            """
        return """
            # edgekit: DNS64 for sites with nat64: true (unbound.conf(5); docs/nat64.md). An AAAA
            # question for a name with A records only is answered with <nat64 prefix>::a.b.c.d.
            server:
              interface: \(nat64.resolver)
              # Bound before tayga's interface holds the address.
              ip-freebind: yes
              # Naming an interface replaces unbound's default of localhost: keep it for the VPS itself.
              interface: 127.0.0.1
              interface: ::1
              access-control: \(plan.ula) allow
              module-config: "dns64 iterator"
              dns64-prefix: \(nat64.prefix)
            \(forward)
            """
    }

    /// The relay's files for NAT64, on `relay` when it is the plan's first and a site asks for it.
    static func files(plan: Plan, relay: Relay) -> [RenderedFile] {
        guard plan.nat64Enabled, relay == plan.relay else { return [] }
        return [
            RenderedFile(path: ConfigPaths.taygaConfig, contents: tayga(plan: plan)),
            RenderedFile(path: ConfigPaths.nat64Service, contents: service(plan: plan)),
            RenderedFile(path: ConfigPaths.dns64Config, contents: unbound(plan: plan)),
        ]
    }

    /// The relay's firewall lines for NAT64 (empty without): DNS to the resolver from the /48; the
    /// NAT64 sites' /64s into tayga; tayga's IPv4 out (not back into a tunnel).
    static func inputRules(plan: Plan, relay: Relay) -> String {
        guard plan.nat64Enabled, relay == plan.relay else { return "" }
        let resolver = plan.nat64.resolver
        return "\n        # DNS64 for the sites' hosts (docs/nat64.md).\n"
            + "        ip6 saddr \(plan.ula) ip6 daddr \(resolver) udp dport 53 accept\n"
            + "        ip6 saddr \(plan.ula) ip6 daddr \(resolver) tcp dport 53 accept"
    }

    static func forwardRules(plan: Plan, relay: Relay, tunnel: String) -> String {
        guard plan.nat64Enabled, relay == plan.relay else { return "" }
        let sites = plan.nat64Sites.map(\.prefix.description).joined(separator: ", ")
        return "\n        # NAT64 (docs/nat64.md): the sites with nat64: true into tayga, tayga's IPv4 pool out to the internet.\n"
            + "        iifname \"\(tunnel)\" oifname \"\(interface)\" ip6 saddr { \(sites) } ip6 daddr \(plan.nat64.prefix) accept\n"
            + "        iifname \"\(interface)\" oifname != \"\(tunnel)\" ip saddr \(NAT64.pool) accept"
    }

    /// The masquerade of tayga's pool, a chain of its own (empty without NAT64).
    static func natChain(plan: Plan, relay: Relay) -> String {
        guard plan.nat64Enabled, relay == plan.relay else { return "" }
        return """


                chain postrouting {
                    type nat hook postrouting priority srcnat; policy accept;

                    # tayga's IPv4 pool leaves with the relay's own address.
                    ip saddr \(NAT64.pool) oifname != "\(interface)" masquerade
                }
            """
    }
}
