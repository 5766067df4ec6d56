import EdgeModel

/// radvd.conf(5) for the site LAN.
enum Radvd {
    static func config(plan: Plan, site: Site, router: Router) -> String {
        """
        # edgekit: router advertisements on the \(site.name) LAN (radvd.conf(5)).
        interface \(InterfaceNames.lan(of: router))
        {
            AdvSendAdvert on;
            # Frequent enough that a new host configures within seconds (RFC 4861 section 6.2.1).
            MinRtrAdvInterval 3;
            MaxRtrAdvInterval 10;
            # Never the default gateway: hosts keep their own Internet route; we only route the plan.
            AdvDefaultLifetime 0;
            # Send from the VRRP link-local VIP, so hosts keep one next hop when the master changes.
            # radvd sends nothing while that address is absent, so only the master advertises.
            AdvRASrcAddress {
                \(site.linkLocalVIP);
            };

            # The site /64: on-link, SLAAC (RFC 4862).
            prefix \(site.prefix)
            {
                AdvOnLink on;
                AdvAutonomous on;
            };

            # Route Information Option for the whole plan (RFC 4191 section 2.3): other sites via us.
            route \(plan.ula)
            {
                AdvRoutePreference high;
            };\(site.nat64 ? """


                # The relay's DNS64 resolver (RFC 8106): IPv6-only hosts reach IPv4 names through NAT64.
                RDNSS \(plan.nat64.resolver)
                {
                };
            """ : "")
        };
        \(site.dmz.map { dmz in """

        # The DMZ (docs/dmz.md): its public /64, and the routers as its hosts' default router, since
        # everything they send goes through the relay that routes the prefix.
        interface \(dmz.interface)
        {
            AdvSendAdvert on;
            MinRtrAdvInterval 3;
            MaxRtrAdvInterval 10;
            AdvDefaultLifetime 1800;
            # From the same VRRP link-local VIP, which keepalived also holds here: only the master advertises.
            AdvRASrcAddress {
                \(site.linkLocalVIP);
            };

            prefix \(dmz.prefix)
            {
                AdvOnLink on;
                AdvAutonomous on;
            };
        };

        """ } ?? "")
        """
    }

}
