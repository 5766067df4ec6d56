import EdgeModel
import EdgeRender
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The tunnel MTU from the uplink that is really there (docs/network.md, "MTU").
///
/// The plan renders `uplink_mtu - 80`; on a PPPoE (1492), DS-Lite (1460) or LTE (1420-1428) uplink
/// that is too big, and every full-size packet leaves the router as two fragments of WireGuard. At
/// run time the agent takes the smaller of the uplink's link MTU (what DHCP option 26 or an RA's MTU
/// option set on it) and the plan's `uplink_mtu` for this router, and subtracts WireGuard's overhead
/// for the address family the relay's endpoint really has: 60 bytes over IPv4, 80 over IPv6.
public enum TunnelMTU {
    /// The outer header WireGuard puts around each packet on the way to the relay.
    public enum OuterFamily: String, Sendable, Equatable {
        case ipv4 = "IPv4"
        case ipv6 = "IPv6"

        /// 20 (IPv4) or 40 (IPv6) + 8 UDP + 32 WireGuard (16 header + 16 authentication tag).
        public var overhead: Int {
            switch self {
            case .ipv4: Defaults.wireGuardOverheadIPv4
            case .ipv6: Defaults.wireGuardOverhead
            }
        }
    }

    /// The tunnel MTU for an uplink whose link carries `linkMTU` and whose plan says `plannedUplinkMTU`:
    /// the smaller of the two (the plan's value caps what the link claims: a DS-Lite softwire or an
    /// LTE modem behind Ethernet shows 1500 on the link and carries less), minus `family`'s overhead,
    /// and no more than `relayMTU`, the relay's own tunnel MTU (`defaults.uplink_mtu - 80`): anything
    /// bigger could not go on to another site anyway. Below it, a multiple of 16, so the relay's
    /// WireGuard padding never makes a packet bigger than the uplink carries. Never below 1280: the
    /// kernel turns IPv6 off on a link below IPv6's minimum (RFC 8200 section 5), and the tunnel
    /// carries only IPv6. (`Defaults.tunnelMTU(payload:relayMTU:)`.)
    public static func tunnelMTU(linkMTU: Int, plannedUplinkMTU: Int, relayMTU: Int, family: OuterFamily) -> Int {
        Defaults.tunnelMTU(payload: min(linkMTU, plannedUplinkMTU) - family.overhead, relayMTU: relayMTU)
    }

    /// The address family of a WireGuard endpoint as `wg show … endpoints` prints it (`[ADDRESS]:PORT`
    /// for IPv6, `ADDRESS:PORT` for IPv4), or nil when there is none yet. An IPv4-mapped IPv6 address
    /// (`[::ffff:192.0.2.1]`) travels as IPv4.
    public static func family(ofEndpoint endpoint: String?) -> OuterFamily? {
        guard let endpoint, let host = endpointHost(endpoint), !host.isEmpty else { return nil }
        if host.contains(":") {
            return host.lowercased().hasPrefix("::ffff:") && host.contains(".") ? .ipv4 : .ipv6
        }
        return .ipv4
    }

    /// The `mtu N` of `ip -o link show` output, or nil.
    static func parseLinkMTU(_ output: String) -> Int? {
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard let index = words.firstIndex(of: "mtu"), words.index(after: index) < words.endIndex else { return nil }
        return Int(words[words.index(after: index)])
    }
}

/// The supervisor's watch over the tunnel MTU: every `interval` seconds it reads the uplink's and the
/// tunnel's MTU and the relay endpoint's family, and sets the tunnel's MTU when it differs from what
/// they call for (a changed uplink MTU, a relay now reached over the other family, or a restarted
/// tunnel back at its rendered MTU). Each new state is logged once.
public struct TunnelMTUWatch: Sendable {
    /// What one look found and did.
    public enum Outcome: Sendable, Equatable {
        /// The tunnel's MTU was `from` and is now `to`.
        case set(from: Int, to: Int, uplinkMTU: Int, family: TunnelMTU.OuterFamily)
        /// The tunnel already had the right MTU.
        case unchanged(mtu: Int)
        /// The uplink is not there (or `ip` could not read it).
        case noUplink(String)
        /// The tunnel interface is not there (the tunnel check reports that already).
        case noTunnel
        /// Setting the MTU failed.
        case failed(String)
    }

    /// Seconds between looks. DHCP and RAs change an uplink's MTU rarely; a few seconds is soon enough.
    public var interval: TimeInterval
    /// The `ip` tool (the service manager's: the lab may wrap it).
    public var ip: String
    var nextCheck = Date.distantPast
    var lastLogged: String?
    /// The tunnel's MTU at the last look (what the registration reports to the relay); nil before
    /// the first look or while the tunnel is not there.
    public private(set) var mtu: Int?

    public init(interval: TimeInterval = 5, ip: String = "ip") {
        self.interval = interval
        self.ip = ip
    }

    /// Looks once (when due at `now`; nil otherwise) and sets the tunnel's MTU if it must change.
    /// `endpoint` is the relay peer's endpoint as WireGuard has it; without one the tunnel is sized for
    /// IPv6, the larger overhead, until WireGuard knows where the relay is.
    public mutating func check(now: Date, uplink: String, tunnel: String, plannedUplinkMTU: Int, relayMTU: Int,
                               endpoint: String?, logger: AgentLogger) -> Outcome? {
        guard now >= nextCheck else { return nil }
        nextCheck = now.addingTimeInterval(interval)
        let outcome = look(uplink: uplink, tunnel: tunnel, plannedUplinkMTU: plannedUplinkMTU, relayMTU: relayMTU, endpoint: endpoint)
        switch outcome {
        case .set(_, let to, _, _): mtu = to
        case .unchanged(let current): mtu = current
        case .noTunnel: mtu = nil
        case .noUplink, .failed: break
        }
        log(outcome, plannedUplinkMTU: plannedUplinkMTU, relayMTU: relayMTU,
            endpointKnown: TunnelMTU.family(ofEndpoint: endpoint) != nil, tunnel: tunnel, logger: logger)
        return outcome
    }

    func look(uplink: String, tunnel: String, plannedUplinkMTU: Int, relayMTU: Int, endpoint: String?) -> Outcome {
        guard let uplinkMTU = linkMTU(uplink) else { return .noUplink(uplink) }
        guard let current = linkMTU(tunnel) else { return .noTunnel }
        let family = TunnelMTU.family(ofEndpoint: endpoint) ?? .ipv6
        let wanted = TunnelMTU.tunnelMTU(linkMTU: uplinkMTU, plannedUplinkMTU: plannedUplinkMTU, relayMTU: relayMTU, family: family)
        guard wanted != current else { return .unchanged(mtu: current) }
        do {
            let result = try SystemCommand.run(ip, ["link", "set", "dev", tunnel, "mtu", String(wanted)])
            guard result.succeeded else {
                return .failed("ip link set dev \(tunnel) mtu \(wanted): \(result.errorText)")
            }
        } catch {
            return .failed("ip link set dev \(tunnel) mtu \(wanted): \(error)")
        }
        return .set(from: current, to: wanted, uplinkMTU: uplinkMTU, family: family)
    }

    /// The kernel's MTU of `interface`, or nil when it is not there.
    func linkMTU(_ interface: String) -> Int? {
        guard let result = try? SystemCommand.run(ip, ["-o", "link", "show", "dev", interface]), result.succeeded else { return nil }
        return TunnelMTU.parseLinkMTU(result.output)
    }

    mutating func log(_ outcome: Outcome, plannedUplinkMTU: Int, relayMTU: Int, endpointKnown: Bool, tunnel: String, logger: AgentLogger) {
        let message: String
        var level = AgentLogger.Level.info
        switch outcome {
        case .unchanged:
            // In step: the next change (even back to a state seen before) is news again.
            lastLogged = nil
            return
        case .noTunnel:
            return
        case .set(let from, let to, let uplinkMTU, let family):
            // "tunnel MTU 1420 → 1392: uplink MTU 1480, relay over IPv6"
            var why = "uplink MTU \(uplinkMTU)"
            if plannedUplinkMTU < uplinkMTU { why += " (plan uplink_mtu \(plannedUplinkMTU))" }
            why += endpointKnown ? ", relay over \(family.rawValue)" : ", relay address not known yet (sized for IPv6)"
            if to == relayMTU, min(uplinkMTU, plannedUplinkMTU) - family.overhead > relayMTU { why += ", no more than the relay's \(relayMTU)" }
            message = "tunnel MTU \(from) → \(to): \(why)"
            if min(uplinkMTU, plannedUplinkMTU) - family.overhead < Defaults.ipv6MinimumMTU {
                level = .warning
            }
        case .noUplink(let uplink):
            message = "tunnel MTU: uplink \(uplink) is not there; \(tunnel) keeps its MTU"
            level = .warning
        case .failed(let why):
            message = "tunnel MTU: \(why)"
            level = .warning
        }
        guard message != lastLogged else { return }
        lastLogged = message
        logger.log(level: level, "\(message)")
    }
}

extension Supervisor {
    /// The tunnel MTU follows the uplink's real MTU and the relay's address family (`TunnelMTUWatch`);
    /// called from `step()`.
    /// Each relay's tunnel on its own: the outer family is per relay (one may be reached over IPv4,
    /// another over IPv6).
    func checkTunnelMTU(now: Date) {
        // `--services none` runs no tunnel: no interface of this host is the router's to change.
        guard agent.services.name != "none", let profile = appliedProfile() else { return }
        for (relay, interface) in profile.plan.tunnels {
            var watch = tunnelMTUs[interface] ?? TunnelMTUWatch()
            guard now >= watch.nextCheck else { continue }
            watch.ip = agent.services.ipTool
            let endpoint = tunnel.endpoint(relayPublicKey: relay.publicKey)
            let before = watch.mtu
            _ = watch.check(now: now, uplink: InterfaceNames.uplink(of: profile.router), tunnel: interface,
                            plannedUplinkMTU: profile.router.uplinkMTU ?? profile.plan.defaults.uplinkMTU,
                            relayMTU: profile.plan.defaults.tunnelMTU, endpoint: endpoint, logger: logger)
            tunnelMTUs[interface] = watch
            // The relay routes the site with the tunnel's MTU: tell it when that changed.
            if before != nil, watch.mtu != nil, watch.mtu != before { registerAgainForReport() }
        }
    }
}
