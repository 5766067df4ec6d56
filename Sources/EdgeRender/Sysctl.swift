import EdgeModel

/// sysctl.d(5) files (keys: Linux Documentation/networking/ip-sysctl.rst).
enum Sysctl {
    /// `sshd`: the plan has operators, so sshd must bind addresses that may not be there yet.
    static func edgeRouter(sshd: Bool = false) -> String {
        let base = """
        # edgekit: kernel settings of an edge router.
        # Route IPv6 between the site LAN and the tunnel. The kernel then ignores RAs on links with
        # accept_ra=1; the uplink still takes them because networkd handles RAs itself (IPv6AcceptRA=yes).
        net.ipv6.conf.all.forwarding = 1
        # No IPv4 routing: sites talk over IPv6 only, the uplink's IPv4 is for the router itself.
        net.ipv4.ip_forward = 0

        """
        guard sshd else { return base }
        return base + """
        # sshd listens on the tunnel address, which networkd adds after sshd may have started, and on
        # the LAN VIP, which only the VRRP master holds: let it bind them before they exist
        # (ip-sysctl.rst, ip_nonlocal_bind). nftables still admits tcp/22 only to those addresses.
        net.ipv6.ip_nonlocal_bind = 1

        """
    }

    /// `nat64`: this relay runs the plan's NAT64, which routes IPv4 between tayga and the internet.
    static func relay(nat64: Bool = false) -> String {
        let ipv4 = nat64 ? """
            # Route IPv4 between tayga (NAT64) and the internet (docs/nat64.md).
            net.ipv4.ip_forward = 1
            """ : """
            # No IPv4 routing.
            net.ipv4.ip_forward = 0
            """
        return """
            # edgekit relay: kernel settings.
            # Route IPv6 between edge routers on the WireGuard interface.
            net.ipv6.conf.all.forwarding = 1
            # With forwarding on, the kernel ignores RAs where accept_ra=1; a VPS that gets its public IPv6
            # by SLAAC needs 2. This covers interfaces created later; see docs/network.md for the existing one.
            net.ipv6.conf.default.accept_ra = 2
            \(ipv4)

            """
    }
}
