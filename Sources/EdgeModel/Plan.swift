/// The network plan: what an operator writes in `plan.yaml`, with every derived address resolved.
///
/// A `Plan` is only ever made by `PlanLoader`, which checks it completely; code that holds a `Plan`
/// can rely on every invariant listed in docs/plan.md (prefixes nest, names are DNS-safe, …).
public struct Plan: Sendable, Equatable {
    /// DNS-safe name of the whole network; part of every signed document.
    public var name: String
    /// The plan's RFC 4193 /48; every site /64 lies inside it.
    public var ula: IPv6Prefix
    /// Where router and relay tunnel /128 addresses come from; never overlaps `ula`.
    public var tunnel: IPv6Prefix
    /// The relay VPSes, in the plan's order (`relays:`, or `relay:` as a list of one); never empty.
    /// Each is independent: every router keeps a tunnel to each and registers with each.
    public var relays: [Relay]
    public var defaults: Defaults
    public var sites: [Site]
    /// Who may log in to the routers over SSH (docs/plan.md, `operators:`). None: no router runs sshd.
    public var operators: [Operator]
    /// The servers' own WireGuard mesh (`mesh:`), nil when the plan has none.
    public var mesh: Mesh?
    /// The servers at the sites that join the mesh (`servers:`); empty without a mesh.
    public var servers: [Server]
    /// Laptops and phones that reach the sites through the plan's first relay (`clients:`).
    public var clients: [Client]
    /// The /64 inside `ula` the clients' /128s come from (`client_prefix:`, by default the /48's
    /// last /64, `ula:ffff::/64`); never a site's.
    public var clientPrefix: IPv6Prefix
    /// The relay's NAT64 and DNS64 (`nat64:`; docs/nat64.md): where it sits and whom the resolver
    /// asks. Always resolved; it runs when `nat64Enabled`.
    public var nat64: NAT64

    public init(name: String, ula: IPv6Prefix, tunnel: IPv6Prefix, relays: [Relay], defaults: Defaults, sites: [Site],
                operators: [Operator] = [], mesh: Mesh? = nil, servers: [Server] = [], clients: [Client] = [],
                clientPrefix: IPv6Prefix? = nil, nat64: NAT64? = nil) {
        precondition(!relays.isEmpty, "a plan has at least one relay")
        self.nat64 = nat64 ?? NAT64(prefix: Plan.Addressing.defaultNAT64Prefix(in: ula))
        self.clients = clients
        self.clientPrefix = clientPrefix ?? Plan.Addressing.defaultClientPrefix(in: ula)
        self.name = name
        self.ula = ula
        self.tunnel = tunnel
        self.relays = relays
        self.defaults = defaults
        self.sites = sites
        self.operators = operators
        self.mesh = mesh
        self.servers = servers
    }

    /// A plan with one relay (what `relay:` in plan.yaml gives).
    public init(name: String, ula: IPv6Prefix, tunnel: IPv6Prefix, relay: Relay, defaults: Defaults, sites: [Site],
                operators: [Operator] = [], mesh: Mesh? = nil, servers: [Server] = []) {
        self.init(name: name, ula: ula, tunnel: tunnel, relays: [relay], defaults: defaults, sites: sites,
                  operators: operators, mesh: mesh, servers: servers)
    }

    /// The plan's first relay: where a plan with one relay has it. Code that serves every relay
    /// iterates `relays`.
    public var relay: Relay { relays[0] }

    /// The relay called `name`, if any.
    public func relay(named name: String) -> Relay? {
        relays.first { $0.name == name }
    }

    /// The relays in the order `site` prefers them: relay `index mod N` first, then the ones after
    /// it, wrapping around (docs/relay.md, "Running several relays"). Sites spread over the relays
    /// this way, and each falls back to the next one in its own order.
    public func relays(preferredBy site: Site) -> [Relay] {
        let first = site.index % relays.count
        return Array(relays[first...] + relays[..<first])
    }

    /// The site called `name`, if any.
    public func site(named name: String) -> Site? {
        sites.first { $0.name == name }
    }

    /// The client called `name`, if any.
    public func client(named name: String) -> Client? {
        clients.first { $0.name == name }
    }

    /// The relay every client connects through: the plan's first (docs/clients.md, "Several relays").
    public var clientRelay: Relay { relay }

    /// Whether the relay runs NAT64 and DNS64: some site asks for it.
    public var nat64Enabled: Bool { sites.contains(where: \.nat64) }

    /// The sites whose hosts use the NAT64.
    public var nat64Sites: [Site] { sites.filter(\.nat64) }

    /// The sites whose DMZ is routed through `relay`.
    public func dmzSites(of relay: Relay) -> [Site] {
        sites.filter { $0.dmz?.relay == relay.name }
    }

    /// The server called `name`, if any.
    public func server(named name: String) -> Server? {
        servers.first { $0.name == name }
    }

    /// The uplink MTU that applies to `router`: its own or its site's `uplink_mtu`, else the plan's.
    public func uplinkMTU(of router: Router) -> Int {
        router.uplinkMTU ?? defaults.uplinkMTU
    }

    /// The tunnel MTU the plan renders for `router`: uplink - 80 (WireGuard over IPv6), rounded down
    /// to a multiple of 16 below the relay's (`Defaults.tunnelMTU(payload:relayMTU:)`). The agent
    /// re-sets it at run time from the uplink's real MTU and the relay's address family.
    public func tunnelMTU(of router: Router) -> Int {
        Defaults.tunnelMTU(payload: uplinkMTU(of: router) - Defaults.wireGuardOverhead, relayMTU: defaults.tunnelMTU)
    }

    /// The smallest uplink MTU of any router in the plan (`defaults.uplink_mtu` without routers).
    public var smallestUplinkMTU: Int {
        sites.flatMap(\.routers).map(uplinkMTU(of:)).min() ?? defaults.uplinkMTU
    }

    /// The smallest tunnel MTU of any router in the plan, as rendered (over IPv6).
    public var smallestTunnelMTU: Int {
        Defaults.tunnelMTU(payload: smallestUplinkMTU - Defaults.wireGuardOverhead, relayMTU: defaults.tunnelMTU)
    }

    /// The servers' mesh MTU: every mesh packet crosses two routers' tunnels, so the smallest tunnel
    /// minus the mesh's own WireGuard layer of 80 bytes, but never below IPv6's 1280 (an uplink of
    /// 1420-1439 carries 1280 only with its tunnel over IPv4; docs/network.md, "MTU").
    public var meshMTU: Int {
        max(Defaults.ipv6MinimumMTU, smallestTunnelMTU - Defaults.wireGuardOverhead)
    }
}

/// The servers' end-to-end WireGuard mesh: a third ULA range (outside `ula` and `tunnel`) from which
/// each server gets a /128, and the one UDP port every server listens on.
public struct Mesh: Sendable, Equatable {
    /// Where the servers' mesh /128s come from; never overlaps the plan's `ula` or `tunnel`.
    public var prefix: IPv6Prefix
    /// The UDP port every server's mesh interface listens on; inside `defaults.server_wireguard_ports`,
    /// the only ports the relay forwards between sites.
    public var port: UInt16

    public init(prefix: IPv6Prefix, port: UInt16) {
        self.prefix = prefix
        self.port = port
    }
}

/// A server at a site that joins the mesh. Its endpoint is its stable address on the site LAN
/// (`<site /64>` + `token`); inside the mesh it is `meshAddress`.
public struct Server: Sendable, Equatable {
    /// DNS label, unique among the plan's servers; names its files and its keys.
    public var name: String
    /// The site whose LAN the server is on.
    public var site: String
    /// The SLAAC interface identifier the server uses on its LAN (`ip token set ::10`), as an
    /// address whose upper 64 bits are zero.
    public var token: IPv6Address
    /// The server's stable address on the site LAN: the site /64 with `token`; the mesh endpoint.
    public var siteAddress: IPv6Address
    /// The server's /128 inside the mesh.
    public var meshAddress: IPv6Address
    /// Bump to rotate the server's mesh key (an input of its derivation).
    public var generation: Int

    public init(name: String, site: String, token: IPv6Address, siteAddress: IPv6Address,
                meshAddress: IPv6Address, generation: Int) {
        self.name = name
        self.site = site
        self.token = token
        self.siteAddress = siteAddress
        self.meshAddress = meshAddress
        self.generation = generation
    }
}

/// The relay's NAT64 (tayga) and DNS64 resolver (unbound), for sites with `nat64: true`
/// (docs/nat64.md). IPv4 addresses are written into the last 32 bits of `prefix`, a /96 inside the
/// plan's /48, so the routers already send it to the relay and let its answers in.
public struct NAT64: Sendable, Equatable {
    /// The /96 IPv4 hosts appear under (RFC 6052, a network-specific prefix).
    public var prefix: IPv6Prefix
    /// Resolvers the DNS64 forwards to (IP addresses); empty: it resolves from the root itself.
    public var dnsForward: [String]

    public init(prefix: IPv6Prefix, dnsForward: [String] = []) {
        self.prefix = prefix
        self.dnsForward = dnsForward
    }

    /// The /64 that holds `prefix`, the resolver and the translator: the relay routes it to tayga.
    public var network: IPv6Prefix { IPv6Prefix(address: prefix.address, length: 64) }
    /// The DNS64 resolver's address, `<network>:0:1:0:53`: inside the /48 (the routers forward LAN
    /// hosts' queries to it), outside the /96.
    public var resolver: IPv6Address { IPv6Address(high: network.address.high, low: 0x0000_0001_0000_0053) }
    /// tayga's own address (the source of the ICMPv6 errors it makes), `<network>:0:1:0:64`.
    public var translator: IPv6Address { IPv6Address(high: network.address.high, low: 0x0000_0001_0000_0064) }
    /// The IPv4 addresses tayga gives the IPv6 hosts it translates; the relay masquerades them.
    public static let pool = "192.168.255.0/24"
    /// tayga's own IPv4 address, in the pool.
    public static let translatorIPv4 = "192.168.255.1"
}

/// A laptop or phone with a WireGuard app (`clients:`): it connects to the plan's first relay with
/// a key derived from the master secret and reaches every site /64 from its /128.
public struct Client: Sendable, Equatable {
    /// DNS label, unique among the plan's clients; names its file and its key.
    public var name: String
    /// Its /128 inside the plan's `clientPrefix`.
    public var address: IPv6Address
    /// Bump to rotate the client's key (an input of its derivation).
    public var generation: Int

    public init(name: String, address: IPv6Address, generation: Int = 1) {
        self.name = name
        self.address = address
        self.generation = generation
    }
}

/// A relay VPS: a DNS name the routers resolve, and its two UDP ports.
public struct Relay: Sendable, Equatable {
    /// DNS label, unique among the plan's relays; names its bundle, its key and the routers'
    /// tunnel to it. `relay:` in a plan names its one relay `relay` (`Relay.singleName`).
    public var name: String
    /// DNS name of the relay; WireGuard endpoint and registration target.
    public var host: String
    public var wireguardPort: UInt16
    public var registrationPort: UInt16
    /// The relay's own /128 inside the plan's tunnel range.
    public var tunnelAddress: IPv6Address
    /// A public prefix the relay's provider routes to the relay (`public_prefix:`), whose /64s the
    /// sites' DMZs use (docs/dmz.md); nil when it has none. A plan input: routers learn their DMZ's
    /// /64 from their site, the relay its prefix and routes from relay.json.
    public var publicPrefix: IPv6Prefix?

    public init(name: String = Relay.singleName, host: String, wireguardPort: UInt16, registrationPort: UInt16,
                tunnelAddress: IPv6Address, publicPrefix: IPv6Prefix? = nil) {
        self.name = name
        self.host = host
        self.wireguardPort = wireguardPort
        self.registrationPort = registrationPort
        self.tunnelAddress = tunnelAddress
        self.publicPrefix = publicPrefix
    }

    public static let defaultWireGuardPort: UInt16 = 51820
    public static let defaultRegistrationPort: UInt16 = 51821
    /// The name of the one relay a plan's `relay:` describes. Its key is derived as it was before
    /// plans could hold several relays, so such a plan keeps its relay key.
    public static let singleName = "relay"
}

/// Plan-wide defaults that sites inherit.
public struct Defaults: Sendable, Equatable {
    /// The most the routers' uplinks carry unless a site or router says otherwise (`uplink_mtu`): the
    /// tunnel MTU the plan renders (`uplinkMTU - 80`) and the ceiling of the one the agent sets from
    /// the link at run time (docs/network.md, "MTU").
    public var uplinkMTU: Int
    /// WireGuard PersistentKeepalive towards the relay, in seconds.
    public var keepalive: Int
    /// VRRP advertisement interval in centiseconds (VRRPv3, RFC 5798 section 5.2.7).
    public var vrrpAdvertIntervalCentiseconds: Int
    /// UDP ports of the servers' own WireGuard mesh, which the relay forwards inside the /48.
    public var serverWireGuardPorts: ClosedRange<UInt16>
    /// Whether sshd also listens on the site LAN (the VIP and the router's own LAN address), besides
    /// the tunnel address; only matters when the plan has operators.
    public var sshOnLAN: Bool

    public init(uplinkMTU: Int = 1500, keepalive: Int = 25, vrrpAdvertIntervalCentiseconds: Int = 100,
                serverWireGuardPorts: ClosedRange<UInt16> = 58000...60000, sshOnLAN: Bool = false) {
        self.uplinkMTU = uplinkMTU
        self.keepalive = keepalive
        self.vrrpAdvertIntervalCentiseconds = vrrpAdvertIntervalCentiseconds
        self.serverWireGuardPorts = serverWireGuardPorts
        self.sshOnLAN = sshOnLAN
    }

    /// WireGuard over IPv6 costs 80 bytes (40 IPv6 + 8 UDP + 32 WireGuard).
    public static let wireGuardOverhead = 80
    /// WireGuard over IPv4 costs 60 bytes (20 IPv4 + 8 UDP + 32 WireGuard).
    public static let wireGuardOverheadIPv4 = 60
    /// IPv6's minimum link MTU (RFC 8200 section 5): what the servers' mesh must carry.
    public static let ipv6MinimumMTU = 1280
    /// The smallest uplink MTU a plan accepts: 1280 inside the servers' mesh (80 bytes, always over
    /// IPv6) inside the tunnel to the relay at its cheapest (60 bytes, over IPv4): 1280 + 80 + 60.
    public static let minimumUplinkMTU = ipv6MinimumMTU + wireGuardOverhead + wireGuardOverheadIPv4
    /// Below this, the tunnel over IPv6 leaves the mesh less than 1280: 1280 + 80 + 80.
    public static let uplinkMTUForMeshOverIPv6 = ipv6MinimumMTU + 2 * wireGuardOverhead

    /// MTU of the router ↔ relay tunnel, and of the relay's one interface.
    public var tunnelMTU: Int { uplinkMTU - Defaults.wireGuardOverhead }

    /// The tunnel MTU for an uplink that carries `payload` bytes inside WireGuard's outer headers, to a
    /// relay whose interface has `relayMTU`: the relay's when the uplink carries that much (nothing
    /// bigger could go on to another site), else `payload` rounded down to a multiple of 16, and never
    /// below IPv6's 1280 (the kernel turns IPv6 off on a smaller link).
    ///
    /// The rounding is WireGuard's padding: it pads each packet to a multiple of 16 bytes, up to the
    /// MTU of the interface that sends it. The relay's interface is bigger than a small uplink's
    /// tunnel, so a 1400-byte packet to a DS-Lite site (1460 - 60 = 1400) left the relay padded to
    /// 1408: 8 bytes over the uplink, and every full-size packet towards that site was fragmented. At a
    /// multiple of 16 there is nothing to pad (docs/network.md, "MTU").
    public static func tunnelMTU(payload: Int, relayMTU: Int) -> Int {
        if payload >= relayMTU { return relayMTU }
        return max(ipv6MinimumMTU, payload / 16 * 16)
    }

    /// Why `tunnelMTU(payload:relayMTU:)` is not `payload`, for comments in rendered files: "" when
    /// it is, else ", no more than the relay's N" or ", down to a multiple of 16 (…)".
    public static func tunnelMTUNote(payload: Int, relayMTU: Int) -> String {
        let tunnel = tunnelMTU(payload: payload, relayMTU: relayMTU)
        if tunnel == payload { return "" }
        if tunnel == relayMTU { return ", no more than the relay's \(relayMTU)" }
        if tunnel == ipv6MinimumMTU && payload < ipv6MinimumMTU { return ", raised to IPv6's 1280" }
        return ", down to a multiple of 16 (WireGuard pads to 16 bytes, up to the sender's MTU)"
    }

    /// What is left for packets inside the servers' own WireGuard mesh, which rides the tunnel: two
    /// layers of 80 bytes, never below 1280 (see `Plan.meshMTU`, which also counts the overrides).
    public var innerMTU: Int { max(Defaults.ipv6MinimumMTU, uplinkMTU - 2 * Defaults.wireGuardOverhead) }
}

/// A site's DMZ (docs/dmz.md): a VLAN on the routers' LAN port, or a port of its own, whose hosts
/// take addresses from a public /64 that `relay`'s provider routes to that relay, which routes it
/// through the tunnel to the site's master. DMZ hosts reach the internet (and are reached from it)
/// through that relay, never the site LAN or another site.
public struct DMZ: Sendable, Equatable {
    /// Where the DMZ's hosts are.
    public enum Link: Sendable, Equatable {
        /// An 802.1Q VLAN on the routers' LAN port, id 1–4094 (`dmz0` on the routers).
        case vlan(Int)
        /// A port of its own, by its kernel name, the same on every router of the site.
        case port(String)
    }

    public var link: Link
    /// The DMZ's /64, inside `relay`'s public prefix.
    public var prefix: IPv6Prefix
    /// The name of the relay whose public prefix holds `prefix`.
    public var relay: String

    public init(link: Link, prefix: IPv6Prefix, relay: String) {
        self.link = link
        self.prefix = prefix
        self.relay = relay
    }

    public static let vlans = 1...4094
    /// The routers' name for a VLAN DMZ.
    public static let vlanInterface = "dmz0"

    /// The routers' interface on the DMZ.
    public var interface: String {
        switch link {
        case .vlan: DMZ.vlanInterface
        case .port(let name): name
        }
    }

    /// The VLAN id of a VLAN DMZ; nil for one on a port of its own.
    public var vlan: Int? {
        if case .vlan(let id) = link { return id }
        return nil
    }

    /// `vlan 100` or `port eth2`, for tables and comments.
    public var linkDescription: String {
        switch link {
        case .vlan(let id): "vlan \(id)"
        case .port(let name): "port \(name)"
        }
    }
}

/// One site: a LAN with one /64, one VRRP group and one or two edge routers.
public struct Site: Sendable, Equatable {
    public var name: String
    /// Subnet number of the site /64 inside the plan /48 (the 4th hextet).
    public var index: Int
    /// The site's /64.
    public var prefix: IPv6Prefix
    /// VRRP virtual router id, 1...255.
    public var vrrpID: Int
    /// The routers' shared address on the LAN, inside the site /64 (default `<site /64>::1`).
    public var vip: IPv6Address
    /// The link-local VIP that VRRPv3 needs first and radvd sends RAs from (default `fe80::1`).
    public var linkLocalVIP: IPv6Address
    public var routers: [Router]
    /// The device kind the site's image boots on (`board:`, default `pc-uefi`). A build input
    /// only: not part of the profile's wire form, so a profile reads the same on every board.
    public var board: Board
    /// Whether the site's IPv6-only hosts reach IPv4 through the relay's NAT64 (`nat64: true`): the
    /// routers announce the relay's DNS64 resolver on the LAN (docs/nat64.md).
    public var nat64: Bool
    /// The site's DMZ (`dmz:`), if it has one: a VLAN on the LAN port with a public /64 (docs/dmz.md).
    public var dmz: DMZ?

    public init(name: String, index: Int, prefix: IPv6Prefix, vrrpID: Int, vip: IPv6Address,
                linkLocalVIP: IPv6Address, routers: [Router], board: Board = .default, nat64: Bool = false,
                dmz: DMZ? = nil) {
        self.nat64 = nat64
        self.dmz = dmz
        self.name = name
        self.index = index
        self.prefix = prefix
        self.vrrpID = vrrpID
        self.vip = vip
        self.linkLocalVIP = linkLocalVIP
        self.routers = routers
        self.board = board
    }

    /// The router in `slot`, if the plan has it.
    public func router(slot: Int) -> Router? {
        routers.first { $0.slot == slot }
    }

    /// The hostname a router of this site takes: `<site>-r<slot>`.
    public func hostname(slot: Int) -> String { "\(name)-r\(slot)" }
}

/// An edge router slot of a site. The device that holds the slot's stick becomes this router.
public struct Router: Sendable, Equatable {
    /// 1...N within the site.
    public var slot: Int
    /// VRRP priority 1...254; the highest live router is master.
    public var priority: Int
    /// Bump to rotate the router's keys (it is an input of the router secret).
    public var generation: Int
    public var uplink: InterfaceMatch
    public var lan: InterfaceMatch
    /// The router's own /128 on the tunnel to the relay.
    public var tunnelAddress: IPv6Address
    /// The router's own address on the site LAN, inside the site /64.
    public var lanAddress: IPv6Address
    /// The uplink MTU the plan sets for this router (its own `uplink_mtu`, else its site's), or nil:
    /// `defaults.uplink_mtu`. `Plan.uplinkMTU(of:)` gives the value that applies.
    public var uplinkMTU: Int?

    public init(slot: Int, priority: Int, generation: Int, uplink: InterfaceMatch, lan: InterfaceMatch,
                tunnelAddress: IPv6Address, lanAddress: IPv6Address, uplinkMTU: Int? = nil) {
        self.slot = slot
        self.priority = priority
        self.generation = generation
        self.uplink = uplink
        self.lan = lan
        self.tunnelAddress = tunnelAddress
        self.lanAddress = lanAddress
        self.uplinkMTU = uplinkMTU
    }
}

/// How a router finds one of its network interfaces.
public enum InterfaceMatch: Sendable, Equatable, CustomStringConvertible {
    /// Uplink: the first physical wired Ethernet port (onboard before USB, then by device path);
    /// LAN: the second one. edgekit-agent pins both by MAC address at the first apply
    /// (docs/network.md, "Which port is which with `auto`").
    case auto
    /// A kernel interface name, e.g. `enp1s0`.
    case name(String)
    /// A MAC address, lower case, colon separated.
    case mac(String)

    public var description: String {
        switch self {
        case .auto: "auto"
        case .name(let name): name
        case .mac(let mac): mac
        }
    }
}

extension Plan {
    /// Derived addresses (docs/plan.md, "Addressing"): these formulas are part of the contract.
    public enum Addressing {
        /// `<tunnel>::1` is the (first) relay, `<tunnel>::<n + 1>` the relay at position `n` of `relays:`.
        public static func relayTunnelAddress(in tunnel: IPv6Prefix, position: Int = 0) -> IPv6Address? {
            tunnel.host(UInt64(position) + 1)
        }

        /// `<tunnel>::1:<site index>:<slot>` is a router; never equal to the relay's `::1`.
        public static func routerTunnelAddress(in tunnel: IPv6Prefix, siteIndex: Int, slot: Int) -> IPv6Address? {
            tunnel.host(1 << 32 | UInt64(siteIndex) << 16 | UInt64(slot))
        }

        /// `<site /64>::1` is the VIP.
        public static func siteVIP(in prefix: IPv6Prefix) -> IPv6Address? {
            prefix.host(1)
        }

        /// `<site /64>::<slot + 1>` is a router's own LAN address (slot 1 → `::2`).
        public static func routerLANAddress(in prefix: IPv6Prefix, slot: Int) -> IPv6Address? {
            prefix.host(UInt64(slot) + 1)
        }

        /// `fe80::1` is the default link-local VIP.
        public static let defaultLinkLocalVIP = IPv6Address("fe80::1")!

        /// A server's default interface identifier: 64-bit FNV-1a of its name. Stable when servers
        /// are added or removed (no numbering by position); the checker refuses the rare clash.
        public static func serverInterfaceID(name: String) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in name.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            return hash
        }

        /// The clients' default /64: the plan's /48 with subnet `ffff`, its last.
        public static func defaultClientPrefix(in ula: IPv6Prefix) -> IPv6Prefix {
            ula.subnet(0xffff, length: 64) ?? ula
        }

        /// The NAT64's default /96: the first of the /48's subnet `fffe`.
        public static func defaultNAT64Prefix(in ula: IPv6Prefix) -> IPv6Prefix {
            ula.subnet(0xfffe, length: 64).flatMap { IPv6Prefix(address: $0.address, length: 96) } ?? ula
        }

        /// A client's default /128: the client prefix with the FNV-1a of its name as host part
        /// (stable when clients come and go; the checker refuses the rare clash).
        public static func clientAddress(in prefix: IPv6Prefix, name: String) -> IPv6Address? {
            prefix.host(serverInterfaceID(name: name))
        }

        /// A server's default token: `::<interface id>` (the id's 64 bits as the lower half).
        public static func serverToken(name: String) -> IPv6Address {
            IPv6Address(high: 0, low: serverInterfaceID(name: name))
        }

        /// A server's default mesh /128: the mesh prefix with the interface id's low bits as host
        /// part (all 64 of them for a /64 mesh, the low 32 for a /96).
        public static func serverMeshAddress(in mesh: IPv6Prefix, name: String) -> IPv6Address? {
            let hostBits = min(64, 128 - mesh.length)
            let id = serverInterfaceID(name: name)
            return mesh.host(hostBits == 64 ? id : id & ((1 << UInt64(hostBits)) - 1))
        }

        /// The server's address on its site LAN: the site /64 with the token's lower 64 bits.
        public static func serverSiteAddress(in prefix: IPv6Prefix, token: IPv6Address) -> IPv6Address {
            IPv6Address(high: prefix.address.high, low: token.low)
        }
    }
}
