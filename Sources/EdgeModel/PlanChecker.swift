import Foundation

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

    mutating func resolve(_ draft: PlanDraft) -> Plan? {
        let planName = name(draft.name, "plan name")
        var ula = prefix(draft.ula, "ula")
        if let located = draft.ula, let value = ula {
            let ulaSpace = IPv6Prefix("fd00::/8")!
            if value.length != 48 {
                error(located.line, "ula must be a /48 (RFC 4193), found /\(value.length)")
                ula = nil
            } else if !ulaSpace.contains(value) {
                error(located.line, "ula \(value) is not inside fd00::/8; generate one with `edgekit plan init` (RFC 4193 section 3.2)")
                ula = nil
            }
        }
        var tunnel = prefix(draft.tunnel, "tunnel")
        if let located = draft.tunnel, let value = tunnel {
            if value.length > 96 {
                error(located.line, "tunnel \(value) is too small: use a /96 or larger (a /64 is usual)")
                tunnel = nil
            } else if let ula, value.overlaps(ula) {
                error(located.line, "tunnel \(value) overlaps the plan's ula \(ula); tunnel addresses must lie outside the /48")
                tunnel = nil
            }
        }

        // Relay.
        var relay: Relay?
        if let draftRelay = draft.relay {
            var host: String?
            if let located = draftRelay.host {
                if PlanChecker.isDNSName(located.value) {
                    host = located.value
                } else {
                    error(located.line, "relay.host \"\(located.value)\" is not a DNS name (lower-case labels separated by dots, e.g. relay.example.net)")
                }
            }
            let wgPort = UInt16(draftRelay.wireguardPort?.value ?? Int(Relay.defaultWireGuardPort))
            let regPort = UInt16(draftRelay.registrationPort?.value ?? Int(Relay.defaultRegistrationPort))
            if wgPort == regPort {
                error(draftRelay.registrationPort?.line ?? draftRelay.line, "relay.registration_port \(regPort) is the same as relay.wireguard_port; they must differ")
            }
            var tunnelAddress = tunnel.flatMap(Plan.Addressing.relayTunnelAddress)
            if let located = draftRelay.tunnelAddress, let address = address(located, "relay.tunnel_address") {
                tunnelAddress = address
                if let tunnel, !tunnel.contains(address) {
                    error(located.line, "relay.tunnel_address \(address) is outside tunnel \(tunnel)")
                }
            }
            if let host, let tunnelAddress, wgPort != regPort {
                relay = Relay(host: host, wireguardPort: wgPort, registrationPort: regPort, tunnelAddress: tunnelAddress)
            }
        }

        // Defaults.
        var defaults = Defaults()
        if let mtu = draft.defaults.uplinkMTU {
            defaults.uplinkMTU = mtu.value
            if defaults.innerMTU < 1280 {
                error(mtu.line, "defaults.uplink_mtu \(mtu.value) leaves \(defaults.innerMTU) bytes inside two WireGuard layers; IPv6 needs 1280, so use \(1280 + 2 * Defaults.wireGuardOverhead) or more")
            }
        }
        if let keepalive = draft.defaults.keepalive { defaults.keepalive = keepalive.value }
        if let interval = draft.defaults.vrrpAdvertInterval {
            // VRRPv3 carries the interval in centiseconds in 12 bits (RFC 5798 section 5.2.7).
            if let seconds = Double(interval.value), seconds.isFinite, (0.01...40.95).contains(seconds),
                abs(seconds * 100 - (seconds * 100).rounded()) < 1e-6 {
                defaults.vrrpAdvertIntervalCentiseconds = Int((seconds * 100).rounded())
            } else {
                error(interval.line, "defaults.vrrp_advert_interval \"\(interval.value)\" must be seconds between 0.01 and 40.95 in steps of 0.01 (VRRPv3)")
            }
        }
        if let ports = draft.defaults.serverPorts {
            let parts = ports.value.split(separator: "-", omittingEmptySubsequences: false)
            if parts.count == 2, let low = UInt16(parts[0].trimmingCharacters(in: .whitespaces)),
                let high = UInt16(parts[1].trimmingCharacters(in: .whitespaces)), low >= 1, low <= high {
                defaults.serverWireGuardPorts = low...high
            } else {
                error(ports.line, "defaults.server_wireguard_ports \"\(ports.value)\" must be a port range LOW-HIGH within 1–65535, e.g. 58000-60000")
            }
        }

        // Sites.
        var sites: [Site] = []
        var siteNames: [String: Int] = [:]
        var siteIndexes: [Int: (String, Int)] = [:]
        var sitePrefixes: [(IPv6Prefix, String, Int)] = []
        var tunnelAddresses: [IPv6Address: (String, Int)] = [:]
        if let relay { tunnelAddresses[relay.tunnelAddress] = ("the relay", draft.relay?.tunnelAddress?.line ?? draft.relay?.line ?? 0) }
        if draft.sites.isEmpty, draft.sitesLine > 0, !diagnostics.contains(where: { $0.line == draft.sitesLine }) {
            error(draft.sitesLine, "sites is empty; a plan needs at least one site")
        }
        for siteDraft in draft.sites {
            let what = siteDraft.what
            let siteName = name(siteDraft.name, "site name")
            if let siteName, let located = siteDraft.name {
                if let first = siteNames[siteName] {
                    error(located.line, "site name \"\(siteName)\" is already used on line \(first); site names must be unique")
                } else {
                    siteNames[siteName] = located.line
                }
            }
            var siteDraft = siteDraft
            if let index = siteDraft.index {
                if let (other, line) = siteIndexes[index.value] {
                    error(index.line, "\(what): index \(index.value) is already used by site \"\(other)\" (line \(line)); each site needs its own /64")
                    // Addresses derived from a clashing index would only repeat this error.
                    siteDraft.index = nil
                } else {
                    siteIndexes[index.value] = (siteName ?? what, index.line)
                }
            }
            var sitePrefix: IPv6Prefix?
            if let located = siteDraft.prefix {
                if let value = prefix(located, "\(what) prefix") {
                    if value.length != 64 {
                        error(located.line, "\(what) prefix \(value) must be a /64 (SLAAC needs 64-bit interface ids)")
                    } else if let ula, !ula.contains(value) {
                        error(located.line, "\(what) prefix \(value) is not inside the plan's ula \(ula)")
                    } else {
                        sitePrefix = value
                    }
                }
            } else if let ula, let index = siteDraft.index {
                sitePrefix = ula.subnet(UInt64(index.value), length: 64)
            }
            if let sitePrefix {
                let line = siteDraft.prefix?.line ?? siteDraft.index?.line ?? siteDraft.line
                if let (_, other, otherLine) = sitePrefixes.first(where: { $0.0 == sitePrefix }) {
                    error(line, "\(what) /64 \(sitePrefix) is already the /64 of \(other) (line \(otherLine))")
                }
                sitePrefixes.append((sitePrefix, what, line))
            }
            var vip = sitePrefix.flatMap(Plan.Addressing.siteVIP)
            if let located = siteDraft.vip, let value = address(located, "\(what) vip") {
                if let sitePrefix, !sitePrefix.contains(value) {
                    error(located.line, "\(what) vip \(value) is not inside the site /64 \(sitePrefix)")
                } else {
                    vip = value
                }
            }
            var linkLocalVIP = Plan.Addressing.defaultLinkLocalVIP
            if let located = siteDraft.linkLocalVIP, let value = address(located, "\(what) link_local_vip") {
                if value.isLinkLocal { linkLocalVIP = value } else {
                    error(located.line, "\(what) link_local_vip \(value) is not link-local (fe80::/10); VRRPv3 needs a link-local first address")
                }
            }

            // Routers.
            var routers: [Router] = []
            var slots: [Int: Int] = [:]
            var priorities: [Int: (Int, Int)] = [:]
            if siteDraft.routers.isEmpty, siteDraft.index != nil {
                error(siteDraft.line, "\(what) has no routers; add at least one under \"routers\"")
            }
            for routerDraft in siteDraft.routers {
                let rwhat = routerDraft.what
                if let slot = routerDraft.slot {
                    if let first = slots[slot.value] {
                        error(slot.line, "\(what): slot \(slot.value) is used twice (first on line \(first))")
                    }
                    slots[slot.value] = slot.line
                }
                if let priority = routerDraft.priority, let slot = routerDraft.slot {
                    if let (otherSlot, _) = priorities[priority.value] {
                        error(priority.line, "\(rwhat): priority \(priority.value) equals router \(otherSlot)'s; priorities within a site must differ so VRRP has one clear master")
                    } else {
                        priorities[priority.value] = (slot.value, priority.line)
                    }
                }
                let uplink = interface(routerDraft.uplink, "\(rwhat) uplink")
                let lan = interface(routerDraft.lan, "\(rwhat) lan")
                if uplink != .auto, uplink == lan, let line = routerDraft.lan?.line {
                    error(line, "\(rwhat): uplink and lan are the same interface \"\(lan)\"")
                }
                var tunnelAddress: IPv6Address?
                if let slot = routerDraft.slot, let index = siteDraft.index, let tunnel {
                    tunnelAddress = Plan.Addressing.routerTunnelAddress(in: tunnel, siteIndex: index.value, slot: slot.value)
                }
                if let located = routerDraft.tunnelAddress, let value = address(located, "\(rwhat) tunnel_address") {
                    tunnelAddress = value
                    if let tunnel, !tunnel.contains(value) {
                        error(located.line, "\(rwhat) tunnel_address \(value) is outside tunnel \(tunnel)")
                    }
                }
                if let tunnelAddress {
                    let line = routerDraft.tunnelAddress?.line ?? routerDraft.line
                    if let ula, ula.contains(tunnelAddress) {
                        error(line, "\(rwhat) tunnel address \(tunnelAddress) is inside the plan's ula \(ula); it must lie outside")
                    }
                    if let (other, otherLine) = tunnelAddresses[tunnelAddress] {
                        error(line, "\(rwhat) tunnel address \(tunnelAddress) is already used by \(other) (line \(otherLine))")
                    } else {
                        tunnelAddresses[tunnelAddress] = (rwhat, line)
                    }
                }
                let lanAddress = sitePrefix.flatMap { prefix in routerDraft.slot.flatMap { Plan.Addressing.routerLANAddress(in: prefix, slot: $0.value) } }
                if let lanAddress, lanAddress == vip, let line = siteDraft.vip?.line {
                    error(line, "\(what) vip \(lanAddress) is router \(routerDraft.slot!.value)'s own LAN address; pick another (routers use ::<slot+1>)")
                }
                if let slot = routerDraft.slot, let priority = routerDraft.priority, let tunnelAddress, let lanAddress {
                    routers.append(Router(
                        slot: slot.value, priority: priority.value, generation: routerDraft.generation?.value ?? 1,
                        uplink: uplink, lan: lan, tunnelAddress: tunnelAddress, lanAddress: lanAddress))
                }
            }
            if let siteName, let index = siteDraft.index, let sitePrefix, let vrrpID = siteDraft.vrrpID, let vip {
                sites.append(Site(
                    name: siteName, index: index.value, prefix: sitePrefix, vrrpID: vrrpID.value,
                    vip: vip, linkLocalVIP: linkLocalVIP, routers: routers.sorted { $0.slot < $1.slot }))
            }
        }
        guard diagnostics.isEmpty, let planName, let ula, let tunnel, let relay else { return nil }
        return Plan(name: planName, ula: ula, tunnel: tunnel, relay: relay, defaults: defaults, sites: sites)
    }
}
