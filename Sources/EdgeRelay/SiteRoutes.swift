import EdgeSystem
import Foundation

/// Routes that give a site's /64 its tunnel's MTU on the relay's interface (docs/relay.md, "Site MTU").
///
/// The relay has one WireGuard interface for every router, at the plan's `uplink_mtu - 80`. A site
/// on a smaller uplink (PPPoE, DS-Lite, LTE) has a smaller tunnel, which its router reports in each
/// REGISTER. A packet bigger than that, from a site with a bigger tunnel, would leave the relay and
/// be fragmented on the way to the small site (or lost where fragments are dropped). A route for the
/// site's /64 with `mtu lock N` makes the relay's kernel answer it with ICMPv6 packet-too-big
/// instead, as a router on the path must (Linux applies a route's MTU to forwarded packets only
/// when it is locked), and the sender sends smaller packets.
///
/// Only sites whose owner (the master's router) reported a tunnel MTU below the interface's get a
/// route; the plan's /48 route covers the rest. Routes are marked `proto 74`, so the relay finds and
/// replaces its own and no other.
public struct SiteRoutes: Sendable {
    /// The routing protocol number that marks the relay's site routes (`ip route … proto 74`).
    public static let protocolNumber = 74

    public let interface: String
    /// The `ip` tool.
    let ip: String
    /// The site routes on the interface now: /64 → MTU.
    public private(set) var installed: [String: Int] = [:]
    /// The interface's MTU when `load` last read it; nil until then or when it could not.
    public private(set) var interfaceMTU: Int?

    public init(interface: String, ip: String = "ip") {
        self.interface = interface
        self.ip = ip
    }

    /// One route to add, change or remove.
    public enum Change: Sendable, Equatable {
        case route(prefix: String, mtu: Int)
        case remove(prefix: String)
    }

    /// The changes that make the routes of `prefixes` what `desired` says (/64 → the owner's tunnel
    /// MTU; a /64 missing from it has no owner or no reported MTU): a route where the MTU is below the
    /// interface's, none otherwise. Sorted by prefix.
    public static func changes(installed: [String: Int], desired: [String: Int], prefixes: Set<String>, interfaceMTU: Int) -> [Change] {
        prefixes.sorted().compactMap { prefix in
            let wanted = desired[prefix].flatMap { $0 < interfaceMTU ? $0 : nil }
            switch (installed[prefix], wanted) {
            case (let have?, let want?) where have == want: return nil
            case (_, let want?): return .route(prefix: prefix, mtu: want)
            case (.some, nil): return .remove(prefix: prefix)
            case (nil, nil): return nil
            }
        }
    }

    /// `ip -6 -batch` lines for `changes`.
    public func batch(_ changes: [Change]) -> String {
        changes.map { change in
            switch change {
            case .route(let prefix, let mtu):
                "route replace \(prefix) dev \(interface) proto \(Self.protocolNumber) mtu lock \(mtu)\n"
            case .remove(let prefix):
                "route del \(prefix) dev \(interface) proto \(Self.protocolNumber)\n"
            }
        }.joined()
    }

    /// Reads the interface's MTU and the site routes it holds (a restarted relay takes over the
    /// routes of the one before; a re-created interface has none).
    public mutating func load() throws {
        let link = try SystemCommand.check(ip, ["-o", "link", "show", "dev", interface], what: "reading the MTU of \(interface)")
        interfaceMTU = Self.parseLinkMTU(link.output)
        let routes = try SystemCommand.check(ip, ["-6", "route", "show", "dev", interface, "proto", String(Self.protocolNumber)],
                                             what: "reading the site routes on \(interface)")
        installed = Self.parseRoutes(routes.output)
    }

    /// Applies `changes` with one `ip -batch` (`-force`: one failed line does not stop the others);
    /// `installed` follows what was asked, and a failure throws after the batch ran.
    public mutating func apply(_ changes: [Change]) throws {
        guard !changes.isEmpty else { return }
        defer {
            for change in changes {
                switch change {
                case .route(let prefix, let mtu): installed[prefix] = mtu
                case .remove(let prefix): installed[prefix] = nil
                }
            }
        }
        try SystemCommand.check(ip, ["-6", "-force", "-batch", "-"], stdin: Data(batch(changes).utf8),
                                what: "setting the site routes on \(interface)")
    }

    /// The `mtu N` of `ip -o link show` output.
    static func parseLinkMTU(_ output: String) -> Int? {
        let words = output.split(whereSeparator: \.isWhitespace)
        guard let at = words.firstIndex(of: "mtu"), at + 1 < words.count else { return nil }
        return Int(words[at + 1])
    }

    /// `ip -6 route show dev IF proto 74` output: /64 → MTU (`mtu lock N` or `mtu N`).
    static func parseRoutes(_ output: String) -> [String: Int] {
        var routes: [String: Int] = [:]
        for line in output.split(separator: "\n") {
            let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let prefix = words.first, prefix.contains("/"), let at = words.firstIndex(of: "mtu") else { continue }
            let value = at + 1 < words.count && words[at + 1] == "lock" ? at + 2 : at + 1
            if value < words.count, let mtu = Int(words[value]) { routes[prefix] = mtu }
        }
        return routes
    }
}

extension SiteRoutes {
    /// The largest route metric: the blackhole behind the public prefix loses to any other route.
    public static let lastResortMetric: UInt32 = 4_294_967_295

    /// `ip -6 -batch` lines for the relay's public prefix (docs/dmz.md): into the tunnel, where
    /// WireGuard hands each DMZ /64 to the router that holds its site (a /64 no router holds is
    /// dropped there), and a blackhole behind it for while the interface is gone, so the prefix
    /// never leaves by the default route towards the provider that routes it here (a loop).
    public func publicPrefixBatch(_ prefix: String) -> String {
        "route replace \(prefix) dev \(interface) proto \(Self.protocolNumber)\n"
            + "route replace blackhole \(prefix) proto \(Self.protocolNumber) metric \(Self.lastResortMetric)\n"
    }

    /// Installs `publicPrefixBatch` with one `ip -batch`.
    public func installPublicPrefix(_ prefix: String) throws {
        try SystemCommand.check(ip, ["-6", "-force", "-batch", "-"], stdin: Data(publicPrefixBatch(prefix).utf8),
                                what: "routing the public prefix \(prefix) into \(interface)")
    }
}
