/// The wire form of the model types that documents carry (the profile's `site` and `router`): the
/// same snake_case keys as plan.yaml, every field read with its kind's rule (`FieldRules`), so a
/// document cannot carry a value `plan check` would refuse. docs/keys.md lists the fields.
extension Router: Codable {
    enum CodingKeys: String, CodingKey {
        case slot, priority, generation, uplink, lan
        case tunnelAddress = "tunnel_address"
        case lanAddress = "lan_address"
        case uplinkMTU = "uplink_mtu"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        slot = try c.field(.slot, as: Int.self) { FieldRules.integer($0, in: FieldRules.slots) }
        priority = try c.field(.priority, as: Int.self) { FieldRules.integer($0, in: FieldRules.priorities) }
        generation = try c.field(.generation, as: Int.self) { FieldRules.integer($0, in: FieldRules.generations) }
        uplink = try c.field(.uplink, as: String.self, FieldRules.interface)
        lan = try c.field(.lan, as: String.self, FieldRules.interface)
        tunnelAddress = try c.field(.tunnelAddress, as: String.self, FieldRules.address)
        lanAddress = try c.field(.lanAddress, as: String.self, FieldRules.address)
        // Absent: the plan's defaults.uplink_mtu (profiles sealed before the override are unchanged).
        uplinkMTU = c.contains(.uplinkMTU) ? try c.field(.uplinkMTU, as: Int.self, FieldRules.uplinkMTU) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(slot, forKey: .slot)
        try c.encode(priority, forKey: .priority)
        try c.encode(generation, forKey: .generation)
        try c.encode(uplink.description, forKey: .uplink)
        try c.encode(lan.description, forKey: .lan)
        try c.encode(tunnelAddress, forKey: .tunnelAddress)
        try c.encode(lanAddress, forKey: .lanAddress)
        if let uplinkMTU { try c.encode(uplinkMTU, forKey: .uplinkMTU) }
    }
}

extension Site: Codable {
    enum CodingKeys: String, CodingKey {
        case name, index, prefix, vip, routers, nat64, dmz
        case vrrpID = "vrrp_id"
        case linkLocalVIP = "link_local_vip"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.field(.name, as: String.self, FieldRules.name)
        index = try c.field(.index, as: Int.self) { FieldRules.integer($0, in: FieldRules.siteIndexes) }
        prefix = try c.field(.prefix, as: String.self, FieldRules.prefix)
        vrrpID = try c.field(.vrrpID, as: Int.self) { FieldRules.integer($0, in: FieldRules.vrrpIDs) }
        vip = try c.field(.vip, as: String.self, FieldRules.address)
        linkLocalVIP = try c.field(.linkLocalVIP, as: String.self, FieldRules.address)
        routers = try c.field(.routers, as: [Router].self)
        board = .default  // a build input, not carried by documents (see `Site.board`)
        // On the wire only when true, so profiles of sites without NAT64 read as before.
        nat64 = c.contains(.nat64) ? try c.field(.nat64, as: Bool.self) : false
        // Only for a site with a DMZ (docs/dmz.md).
        dmz = c.contains(.dmz) ? try c.field(.dmz, as: DMZ.self) : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(index, forKey: .index)
        try c.encode(prefix, forKey: .prefix)
        try c.encode(vrrpID, forKey: .vrrpID)
        try c.encode(vip, forKey: .vip)
        try c.encode(linkLocalVIP, forKey: .linkLocalVIP)
        try c.encode(routers, forKey: .routers)
        if nat64 { try c.encode(true, forKey: .nat64) }
        if let dmz { try c.encode(dmz, forKey: .dmz) }
    }
}

/// A site's DMZ on the wire (the profile's `site.dmz`): its VLAN, its public /64 and the relay
/// that routes it, read with the plan's rules.
extension DMZ: Codable {
    enum CodingKeys: String, CodingKey {
        case vlan, port, prefix, relay
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if c.contains(.port) {
            link = .port(try c.field(.port, as: String.self) { text in
                FieldRules.interface(text).flatMap { match in
                    if case .name(let name) = match { return .success(name) }
                    return .failure(FieldProblem("\(FieldRules.quoted(text)) must be an interface name"))
                }
            })
        } else {
            link = .vlan(try c.field(.vlan, as: Int.self) { FieldRules.integer($0, in: DMZ.vlans) })
        }
        prefix = try c.field(.prefix, as: String.self, FieldRules.prefix)
        relay = try c.field(.relay, as: String.self, FieldRules.name)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch link {
        case .vlan(let id): try c.encode(id, forKey: .vlan)
        case .port(let name): try c.encode(name, forKey: .port)
        }
        try c.encode(prefix, forKey: .prefix)
        try c.encode(relay, forKey: .relay)
    }
}

/// The relay as documents carry it (the profile's `plan.relay` or each of `plan.relays`, beside the
/// relay's public key). `name` is on the wire only when it is not `relay`, so the one relay of a
/// `relay:` plan reads as it did before plans could hold several.
extension Relay: Codable {
    enum CodingKeys: String, CodingKey {
        case name
        case host
        case wireguardPort = "wireguard_port"
        case registrationPort = "registration_port"
        case tunnelAddress = "tunnel_address"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = c.contains(.name) ? try c.field(.name, as: String.self, FieldRules.name) : Relay.singleName
        host = try c.field(.host, as: String.self, FieldRules.host)
        wireguardPort = try c.field(.wireguardPort, as: Int.self) { FieldRules.integer($0, in: FieldRules.ports).map { UInt16($0) } }
        registrationPort = try c.field(.registrationPort, as: Int.self) { FieldRules.integer($0, in: FieldRules.ports).map { UInt16($0) } }
        tunnelAddress = try c.field(.tunnelAddress, as: String.self, FieldRules.address)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if name != Relay.singleName { try c.encode(name, forKey: .name) }
        try c.encode(host, forKey: .host)
        try c.encode(wireguardPort, forKey: .wireguardPort)
        try c.encode(registrationPort, forKey: .registrationPort)
        try c.encode(tunnelAddress, forKey: .tunnelAddress)
    }
}

/// The plan's defaults as documents carry them (flat in the profile's `plan`): the VRRP interval in
/// centiseconds, the servers' ports as `LOW-HIGH` text, read with the plan's own rules.
extension Defaults: Codable {
    enum CodingKeys: String, CodingKey {
        case keepalive
        case uplinkMTU = "uplink_mtu"
        case vrrpAdvertIntervalCentiseconds = "vrrp_advert_interval_cs"
        case serverWireGuardPorts = "server_wireguard_ports"
        case sshOnLAN = "ssh_on_lan"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            uplinkMTU: try c.field(.uplinkMTU, as: Int.self, FieldRules.uplinkMTU),
            keepalive: try c.field(.keepalive, as: Int.self) { FieldRules.integer($0, in: FieldRules.keepalives) },
            vrrpAdvertIntervalCentiseconds: try c.field(.vrrpAdvertIntervalCentiseconds, as: Int.self) {
                FieldRules.integer($0, in: FieldRules.vrrpAdvertIntervalCentiseconds)
            },
            serverWireGuardPorts: try c.field(.serverWireGuardPorts, as: String.self, FieldRules.portRange),
            // Absent means false: profiles sealed before the field existed, or with it off, are unchanged.
            sshOnLAN: c.contains(.sshOnLAN) ? try c.field(.sshOnLAN, as: Bool.self) : false)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(uplinkMTU, forKey: .uplinkMTU)
        try c.encode(keepalive, forKey: .keepalive)
        try c.encode(vrrpAdvertIntervalCentiseconds, forKey: .vrrpAdvertIntervalCentiseconds)
        try c.encode(FieldRules.portRangeText(serverWireGuardPorts), forKey: .serverWireGuardPorts)
        if sshOnLAN { try c.encode(true, forKey: .sshOnLAN) }
    }
}
