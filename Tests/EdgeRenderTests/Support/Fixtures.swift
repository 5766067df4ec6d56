import EdgeModel
import EdgeRender
import Foundation
import PlanYAML
import Testing
import TestSupport

/// The example plan and what the renderers make of it.
enum Fixtures {
    /// Any valid WireGuard public key (`wg genkey | wg pubkey`, once); the relay's in the tests.
    static let relayPublicKey = "8SKoOQlTwQURbMli35MBOFIHhOS3RbLAzeWP+sEg1lg="

    /// The package root, found from this file's path (Tests/EdgeRenderTests/Support/Fixtures.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let goldenDirectory = packageRoot.appendingPathComponent("Tests/EdgeRenderTests/Golden")

    static func examplePlan() throws -> Plan {
        try PlanLoader.load(directory: packageRoot.appendingPathComponent("profiles/example").path)
    }

    /// Every rendering of the example plan: one per router (named by hostname) and "relay".
    static func allRenderings() throws -> [(name: String, files: [RenderedFile])] {
        let plan = try examplePlan()
        var result: [(String, [RenderedFile])] = []
        for site in plan.sites {
            for router in site.routers {
                result.append((site.hostname(slot: router.slot),
                               EdgeRouterConfig.files(plan: plan, site: site, router: router,
                                                      relayPublicKeys: [relayPublicKey])))
            }
        }
        result.append(("relay", RelayFiles.files(plan: plan)))
        // The same plan with two relays: a tunnel per relay, and each relay's own files.
        let two = try twoRelaysPlan()
        for site in two.sites {
            for router in site.routers {
                result.append(("two-relays/" + site.hostname(slot: router.slot),
                               EdgeRouterConfig.files(plan: two, site: site, router: router,
                                                      relayPublicKeys: [relayPublicKey, secondRelayPublicKey])))
            }
        }
        for relay in two.relays {
            result.append(("relay-of-two-" + relay.name, RelayFiles.files(plan: two, relay: relay)))
        }
        // With clients (laptops, phones): the first relay lists them and lets them reach the sites;
        // the routers route the clients' /64 through it.
        let clients = try twoRelaysWithClientsPlan()
        let site = clients.sites[0]
        result.append(("with-clients/" + site.hostname(slot: 1),
                       EdgeRouterConfig.files(plan: clients, site: site, router: site.routers[0],
                                              relayPublicKeys: [relayPublicKey, secondRelayPublicKey])))
        for relay in clients.relays {
            result.append(("relay-with-clients-" + relay.name,
                           RelayFiles.files(plan: clients, relay: relay, clientPublicKeys: clientPublicKeys)))
        }
        // With a DMZ (docs/dmz.md): site-a's, routed by the second relay.
        let dmz = try dmzPlan()
        for router in dmz.sites[0].routers {
            result.append(("with-dmz/" + dmz.sites[0].hostname(slot: router.slot),
                           EdgeRouterConfig.files(plan: dmz, site: dmz.sites[0], router: router,
                                                  relayPublicKeys: [relayPublicKey, secondRelayPublicKey])))
        }
        for relay in dmz.relays {
            result.append(("relay-with-dmz-" + relay.name, RelayFiles.files(plan: dmz, relay: relay)))
        }
        return result
    }

    /// The two-relays plan whose second relay ("us") has a public prefix, and a DMZ on VLAN 100 for
    /// site-a (docs/dmz.md), its /64 the prefix's number 1 (the site's index).
    static func dmzPlan() throws -> Plan {
        let text = try MeshPlanFixture.twoRelaysText()
            .replacingOccurrences(of: "    registration_port: 51831\n", with: "    registration_port: 51831\n    public_prefix: 2001:db8:4200::/48\n")
            .replacingOccurrences(of: "    vrrp_id: 51\n", with: "    vrrp_id: 51\n    dmz:\n      vlan: 100\n")
        return try PlanLoader.parse(text)
    }

    /// The two-relays plan with two clients, one at its default address, and NAT64 for site-a
    /// (docs/nat64.md), its resolver forwarding to two others.
    static func twoRelaysWithClientsPlan() throws -> Plan {
        let text = try MeshPlanFixture.twoRelaysText().replacingOccurrences(of: "    vrrp_id: 51\n", with: "    vrrp_id: 51\n    nat64: true\n")
        return try PlanLoader.parse(text + """

            clients:
              - name: alice-phone
              - name: bob-laptop
                address: fd5e:d9e1:7c2a:ffff::b0b

            nat64:
              dns_forward: [9.9.9.9, "2620:fe::fe"]

            """)
    }

    /// Fixed public keys of those clients (`wg genkey | wg pubkey`, once).
    static let clientPublicKeys = [
        "alice-phone": "NP3XYy5Cf0Qrvyi54rxPN9ViuYeftmSZE5wmUsS6r3M=",
        "bob-laptop": "NEGB6a9eJbxOTM7jfH8HzCKjHVoMNVkg/PTi2vO7yFQ=",
    ]

    /// site-a's first router on a device where edgekit-agent pinned its `auto` ports by MAC address
    /// (docs/network.md, "Interface names"): only its `.link` files differ from the preview's.
    static func pinnedPortsRendering() throws -> (name: String, files: [RenderedFile]) {
        let plan = try examplePlan()
        let site = plan.sites[0]
        let router = site.routers[0]
        let files = EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: [relayPublicKey],
                                           pinnedPorts: PinnedPorts(uplink: "dc:a6:32:01:02:03", lan: "00:e0:4c:68:00:01"))
        return ("pinned-ports-" + site.hostname(slot: router.slot), files.filter { $0.path.hasSuffix(".link") })
    }

    /// Another valid WireGuard public key (`wg genkey | wg pubkey`, once): the second relay's.
    static let secondRelayPublicKey = "SYIQ0gVX9Z8LHHBq9pyMt9XtdWnBxDswL/QDHlTnT00="

    /// The example plan with two relays (`MeshPlanFixture.twoRelaysText()`).
    static func twoRelaysPlan() throws -> Plan {
        try PlanLoader.parse(try MeshPlanFixture.twoRelaysText())
    }

    /// The example plan with three servers in a mesh (TestSupport's `MeshPlanFixture`).
    static func meshPlan() throws -> Plan {
        try PlanLoader.parse(try MeshPlanFixture.text())
    }

    /// Fixed WireGuard key pairs of the mesh plan's servers (`wg genkey | wg pubkey`, once): the
    /// renderers take keys as text; EdgeCrypto's derivation has its own tests.
    static let meshKeys: [String: (privateKey: String, publicKey: String)] = [
        "sa": ("wNkeqsNsPpUh+pvBKHP/IKfX5/Uu3Sud/sm3e7mT130=", "NP3XYy5Cf0Qrvyi54rxPN9ViuYeftmSZE5wmUsS6r3M="),
        "sb": ("EPJmOwDxqwGgaG89NhAEgfCdvXp7/wXDTN4yupmP4Uc=", "NEGB6a9eJbxOTM7jfH8HzCKjHVoMNVkg/PTi2vO7yFQ="),
        "sc": ("iBf87Ouo0sGhB5bJVGJcOWRSXiRDJZFUV3D4uU0/QUo=", "ubiGmXzgokCJD062H5iXgJIIztw8KqJLs5gZPUFObW8="),
    ]

    /// One server's mesh files in `format`.
    static func mesh(_ name: String, format: MeshFormat, plan: Plan? = nil) throws -> (plan: Plan, server: Server, files: [RenderedFile]) {
        let plan = try plan ?? meshPlan()
        let server = try #require(plan.server(named: name))
        let keys = try #require(meshKeys[name])
        return (plan, server, MeshFiles.files(plan: plan, server: server, privateKey: keys.privateKey,
                                              publicKeys: meshKeys.mapValues(\.publicKey), format: format))
    }

    /// Every server's mesh files in both formats, named `mesh-<server>-<format>`.
    static func meshRenderings() throws -> [(name: String, files: [RenderedFile])] {
        let plan = try meshPlan()
        return try plan.servers.flatMap { server in
            try MeshFormat.allCases.map { format in
                ("mesh-\(server.name)-\(format.rawValue)", try mesh(server.name, format: format, plan: plan).files)
            }
        }
    }

    /// The files of router `slot` of `siteName` in the example plan.
    static func router(_ siteName: String, slot: Int) throws -> (plan: Plan, site: Site, router: Router, files: [RenderedFile]) {
        let plan = try examplePlan()
        let site = try #require(plan.site(named: siteName))
        let router = try #require(site.router(slot: slot))
        return (plan, site, router,
                EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: [relayPublicKey]))
    }
}

extension Array where Element == RenderedFile {
    /// The file at `path`; records a test failure when there is none.
    func file(_ path: String) throws -> RenderedFile {
        try #require(first { $0.path == path }, "no rendered file at \(path)")
    }
}
