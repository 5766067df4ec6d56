import EdgeModel

/// The router's tunnel in `wg setconf` form (wg(8), "CONFIGURATION FILE FORMAT").
///
/// For hosts without systemd-networkd (the test lab, with wireguard-go): the service manager creates
/// the interface, runs `wg setconf wg-relay FILE`, then `wg set wg-relay private-key KEYFILE`, and
/// sets addresses, MTU and routes as the `.network` file says. Holds no secret.
enum WireGuardSetconf {
    static func router(plan: Plan, site: Site, router: Router, tunnel: RouterTunnel, relayPublicKey: String) -> String {
        let relay = tunnel.relay
        return """
        # edgekit: tunnel to the relay in wg(8) setconf form, for hosts without systemd-networkd.
        # The private key is not here: add it with `wg set \(tunnel.interface) private-key \(ConfigPaths.routerWireGuardKey)`.
        # Then: address \(IPv6Prefix.host(router.tunnelAddress)), MTU \(plan.tunnelMTU(of: router)) (uplink \(plan.uplinkMTU(of: router)) - 80\(RouterNetworkd.tunnelMTUNote(plan, router)); the agent re-sets it from the uplink),
        # routes \(IPv6Prefix.host(relay.tunnelAddress)) and \(plan.ula) on \(tunnel.interface).
        [Interface]
        # Fixed, so the firewall can allow WireGuard on the uplink by port.
        ListenPort = \(tunnel.listenPort(in: plan))

        [Peer]
        PublicKey = \(relayPublicKey)
        # wg resolves the name once; the agent re-resolves it when handshakes go stale.
        Endpoint = \(relay.host):\(relay.wireguardPort)
        # The relay itself and every site of the plan.
        AllowedIPs = \(IPv6Prefix.host(relay.tunnelAddress)), \(plan.ula)\(site.dmz?.relay == relay.name ? ", ::/0" : "")
        # Keeps NAT and CG-NAT mappings open so the relay can reach us.
        PersistentKeepalive = \(plan.defaults.keepalive)

        """
    }
}
