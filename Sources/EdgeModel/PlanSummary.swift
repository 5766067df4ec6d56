import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The resolved addressing of a plan, as `edgekit plan show` prints it (and CI reads as JSON).
public struct PlanSummary: Codable, Sendable, Equatable {
    public var name: String
    public var ula: String
    public var tunnel: String
    public var relay: RelaySummary
    public var defaults: DefaultsSummary
    public var sites: [SiteSummary]
    /// Absent (not in the JSON) when the plan has no mesh, so older plans print as before.
    public var mesh: MeshSummary?
    public var servers: [ServerSummary]?
    /// Absent when the plan has no clients (docs/clients.md), so older plans print as before.
    public var clients: ClientsSummary?
    /// Absent when no site has `nat64: true` (docs/nat64.md).
    public var nat64: NAT64Summary?

    public struct NAT64Summary: Codable, Sendable, Equatable {
        public var prefix: String
        /// The DNS64 resolver the sites' routers announce (RDNSS).
        public var resolver: String
        /// The relay that runs them.
        public var relay: String
        public var sites: [String]
        public var dnsForward: [String]
    }

    public struct ClientsSummary: Codable, Sendable, Equatable {
        public var prefix: String
        /// The host of the relay every client connects through.
        public var relay: String
        public var devices: [ClientSummary]
    }

    public struct ClientSummary: Codable, Sendable, Equatable {
        public var name: String
        public var address: String
        public var generation: Int
    }

    public struct MeshSummary: Codable, Sendable, Equatable {
        public var prefix: String
        public var port: UInt16
        public var mtu: Int
    }

    public struct ServerSummary: Codable, Sendable, Equatable {
        public var name: String
        public var site: String
        public var token: String
        public var siteAddress: String
        public var meshAddress: String
        public var generation: Int
    }

    public struct RelaySummary: Codable, Sendable, Equatable {
        public var host: String
        public var wireguardPort: UInt16
        public var registrationPort: UInt16
        public var tunnelAddress: String
    }

    public struct DefaultsSummary: Codable, Sendable, Equatable {
        public var uplinkMTU: Int
        public var tunnelMTU: Int
        public var innerMTU: Int
        public var keepalive: Int
        public var vrrpAdvertInterval: Double
        public var serverWireguardPorts: String
    }

    public struct SiteSummary: Codable, Sendable, Equatable {
        public var name: String
        public var index: Int
        public var prefix: String
        public var vrrpID: Int
        public var vip: String
        public var linkLocalVIP: String
        /// The board its image is built for (docs/image.md, "Boards").
        public var board: String
        public var routers: [RouterSummary]
        /// Absent for a site without a DMZ (docs/dmz.md).
        public var dmz: DMZSummary?
    }

    public struct DMZSummary: Codable, Sendable, Equatable {
        /// One of `vlan` and `port`.
        public var vlan: Int?
        public var port: String?
        public var prefix: String
        public var relay: String
    }

    public struct RouterSummary: Codable, Sendable, Equatable {
        public var slot: Int
        public var hostname: String
        public var priority: Int
        public var generation: Int
        public var lanAddress: String
        public var tunnelAddress: String
        public var uplink: String
        public var lan: String
        /// The router's `uplink_mtu` (its own or its site's); absent: `defaults.uplink_mtu`.
        public var uplinkMTU: Int?
    }

    public init(_ plan: Plan) {
        name = plan.name
        ula = plan.ula.description
        tunnel = plan.tunnel.description
        relay = RelaySummary(
            host: plan.relay.host, wireguardPort: plan.relay.wireguardPort,
            registrationPort: plan.relay.registrationPort, tunnelAddress: plan.relay.tunnelAddress.description)
        defaults = DefaultsSummary(
            uplinkMTU: plan.defaults.uplinkMTU, tunnelMTU: plan.defaults.tunnelMTU, innerMTU: plan.defaults.innerMTU,
            keepalive: plan.defaults.keepalive,
            vrrpAdvertInterval: Double(plan.defaults.vrrpAdvertIntervalCentiseconds) / 100,
            serverWireguardPorts: "\(plan.defaults.serverWireGuardPorts.lowerBound)-\(plan.defaults.serverWireGuardPorts.upperBound)")
        sites = plan.sites.map { site in
            SiteSummary(
                name: site.name, index: site.index, prefix: site.prefix.description, vrrpID: site.vrrpID,
                vip: site.vip.description, linkLocalVIP: site.linkLocalVIP.description, board: site.board.name,
                routers: site.routers.map { router in
                    RouterSummary(
                        slot: router.slot, hostname: site.hostname(slot: router.slot), priority: router.priority,
                        generation: router.generation, lanAddress: router.lanAddress.description,
                        tunnelAddress: router.tunnelAddress.description,
                        uplink: router.uplink.description, lan: router.lan.description, uplinkMTU: router.uplinkMTU)
                },
                dmz: site.dmz.map { dmz in
                    switch dmz.link {
                    case .vlan(let id): DMZSummary(vlan: id, prefix: dmz.prefix.description, relay: dmz.relay)
                    case .port(let name): DMZSummary(port: name, prefix: dmz.prefix.description, relay: dmz.relay)
                    }
                })
        }
        if let planMesh = plan.mesh {
            mesh = MeshSummary(prefix: planMesh.prefix.description, port: planMesh.port, mtu: plan.meshMTU)
            servers = plan.servers.map { server in
                ServerSummary(name: server.name, site: server.site, token: server.token.description,
                              siteAddress: server.siteAddress.description, meshAddress: server.meshAddress.description,
                              generation: server.generation)
            }
        }
        if plan.nat64Enabled {
            nat64 = NAT64Summary(prefix: plan.nat64.prefix.description, resolver: plan.nat64.resolver.description,
                                 relay: plan.relay.host, sites: plan.nat64Sites.map(\.name), dnsForward: plan.nat64.dnsForward)
        }
        if !plan.clients.isEmpty {
            clients = ClientsSummary(prefix: plan.clientPrefix.description, relay: plan.clientRelay.host, devices: plan.clients.map {
                ClientSummary(name: $0.name, address: $0.address.description, generation: $0.generation)
            })
        }
    }

    /// Stable, pretty JSON (sorted keys, snake_case) for scripts and CI matrices.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    /// A human-readable table: plan header, then one row per router.
    public func text() -> String {
        var out = """
            plan \(name)
              ula      \(ula)
              tunnel   \(tunnel)
              relay    \(relay.host)  wireguard \(relay.wireguardPort)/udp  registration \(relay.registrationPort)/udp  tunnel \(relay.tunnelAddress)
              mtu      uplink \(defaults.uplinkMTU), tunnel \(defaults.tunnelMTU), servers' mesh \(defaults.innerMTU)
              vrrp     advert every \(String(cFormat: "%.2f", defaults.vrrpAdvertInterval)) s; keepalive \(defaults.keepalive) s; relay forwards udp \(defaults.serverWireguardPorts)

            """
        let header = ["SITE", "INDEX", "BOARD", "PREFIX", "VRRP", "VIP", "SLOT", "HOSTNAME", "PRIO", "GEN", "LAN ADDRESS", "TUNNEL ADDRESS", "UPLINK", "LAN"]
        var rows: [[String]] = [header]
        for site in sites {
            for router in site.routers {
                rows.append([
                    site.name, String(site.index), site.board, site.prefix, String(site.vrrpID), "\(site.linkLocalVIP), \(site.vip)",
                    String(router.slot), router.hostname, String(router.priority), String(router.generation),
                    router.lanAddress, router.tunnelAddress,
                    router.uplink + (router.uplinkMTU.map { " (mtu \($0))" } ?? ""), router.lan,
                ])
            }
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padded(to: widths[column])
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        if let mesh {
            out += "\nmesh \(mesh.prefix)  udp \(mesh.port)  mtu \(mesh.mtu)\n"
            out += Self.table([["SERVER", "SITE", "GEN", "SITE ADDRESS (ENDPOINT)", "MESH ADDRESS"]]
                + (servers ?? []).map { [$0.name, $0.site, String($0.generation), $0.siteAddress, $0.meshAddress] })
        }
        if let nat64 {
            let forward = nat64.dnsForward.isEmpty ? "" : ", forwarding to \(nat64.dnsForward.joined(separator: ", "))"
            out += "\nnat64 \(nat64.prefix)  on relay \(nat64.relay)  dns64 \(nat64.resolver)\(forward)  for \(nat64.sites.joined(separator: ", "))\n"
        }
        let dmzs = sites.compactMap { site in
            site.dmz.map { [site.name, $0.vlan.map { "vlan \($0)" } ?? "port \($0.port ?? "")", $0.prefix, $0.relay] }
        }
        if !dmzs.isEmpty {
            out += "\n" + Self.table([["DMZ OF", "LINK", "PUBLIC PREFIX", "RELAY"]] + dmzs)
        }
        if let clients {
            out += "\nclients \(clients.prefix)  through relay \(clients.relay)\n"
            out += Self.table([["CLIENT", "GEN", "ADDRESS"]] + clients.devices.map { [$0.name, String($0.generation), $0.address] })
        }
        return out
    }

    /// Rows padded to their columns' widths, two spaces apart, the last column unpadded.
    static func table(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padded(to: widths[column])
            }.joined(separator: "  ") + "\n"
        }.joined()
    }
}
