import EdgeCrypto
import Foundation
import Registration
import SystemCrypto
import Testing

@Suite struct MessageTests {
    let router = WireGuardKeyPair(privateKey: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 7, count: 32)))
    let relay = WireGuardKeyPair(privateKey: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 9, count: 32)))
    let nonce = [UInt8](0..<16)

    @Test func bothEndsDeriveTheSameDirectionalKeys() throws {
        let routerSide = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let relaySide = try SessionKeys(relay: relay, routerPublicKey: router.publicKey)
        let message: [UInt8] = Array("x".utf8)
        #expect(MessageMAC.compute(routerSide.requestKey, message) == MessageMAC.compute(relaySide.requestKey, message))
        #expect(MessageMAC.compute(routerSide.responseKey, message) == MessageMAC.compute(relaySide.responseKey, message))
        #expect(MessageMAC.compute(routerSide.requestKey, message) != MessageMAC.compute(routerSide.responseKey, message),
                "a reflected message must not verify in the other direction")
    }

    @Test func lowOrderRouterKeyIsRefused() {
        #expect(throws: KeyScheduleError.lowOrderPoint) {
            try SessionKeys(relay: relay, routerPublicKey: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func everyMessageRoundTripsAtItsDocumentedSize() throws {
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let hello = MessageMAC.seal(Hello(routerKey: router.publicKey, nonce: nonce).authenticated, with: keys.requestKey)
        #expect(hello.count == 128)
        let cookie = [UInt8](repeating: 3, count: 24)
        let challenge = MessageMAC.seal(Challenge(nonce: nonce, cookie: cookie).authenticated, with: keys.responseKey)
        #expect(challenge.count == 60)
        let certificate = [UInt8](repeating: 0x41, count: 400)
        let register = Register(claim: .backup, routerKey: router.publicKey, nonce: nonce, cookie: cookie, certificate: certificate)
        let registerBytes = MessageMAC.seal(register.authenticated, with: keys.requestKey)
        #expect(registerBytes.count == 494)
        let answer = RegistrationAnswer(status: .accepted, routesSitePrefix: true, claimedMaster: true, nonce: nonce,
                                        cookieTime: 42, tunnelAddress: [UInt8](repeating: 1, count: 16),
                                        sitePrefix: [UInt8](repeating: 2, count: 16))
        let result = MessageMAC.seal(answer.authenticated, with: keys.responseKey)
        #expect(result.count == 76)
        #expect(challenge.count < hello.count && result.count < registerBytes.count, "replies are never larger than requests")

        let parsedHello = try MessageCodec.parse(hello)
        #expect(parsedHello.body == .hello(Hello(routerKey: router.publicKey, nonce: nonce)))
        #expect(MessageMAC.verify(keys.requestKey, parsedHello.authenticated, mac: parsedHello.mac))
        #expect(try MessageCodec.parse(challenge).body == .challenge(Challenge(nonce: nonce, cookie: cookie)))
        let parsedRegister = try MessageCodec.parse(registerBytes)
        #expect(parsedRegister.body == .register(register))
        #expect(MessageMAC.verify(keys.requestKey, parsedRegister.authenticated, mac: parsedRegister.mac))
        #expect(try MessageCodec.parse(result).body == .result(answer))
    }

    /// docs/protocol.md, "HELLO": the proof at bytes 52..<68, checked against a value computed
    /// outside Swift (Python's hmac and hashlib, HKDF written out from RFC 5869).
    @Test func helloProofMatchesTheDocumentedDerivation() throws {
        let relayKey = [UInt8](repeating: 0x33, count: 32)
        let hello = Hello(routerKey: [UInt8](repeating: 0x42, count: 32), nonce: nonce, relayPublicKey: relayKey)
        #expect(hello.proof.map { String(format: "%02x", $0) }.joined() == "4bd9e76bda775970b0fea3d48f278fbf")
        #expect(Array(hello.authenticated[52..<68]) == hello.proof)
        #expect(hello.authenticated[68...].allSatisfy { $0 == 0 }, "the rest of the padding stays zero")
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let parsed = try MessageCodec.parse(MessageMAC.seal(hello.authenticated, with: keys.requestKey))
        #expect(parsed.body == .hello(hello))
        #expect(Hello(routerKey: router.publicKey, nonce: nonce).proof == HelloProof.none)
    }

    @Test func malformedDatagramsGiveTypedErrors() throws {
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let hello = MessageMAC.seal(Hello(routerKey: router.publicKey, nonce: nonce).authenticated, with: keys.requestKey)
        #expect(throws: ParseError.empty) { try MessageCodec.parse([UInt8]()) }
        #expect(throws: ParseError.tooLarge(1201)) { try MessageCodec.parse([UInt8](repeating: 1, count: 1201)) }
        #expect(throws: ParseError.unknownVersion(2)) { try MessageCodec.parse([2, 1, 0, 0]) }
        #expect(throws: ParseError.unknownVersion(1)) { try MessageCodec.parse([1]) }
        #expect(throws: ParseError.unknownType(9)) { try MessageCodec.parse([1, 9]) }
        #expect(throws: ParseError.wrongLength(.hello, expected: 128, actual: 127)) { try MessageCodec.parse(hello.dropLast()) }
        var padded = hello
        padded[70] = 1
        #expect(throws: ParseError.nonZeroReserved(.hello, offset: 70)) { try MessageCodec.parse(padded) }
        var register = [UInt8](repeating: 0, count: 200)
        register[0] = 1; register[1] = 3; register[2] = 1
        register[76] = 0; register[77] = 106
        #expect(throws: ParseError.wrongLength(.register, expected: 200, actual: 199)) { try MessageCodec.parse(register.dropLast()) }
        register[2] = 7
        #expect(throws: ParseError.unknownClaim(7)) { try MessageCodec.parse(register) }
        register[2] = 1; register[76] = 0xff
        #expect(throws: ParseError.certificateLength(0xff6a)) { try MessageCodec.parse(register) }
    }

    @Test func cookiesAreBoundToKeyAddressAndAge() {
        let jar = CookieJar(lifetimeSeconds: 30)
        let address = [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 192, 0, 2, 1]
        let cookie = jar.issue(time: 1_000_000, routerKey: router.publicKey, address: address)
        #expect(jar.check(cookie, routerKey: router.publicKey, address: address, now: 1_000_000) == 1_000_000)
        #expect(jar.check(cookie, routerKey: router.publicKey, address: address, now: 31_000_000) == 1_000_000)
        #expect(jar.check(cookie, routerKey: router.publicKey, address: address, now: 31_000_001) == nil, "stale")
        #expect(jar.check(cookie, routerKey: router.publicKey, address: address, now: 999_999) == nil, "from the future")
        #expect(jar.check(cookie, routerKey: relay.publicKey, address: address, now: 1_000_000) == nil, "other key")
        var other = address
        other[15] = 2
        #expect(jar.check(cookie, routerKey: router.publicKey, address: other, now: 1_000_000) == nil, "other address")
        #expect(CookieJar().check(cookie, routerKey: router.publicKey, address: address, now: 1_000_000) == nil,
                "a restarted relay has a new secret")
    }

    @Test func relayClockStartsAboveEveryStoredTime() {
        let future = UInt64(Date().timeIntervalSince1970 * 1e6) + 3_600_000_000
        let clock = RelayClock(floor: future)
        #expect(clock.base == future + 1)
        let first = clock.now
        #expect(clock.now >= first && first > future)
    }
}
