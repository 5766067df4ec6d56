import EdgeCrypto
import EdgeErrors
import Foundation
import TestSupport
import Testing

/// Derivation vectors: master = bytes 0x00…0x1f, plan "example". The expected values were
/// computed independently (Python `cryptography` HKDF/X25519/Ed25519 following docs/keys.md), so a
/// change to any label, salt or field encoding fails here.
@Suite struct KeyDerivationTests {
    let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")

    @Test func operatorKey() {
        #expect(keys.operatorKey.publicKey.key.base64EncodedString() == "d9Ys73VVeq3gloXazo/ypJaiEpu7V9LXRP0p+Spd44A=")
        #expect(keys.operatorKeyNumber.map { String(format: "%02x", $0) }.joined() == "a7bed93c52ac53ae")
    }

    @Test func relayKey() {
        #expect(keys.relayWireGuardKey().publicKeyBase64 == "mkGQ/2sO3z0jMVkV9bhDddtKSlqfpv4wQnmUVttYHWg=")
    }

    @Test func siteIdentities() {
        func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(keys.siteIdentityKey(site: "site-a").publicKey.rawRepresentation) == "e656d245d54af653e3ca9305a96d54250bfc9bf5608bc039a1a3c780ca15e238")
        #expect(hex(keys.siteIdentityKey(site: "site-b").publicKey.rawRepresentation) == "891ef0356892da8366c230750bea250f09bc22245198308b952098366ecb1e38")
    }

    @Test(arguments: [
        ("site-a", 1, 1, "f47d7c2f98ff9e7b59f240403d424d5a69fa5d837e7205e9d05e49145de3ff4e", "WBQ76RMJC9lmxFphd9afxX3gKZkKRoO9Lp2fedj4wn0=", "J1w4QnA598G+pQRldmexzt1UlwFX+Ua+FyDIt8xlGmc="),
        ("site-a", 2, 1, "1abdb0e0ada1a95b6909dbf0b333f149d2d2bab8c31f44ab2c16dcaef93213b3", "WMk22OtrPNLO8yuN4LfwhE9mZxuS/eQnqtVcUhzhz0g=", "cLGCeCu2FJNLuJbK2ExdQOL9t5FklxMWp0SEg9QvZiU="),
        ("site-b", 1, 1, "71aa1f672b9df49c4ba29102ec40305dee37a8f0bc5897cdc5bbafd33723c170", "oKc3a9rj8isDxv1Zn75y/ULkoDdaC4p2Ra22aEmE81o=", "fxs7LGZA96xYEmJtEqGIzFwalj/M9WeMAftXv0GLLVM="),
        ("site-a", 1, 2, "8c1a0143c6f090496c2fea31197ce81b544e5f2322f6025c80088a609e9584d1", "iCpQ7w2G6BD79ieNTEobu2qIBcXglxEkoYttXJuZwXk=", "lHPvXgOHaZkaTNWKKpu2QrbEo3WfOKD13TPZjNYn2SE="),
    ])
    func routerKeys(site: String, slot: Int, generation: Int, secret: String, privateKey: String, publicKey: String) {
        let routerSecret = keys.routerSecret(site: site, slot: slot, generation: generation)
        #expect(routerSecret.bytes.map { String(format: "%02x", $0) }.joined() == secret)
        #expect(routerSecret.wireGuardKey.privateKeyBase64 == privateKey)
        #expect(routerSecret.wireGuardKey.publicKeyBase64 == publicKey)
    }

    /// Servers' mesh keys (docs/keys.md, `server-wireguard`), computed with Python `cryptography`.
    @Test(arguments: [
        ("db1", 1, "8FK2DIb/ixl3P7Sa5qbMN+dCHCaQlOiJ0YWboIKs10Y=", "uNBqTl97PvHqNTaabDsTH2o1AA0Ppw7UIx/uIYZlv18="),
        ("db1", 2, "IGaMm1/Mwg0w5XkGfT/v0QO6j4ziDfGDv/P+hCriXHE=", "TeKjC6gaqJAd0uMqnEY0bv7I2Vs+ChyoQ+7qhf7q9mM="),
        ("web", 1, "gKUmvGxq/LnmuVM7yaP4bud3bDdLjG+UTfQ97KTYX2k=", "twt7xwy0BqbxvKKRRsZ0Bx8dBLrU0iLqqxCNcKG3FXk="),
    ])
    func serverKeys(server: String, generation: Int, privateKey: String, publicKey: String) {
        let key = keys.serverWireGuardKey(server: server, generation: generation)
        #expect(key.privateKeyBase64 == privateKey)
        #expect(key.publicKeyBase64 == publicKey)
    }

    @Test func generationRotatesAndInputsSeparate() {
        let a = keys.routerSecret(site: "site-a", slot: 1, generation: 1)
        #expect(a != keys.routerSecret(site: "site-a", slot: 1, generation: 2))
        #expect(a != keys.routerSecret(site: "site-a", slot: 2, generation: 1))
        #expect(a != keys.routerSecret(site: "site-b", slot: 1, generation: 1))
        // Field boundaries are length-prefixed: ("ab","c") and ("a","bc") must differ.
        #expect(keys.siteIdentityKey(site: "ab").publicKey.rawRepresentation
                != PlanKeys(master: keys.master, planName: "examplea").siteIdentityKey(site: "b").publicKey.rawRepresentation)
    }

    @Test(.requiresTool("wg")) func routerKeysAgreeWithWgPubkey() throws {
        for (site, slot) in [("site-a", 1), ("site-a", 2), ("site-b", 1)] {
            let key = keys.routerSecret(site: site, slot: slot, generation: 1).wireGuardKey
            let result = try Tool.run("wg", ["pubkey"], stdin: Data((key.privateKeyBase64 + "\n").utf8))
            #expect(result.status == 0)
            #expect(result.stdoutText == key.publicKeyBase64 + "\n")
        }
        let server = keys.serverWireGuardKey(server: "db1", generation: 1)
        let serverResult = try Tool.run("wg", ["pubkey"], stdin: Data((server.privateKeyBase64 + "\n").utf8))
        #expect(serverResult.stdoutText == server.publicKeyBase64 + "\n")
        for relay in [keys.relayWireGuardKey(), keys.relayWireGuardKey(name: "b")] {
            let result = try Tool.run("wg", ["pubkey"], stdin: Data((relay.privateKeyBase64 + "\n").utf8))
            #expect(result.stdoutText == relay.publicKeyBase64 + "\n")
        }
    }

    /// The relay of `relay:` (named `relay`) keeps the key it had before plans could list several
    /// relays; every other relay's name is an input (vector computed with Python `cryptography`:
    /// HKDF info "edgekit/v1/relay-wireguard" || len "example" || len "b").
    @Test func eachRelayHasItsOwnKeyAndTheSingleRelayKeepsItsKey() {
        #expect(keys.relayWireGuardKey(name: "relay").publicKeyBase64 == "mkGQ/2sO3z0jMVkV9bhDddtKSlqfpv4wQnmUVttYHWg=")
        #expect(keys.relayWireGuardKey(name: "b").publicKeyBase64 == "3RHjkW+3825L0+cAIzR/zlPlWJQ3arLljT9yqUKaui4=")
    }

    @Test func masterFileRoundTripAndRejectsBadText() throws {
        let master = MasterSecret.generate()
        #expect(try MasterSecret(fileText: master.fileText) == master)
        expectCode("key.master-not-base64") { _ = try MasterSecret(fileText: "not base64!") }
        expectCode("key.master-length") { _ = try MasterSecret(fileText: Data(count: 16).base64EncodedString()) }
    }
}
