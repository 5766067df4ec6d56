import EdgeModel

/// The two forms a server's mesh files come in (`edgekit mesh render --format`).
public enum MeshFormat: String, Sendable, CaseIterable {
    /// A systemd-networkd `.netdev`/`.network` pair and the key file `PrivateKeyFile=` names.
    case networkd
    /// One wg-quick(8) file, `wg-quick up wg-mesh`.
    case wgQuick = "wg-quick"
}

/// The files of one server in the servers' end-to-end WireGuard mesh (docs/mesh.md): its /128 from
/// the plan's mesh range, every other server as a peer at `[its site address]:mesh.port` with its
/// mesh /128 as AllowedIPs. Pure: the keys come in as base64 text (EdgeCrypto derives them).
///
/// Nothing here depends on routers or the relay, and nothing of the routers' or relay's files
/// depends on servers: adding a server changes only these files.
public enum MeshFiles {
    /// The server's files, sorted by path. `privateKey` is this server's WireGuard private key,
    /// `publicKeys` every server's public key by name (this server's may be among them).
    public static func files(plan: Plan, server: Server, privateKey: String, publicKeys: [String: String],
                             format: MeshFormat) -> [RenderedFile] {
        guard let mesh = plan.mesh else { return [] }
        let peers = plan.servers.filter { $0.name != server.name }.map { peer in
            Peer(server: peer, publicKey: publicKeys[peer.name] ?? "")
        }
        switch format {
        case .networkd:
            return [
                RenderedFile(path: ConfigPaths.meshNetdev, contents: netdev(plan: plan, mesh: mesh, server: server, peers: peers)),
                RenderedFile(path: ConfigPaths.meshNetwork, contents: network(plan: plan, mesh: mesh, server: server)),
                RenderedFile(path: ConfigPaths.meshKey, mode: 0o600, contents: privateKey + "\n"),
            ].sorted { $0.path < $1.path }
        case .wgQuick:
            return [
                RenderedFile(path: ConfigPaths.meshWgQuick, mode: 0o600,
                             contents: wgQuick(plan: plan, mesh: mesh, server: server, peers: peers, privateKey: privateKey)),
            ]
        }
    }

    struct Peer {
        var server: Server
        var publicKey: String
    }

    /// Why the MTU is what it is, in one comment line (docs/network.md, "The servers' mesh MTU").
    static func mtuComment(_ plan: Plan) -> String {
        let uplink = plan.smallestUplinkMTU
        let tunnel = plan.smallestTunnelMTU
        let mtu = plan.meshMTU
        let smallest = uplink == plan.defaults.uplinkMTU ? "uplink" : "smallest uplink"
        let rounded = Defaults.tunnelMTUNote(payload: uplink - Defaults.wireGuardOverhead, relayMTU: plan.defaults.tunnelMTU)
        // 1420-1439: the math gives less than 1280; 1280 fits when that router's tunnel runs over IPv4 (60 bytes).
        let floor = mtu > tunnel - Defaults.wireGuardOverhead ? ", raised to IPv6's 1280 (that tunnel must run over IPv4, 60 bytes)" : ""
        return "# Two WireGuard layers of 80 bytes (40 IPv6 + 8 UDP + 32 WireGuard): \(smallest) \(uplink) - 80 = \(tunnel) (router <-> relay)\(rounded); - 80 (this mesh) = \(tunnel - Defaults.wireGuardOverhead)\(floor)."
    }

    /// What the server must hold on its LAN for the other servers to reach it.
    static func addressComment(_ server: Server) -> String {
        "# \(server.name) must keep \(server.siteAddress) on its \(server.site) LAN: SLAAC token \(server.token) (ip token set \(server.token) dev IFACE, or networkd [IPv6AcceptRA] Token=static:\(server.token))."
    }

    static func netdev(plan: Plan, mesh: Mesh, server: Server, peers: [Peer]) -> String {
        var text = """
            # edgekit: server \(server.name)'s interface in the servers' WireGuard mesh of plan \(plan.name) (systemd.netdev(5)).
            \(addressComment(server))
            [NetDev]
            Name=\(InterfaceNames.serverMesh)
            Kind=wireguard
            \(mtuComment(plan))
            MTUBytes=\(plan.meshMTU)

            [WireGuard]
            # 0600 and owned by systemd-network, which reads it (systemd.netdev(5), PrivateKeyFile=).
            PrivateKeyFile=\(ConfigPaths.meshKey)
            # mesh.port: inside defaults.server_wireguard_ports, the only ports the relay forwards between sites.
            ListenPort=\(mesh.port)

            """
        for peer in peers {
            text += """

                # server \(peer.server.name) (\(peer.server.site)), generation \(peer.server.generation): its stable site address; the routers and the relay route it.
                [WireGuardPeer]
                PublicKey=\(peer.publicKey)
                Endpoint=[\(peer.server.siteAddress)]:\(mesh.port)
                AllowedIPs=\(IPv6Prefix.host(peer.server.meshAddress))

                """
        }
        return text
    }

    static func network(plan: Plan, mesh: Mesh, server: Server) -> String {
        """
        # edgekit: server \(server.name)'s address in the servers' mesh of plan \(plan.name) (systemd.network(5)).
        [Match]
        Name=\(InterfaceNames.serverMesh)

        [Network]
        Address=\(IPv6Prefix.host(server.meshAddress))
        # WireGuard is layer 3 only: no link-local address, no RAs, no DHCP.
        LinkLocalAddressing=no
        IPv6AcceptRA=no
        DHCP=no

        [Route]
        # Every server's /128; WireGuard picks the peer by AllowedIPs.
        Destination=\(mesh.prefix)

        [Link]
        # The server's LAN decides when it is online; the mesh follows it.
        RequiredForOnline=no

        """
    }

    static func wgQuick(plan: Plan, mesh: Mesh, server: Server, peers: [Peer], privateKey: String) -> String {
        var text = """
            # edgekit: server \(server.name)'s interface in the servers' WireGuard mesh of plan \(plan.name) (wg-quick(8)).
            # Holds the private key: keep it 0600. Start with `wg-quick up \(InterfaceNames.serverMesh)`.
            \(addressComment(server))
            [Interface]
            PrivateKey = \(privateKey)
            # The server's /128 with the mesh range's length: the whole range is routed into the mesh,
            # so a server added later needs only `wg syncconf`, no new route (wg-quick adds routes at up only).
            Address = \(server.meshAddress)/\(mesh.prefix.length)
            # mesh.port: inside defaults.server_wireguard_ports, the only ports the relay forwards between sites.
            ListenPort = \(mesh.port)
            \(mtuComment(plan))
            MTU = \(plan.meshMTU)

            """
        for peer in peers {
            text += """

                # server \(peer.server.name) (\(peer.server.site)), generation \(peer.server.generation): its stable site address; the routers and the relay route it.
                [Peer]
                PublicKey = \(peer.publicKey)
                Endpoint = [\(peer.server.siteAddress)]:\(mesh.port)
                AllowedIPs = \(IPv6Prefix.host(peer.server.meshAddress))

                """
        }
        return text
    }
}
