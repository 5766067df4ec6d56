#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The semantic rules of a plan (docs/plan.md, "Rules"), applied to the draft read from YAML.
/// Every rule that fails adds one diagnostic; the plan is returned only if all pass.
struct PlanChecker {
    let file: String
    var diagnostics: [PlanDiagnostic] = []

    mutating func error(_ line: Int?, _ message: String) {
        diagnostics.append(PlanDiagnostic(file: file, line: line, message: message))
    }

    /// Names of plans, sites and relay labels: RFC 1123 labels, lower case.
    static func isDNSLabel(_ text: String) -> Bool {
        guard (1...63).contains(text.utf8.count), text.first != "-", text.last != "-" else { return false }
        return text.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
    }

    static func isDNSName(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return text.utf8.count <= 253 && labels.count >= 1 && labels.allSatisfy { isDNSLabel(String($0)) }
            && !labels.last!.allSatisfy(\.isNumber)
    }

    mutating func name(_ located: Located<String>?, _ what: String) -> String? {
        guard let located else { return nil }
        guard PlanChecker.isDNSLabel(located.value) else {
            error(located.line, "\(what) \"\(located.value)\" is not DNS-safe: use 1–63 lower-case letters, digits and inner hyphens")
            return nil
        }
        return located.value
    }

    mutating func prefix(_ located: Located<String>?, _ what: String) -> IPv6Prefix? {
        guard let located else { return nil }
        switch IPv6Prefix.parse(located.value) {
        case .success(let prefix): return prefix
        case .failure(let failure):
            error(located.line, "\(what): \(failure)")
            return nil
        }
    }

    mutating func address(_ located: Located<String>?, _ what: String) -> IPv6Address? {
        guard let located else { return nil }
        guard let address = IPv6Address(located.value) else {
            error(located.line, "\(what) \"\(located.value)\" is not an IPv6 address")
            return nil
        }
        return address
    }

    /// An uplink MTU (`defaults`, a site's or a router's override), by `FieldRules.uplinkMTU`.
    mutating func uplinkMTU(_ located: Located<Int>?, _ what: String) -> Int? {
        guard let located else { return nil }
        switch FieldRules.uplinkMTU(located.value) {
        case .success(let value): return value
        case .failure(let problem):
            error(located.line, "\(what) \(problem.message)")
            return nil
        }
    }

    mutating func interface(_ located: Located<String>?, _ what: String) -> InterfaceMatch {
        guard let located else { return .auto }
        let text = located.value
        if text == "auto" { return .auto }
        let macParts = text.split(separator: ":", omittingEmptySubsequences: false)
        if macParts.count == 6 {
            guard macParts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
                error(located.line, "\(what) \"\(text)\" looks like a MAC address but is not one (expected six hex pairs, e.g. 52:54:00:12:34:56)")
                return .auto
            }
            return .mac(text.lowercased())
        }
        let forbidden = text.contains { $0 == "/" || $0 == ":" || $0.isWhitespace || !$0.isASCII }
        guard (1...15).contains(text.utf8.count), !forbidden, text != ".", text != ".." else {
            error(located.line, "\(what) \"\(text)\" is neither \"auto\", an interface name (1–15 characters, no '/', ':' or spaces) nor a MAC address")
            return .auto
        }
        return .name(text)
    }

    /// The plan, if every rule holds; otherwise nil, with one diagnostic per broken rule. Each step
    /// checks what it can even when an earlier one failed, so one pass reports every problem.
    mutating func resolve(_ draft: PlanDraft) -> Plan? {
        let planName = name(draft.name, "plan name")
        let ula = checkULA(draft.ula)
        let tunnel = checkTunnel(draft.tunnel, outside: ula)
        let relays = checkRelays(draft, tunnel: tunnel)
        let defaults = checkDefaults(draft.defaults)
        var sites = checkSites(draft, ula: ula, tunnel: tunnel, relays: relays)
        checkDMZs(draft, sites: &sites, relays: relays)
        let operators = checkOperators(draft.operators)
        let mesh = draft.mesh.flatMap { checkMesh($0, ula: ula, tunnel: tunnel, defaults: defaults) }
        let servers = checkServers(draft, sites: sites, mesh: mesh)
        // The default client prefix clashes with nothing until the plan has clients.
        let clientPrefix = ula.flatMap { ula in
            draft.clientPrefix == nil && draft.clients.isEmpty ? nil : checkClientPrefix(draft.clientPrefix, ula: ula, sites: sites)
        }
        let clients = checkClients(draft, prefix: clientPrefix)
        let nat64 = ula.flatMap { checkNAT64(draft, ula: $0, sites: sites, clientPrefix: clients.isEmpty ? nil : clientPrefix) }
        guard diagnostics.isEmpty, let planName, let ula, let tunnel, !relays.isEmpty else { return nil }
        return Plan(name: planName, ula: ula, tunnel: tunnel, relays: relays, defaults: defaults, sites: sites,
                    operators: operators, mesh: mesh, servers: servers, clients: clients, clientPrefix: clientPrefix, nat64: nat64)
    }

    // MARK: - The plan's prefixes

    /// `ula`: a /48 inside fd00::/8 (RFC 4193).
    mutating func checkULA(_ located: Located<String>?) -> IPv6Prefix? {
        guard let located, let value = prefix(located, "ula") else { return nil }
        if value.length != 48 {
            error(located.line, "ula must be a /48 (RFC 4193), found /\(value.length)")
            return nil
        }
        if !IPv6Prefix("fd00::/8")!.contains(value) {
            error(located.line, "ula \(value) is not inside fd00::/8; generate one with `edgekit plan init` (RFC 4193 section 3.2)")
            return nil
        }
        return value
    }

    /// `tunnel`: a /96 or larger that does not overlap the ula.
    mutating func checkTunnel(_ located: Located<String>?, outside ula: IPv6Prefix?) -> IPv6Prefix? {
        guard let located, let value = prefix(located, "tunnel") else { return nil }
        if value.length > 96 {
            error(located.line, "tunnel \(value) is too small: use a /96 or larger (a /64 is usual)")
            return nil
        }
        if let ula, value.overlaps(ula) {
            error(located.line, "tunnel \(value) overlaps the plan's ula \(ula); tunnel addresses must lie outside the /48")
            return nil
        }
        return value
    }

    // MARK: - Relay and defaults

    /// Every relay of `relays:` (or the one of `relay:`): names unique, tunnel addresses unique
    /// (relay `n` defaults to `<tunnel>::<n + 1>`), each relay checked alone by `checkRelay`.
    mutating func checkRelays(_ draft: PlanDraft, tunnel: IPv6Prefix?) -> [Relay] {
        if draft.relays.isEmpty, draft.relaysLine > 0, !diagnostics.contains(where: { $0.line == draft.relaysLine }) {
            error(draft.relaysLine, "relays is empty; a plan needs at least one relay")
        }
        var names: [String: Int] = [:]
        var addresses: [IPv6Address: String] = [:]
        var relays: [Relay] = []
        for (position, relayDraft) in draft.relays.enumerated() {
            var relayName: String? = Relay.singleName
            if let located = relayDraft.name {
                relayName = name(located, "relay name")
                if let relayName, let first = names[relayName] {
                    error(located.line, "relay name \"\(relayName)\" is already used on line \(first); relay names must be unique")
                }
                if let relayName { names[relayName] = names[relayName] ?? located.line }
            }
            // Checked even under a bad name, so one pass reports every problem of the relay.
            let checked = checkRelay(relayDraft, name: relayName ?? Relay.singleName, position: position, tunnel: tunnel)
            guard let relayName, let relay = checked else { continue }
            if let other = addresses[relay.tunnelAddress] {
                error(relayDraft.tunnelAddress?.line ?? relayDraft.line,
                      "\(relayDraft.what) tunnel address \(relay.tunnelAddress) is already used by relay \"\(other)\"; each relay needs its own")
                continue
            }
            addresses[relay.tunnelAddress] = relayName
            relays.append(relay)
        }
        // A router listens on the first relay's WireGuard port plus the relay's position (RouterTunnel).
        if let first = relays.first, Int(first.wireguardPort) + relays.count - 1 > 65535 {
            error(draft.relays[0].wireguardPort?.line ?? draft.relays[0].line,
                  "\(draft.relays[0].what) wireguard_port \(first.wireguardPort) leaves no room for the routers' \(relays.count) tunnels, which listen on it and the ports after it; use \(65535 - relays.count + 1) or less")
        }
        return relays.count == draft.relays.count ? relays : []
    }

    mutating func checkRelay(_ draft: PlanDraft.RelayDraft, name: String, position: Int, tunnel: IPv6Prefix?) -> Relay? {
        let what = draft.what == "relay" ? "relay." : draft.what + " "
        var host: String?
        if let located = draft.host {
            if PlanChecker.isDNSName(located.value) {
                host = located.value
            } else {
                error(located.line, "\(what)host \"\(located.value)\" is not a DNS name (lower-case labels separated by dots, e.g. relay.example.net)")
            }
        }
        let wgPort = UInt16(draft.wireguardPort?.value ?? Int(Relay.defaultWireGuardPort))
        let regPort = UInt16(draft.registrationPort?.value ?? Int(Relay.defaultRegistrationPort))
        if wgPort == regPort {
            error(draft.registrationPort?.line ?? draft.line, "\(what)registration_port \(regPort) is the same as \(what)wireguard_port; they must differ")
        }
        var tunnelAddress = tunnel.flatMap { Plan.Addressing.relayTunnelAddress(in: $0, position: position) }
        if let located = draft.tunnelAddress, let address = address(located, "\(what)tunnel_address") {
            tunnelAddress = address
            if let tunnel, !tunnel.contains(address) {
                error(located.line, "\(what)tunnel_address \(address) is outside tunnel \(tunnel)")
            }
        }
        let publicPrefix = draft.publicPrefix.flatMap { checkPublicPrefix($0, "\(what)public_prefix") }
        guard let host, let tunnelAddress, wgPort != regPort, draft.publicPrefix == nil || publicPrefix != nil else { return nil }
        return Relay(name: name, host: host, wireguardPort: wgPort, registrationPort: regPort, tunnelAddress: tunnelAddress,
                     publicPrefix: publicPrefix)
    }

    /// A relay's `public_prefix`: global unicast (inside 2000::/3), /32 to /64, so it holds whole /64s.
    mutating func checkPublicPrefix(_ located: Located<String>, _ what: String) -> IPv6Prefix? {
        guard let value = prefix(located, what) else { return nil }
        guard IPv6Prefix("2000::/3")!.contains(value) else {
            error(located.line, "\(what) \(value) is not a public (global unicast, 2000::/3) prefix; use the one your provider routes to the relay")
            return nil
        }
        guard (32...64).contains(value.length) else {
            error(located.line, "\(what) must be a /32 to /64 (each DMZ takes a /64), found /\(value.length)")
            return nil
        }
        return value
    }

    /// Each site's `dmz:` (docs/dmz.md): `vlan` 1–4094 or `port` (an interface name); `prefix` a /64 inside some relay's
    /// `public_prefix`, by default the first such relay's /64 numbered like the site (its index);
    /// no two DMZs share a /64. The relay whose prefix holds it routes it.
    mutating func checkDMZs(_ draft: PlanDraft, sites: inout [Site], relays: [Relay]) {
        var used: [IPv6Prefix: (site: String, line: Int)] = [:]
        for siteDraft in draft.sites {
            guard let dmzDraft = siteDraft.dmz else { continue }
            let what = dmzDraft.what
            let owners = relays.filter { $0.publicPrefix != nil }
            guard let first = owners.first?.publicPrefix else {
                // A public_prefix that is there but wrong has its own error; this one would repeat it.
                if draft.relays.contains(where: { $0.publicPrefix != nil }) { continue }
                error(dmzDraft.line, "\(what) needs a relay with public_prefix (the public prefix your provider routes to the relay)")
                continue
            }
            var prefix: IPv6Prefix?
            if let located = siteDraft.dmz?.prefix {
                if let value = self.prefix(located, "\(what) prefix") {
                    if value.length != 64 {
                        error(located.line, "\(what) prefix must be a /64 (hosts configure themselves by SLAAC), found /\(value.length)")
                    } else if !owners.contains(where: { $0.publicPrefix!.contains(value) }) {
                        let prefixes = owners.map { "\($0.publicPrefix!)" }.joined(separator: ", ")
                        error(located.line, "\(what) prefix \(value) is inside no relay's public_prefix (\(prefixes))")
                    } else {
                        prefix = value
                    }
                }
            } else if let index = siteDraft.index?.value {
                prefix = first.subnet(UInt64(index), length: 64)
                if prefix == nil {
                    error(dmzDraft.line, "\(what): public_prefix \(first) has no /64 number \(index) (the site's index); set the dmz prefix")
                }
            }
            var link: DMZ.Link?
            switch (dmzDraft.vlan, dmzDraft.port) {
            case (let vlan?, nil): link = .vlan(vlan.value)
            case (nil, let port?):
                if case .success(.name(let name)) = FieldRules.interface(port.value) {
                    link = .port(name)
                } else {
                    error(port.line, "\(what) port \(FieldRules.quoted(port.value)) must be an interface name (the same on every router of the site), e.g. eth2")
                }
            case (nil, nil) where !dmzDraft.linkWritten: error(dmzDraft.line, "\(what) needs vlan (an 802.1Q VLAN on the LAN port) or port (a port of its own)")
            case (_?, let port?): error(port.line, "\(what) has both vlan and port; keep one")
            case (nil, nil): break  // its own error is reported
            }
            guard let prefix, let link, let relay = owners.first(where: { $0.publicPrefix!.contains(prefix) }) else { continue }
            if let (other, line) = used[prefix] {
                error(siteDraft.dmz?.prefix?.line ?? dmzDraft.line, "\(what) prefix \(prefix) is already the DMZ of site \"\(other)\" (line \(line))")
                continue
            }
            let name = siteDraft.name?.value ?? what
            used[prefix] = (name, dmzDraft.line)
            if let at = sites.firstIndex(where: { $0.name == siteDraft.name?.value }) {
                sites[at].dmz = DMZ(link: link, prefix: prefix, relay: relay.name)
            }
        }
    }

    mutating func checkDefaults(_ draft: PlanDraft.DefaultsDraft) -> Defaults {
        var defaults = Defaults()
        if let mtu = uplinkMTU(draft.uplinkMTU, "defaults.uplink_mtu") { defaults.uplinkMTU = mtu }
        if let keepalive = draft.keepalive { defaults.keepalive = keepalive.value }
        if let interval = draft.vrrpAdvertInterval {
            // VRRPv3 carries the interval in centiseconds in 12 bits (RFC 5798 section 5.2.7).
            if let seconds = Double(interval.value), seconds.isFinite, (0.01...40.95).contains(seconds),
                abs(seconds * 100 - (seconds * 100).rounded()) < 1e-6 {
                defaults.vrrpAdvertIntervalCentiseconds = Int((seconds * 100).rounded())
            } else {
                error(interval.line, "defaults.vrrp_advert_interval \"\(interval.value)\" must be seconds between 0.01 and 40.95 in steps of 0.01 (VRRPv3)")
            }
        }
        if let flag = draft.sshOnLAN {
            switch flag.value {
            case "true": defaults.sshOnLAN = true
            case "false": defaults.sshOnLAN = false
            default: error(flag.line, "defaults.ssh_on_lan \(FieldRules.quoted(flag.value)) must be true or false")
            }
        }
        if let ports = draft.serverPorts {
            switch FieldRules.portRange(ports.value) {
            case .success(let range): defaults.serverWireGuardPorts = range
            case .failure(let problem): error(ports.line, "defaults.server_wireguard_ports \(problem)")
            }
        }
        return defaults
    }

    // MARK: - Operators

    /// `operators:`: unique DNS-label names, each with at least one SSH public key that
    /// `FieldRules.sshPublicKey` accepts (the rule the agent reads the profile's copy with).
    mutating func checkOperators(_ drafts: [PlanDraft.OperatorDraft]) -> [Operator] {
        var names: [String: Int] = [:]
        var operators: [Operator] = []
        for draft in drafts {
            let operatorName = name(draft.name, "operator name")
            if let operatorName, let located = draft.name {
                if let first = names[operatorName] {
                    error(located.line, "operator name \"\(operatorName)\" is already used on line \(first); operator names must be unique")
                }
                names[operatorName] = located.line
            }
            if draft.sshKeys.isEmpty, draft.sshKeysLine != nil {
                error(draft.sshKeysLine, "\(draft.what) ssh_keys is empty; give at least one public key (the line of ~/.ssh/id_ed25519.pub)")
            }
            var keys: [SSHPublicKey] = []
            for (index, line) in draft.sshKeys.enumerated() {
                switch FieldRules.sshPublicKey(line.value) {
                case .success(let key): keys.append(key)
                case .failure(let problem): error(line.line, "\(draft.what) ssh_keys[\(index)] \(problem.message)")
                }
            }
            if let operatorName, !keys.isEmpty { operators.append(Operator(name: operatorName, sshKeys: keys)) }
        }
        return operators
    }

    // MARK: - Sites

    /// What must be unique across the whole plan, with where each value was first seen.
    struct PlanWideUse {
        var siteNames: [String: Int] = [:]
        var siteIndexes: [Int: (site: String, line: Int)] = [:]
        var sitePrefixes: [IPv6Prefix: (site: String, line: Int)] = [:]
        var tunnelAddresses: [IPv6Address: (owner: String, line: Int)] = [:]
    }

    mutating func checkSites(_ draft: PlanDraft, ula: IPv6Prefix?, tunnel: IPv6Prefix?, relays: [Relay]) -> [Site] {
        var used = PlanWideUse()
        for (relay, relayDraft) in zip(relays, draft.relays) {
            let owner = relays.count == 1 ? "the relay" : "relay \"\(relay.name)\""
            used.tunnelAddresses[relay.tunnelAddress] = (owner, relayDraft.tunnelAddress?.line ?? relayDraft.line)
        }
        if draft.sites.isEmpty, draft.sitesLine > 0, !diagnostics.contains(where: { $0.line == draft.sitesLine }) {
            error(draft.sitesLine, "sites is empty; a plan needs at least one site")
        }
        return draft.sites.compactMap { checkSite($0, ula: ula, tunnel: tunnel, used: &used) }
    }

    mutating func checkSite(_ draft: PlanDraft.SiteDraft, ula: IPv6Prefix?, tunnel: IPv6Prefix?, used: inout PlanWideUse) -> Site? {
        let what = draft.what
        let siteName = name(draft.name, "site name")
        if let siteName, let located = draft.name {
            if let first = used.siteNames[siteName] {
                error(located.line, "site name \"\(siteName)\" is already used on line \(first); site names must be unique")
            } else {
                used.siteNames[siteName] = located.line
            }
        }
        var draft = draft
        if let index = draft.index {
            if let (other, line) = used.siteIndexes[index.value] {
                error(index.line, "\(what): index \(index.value) is already used by site \"\(other)\" (line \(line)); each site needs its own /64")
                // Addresses derived from a clashing index would only repeat this error.
                draft.index = nil
            } else {
                used.siteIndexes[index.value] = (siteName ?? what, index.line)
            }
        }
        let sitePrefix = checkSitePrefix(draft, ula: ula, used: &used)
        let vip = checkVIP(draft, in: sitePrefix)
        let linkLocalVIP = checkLinkLocalVIP(draft)
        let board = checkBoard(draft)
        if draft.routers.isEmpty, draft.index != nil {
            error(draft.line, "\(what) has no routers; add at least one under \"routers\"")
        }
        let siteMTU = uplinkMTU(draft.uplinkMTU, "\(what) uplink_mtu")
        let routers = checkRouters(of: draft, sitePrefix: sitePrefix, vip: vip, ula: ula, tunnel: tunnel, siteMTU: siteMTU, used: &used)
        guard let siteName, let index = draft.index, let sitePrefix, let vrrpID = draft.vrrpID, let vip else { return nil }
        var nat64 = false
        if let flag = draft.nat64 {
            switch flag.value {
            case "true": nat64 = true
            case "false": nat64 = false
            default: error(flag.line, "\(what) nat64 \(FieldRules.quoted(flag.value)) is neither true nor false")
            }
        }
        return Site(name: siteName, index: index.value, prefix: sitePrefix, vrrpID: vrrpID.value,
                    vip: vip, linkLocalVIP: linkLocalVIP, routers: routers.sorted { $0.slot < $1.slot }, board: board, nat64: nat64)
    }

    /// The site's board: a row of `Board.all` (default `pc-uefi`).
    mutating func checkBoard(_ draft: PlanDraft.SiteDraft) -> Board {
        guard let located = draft.board else { return .default }
        guard let board = Board.named(located.value) else {
            error(located.line, "\(draft.what) board \"\(located.value)\" is not a board edgekit knows; boards: \(Board.all.map(\.name).joined(separator: ", "))")
            return .default
        }
        return board
    }

    /// The site /64: `prefix` if given (a /64 inside the ula), else subnet `index` of the ula; and
    /// no two sites share one.
    mutating func checkSitePrefix(_ draft: PlanDraft.SiteDraft, ula: IPv6Prefix?, used: inout PlanWideUse) -> IPv6Prefix? {
        let what = draft.what
        var sitePrefix: IPv6Prefix?
        if let located = draft.prefix {
            if let value = prefix(located, "\(what) prefix") {
                if value.length != 64 {
                    error(located.line, "\(what) prefix \(value) must be a /64 (SLAAC needs 64-bit interface ids)")
                } else if let ula, !ula.contains(value) {
                    error(located.line, "\(what) prefix \(value) is not inside the plan's ula \(ula)")
                } else {
                    sitePrefix = value
                }
            }
        } else if let ula, let index = draft.index {
            sitePrefix = ula.subnet(UInt64(index.value), length: 64)
        }
        if let sitePrefix {
            let line = draft.prefix?.line ?? draft.index?.line ?? draft.line
            if let (other, otherLine) = used.sitePrefixes[sitePrefix] {
                error(line, "\(what) /64 \(sitePrefix) is already the /64 of \(other) (line \(otherLine))")
            } else {
                used.sitePrefixes[sitePrefix] = (what, line)
            }
        }
        return sitePrefix
    }

    /// The routers' shared LAN address: `vip` if given (inside the site /64), else `<site /64>::1`.
    mutating func checkVIP(_ draft: PlanDraft.SiteDraft, in sitePrefix: IPv6Prefix?) -> IPv6Address? {
        var vip = sitePrefix.flatMap(Plan.Addressing.siteVIP)
        if let located = draft.vip, let value = address(located, "\(draft.what) vip") {
            if let sitePrefix, !sitePrefix.contains(value) {
                error(located.line, "\(draft.what) vip \(value) is not inside the site /64 \(sitePrefix)")
            } else {
                vip = value
            }
        }
        return vip
    }

    mutating func checkLinkLocalVIP(_ draft: PlanDraft.SiteDraft) -> IPv6Address {
        guard let located = draft.linkLocalVIP, let value = address(located, "\(draft.what) link_local_vip") else {
            return Plan.Addressing.defaultLinkLocalVIP
        }
        guard value.isLinkLocal else {
            error(located.line, "\(draft.what) link_local_vip \(value) is not link-local (fe80::/10); VRRPv3 needs a link-local first address")
            return Plan.Addressing.defaultLinkLocalVIP
        }
        return value
    }

    // MARK: - Routers

    mutating func checkRouters(of site: PlanDraft.SiteDraft, sitePrefix: IPv6Prefix?, vip: IPv6Address?,
                               ula: IPv6Prefix?, tunnel: IPv6Prefix?, siteMTU: Int? = nil, used: inout PlanWideUse) -> [Router] {
        var slots: [Int: Int] = [:]
        var priorities: [Int: Int] = [:]
        var routers: [Router] = []
        for draft in site.routers {
            if let slot = draft.slot {
                if let first = slots[slot.value] {
                    error(slot.line, "\(site.what): slot \(slot.value) is used twice (first on line \(first))")
                }
                slots[slot.value] = slot.line
            }
            if let priority = draft.priority, let slot = draft.slot {
                if let otherSlot = priorities[priority.value] {
                    error(priority.line, "\(draft.what): priority \(priority.value) equals router \(otherSlot)'s; priorities within a site must differ so VRRP has one clear master")
                } else {
                    priorities[priority.value] = slot.value
                }
            }
            let (uplink, lan) = checkPorts(draft)
            let tunnelAddress = checkTunnelAddress(draft, site: site, ula: ula, tunnel: tunnel, used: &used)
            let lanAddress = sitePrefix.flatMap { prefix in draft.slot.flatMap { Plan.Addressing.routerLANAddress(in: prefix, slot: $0.value) } }
            // The router's own uplink_mtu, else its site's; nil: defaults.uplink_mtu.
            let routerMTU = uplinkMTU(draft.uplinkMTU, "\(draft.what) uplink_mtu") ?? siteMTU
            if let lanAddress, lanAddress == vip, let line = site.vip?.line {
                error(line, "\(site.what) vip \(lanAddress) is router \(draft.slot!.value)'s own LAN address; pick another (routers use ::<slot+1>)")
            }
            if let slot = draft.slot, let priority = draft.priority, let tunnelAddress, let lanAddress {
                routers.append(Router(
                    slot: slot.value, priority: priority.value, generation: draft.generation?.value ?? 1,
                    uplink: uplink, lan: lan, tunnelAddress: tunnelAddress, lanAddress: lanAddress, uplinkMTU: routerMTU))
            }
        }
        return routers
    }

    /// How the router finds its uplink and LAN ports; they must not be the same interface.
    mutating func checkPorts(_ draft: PlanDraft.RouterDraft) -> (uplink: InterfaceMatch, lan: InterfaceMatch) {
        let uplink = interface(draft.uplink, "\(draft.what) uplink")
        let lan = interface(draft.lan, "\(draft.what) lan")
        if uplink != .auto, uplink == lan, let line = draft.lan?.line {
            error(line, "\(draft.what): uplink and lan are the same interface \"\(lan)\"")
        }
        return (uplink, lan)
    }

    /// The router's tunnel /128: given, or `<tunnel>::1:<index>:<slot>`; inside `tunnel`, outside the
    /// ula, and used by no other router nor the relay.
    mutating func checkTunnelAddress(_ draft: PlanDraft.RouterDraft, site: PlanDraft.SiteDraft, ula: IPv6Prefix?,
                                     tunnel: IPv6Prefix?, used: inout PlanWideUse) -> IPv6Address? {
        var tunnelAddress: IPv6Address?
        if let slot = draft.slot, let index = site.index, let tunnel {
            tunnelAddress = Plan.Addressing.routerTunnelAddress(in: tunnel, siteIndex: index.value, slot: slot.value)
        }
        if let located = draft.tunnelAddress, let value = address(located, "\(draft.what) tunnel_address") {
            tunnelAddress = value
            if let tunnel, !tunnel.contains(value) {
                error(located.line, "\(draft.what) tunnel_address \(value) is outside tunnel \(tunnel)")
            }
        }
        guard let tunnelAddress else { return nil }
        let line = draft.tunnelAddress?.line ?? draft.line
        if let ula, ula.contains(tunnelAddress) {
            error(line, "\(draft.what) tunnel address \(tunnelAddress) is inside the plan's ula \(ula); it must lie outside")
        }
        if let (other, otherLine) = used.tunnelAddresses[tunnelAddress] {
            error(line, "\(draft.what) tunnel address \(tunnelAddress) is already used by \(other) (line \(otherLine))")
        } else {
            used.tunnelAddresses[tunnelAddress] = (draft.what, line)
        }
        return tunnelAddress
    }
}

// MARK: - The servers' mesh

extension PlanChecker {
    /// `mesh.prefix`: a ULA range of /96 or larger, outside the plan's `ula` and `tunnel`;
    /// `mesh.port`: inside `defaults.server_wireguard_ports`, the ports the relay forwards.
    mutating func checkMesh(_ draft: PlanDraft.MeshDraft, ula: IPv6Prefix?, tunnel: IPv6Prefix?, defaults: Defaults) -> Mesh? {
        let ports = defaults.serverWireGuardPorts
        var port = ports.lowerBound
        if let located = draft.port {
            port = UInt16(located.value)
            if !ports.contains(port) {
                error(located.line, "mesh.port \(port) is outside defaults.server_wireguard_ports \(FieldRules.portRangeText(ports)); the relay forwards only those ports between sites")
            }
        }
        guard let located = draft.prefix, let value = prefix(located, "mesh.prefix") else { return nil }
        if !IPv6Prefix("fd00::/8")!.contains(value) {
            error(located.line, "mesh.prefix \(value) is not a unique local range inside fd00::/8 (RFC 4193): use fd plus 40 random bits, as `edgekit plan init` makes the tunnel")
            return nil
        }
        if value.length > 96 {
            error(located.line, "mesh.prefix \(value) is too small: use a /96 or larger (a /64 is usual)")
            return nil
        }
        if let ula, value.overlaps(ula) {
            error(located.line, "mesh.prefix \(value) overlaps the plan's ula \(ula); the mesh needs its own range")
            return nil
        }
        if let tunnel, value.overlaps(tunnel) {
            error(located.line, "mesh.prefix \(value) overlaps the plan's tunnel \(tunnel); the mesh needs its own range")
            return nil
        }
        guard ports.contains(port) else { return nil }
        return Mesh(prefix: value, port: port)
    }

    /// Every server: a unique DNS-safe name on a site of the plan, a token that gives it its own
    /// address on the site LAN (not the VIP's, not a router's, not another server's), a unique
    /// /128 inside the mesh.
    mutating func checkServers(_ draft: PlanDraft, sites: [Site], mesh: Mesh?) -> [Server] {
        guard !draft.servers.isEmpty else { return [] }
        if draft.mesh == nil {
            error(draft.serversLine, "servers need a mesh: add \"mesh:\" with a \"prefix\" (a ULA range outside ula and tunnel, e.g. a /64)")
        }
        var names: [String: Int] = [:]
        var siteAddresses: [IPv6Address: (owner: String, line: Int)] = [:]
        var meshAddresses: [IPv6Address: (owner: String, line: Int)] = [:]
        var servers: [Server] = []
        for server in draft.servers {
            let what = server.what
            let serverName = name(server.name, "server name")
            if let serverName, let located = server.name {
                if let first = names[serverName] {
                    error(located.line, "server name \"\(serverName)\" is already used on line \(first); server names must be unique")
                } else {
                    names[serverName] = located.line
                }
            }
            var site: Site?
            if let located = server.site {
                site = sites.first { $0.name == located.value }
                if site == nil, !sites.isEmpty {
                    error(located.line, "\(what) site \(FieldRules.quoted(located.value)) is not a site of the plan (sites: \(sites.map(\.name).joined(separator: ", ")))")
                }
            }
            let token = checkToken(server, name: serverName)
            var siteAddress: IPv6Address?
            if let site, let token {
                let address = Plan.Addressing.serverSiteAddress(in: site.prefix, token: token)
                let line = server.token?.line ?? server.line
                if address == site.vip || address == site.linkLocalVIP {
                    error(line, "\(what) address \(address) on site \"\(site.name)\" is the site's VIP; pick another token")
                } else if let router = site.routers.first(where: { $0.lanAddress == address }) {
                    error(line, "\(what) address \(address) on site \"\(site.name)\" is router \(router.slot)'s LAN address; pick another token (routers use ::<slot+1>)")
                } else if let (other, otherLine) = siteAddresses[address] {
                    error(line, "\(what) address \(address) on site \"\(site.name)\" is already \(other)'s (line \(otherLine)); give one of them another token")
                } else {
                    siteAddresses[address] = (what, line)
                    siteAddress = address
                }
            }
            let meshAddress = checkMeshAddress(server, name: serverName, mesh: mesh, used: &meshAddresses)
            if let serverName, let site, let token, let siteAddress, let meshAddress {
                servers.append(Server(name: serverName, site: site.name, token: token, siteAddress: siteAddress,
                                      meshAddress: meshAddress, generation: server.generation?.value ?? 1))
            }
        }
        return servers
    }

    /// `token`: an interface identifier written as an address, `::10`: upper 64 bits zero, not `::`.
    /// Default: `::<FNV-1a of the name>` (docs/plan.md, "Addressing").
    mutating func checkToken(_ server: PlanDraft.ServerDraft, name: String?) -> IPv6Address? {
        guard let located = server.token else { return name.map(Plan.Addressing.serverToken) }
        guard let value = IPv6Address(located.value) else {
            error(located.line, "\(server.what) token \(FieldRules.quoted(located.value)) is not an interface token such as ::10")
            return nil
        }
        guard value.high == 0, value.low != 0 else {
            error(located.line, "\(server.what) token \(value) must be an interface identifier such as ::10: only the lower 64 bits set, not ::")
            return nil
        }
        return value
    }

    /// `address`: the server's mesh /128, inside `mesh.prefix` and not its first address; unique.
    /// Default: the mesh prefix with the name's FNV-1a as host part.
    mutating func checkMeshAddress(_ server: PlanDraft.ServerDraft, name: String?, mesh: Mesh?,
                                   used: inout [IPv6Address: (owner: String, line: Int)]) -> IPv6Address? {
        guard let mesh else {
            if let located = server.address { _ = address(located, "\(server.what) address") }
            return nil
        }
        var meshAddress = name.flatMap { Plan.Addressing.serverMeshAddress(in: mesh.prefix, name: $0) }
        if let located = server.address {
            guard let value = address(located, "\(server.what) address") else { return nil }
            guard mesh.prefix.contains(value) else {
                error(located.line, "\(server.what) address \(value) is outside mesh.prefix \(mesh.prefix)")
                return nil
            }
            meshAddress = value
        }
        guard let meshAddress else { return nil }
        let line = server.address?.line ?? server.line
        if meshAddress == mesh.prefix.address {
            error(line, "\(server.what) mesh address \(meshAddress) is mesh.prefix's first address (the subnet-router anycast, RFC 4291 section 2.6.1); set \"address\" to another")
            return nil
        }
        if let (other, otherLine) = used[meshAddress] {
            error(line, "\(server.what) mesh address \(meshAddress) is already \(other)'s (line \(otherLine)); set \"address\" for one of them")
            return nil
        }
        used[meshAddress] = (server.what, line)
        return meshAddress
    }
}

// MARK: - Clients

extension PlanChecker {
    /// `client_prefix`: a /64 inside the plan's `ula` that is no site's; by default the /48's last
    /// /64 (`ula:ffff::/64`), which a site with index 65535 would clash with once there are clients.
    mutating func checkClientPrefix(_ located: Located<String>?, ula: IPv6Prefix, sites: [Site]) -> IPv6Prefix? {
        var value = Plan.Addressing.defaultClientPrefix(in: ula)
        let line = located?.line ?? 1
        if let located {
            guard let given = prefix(located, "client_prefix") else { return nil }
            guard given.length == 64, ula.contains(given) else {
                error(located.line, "client_prefix \(given) must be a /64 inside the plan's ula \(ula): routers route the /48 to the relay, so clients are reached through it")
                return nil
            }
            value = given
        }
        if let site = sites.first(where: { $0.prefix == value }) {
            let fix = located == nil ? "give the site another index, or set client_prefix to a free /64 of the ula" : "pick a /64 no site uses"
            error(line, "client_prefix \(value) is site \"\(site.name)\"'s /64; \(fix)")
            return nil
        }
        return value
    }

    /// Every client: a unique DNS-safe name, a unique /128 inside the client prefix (not its first
    /// address), a generation.
    mutating func checkClients(_ draft: PlanDraft, prefix: IPv6Prefix?) -> [Client] {
        var names: [String: Int] = [:]
        var addresses: [IPv6Address: (owner: String, line: Int)] = [:]
        var clients: [Client] = []
        for client in draft.clients {
            let what = client.what
            let clientName = name(client.name, "client name")
            if let clientName, let located = client.name {
                if let first = names[clientName] {
                    error(located.line, "client name \"\(clientName)\" is already used on line \(first); client names must be unique")
                    continue
                } else {
                    names[clientName] = located.line
                }
            }
            guard let prefix else {
                if let located = client.address { _ = address(located, "\(what) address") }
                continue
            }
            var clientAddress = clientName.flatMap { Plan.Addressing.clientAddress(in: prefix, name: $0) }
            let line = client.address?.line ?? client.line
            if let located = client.address {
                guard let value = address(located, "\(what) address") else { continue }
                guard prefix.contains(value) else {
                    error(located.line, "\(what) address \(value) is outside client_prefix \(prefix)")
                    continue
                }
                clientAddress = value
            }
            guard let clientAddress else { continue }
            if clientAddress == prefix.address {
                error(line, "\(what) address \(clientAddress) is client_prefix's first address (the subnet-router anycast, RFC 4291 section 2.6.1); set \"address\" to another")
                continue
            }
            if let (other, otherLine) = addresses[clientAddress] {
                error(line, "\(what) address \(clientAddress) is already \(other)'s (line \(otherLine)); set \"address\" for one of them")
                continue
            }
            addresses[clientAddress] = (what, line)
            if let clientName {
                clients.append(Client(name: clientName, address: clientAddress, generation: client.generation?.value ?? 1))
            }
        }
        return clients
    }
}

// MARK: - NAT64

extension PlanChecker {
    /// `nat64:` (docs/nat64.md): `prefix` a /96 inside the plan's `ula` whose /64 is no site's and
    /// not the clients'; `dns_forward` IP addresses. Checked when written or when a site turns NAT64 on.
    mutating func checkNAT64(_ draft: PlanDraft, ula: IPv6Prefix, sites: [Site], clientPrefix: IPv6Prefix?) -> NAT64? {
        guard draft.nat64 != nil || sites.contains(where: \.nat64) else { return nil }
        var value = NAT64(prefix: Plan.Addressing.defaultNAT64Prefix(in: ula))
        let line = draft.nat64?.prefix?.line ?? draft.nat64?.line ?? 1
        if let located = draft.nat64?.prefix {
            guard let given = prefix(located, "nat64.prefix") else { return nil }
            guard given.length == 96, ula.contains(given) else {
                error(located.line, "nat64.prefix \(given) must be a /96 inside the plan's ula \(ula): routers send the /48 to the relay, so its NAT64 is reached through it")
                return nil
            }
            value.prefix = given
        }
        if let site = sites.first(where: { $0.prefix == value.network }) {
            let fix = draft.nat64?.prefix == nil ? "give the site another index, or set nat64.prefix to a /96 of a free /64" : "pick a /96 of a /64 no site uses"
            error(line, "nat64.prefix \(value.prefix) is inside site \"\(site.name)\"'s /64; \(fix)")
            return nil
        }
        if let clientPrefix, clientPrefix == value.network {
            error(line, "nat64.prefix \(value.prefix) is inside client_prefix \(clientPrefix); the two need their own /64s")
            return nil
        }
        for server in draft.nat64?.dnsForward ?? [] {
            guard IPv6Address(server.value) != nil || RelayConfig.isIPv4(server.value) else {
                error(server.line, "nat64.dns_forward \(FieldRules.quoted(server.value)) is not an IP address (e.g. 9.9.9.9 or 2620:fe::fe)")
                continue
            }
            value.dnsForward.append(server.value)
        }
        return value
    }
}
