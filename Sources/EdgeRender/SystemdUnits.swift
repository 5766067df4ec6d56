import EdgeModel

/// systemd.service(5) units rendered from the plan.
enum SystemdUnits {
    /// The relay daemon, sandboxed to what it needs: UDP sockets, netlink for WireGuard peers
    /// (CAP_NET_ADMIN), its state directory, and reading its config and keys.
    static func relayService() -> String {
        """
        # edgekit relay daemon: registers edge routers and keeps their WireGuard peers.
        [Unit]
        Description=edgekit relay (router registration and WireGuard peers)
        # No Documentation=: the relay bundle ships no docs; `edgekit-relay --help` and docs/relay.md.
        # The WireGuard interface must exist before the daemon restores peers into it.
        Wants=network-online.target
        After=network-online.target systemd-networkd.service

        [Service]
        Type=exec
        ExecStart=\(ConfigPaths.relayExecutable) serve --config \(ConfigPaths.relayDaemonConfig)
        Restart=on-failure
        RestartSec=2s
        # /var/lib/edgekit-relay, for the SQLite state; private to the daemon.
        StateDirectory=edgekit-relay
        StateDirectoryMode=0700
        UMask=0077

        # Sandboxing (systemd.exec(5)): the daemon only needs netlink for WireGuard, UDP, its state.
        CapabilityBoundingSet=CAP_NET_ADMIN
        AmbientCapabilities=CAP_NET_ADMIN
        NoNewPrivileges=yes
        ProtectSystem=strict
        ProtectHome=yes
        PrivateTmp=yes
        PrivateDevices=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectKernelLogs=yes
        ProtectControlGroups=yes
        ProtectClock=yes
        ProtectHostname=yes
        RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX
        RestrictNamespaces=yes
        RestrictRealtime=yes
        RestrictSUIDSGID=yes
        LockPersonality=yes
        MemoryDenyWriteExecute=yes
        SystemCallArchitectures=native
        SystemCallFilter=@system-service
        SystemCallErrorNumber=EPERM

        [Install]
        WantedBy=multi-user.target

        """
    }
}
