import EdgeCrypto
import EdgeModel
@testable import EdgeRelay
import Foundation
import Logging
import Registration
import Testing

/// docs/protocol.md, "Flood defence", without namespaces: what the receive loop is told to do with
/// a datagram before any public-key work, and what the tables of known keys keep.
@Suite struct FloodDefenceUnitTests {
    /// An engine over a fresh state database (no WireGuard: HELLOs and screening never touch it).
    func withEngine(_ body: (RegistrationEngine) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("flood-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("state.sqlite").path
        let config = RelayConfig(
            interface: "ekflood0", privateKeyFile: "/nonexistent", operatorPublicKeyFile: "/nonexistent",
            plan: Fixture.plan.name, ula: Fixture.plan.ula, tunnelPrefix: Fixture.plan.tunnel, stateDatabase: database)
        let engine = try RegistrationEngine(
            config: config, store: RelayStore(path: database), relayPrivateKey: Fixture.keys.relayWireGuardKey(),
            operatorKey: Fixture.keys.operatorKey.publicKey, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await body(engine)
    }

    static func spoofedHello(_ index: Int) throws -> ParsedMessage {
        var key = [UInt8](repeating: 0x42, count: 32)
        key[0] = UInt8(truncatingIfNeeded: index)
        key[1] = UInt8(truncatingIfNeeded: index >> 8)
        return try MessageCodec.parse(Hello(routerKey: key, nonce: [UInt8](repeating: 7, count: 16)).authenticated
                                      + [UInt8](repeating: 0xee, count: 16))
    }

    @Test func knownKeysAreScreenedWithoutKeyAgreementAndFloodKeysNeverBecomeKnown() async throws {
        try await withEngine { engine in
            let router = try ManualRouter(Fixture.router(site: "site-a", slot: 1))
            let source = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 77, 0, 2]
            let hello = try MessageCodec.parse(router.hello(nonce: [UInt8](repeating: 1, count: 16)))
            #expect(engine.screen(hello, from: source) == .provenKeyAgreement)

            // A flood of random keys: silence, and none of them is remembered.
            for index in 0..<300 {
                let spoofed = try Self.spoofedHello(index)
                #expect(engine.screen(spoofed, from: source) == .needsKeyAgreement)
                #expect(await engine.handle(spoofed, from: source) == nil)
            }
            #expect(engine.knownKeys.counts == (pinned: 0, recent: 0))

            // The real HELLO verifies (one X25519), gets a CHALLENGE, and its key is known from now on.
            let reply = try #require(await engine.handle(hello, from: source))
            let challenge = try MessageCodec.parse(reply)
            guard case .challenge(let body) = challenge.body else { throw LabError("not a CHALLENGE") }
            #expect(engine.knownKeys.counts == (pinned: 0, recent: 1))
            #expect(engine.screen(hello, from: source) == .authenticated)

            // Under the known key: a wrong MAC is dropped before any budget; a REGISTER needs our cookie
            // for this very address.
            var forged = router.hello(nonce: [UInt8](repeating: 2, count: 16))
            forged[forged.count - 1] ^= 1
            #expect(engine.screen(try MessageCodec.parse(forged), from: source) == .drop)
            let register = try MessageCodec.parse(router.register(claim: .master, nonce: [UInt8](repeating: 1, count: 16), cookie: body.cookie))
            #expect(engine.screen(register, from: source) == .authenticated)
            let elsewhere = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 200, 1, 2]
            #expect(engine.screen(register, from: elsewhere) == .drop)
            var stale = body.cookie
            stale[23] ^= 1
            let badCookie = try MessageCodec.parse(router.register(claim: .master, nonce: [UInt8](repeating: 1, count: 16), cookie: stale))
            #expect(engine.screen(badCookie, from: source) == .drop)
        }
    }

    /// HELLO's proof of knowing S: a real router's new key gets the proven budget, one from before
    /// the proof the global budget (and still registers), a made-up proof nothing at all.
    @Test func aHelloThatProvesItKnowsTheRelayKeyGetsItsOwnBudget() async throws {
        try await withEngine { engine in
            let router = try ManualRouter(Fixture.router(site: "site-a", slot: 2))
            let source = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 77, 0, 3]
            let legacy = try MessageCodec.parse(router.hello(nonce: [UInt8](repeating: 3, count: 16), proven: false))
            #expect(engine.screen(legacy, from: source) == .needsKeyAgreement)

            var guessed = router.hello(nonce: [UInt8](repeating: 4, count: 16), proven: false)
            guessed[52] = 1  // a proof that is not zero and not right
            #expect(engine.screen(try MessageCodec.parse(guessed), from: source) == .drop)

            // A proof made with another relay's key is wrong too.
            let other = Hello(routerKey: router.publicKey, nonce: [UInt8](repeating: 5, count: 16),
                              relayPublicKey: [UInt8](repeating: 0x33, count: 32))
            let wrongRelay = try MessageCodec.parse(MessageMAC.seal(other.authenticated, with: router.keys.requestKey))
            #expect(engine.screen(wrongRelay, from: source) == .drop)

            let proven = try MessageCodec.parse(router.hello(nonce: [UInt8](repeating: 6, count: 16)))
            #expect(engine.screen(proven, from: source) == .provenKeyAgreement)
            #expect(Screening.provenKeyAgreement.budget == .proven)
            let reply = try #require(await engine.handle(proven, from: source))
            guard case .challenge = try MessageCodec.parse(reply).body else { throw LabError("not a CHALLENGE") }
        }
    }

    @Test func theProvenBudgetIsNotTheFloodsBudget() {
        var limiter = RateLimiter(perSecond: 1000, burst: 1000, globalPerSecond: 3, buckets: 64)
        let now: UInt64 = 1_000_000_000
        let flood = (0..<100).filter { limiter.allow([UInt8](repeating: UInt8($0), count: 16), now: now, budget: .global) }.count
        #expect(flood == 3, "the flood gets the global budget and no more")
        let proven = (100..<110).filter { limiter.allow([UInt8](repeating: UInt8($0), count: 16), now: now, budget: .proven) }.count
        #expect(proven == 3, "proven HELLOs still find their whole budget")
    }

    @Test func recentKeysAreBoundedAndPinnedKeysStay() throws {
        let table = KnownRouterKeys()
        let keys = try SessionKeys(relay: WireGuardKeyPair(privateKey: Fixture.keys.relayWireGuardKey().agreementKey),
                                   routerPublicKey: [UInt8](try Fixture.router(site: "site-a", slot: 1).key.publicKey))
        let pinned = [UInt8](repeating: 9, count: 32)
        table.pin(pinned, keys)
        for index in 0..<(KnownRouterKeys.recentLimit + 500) {
            table.remember([UInt8(index & 0xff), UInt8((index >> 8) & 0xff)] + [UInt8](repeating: 1, count: 30), keys)
        }
        #expect(table.counts == (pinned: 1, recent: KnownRouterKeys.recentLimit))
        #expect(table.lookup(pinned) != nil)
    }

    @Test func onlyKeyAgreementIsChargedToTheGlobalBudget() {
        var limiter = RateLimiter(perSecond: 1000, burst: 1000, globalPerSecond: 3, buckets: 64)
        let now: UInt64 = 1_000_000_000
        let unknown = (0..<10).filter { limiter.allow([UInt8](repeating: UInt8($0), count: 16), now: now) }.count
        #expect(unknown == 3, "the global budget holds 3 key agreements")
        let known = (0..<10).filter {
            limiter.allow([UInt8](repeating: UInt8($0), count: 16), now: now, budget: .sourceOnly)
        }.count
        #expect(known == 10, "datagrams under known keys do not wait for the global budget")
    }
}
