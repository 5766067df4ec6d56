import EdgeErrors
import EdgeModel
import EdgeRender
import Foundation
import GRDB
import PlanYAML
import TestSupport
import Testing
@testable import EdgeRelay

@Suite struct RelayUnitTests {
    func withFile<T>(_ text: String, _ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("relay-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    let minimal = """
        {"interface": "wg0", "private_key_file": "/etc/edgekit/relay.key",
         "operator_public_key_file": "/etc/edgekit/operator.pub", "plan": "example",
         "ula": "fd5e:d9e1:7c2a::/48", "tunnel_prefix": "fd3b:4f10:a8c6::/64",
         "state_database": "/var/lib/edgekit-relay/state.sqlite"}
        """

    /// The relay.json that `edgekit render --relay` writes is accepted by the daemon's own loader.
    @Test func renderedRelayConfigLoadsInTheDaemon() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let plan = try PlanLoader.load(directory: root.appendingPathComponent("profiles/example").path)
        let file = try #require(RelayFiles.files(plan: plan).first { $0.path == ConfigPaths.relayDaemonConfig })
        let config = try withFile(file.contents) { try RelayConfig.load(path: $0) }
        #expect(config.plan == "example")
        #expect(config.ula == plan.ula && config.tunnelPrefix == plan.tunnel)
        #expect(config.listenPort == plan.relay.registrationPort && config.wireguardPort == plan.relay.wireguardPort)
        #expect(config.privateKeyFile == ConfigPaths.relayWireGuardKey)
        #expect(config.interface == InterfaceNames.relayTunnel)
    }

    @Test func configDefaultsAndRoundTrip() throws {
        let config = try withFile(minimal) { try RelayConfig.load(path: $0) }
        #expect(config.listenAddress == "::" && config.listenPort == 51821 && config.wireguardPort == nil)
        #expect(config.rateLimit == RelayConfig.RateLimit() && config.batchWindowMilliseconds == 5)
        let encoded = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(RelayConfig.self, from: encoded) == config)
    }

    @Test func configErrorsNameFileAndKey() throws {
        let typo = minimal.replacingOccurrences(of: "\"plan\"", with: "\"plna\"")
        #expect(throws: RelayError.self) { try withFile(typo) { try RelayConfig.load(path: $0) } }
        expectCode("relay.config") { _ = try withFile(typo) { try RelayConfig.load(path: $0) } }
        let inside = minimal.replacingOccurrences(of: "fd3b:4f10:a8c6::/64", with: "fd5e:d9e1:7c2a:ff::/64")
        expectCode("relay.config", "a tunnel prefix inside the ULA must be refused") {
            _ = try withFile(inside) { try RelayConfig.load(path: $0) }
        }
        let badPrefix = minimal.replacingOccurrences(of: "fd5e:d9e1:7c2a::/48", with: "fd5e:d9e1:7c2a::1/48")
        expectCode("relay.config", "host bits must be refused") { _ = try withFile(badPrefix) { try RelayConfig.load(path: $0) } }
    }

    /// relay.json has one schema: what `edgekit render --relay` writes (plan keys only) and what
    /// the daemon reads (with its tunables) are the same type.
    @Test func relayConfigWritesTunablesOnlyWhenSet() throws {
        var config = RelayConfig(interface: "wg0", privateKeyFile: "/k", operatorPublicKeyFile: "/o", plan: "example",
                                 ula: IPv6Prefix("fd5e:d9e1:7c2a::/48")!, tunnelPrefix: IPv6Prefix("fd3b:4f10:a8c6::/64")!,
                                 stateDatabase: "/s")
        let plain = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any]
        #expect(Set(plain?.keys ?? [:].keys) == ["listen_address", "listen_port", "interface", "private_key_file",
                                                 "operator_public_key_file", "plan", "ula", "tunnel_prefix", "state_database"])
        config.batchWindowMilliseconds = 20
        config.rateLimit.buckets = 64
        let tuned = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(RelayConfig.self, from: tuned) == config)
        #expect(config.problem() == nil)
        config.plan = "Bad Plan"
        #expect(config.problem() == #"plan "Bad Plan" is not DNS-safe: use 1–63 lower-case letters, digits and inner hyphens"#)
    }

    /// `clients` (docs/clients.md): the rendered file of a plan with clients loads with their keys and
    /// /128s; a bad key, an address outside the ULA, a repeat or an unknown key is refused by name.
    @Test func clientsLoadAndBadOnesAreRefusedByName() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOfFile: root.appendingPathComponent("profiles/example/plan.yaml").path, encoding: .utf8)
        let plan = try PlanLoader.parse(text + "\nclients:\n  - name: alice-phone\n")
        let key = "NP3XYy5Cf0Qrvyi54rxPN9ViuYeftmSZE5wmUsS6r3M="
        let file = try #require(RelayFiles.files(plan: plan, clientPublicKeys: ["alice-phone": key]).first { $0.path == ConfigPaths.relayDaemonConfig })
        let config = try withFile(file.contents) { try RelayConfig.load(path: $0) }
        #expect(config.clients == [RelayConfig.Client(name: "alice-phone", publicKey: key, address: plan.clients[0].address)])
        #expect(RelayFiles.files(plan: plan).first { $0.path == ConfigPaths.relayDaemonConfig }.map { !$0.contents.contains("clients") } == true,
                "no keys given: no clients")

        func client(_ body: String) -> String {
            minimal.replacingOccurrences(of: "\"plan\": \"example\",", with: "\"plan\": \"example\", \"clients\": [\(body)],")
        }
        let good = #"{"name": "a", "public_key": "\#(key)", "address": "fd5e:d9e1:7c2a:ffff::a"}"#
        #expect(try withFile(client(good)) { try RelayConfig.load(path: $0) }.clients.count == 1)
        let cases = [
            (good.replacingOccurrences(of: key, with: "c2hvcnQ="), "clients: a's public_key is not a base64 WireGuard key (32 bytes)"),
            (good.replacingOccurrences(of: "fd5e:d9e1:7c2a:ffff::a", with: "fd00::a"), "clients: a's address fd00::a is outside ula fd5e:d9e1:7c2a::/48"),
            (good + ", " + good, "clients: a repeats another client's name, key or address"),
            (good.replacingOccurrences(of: "\"name\"", with: "\"colour\": 1, \"name\""), "has unknown key \"clients.colour\""),
        ]
        for (body, expected) in cases {
            do {
                _ = try withFile(client(body)) { try RelayConfig.load(path: $0) }
                Issue.record("accepted: \(body)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }

    @Test func rateLimiterBoundsEachSourceAndRefills() {
        var limiter = RateLimiter(perSecond: 10, burst: 5, globalPerSecond: 1000, buckets: 64)
        let a = [UInt8](repeating: 1, count: 16)
        let start: UInt64 = 1_000_000_000
        let allowed = (0..<20).filter { _ in limiter.allow(a, now: start) }.count
        #expect(allowed == 5)
        let refilled = limiter.allow(a, now: start + 100_000_000)
        let again = limiter.allow(a, now: start + 100_000_000)
        #expect(refilled, "one token back after 100 ms at 10/s")
        #expect(!again)
    }

    @Test func wgSetBatchesEveryChangeInOneCall() {
        let control = WireGuardControl(interface: "wg0")
        #expect(control.setArguments([.set(key: "A=", allowedIPs: ["fd3b::1/128", "fd5e:1::/64"]), .remove(key: "B=")])
                == ["set", "wg0", "peer", "A=", "allowed-ips", "fd3b::1/128,fd5e:1::/64", "peer", "B=", "remove"])
        let dump = "priv\tpub\t51820\toff\nK1=\t(none)\t(none)\tfd5e:1::/64,fd3b::1/128\t0\t0\t0\toff\nK0=\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
        #expect(WireGuardControl.parseDump(dump) == [.init(publicKey: "K0=", allowedIPs: []),
                                                     .init(publicKey: "K1=", allowedIPs: ["fd3b::1/128", "fd5e:1::/64"])])
    }

    @Test func syncconfCarriesStoredEndpointsAndHandshakesTakeTwoCalls() {
        let text = WireGuardControl.configText(privateKey: "PRIV=", listenPort: 51820, peers: [
            (key: "A=", allowedIPs: ["fd3b::1/128", "fd5e:1::/64"], endpoint: "[2001:db8:b::5]:51820"),
            (key: "B=", allowedIPs: ["fd3b::2/128"], endpoint: nil),
        ])
        #expect(text == """
            [Interface]
            PrivateKey = PRIV=
            ListenPort = 51820

            [Peer]
            PublicKey = A=
            AllowedIPs = fd3b::1/128, fd5e:1::/64
            Endpoint = [2001:db8:b::5]:51820

            [Peer]
            PublicKey = B=
            AllowedIPs = fd3b::2/128

            """)
        let control = WireGuardControl(interface: "wg0")
        // Keepalive 0 → 25 in one call (the immediate keepalive starts the handshake), back to 0 in another.
        #expect(control.handshakeArguments(["A=", "B="]) == [
            ["set", "wg0", "peer", "A=", "persistent-keepalive", "25", "peer", "B=", "persistent-keepalive", "25"],
            ["set", "wg0", "peer", "A=", "persistent-keepalive", "0", "peer", "B=", "persistent-keepalive", "0"],
        ])
        #expect(control.handshakeArguments([]).isEmpty)
        #expect(WireGuardControl.parsePairs("A=\t198.51.100.2:4000\nB=\t(none)\n") == ["A=": "198.51.100.2:4000", "B=": "(none)"])
    }

    /// A database as the previous release left it (schema v1, no endpoint column) migrates in place;
    /// endpoints are saved for known peers only, survive a re-registration and reach desiredPeers.
    @Test func storeKeepsEachPeersLastEndpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("state.sqlite").path
        do {
            let old = try DatabaseQueue(path: path)
            try RelayStore.migrator.migrate(old, upTo: "v1")
            try old.write { db in
                try db.execute(sql: """
                    INSERT INTO peer (public_key, plan, site, slot, serial, tunnel_address, site_prefix, claim, last_seen, last_cookie_time)
                    VALUES ('A=', 'example', 'site-a', 1, 1000, 'fd3b:4f10:a8c6::1:1:1', 'fd5e:d9e1:7c2a:1::/64', 'master', 1, 10)
                    """)
            }
        }
        let store = try RelayStore(path: path)
        #expect(try store.desiredPeers().map(\.endpoint) == [nil], "a migrated peer has no endpoint yet")
        #expect(try store.saveEndpoints(["A=": "198.51.100.2:40000", "unknown=": "192.0.2.1:1"]) == 1)
        #expect(try store.saveEndpoints(["A=": "198.51.100.2:40000"]) == 0, "an unchanged endpoint is not rewritten")
        #expect(try store.saveEndpoints([:]) == 0)
        let fields = SiteCertificateFields(plan: "example", site: "site-a", slot: 1, serial: 1000,
                                           tunnelAddress: "fd3b:4f10:a8c6::1:1:1", sitePrefix: "fd5e:d9e1:7c2a:1::/64")
        let decision = try store.register(publicKey: "A=", certificate: fields, claim: "master", cookieTime: 11, now: 2)
        #expect(decision == .accepted(touched: ["A="], holdsPrefix: true))
        let peers = try store.desiredPeers()
        #expect(peers.count == 1 && peers[0].key == "A=" && peers[0].endpoint == "198.51.100.2:40000",
                "a re-registration keeps the endpoint")
        #expect(try store.snapshot().peers.map(\.endpoint) == ["198.51.100.2:40000"])
        // A router that roamed: the newer endpoint replaces the stored one.
        #expect(try store.saveEndpoints(["A=": "[2001:db8:b::5]:51820"]) == 1)
        #expect(try store.desiredPeers().first?.endpoint == "[2001:db8:b::5]:51820")
    }
}
