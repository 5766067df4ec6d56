import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import Testing

/// The profile on the wire: the same bytes as before for valid profiles, and every field of a
/// signed profile held to the rules of `plan check` when it is opened (docs/keys.md, "Fail closed").
@Suite struct ProfileDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let plan = try! PlanLoader.load(directory: root.appendingPathComponent("profiles/example").path)
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")
    static let site = plan.site(named: "site-a")!

    func good(slot: Int = 2) throws -> ProfileDocument {
        try Self.keys.profile(plan: Self.plan, site: Self.site, router: Self.site.router(slot: slot)!, serial: 1000,
                              issuedAt: Date(timeIntervalSince1970: 1000))
    }

    func open(_ body: Data) throws(ProfileError) -> ProfileDocument {
        let signed = Signify.signEmbedded(body, with: Self.keys.operatorKey, comment: "test")
        let sealed = try! Age.encrypt(signed, to: [Self.keys.siteIdentity(site: "site-a").recipient])
        return try SealedProfile.open(sealed, expecting: .init(
            identity: Self.keys.siteIdentity(site: "site-a"), operatorKey: Self.keys.operatorKey.publicKey,
            plan: "example", site: "site-a", lastSerial: nil))
    }

    /// The profile JSON as the schema-1 writer made it, built here key by key from the plan: the
    /// document's encoding must stay these bytes (sticks in the field keep verifying and decoding).
    @Test func encodingIsTheSchemaOneBytes() throws {
        let document = try good()
        func router(_ r: Router) -> [String: Any] {
            ["slot": r.slot, "priority": r.priority, "generation": r.generation, "uplink": r.uplink.description,
             "lan": r.lan.description, "tunnel_address": r.tunnelAddress.description, "lan_address": r.lanAddress.description]
        }
        let plan = Self.plan, site = Self.site
        let expected: [String: Any] = [
            "schema": 1, "serial": 1000, "issued_at": "1970-01-01T00:16:40Z",
            "router_secret": document.routerSecret, "certificate": document.certificate,
            "plan": [
                "name": plan.name, "ula": plan.ula.description, "tunnel": plan.tunnel.description,
                "relay": ["host": plan.relay.host, "wireguard_port": Int(plan.relay.wireguardPort),
                          "registration_port": Int(plan.relay.registrationPort),
                          "tunnel_address": plan.relay.tunnelAddress.description,
                          "public_key": Self.keys.relayWireGuardKey().publicKeyBase64],
                "uplink_mtu": 1500, "keepalive": 25, "vrrp_advert_interval_cs": 100, "server_wireguard_ports": "58000-60000",
            ] as [String: Any],
            "site": [
                "name": site.name, "index": site.index, "prefix": site.prefix.description, "vrrp_id": site.vrrpID,
                "vip": site.vip.description, "link_local_vip": site.linkLocalVIP.description,
                "routers": site.routers.map(router),
            ] as [String: Any],
            "router": router(site.router(slot: 2)!),
        ]
        var bytes = try JSONSerialization.data(withJSONObject: expected, options: [.sortedKeys, .withoutEscapingSlashes])
        bytes.append(0x0a)
        #expect(String(decoding: try DocumentCoding.encode(document), as: UTF8.self) == String(decoding: bytes, as: UTF8.self))
        #expect(try open(bytes) == document)
    }

    /// A hostile or broken field, made by editing the signed JSON, and the one line `open` gives.
    static let hostile: [(String, String, String)] = [
        ("router.uplink", #""uplink":"auto""#, #""uplink":"eth0\n[Match]\nName=*""#),
        ("router.lan", #""lan":"auto""#, #""lan":"lan0/../x""#),
        ("site.routers[0].priority", #""priority":200"#, #""priority":255"#),
        ("plan.server_wireguard_ports", #""58000-60000""#, #""60000-58000""#),
        ("plan.uplink_mtu", #""uplink_mtu":1500"#, #""uplink_mtu":1400"#),
        ("plan.relay.host", #""host":"relay.example.net""#, #""host":"relay.example.net\nEndpoint=evil""#),
        ("plan.name", #""name":"example""#, #""name":"Example""#),
        ("site.vrrp_id", #""vrrp_id":51"#, #""vrrp_id":0"#),
        ("serial", #""serial":1000"#, #""serial":-1"#),
        ("router.extra", #""router":{"#, #""router":{"extra":true,"#),
    ]

    @Test(arguments: hostile.map(\.0))
    func hostileFieldIsNamed(_ field: String) throws {
        let (_, from, to) = try #require(Self.hostile.first { $0.0 == field })
        var text = String(decoding: try DocumentCoding.encode(good()), as: UTF8.self)
        if field.hasPrefix("router.") && field != "router.extra" {
            // The router's own object, not its entry in site.routers.
            let start = try #require(text.range(of: #""router":{"#))
            let range = try #require(text.range(of: from, range: start.upperBound..<text.endIndex))
            text.replaceSubrange(range, with: to)
        } else {
            let range = try #require(text.range(of: from), "\(from) in \(text)")
            text.replaceSubrange(range, with: to)
        }
        do {
            _ = try open(Data(text.utf8))
            Issue.record("a profile with a bad \(field) was accepted")
        } catch {
            #expect(error.code == "profile.malformed", "\(field): \(error)")
            let document = try #require(error.cause as? DocumentError, "\(field): \(error)")
            #expect(document.field == field || document.problem == "missing " + field, "\(document)")
            #expect(!"\(error)".contains("\n"), "one line: \(error)")
        }
    }

    /// Rules between fields, checked after decoding: addresses inside the site /64, the router one of the site's.
    @Test func rulesBetweenFieldsAreThePlans() throws {
        var lan = try good()
        lan.router.lanAddress = IPv6Address("::1")!
        #expect(lan.problem()?.code == "document.invalid" && lan.problem()?.field == "router.lan_address")
        var vip = try good()
        vip.site.vip = IPv6Address("fd5e:d9e1:7c2a:2::1")!
        #expect(vip.problem()?.code == "document.invalid" && vip.problem()?.field == "site.vip")
        var peer = try good()
        peer.site.routers[0].tunnelAddress = IPv6Address("fd5e:d9e1:7c2a:1::9")!
        #expect(peer.problem()?.code == "document.invalid" && peer.problem()?.field == "site.routers[0].tunnel_address")
        var stranger = try good()
        stranger.router.priority = 7
        #expect(stranger.problem()?.code == "document.invalid" && stranger.problem()?.field == "router")
        #expect(try good().problem() == nil)
        let body = try DocumentCoding.encode(lan)
        do {
            _ = try open(body)
            Issue.record("a profile whose LAN address is outside the site was accepted")
        } catch {
            #expect(error.code == "profile.malformed")
            #expect((error.cause as? DocumentError)?.input == "router.lan_address", "\(error)")
        }
    }
}
