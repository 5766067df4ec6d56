import EdgeModel

/// A client's WireGuard file (laptops and phones, `clients:`; docs/clients.md): wg-quick(8) form,
/// which the WireGuard apps import as a file or as its QR code. The client talks to the plan's
/// client relay only and reaches every site of the plan from its /128.
public enum ClientConfig {
    /// IPv6's minimum: what the client's tunnel carries, whatever network the phone is on. With
    /// WireGuard's 60 or 80 bytes it fits any path of 1360 bytes or more, and every site's tunnel
    /// (never below 1280) carries it on without packet-too-big.
    public static let mtu = Defaults.ipv6MinimumMTU

    /// The file's text: `privateKey` is the client's (base64), `relayPublicKey` the client relay's.
    public static func wgQuick(plan: Plan, client: Client, privateKey: String, relayPublicKey: String) -> String {
        let relay = plan.clientRelay
        return """
            # edgekit: client \(client.name) of plan \(plan.name), wg-quick(8) form; a WireGuard app imports it or its QR code.
            [Interface]
            PrivateKey = \(privateKey)
            Address = \(IPv6Prefix.host(client.address))
            # IPv6's minimum: fits any network the device is on (docs/clients.md).
            MTU = \(mtu)

            [Peer]
            # The relay \(relay.host); every site of the plan is behind it.
            PublicKey = \(relayPublicKey)
            Endpoint = \(relay.host):\(relay.wireguardPort)
            AllowedIPs = \(plan.ula)
            # Keeps the device's NAT mapping open, so the sites' answers come back.
            PersistentKeepalive = \(plan.defaults.keepalive)

            """
    }
}
