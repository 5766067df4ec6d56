import EdgeCrypto
import EdgeModel
import EdgeRelay
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The plan's clients (laptops, phones; docs/clients.md) as the real `edgekit-relay serve` holds
/// them: WireGuard peers beside the routers, each with its /128; `revoke --client` takes one out
/// while the relay runs, and it stays out across restarts. (lab/lab.sh proves the rest: a phone
/// behind NAT on the generated file reaching both sites, and not after the revoke.)
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"), .slow)
struct ClientRelayLabTests {
    static let clients = [
        RelayConfig.Client(name: "alice-phone", publicKey: Fixture.keys.clientWireGuardKey(client: "alice-phone", generation: 1).publicKeyBase64,
                           address: IPv6Address("fd5e:d9e1:7c2a:ffff::a")!),
        RelayConfig.Client(name: "bob-laptop", publicKey: Fixture.keys.clientWireGuardKey(client: "bob-laptop", generation: 1).publicKeyBase64,
                           address: IPv6Address("fd5e:d9e1:7c2a:ffff::b")!),
    ]

    @Test("clients are peers with their /128 beside the routers; a revoked one leaves at once and stays out after restarts")
    func clientsArePeersUntilRevoked() throws {
        try Lab(clients: Self.clients).withRelay { lab in
            let alice = Self.clients[0].publicKey, bob = Self.clients[1].publicKey
            let router = try Fixture.router(site: "site-a", slot: 1)
            let client = try router.client(relay: lab.relayAddress, port: lab.port)
            _ = try lab.inClient { try client.registerBlocking(claim: .master) }
            var peers = try lab.wireGuardPeers()
            #expect(peers[alice] == ["fd5e:d9e1:7c2a:ffff::a/128"] && peers[bob] == ["fd5e:d9e1:7c2a:ffff::b/128"], "\(peers)")
            #expect(peers[router.key.publicKeyBase64] != nil && peers.count == 3)

            // An unknown name is one line, exit 1, nothing revoked.
            let unknown = try lab.relayTool(["revoke", "--client", "carol", "--config", lab.configPath])
            #expect(unknown.status == 1 && unknown.err == "revoke: no client \"carol\" in \(lab.configPath) (clients: alice-phone, bob-laptop)\n",
                    "\(unknown.err)")
            let both = try lab.relayTool(["revoke", "--client", "bob-laptop", "--site", "site-a", "--config", lab.configPath])
            #expect(both.status != 0 && both.err.contains("one of the two"), "\(both.err)")

            let revoke = try lab.relayTool(["revoke", "--client", "bob-laptop", "--config", lab.configPath])
            #expect(revoke.status == 0 && revoke.err.contains("revoked client bob-laptop"), "\(revoke.err)")
            try lab.waitFor("the revoked client to leave WireGuard", timeout: 5) { try lab.wireGuardPeers()[bob] == nil }
            peers = try lab.wireGuardPeers()
            #expect(peers[alice] != nil && peers[router.key.publicKeyBase64] != nil, "the others stay: \(peers)")

            // Killed and restarted, and stopped and started: the revoked client is not restored.
            #expect(try lab.stopRelay(signal: SIGKILL) != 0)
            try lab.startRelay()
            #expect(try lab.wireGuardPeers()[bob] == nil && lab.wireGuardPeers()[alice] != nil)
            #expect(try lab.stopRelay() == 0)
            try lab.startRelay()
            peers = try lab.wireGuardPeers()
            #expect(peers[bob] == nil && peers[alice] == ["fd5e:d9e1:7c2a:ffff::a/128"], "\(peers)")
            // Revoking it again changes nothing.
            #expect(try lab.relayTool(["revoke", "--client", "bob-laptop", "--config", lab.configPath]).status == 0)
        }
    }
}
