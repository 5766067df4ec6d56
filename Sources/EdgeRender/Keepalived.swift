import EdgeModel

/// keepalived.conf(5): one VRRPv3 instance per site LAN holding the link-local and the site VIP.
enum Keepalived {
    /// How a router of this site handles a higher-priority peer coming back (docs/network.md, "VRRP").
    enum PreemptPolicy: Equatable {
        /// Single-router site: there is no peer to preempt.
        case alone
        /// Equal priorities: the master keeps the role until it fails; never flap on address ties.
        case nopreempt
        /// Distinct priorities (plan: "the highest live router is master"): take the role back, but
        /// only after `seconds`, so a router that just booted has its tunnel up and registered first.
        case preemptAfter(seconds: Int)
    }

    static let preemptDelaySeconds = 30

    static func preemptPolicy(site: Site) -> PreemptPolicy {
        guard site.routers.count > 1 else { return .alone }
        let priorities = Set(site.routers.map(\.priority))
        return priorities.count == 1 ? .nopreempt : .preemptAfter(seconds: preemptDelaySeconds)
    }

    /// VRRPv3 advertisement interval in seconds with two decimals (RFC 5798 section 5.2.7: centiseconds).
    static func advertInterval(centiseconds: Int) -> String {
        let fraction = centiseconds % 100
        return "\(centiseconds / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    static func config(plan: Plan, site: Site, router: Router) -> String {
        let lan = InterfaceNames.lan(of: router)
        let preempt: String
        switch preemptPolicy(site: site) {
        case .alone:
            preempt = """
                    # Only router of the site: there is no peer to preempt or defer to.
                """
        case .nopreempt:
            preempt = """
                    # All routers of the site have priority \(router.priority): the master keeps the role until it
                    # fails, instead of flapping on address ties (keepalived.conf(5), nopreempt).
                    nopreempt
                """
        case .preemptAfter(let seconds):
            preempt = """
                    # Priorities differ, so the highest live router is master (plan), but a router that just
                    # came back waits \(seconds) s for its tunnel and registration before it takes over.
                    preempt_delay \(seconds)
                """
        }
        let agent = ConfigPaths.agentExecutable
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

            vrrp_instance \(site.name) {
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
                }
                # The agent registers with the relay on becoming master and steps back otherwise.
                notify_master "\(agent) notify master"
                notify_backup "\(agent) notify backup"
                notify_fault "\(agent) notify fault"
            }

            """
    }
}
