import EdgeCrypto
import EdgeModel

/// `edgekit keys known-hosts`: one known_hosts(5) line per router of the plan, its tunnel address
/// and its SSH host key (derived from the router secret, so it is the same on the spare after a
/// stick swap and changes only when the router's `generation` is bumped).
public enum KnownHosts {
    public static func lines(plan: Plan, keys: PlanKeys) -> [String] {
        plan.sites.flatMap { site in
            site.routers.map { router in
                keys.routerSecret(site: site, router: router).sshHostKey
                    .knownHostsLine(address: "\(router.tunnelAddress)", comment: site.hostname(slot: router.slot))
            }
        }
    }
}
