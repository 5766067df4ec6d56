import EdgeModel

/// keepalived.conf(5): one VRRPv3 instance per site LAN holding the link-local and the site VIP.
enum Keepalived {
    /// How a router of this site handles a higher-priority peer coming back (docs/network.md, "VRRP").
    enum PreemptPolicy: Equatable {
        /// Single-router site: there is no peer to preempt, and its VIPs stay whatever its health.
        case alone
        /// Equal priorities: the master keeps the role until it fails; never flap on address ties.
        case nopreempt
        /// Distinct priorities (plan: "the highest live router is master"), tracked by health: an
        /// unhealthy router's priority drops by `weight`, below every healthy peer's, so a master
        /// whose uplink or relay is gone yields, and a router that just booted (unhealthy until
        /// the relay answers through its tunnel) does not take over before its tunnel works.
        case healthTracked(weight: Int)
    }

    static func preemptPolicy(site: Site) -> PreemptPolicy {
        guard site.routers.count > 1 else { return .alone }
        let priorities = site.routers.map(\.priority)
        guard Set(priorities).count > 1, let highest = priorities.max(), let lowest = priorities.min() else { return .nopreempt }
        return .healthTracked(weight: highest - lowest + 1)
    }

    /// VRRPv3 advertisement interval in seconds with two decimals (RFC 5798 section 5.2.7: centiseconds).
    static func advertInterval(centiseconds: Int) -> String {
        let fraction = centiseconds % 100
        return "\(centiseconds / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    static func config(plan: Plan, site: Site, router: Router) -> String {
        let lan = InterfaceNames.lan(of: router)
        let policy = preemptPolicy(site: site)
        let preempt: String
        switch policy {
        case .alone:
            preempt = """
                    # Only router of the site: there is no peer to preempt or defer to, and it keeps the
                    # VIPs whatever its health (no track file).
                """
        case .nopreempt:
            preempt = """
                    # All routers of the site have priority \(router.priority): the master keeps the role until it
                    # fails, instead of flapping on address ties (keepalived.conf(5), nopreempt).
                    nopreempt
                """
        case .healthTracked(let weight):
            preempt = """
                    # Priorities differ, so the highest healthy router is master (plan). The agent writes
                    # its health to the track file (0 healthy, 1 not: uplink down, or the relay silent
                    # through the tunnel); unhealthy takes \(weight) off this priority, below every healthy
                    # peer's. No preempt_delay: a router that just booted is unhealthy until its tunnel
                    # answers. A master that turns unhealthy yields at once: the agent sets the yield
                    # file for two seconds, a FAULT whose priority-0 advertisement lets the backup take
                    # over after its skew time instead of three advertisement intervals.
                    track_file {
                        edgekit_health weight -\(weight)
                        edgekit_yield weight 0
                    }
                """
        }
        let agent = ConfigPaths.agentExecutable
        var trackFile = ""
        if case .healthTracked = policy {
            trackFile = """
                # The agent's health verdict (docs/network.md, "Health"). A router starts unhealthy:
                # keepalived writes 1 when the file is not there yet (at boot /run is empty).
                track_file edgekit_health {
                    file "\(ConfigPaths.healthTrackFile)"
                    init_file 1
                }

                # Set by the agent only while a master hands over; 0 whenever keepalived starts.
                track_file edgekit_yield {
                    file "\(ConfigPaths.yieldTrackFile)"
                    init_file 0 overwrite
                }


                """
        }
        return """
            # edgekit: VRRPv3 for the \(site.name) LAN (RFC 5798, keepalived.conf(5)).
            global_defs {
                router_id \(site.hostname(slot: router.slot))
                # VRRPv3 is the version that carries IPv6 (RFC 5798).
                vrrp_version 3
                # Run notify scripts only as the configured user, and really run them (root: the agent
                # reconfigures the router on a transition).
                enable_script_security
                script_user root
            }

            \(trackFile)vrrp_instance \(site.name) {
                # Every router starts as backup; the election decides, so a reboot never forces a takeover.
                state BACKUP
                interface \(lan)
                virtual_router_id \(site.vrrpID)
                priority \(router.priority)
                # Seconds; failover takes about three of these (RFC 5798 section 6.1, Master_Down_Interval).
                advert_int \(advertInterval(centiseconds: plan.defaults.vrrpAdvertIntervalCentiseconds))
                # An IPv6 instance even before the addresses are read.
                native_ipv6
            \(preempt)
                virtual_ipaddress {
                    # VRRPv3 for IPv6 needs the link-local VIP first (RFC 5798 section 5.2.9); radvd sends from it.
                    \(site.linkLocalVIP)/64
                    # The site's router address, one next hop for the servers whichever router is master.
                    \(site.vip)/\(site.prefix.length)
                }\(site.dmz.map { dmz in """

                    # The same link-local VIP on the DMZ's VLAN (docs/dmz.md), so radvd advertises there from
                    # the master only; not in the advertisements, which go on the LAN.
                    virtual_ipaddress_excluded {
                        \(site.linkLocalVIP)/64 dev \(dmz.interface)
                    }
                """ } ?? "")
                # The agent registers with the relay on becoming master and steps back otherwise.
                notify_master "\(agent) notify master"
                notify_backup "\(agent) notify backup"
                notify_fault "\(agent) notify fault"
            }

            """
    }
}
