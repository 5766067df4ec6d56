/// The rules of docs/plan.md that relate fields to each other, for a plan's public parameters and one
/// site as a document carries them (the profile). `plan check` applies the same rules to plan.yaml;
/// a device applies these to what it was given, so a signed document cannot make it render a router
/// that `plan check` would have refused. Each problem names the document field.
public enum SiteRules {
    /// The first broken rule of the plan's public parameters (`plan.…` fields), if any.
    public static func planProblem(ula: IPv6Prefix, tunnel: IPv6Prefix, relays: [Relay]) -> DocumentError? {
        if ula.length != 48 {
            return DocumentError(field: "plan.ula", problem: "\(ula) must be a /48 (RFC 4193)")
        }
        if !IPv6Prefix("fd00::/8")!.contains(ula) {
            return DocumentError(field: "plan.ula", problem: "\(ula) is not inside fd00::/8 (RFC 4193 section 3.2)")
        }
        if tunnel.length > 96 {
            return DocumentError(field: "plan.tunnel", problem: "\(tunnel) is too small: use a /96 or larger")
        }
        if tunnel.overlaps(ula) {
            return DocumentError(field: "plan.tunnel", problem: "\(tunnel) overlaps the plan's ula \(ula); tunnel addresses must lie outside the /48")
        }
        if relays.isEmpty {
            return DocumentError(field: "plan.relays", problem: "is empty; a plan has at least one relay")
        }
        var names: Set<String> = []
        var addresses: Set<IPv6Address> = []
        for (index, relay) in relays.enumerated() {
            let field = relays.count == 1 ? "plan.relay" : "plan.relays[\(index)]"
            if !names.insert(relay.name).inserted {
                return DocumentError(field: "\(field).name", problem: "\(FieldRules.quoted(relay.name)) is used twice; relay names are unique")
            }
            if !tunnel.contains(relay.tunnelAddress) {
                return DocumentError(field: "\(field).tunnel_address", problem: "\(relay.tunnelAddress) is outside tunnel \(tunnel)")
            }
            if !addresses.insert(relay.tunnelAddress).inserted {
                return DocumentError(field: "\(field).tunnel_address", problem: "\(relay.tunnelAddress) is used by another relay")
            }
            if relay.wireguardPort == relay.registrationPort {
                return DocumentError(field: "\(field).registration_port", problem: "\(relay.registrationPort) is the same as \(field).wireguard_port; they must differ")
            }
        }
        return nil
    }

    /// The first broken rule of `site` (`site.…` fields) inside a plan with `ula` and `tunnel`, if any.
    public static func siteProblem(_ site: Site, ula: IPv6Prefix, tunnel: IPv6Prefix, relayTunnelAddresses: [IPv6Address]) -> DocumentError? {
        if site.prefix.length != 64 {
            return DocumentError(field: "site.prefix", problem: "\(site.prefix) must be a /64 (SLAAC needs 64-bit interface ids)")
        }
        if !ula.contains(site.prefix) {
            return DocumentError(field: "site.prefix", problem: "\(site.prefix) is not inside the plan's ula \(ula)")
        }
        if !site.prefix.contains(site.vip) {
            return DocumentError(field: "site.vip", problem: "\(site.vip) is not inside the site /64 \(site.prefix)")
        }
        if !site.linkLocalVIP.isLinkLocal {
            return DocumentError(field: "site.link_local_vip", problem: "\(site.linkLocalVIP) is not link-local (fe80::/10); VRRPv3 needs a link-local first address")
        }
        if site.routers.isEmpty {
            return DocumentError(field: "site.routers", problem: "is empty; a site has at least one router")
        }
        var slots: Set<Int> = []
        var priorities: Set<Int> = []
        var tunnelAddresses = Set(relayTunnelAddresses)
        for (index, router) in site.routers.enumerated() {
            let field = "site.routers[\(index)]"
            if !slots.insert(router.slot).inserted {
                return DocumentError(field: "\(field).slot", problem: "\(router.slot) is used twice")
            }
            if !priorities.insert(router.priority).inserted {
                return DocumentError(field: "\(field).priority", problem: "\(router.priority) is used twice; priorities within a site must differ so VRRP has one clear master")
            }
            if let problem = routerProblem(router, field: field, site: site, ula: ula, tunnel: tunnel) { return problem }
            if !tunnelAddresses.insert(router.tunnelAddress).inserted {
                return DocumentError(field: "\(field).tunnel_address", problem: "\(router.tunnelAddress) is already used by a relay or another router")
            }
        }
        return nil
    }

    /// The first broken rule of one router of `site`, its fields named under `field`.
    public static func routerProblem(_ router: Router, field: String, site: Site, ula: IPv6Prefix, tunnel: IPv6Prefix) -> DocumentError? {
        if router.uplink != .auto, router.uplink == router.lan {
            return DocumentError(field: "\(field).lan", problem: "\(FieldRules.quoted(router.lan.description)) is the same interface as the uplink")
        }
        if !tunnel.contains(router.tunnelAddress) {
            return DocumentError(field: "\(field).tunnel_address", problem: "\(router.tunnelAddress) is outside tunnel \(tunnel)")
        }
        if ula.contains(router.tunnelAddress) {
            return DocumentError(field: "\(field).tunnel_address", problem: "\(router.tunnelAddress) is inside the plan's ula \(ula); it must lie outside")
        }
        if !site.prefix.contains(router.lanAddress) {
            return DocumentError(field: "\(field).lan_address", problem: "\(router.lanAddress) is not inside the site /64 \(site.prefix)")
        }
        // Routers take <site /64>::<slot + 1> (docs/plan.md, "Addressing"); nothing else is theirs.
        let expected = Plan.Addressing.routerLANAddress(in: site.prefix, slot: router.slot)
        if router.lanAddress != expected {
            return DocumentError(field: "\(field).lan_address", problem: "\(router.lanAddress) is not router \(router.slot)'s LAN address \(expected.map(\.description) ?? "?") (routers use <site /64>::<slot+1>)")
        }
        if router.lanAddress == site.vip {
            return DocumentError(field: "\(field).lan_address", problem: "\(router.lanAddress) is the site's vip")
        }
        return nil
    }
}
