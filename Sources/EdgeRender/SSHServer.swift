import EdgeModel

extension ConfigPaths {
    /// sshd's whole configuration (sshd_config(5)); Debian's ssh.service is pointed at it by the
    /// overlay's drop-in, and does not start without it (a plan without operators).
    public static let sshdConfig = "/etc/edgekit/ssh/sshd_config"
    /// The operators' public keys, for root (the only user sshd admits).
    public static let sshAuthorizedKeys = "/etc/edgekit/ssh/authorized_keys"
    /// The router's Ed25519 host key in OpenSSH's format, 0600 root; the agent derives and writes it
    /// (from the router secret, like the WireGuard key), never the renderers.
    public static let sshHostKey = "/etc/edgekit/ssh/ssh_host_ed25519_key"
}

/// The router's OpenSSH server: key-only root login for the plan's operators, reachable on the
/// tunnel address (through the relay: `ssh -J relay root@<tunnel address>`) and, with
/// `defaults.ssh_on_lan`, on the site LAN. Rendered only when the plan has operators.
enum SSHServer {
    /// The addresses sshd listens on: the tunnel /128, then with `ssh_on_lan` the VIP and the
    /// router's own LAN address.
    static func listenAddresses(plan: Plan, site: Site, router: Router) -> [IPv6Address] {
        var addresses = [router.tunnelAddress]
        if plan.defaults.sshOnLAN { addresses += [site.vip, router.lanAddress] }
        return addresses
    }

    static func config(plan: Plan, site: Site, router: Router) -> String {
        let listen = listenAddresses(plan: plan, site: site, router: router)
            .map { "ListenAddress \($0)" }.joined(separator: "\n")
        return """
            # edgekit: OpenSSH server of \(site.hostname(slot: router.slot)) (sshd_config(5)). The whole configuration:
            # sshd reads no other file (ssh.service runs `sshd -f \(ConfigPaths.sshdConfig)`).
            # The plan's operators log in as root with their keys; there is no other way in.

            # The tunnel address, reached from the relay side (ssh -J relay root@\(router.tunnelAddress)),
            # and on the LAN only when the plan says defaults.ssh_on_lan. Never an uplink address.
            # Addresses that come later (the tunnel at boot, the VIP on the VRRP backup) can be bound
            # because the sysctl file sets net.ipv6.ip_nonlocal_bind.
            AddressFamily inet6
            Port 22
            \(listen)

            # Derived from the router secret on the stick, so it survives a move to the spare.
            HostKey \(ConfigPaths.sshHostKey)
            AuthorizedKeysFile \(ConfigPaths.sshAuthorizedKeys)

            # Keys only: no passwords, no keyboard-interactive, no host-based trust, no empty passwords.
            AuthenticationMethods publickey
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            HostbasedAuthentication no
            PermitEmptyPasswords no
            PermitRootLogin prohibit-password
            AllowUsers root
            # No PAM: nothing here needs it, and with it off no PAM module can offer a password.
            UsePAM no
            MaxAuthTries 3
            LoginGraceTime 30
            MaxStartups 10:30:60

            # An appliance shell, not a gateway: no forwarding of agents, X11, ports or tunnels.
            AllowAgentForwarding no
            AllowTcpForwarding no
            X11Forwarding no
            PermitTunnel no
            PrintMotd no
            Subsystem sftp internal-sftp

            """
    }

    /// authorized_keys(5) for root: each operator's keys under a comment with their name.
    static func authorizedKeys(plan: Plan) -> String {
        var lines = ["# edgekit: the plan's operators; a new profile stick replaces this file."]
        for person in plan.operators {
            lines.append("# \(person.name)")
            lines += person.sshKeys.map(\.description)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// nftables input rules for tcp/22: from the tunnel to the tunnel address, and with
    /// `ssh_on_lan` from the LAN to the VIP and the router's LAN address. Empty without operators.
    static func firewallRules(plan: Plan, site: Site, router: Router) -> String {
        guard !plan.operators.isEmpty else { return "" }
        let tunnels = Nftables.tunnelInterfaces(plan)
        var rules = """

                    # SSH for the plan's operators: from the tunnel (the relay side) to the tunnel address only.
                    iifname \(tunnels) ip6 daddr \(router.tunnelAddress) tcp dport 22 accept
            """
        if plan.defaults.sshOnLAN {
            rules += """

                        # And from the site LAN (defaults.ssh_on_lan) to the VIP and this router's LAN address.
                        iifname "\(InterfaceNames.lan(of: router))" ip6 daddr { \(site.vip), \(router.lanAddress) } tcp dport 22 accept
                """
        }
        return rules
    }
}
