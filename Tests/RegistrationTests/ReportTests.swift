import EdgeCrypto
import Foundation
import Registration
import SystemCrypto
import Testing

/// The REGISTER report (docs/protocol.md, "Report"): generation, agent version and health travel
/// authenticated under the REGISTER's MAC; a REGISTER without one (an older agent) parses as
/// before; malformed, truncated or oversized reports are a `ParseError`, never a trap.
@Suite struct ReportTests {
    let router = WireGuardKeyPair(privateKey: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 7, count: 32)))
    let relay = WireGuardKeyPair(privateKey: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 9, count: 32)))
    let certificate = [UInt8](repeating: 0x41, count: 400)
    let report = RouterReport(generation: 7, health: .unhealthy, agentVersion: "0.1.0",
                              healthReason: "uplink eth0 has no carrier (link down)")

    func register(_ report: RouterReport?, certificate: [UInt8]? = nil) -> Register {
        Register(claim: .master, routerKey: router.publicKey, nonce: [UInt8](0..<16), cookie: [UInt8](repeating: 3, count: 24),
                 certificate: certificate ?? self.certificate, report: report)
    }

    @Test func aReportRoundTripsAtItsDocumentedOffsetsUnderTheMAC() throws {
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let bytes = MessageMAC.seal(register(report).authenticated, with: keys.requestKey)
        let encoded = report.encoded
        #expect(encoded.count == 11 + 5 + 38)
        #expect(bytes.count == 94 + 400 + 2 + encoded.count, "94 + L + 2 + E")
        #expect(bytes[3] == 1, "flags bit 0: a report follows the certificate")
        #expect(Array(bytes[478..<480]) == [0, UInt8(encoded.count)], "E at 78 + L")
        #expect(Array(bytes[480..<488]) == [0, 0, 0, 0, 0, 0, 0, 7], "generation, big-endian")
        #expect(bytes[488] == 2 && bytes[489] == 5 && Array(bytes[490..<495]) == Array("0.1.0".utf8))
        #expect(bytes[495] == 38 && Array(bytes[496..<534]) == Array(report.healthReason.utf8))
        let parsed = try MessageCodec.parse(bytes)
        #expect(parsed.body == .register(register(report)))
        #expect(MessageMAC.verify(keys.requestKey, parsed.authenticated, mac: parsed.mac))

        // The report is under the MAC: changing one byte of it breaks verification.
        var tampered = bytes
        tampered[487] = 8
        let changed = try MessageCodec.parse(tampered)
        #expect(!MessageMAC.verify(keys.requestKey, changed.authenticated, mac: changed.mac))
    }

    @Test func aRegisterWithoutReportIsTheV1LayoutUnchanged() throws {
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let bytes = MessageMAC.seal(register(nil).authenticated, with: keys.requestKey)
        #expect(bytes.count == 494 && bytes[3] == 0)
        let parsed = try MessageCodec.parse(bytes)
        guard case .register(let register) = parsed.body else { Issue.record("not a REGISTER"); return }
        #expect(register.report == nil)
        #expect(MessageMAC.verify(keys.requestKey, parsed.authenticated, mac: parsed.mac))
    }

    @Test func malformedTruncatedAndOversizedReportsAreRefusedByName() throws {
        let good = register(report).authenticated + [UInt8](repeating: 0xaa, count: 16)
        let reportAt = 78 + 400 + 2
        func with(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var bytes = good
            change(&bytes)
            return bytes
        }
        #expect(throws: ParseError.unknownFlags(3)) { try MessageCodec.parse(with { $0[3] = 3 }) }
        #expect(throws: ParseError.unknownFlags(0x80)) { try MessageCodec.parse(with { $0[3] = 0x80 }) }
        // Flag set but nothing after the certificate: the old length with the new flag.
        let flaggedOld = with { _ in } .prefix(78 + 400) + [UInt8](repeating: 0xaa, count: 16)
        #expect(throws: ParseError.wrongLength(.register, expected: 78 + 400 + 2 + 11 + 16, actual: 494)) {
            try MessageCodec.parse(flaggedOld)
        }
        #expect(throws: ParseError.reportLength(10)) { try MessageCodec.parse(with { $0[reportAt - 1] = 10 }) }
        #expect(throws: ParseError.reportLength(0xffff)) { try MessageCodec.parse(with { $0[reportAt - 2] = 0xff; $0[reportAt - 1] = 0xff }) }
        #expect(throws: ParseError.wrongLength(.register, expected: good.count + 1, actual: good.count)) {
            try MessageCodec.parse(with { $0[reportAt - 1] += 1 })
        }
        #expect(throws: ParseError.wrongLength(.register, expected: good.count, actual: good.count - 1)) {
            try MessageCodec.parse(good.dropLast())
        }
        #expect(throws: ParseError.report("health 3 is not 0, 1 or 2")) { try MessageCodec.parse(with { $0[reportAt + 8] = 3 }) }
        #expect(throws: ParseError.report("agent version of 33 bytes is longer than 32")) { try MessageCodec.parse(with { $0[reportAt + 9] = 33 }) }
        #expect(throws: ParseError.report("agent version is not printable ASCII")) { try MessageCodec.parse(with { $0[reportAt + 10] = 0x20 }) }
        #expect(throws: ParseError.report("health reason of 201 bytes is longer than 200")) { try MessageCodec.parse(with { $0[reportAt + 15] = 201 }) }
        #expect(throws: ParseError.report("54 bytes, but its fields take 53 (55 with the tunnel MTU, 70 with the system, 72 with both)")) { try MessageCodec.parse(with { $0[reportAt + 15] = 37 }) }
        #expect(throws: ParseError.report("health reason holds a control character")) { try MessageCodec.parse(with { $0[reportAt + 16] = 0x0a }) }
        #expect(throws: ParseError.report("health reason is not UTF-8")) { try MessageCodec.parse(with { $0[reportAt + 16] = 0xff }) }
        // A report that would push the datagram past 1200 bytes.
        let big = RouterReport(generation: 1, health: .healthy, agentVersion: "v", healthReason: String(repeating: "r", count: 200))
        let bigCertificate = [UInt8](repeating: 0x41, count: 1100)
        let oversized = register(big, certificate: bigCertificate).authenticated + [UInt8](repeating: 0, count: 16)
        #expect(throws: ParseError.tooLarge(oversized.count)) { try MessageCodec.parse(oversized) }

        // Every prefix and every single-byte change of a report REGISTER: a value or a ParseError.
        for length in 0...good.count { _ = try? MessageCodec.parse(good.prefix(length)) }
        var generator = SystemRandomNumberGenerator()
        for offset in 0..<good.count {
            for value: UInt8 in [0, 1, 0x7f, 0xff, UInt8.random(in: 0...255, using: &generator)] {
                if let parsed = try? MessageCodec.parse(with { $0[offset] = value }), case .register(let register) = parsed.body {
                    // Whatever parses re-encodes to exactly its bytes (the fuzzer's invariant).
                    #expect(register.authenticated == Array(parsed.authenticated))
                }
            }
        }
    }

    /// The tunnel MTU: two bytes after the reason, only when the router says it (docs/protocol.md,
    /// "Report"); a report without them parses as before, with no MTU.
    @Test func theTunnelMTUFollowsTheReasonWhenTheRouterSaysIt() throws {
        let withMTU = RouterReport(generation: 7, health: .unhealthy, agentVersion: "0.1.0",
                                   healthReason: "uplink eth0 has no carrier (link down)", tunnelMTU: 1392)
        let encoded = withMTU.encoded
        #expect(encoded.count == 11 + 5 + 38 + 2)
        #expect(Array(encoded.prefix(54)) == report.encoded, "the fields before it are the report without it")
        #expect(Array(encoded.suffix(2)) == [0x05, 0x70], "1392, big-endian")
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        let bytes = MessageMAC.seal(register(withMTU).authenticated, with: keys.requestKey)
        #expect(Array(bytes[478..<480]) == [0, 56], "E = 11 + V + Q + 2")
        let parsed = try MessageCodec.parse(bytes)
        guard case .register(let register) = parsed.body else { Issue.record("not a REGISTER"); return }
        #expect(register.report?.tunnelMTU == 1392 && register.report == withMTU)
        #expect(MessageMAC.verify(keys.requestKey, parsed.authenticated, mac: parsed.mac))
        #expect(try RouterReport.parse(report.encoded[...]).tunnelMTU == nil)

        // Below IPv6's 1280 is refused; a single extra byte is neither form.
        var small = encoded
        small[55] = 0xff
        small[54] = 0x04    // 0x04ff = 1279
        #expect(throws: ParseError.report("tunnel MTU 1279 is below 1280")) { try RouterReport.parse(small[...]) }
        #expect(throws: ParseError.report("55 bytes, but its fields take 54 (56 with the tunnel MTU, 71 with the system, 73 with both)")) {
            try RouterReport.parse((report.encoded + [0x05])[...])
        }
        // Made safe when made; the client keeps it when it cuts the reason to fit.
        #expect(RouterReport(generation: 1, health: .healthy, agentVersion: "v", healthReason: "", tunnelMTU: 900).tunnelMTU == 1280)
        #expect(withMTU.fitting(11 + 5 + 2 + 10)?.tunnelMTU == 1392)
        #expect(withMTU.fitting(11 + 5 + 2 + 10)?.healthReason.utf8.count == 10)
        #expect(withMTU.fitting(11 + 5 + 1) == nil)
    }

    /// The system part: 17 bytes last, with or without the tunnel MTU before it (docs/protocol.md,
    /// "Report"); the relay learns which version a router runs and how its last update went.
    @Test func theSystemFollowsTheReasonOrTheMTUWhenTheRouterSaysIt() throws {
        let failed = RouterReport.System(version: 3, update: .failed, updateVersion: 4)
        let withSystem = RouterReport(generation: 7, health: .unhealthy, agentVersion: "0.1.0",
                                      healthReason: "uplink eth0 has no carrier (link down)", system: failed)
        let encoded = withSystem.encoded
        #expect(encoded.count == 54 + 17)
        #expect(Array(encoded.prefix(54)) == report.encoded)
        #expect(Array(encoded.suffix(17)) == [0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 4],
                "version 3, state failed, update version 4, big-endian")
        let both = RouterReport(generation: 7, health: .unhealthy, agentVersion: "0.1.0",
                                healthReason: "uplink eth0 has no carrier (link down)", tunnelMTU: 1392, system: failed)
        #expect(Array(both.encoded[54..<56]) == [0x05, 0x70] && Array(both.encoded.suffix(17)) == Array(encoded.suffix(17)),
                "the MTU first, the system last")
        let keys = try SessionKeys(router: router, relayPublicKey: relay.publicKey)
        for sent in [withSystem, both] {
            let bytes = MessageMAC.seal(register(sent).authenticated, with: keys.requestKey)
            #expect(Array(bytes[478..<480]) == [0, UInt8(sent.encoded.count)])
            let parsed = try MessageCodec.parse(bytes)
            guard case .register(let register) = parsed.body else { Issue.record("not a REGISTER"); return }
            #expect(register.report == sent)
            #expect(MessageMAC.verify(keys.requestKey, parsed.authenticated, mac: parsed.mac))
        }
        #expect(try RouterReport.parse(encoded[...]).tunnelMTU == nil)
        #expect(try RouterReport.parse(both.encoded[...]).system == failed)

        // Refused by name: a state above 3, an install of version 0, a version without an install.
        func changed(_ offset: Int, _ value: UInt8) -> ArraySlice<UInt8> {
            var bytes = encoded
            bytes[offset] = value
            return bytes[...]
        }
        #expect(throws: ParseError.report("update state 4 is not 0, 1, 2 or 3")) { try RouterReport.parse(changed(62, 4)) }
        #expect(throws: ParseError.report("update failed of version 0")) { try RouterReport.parse(changed(70, 0)) }
        #expect(throws: ParseError.report("update version 4 without an update")) { try RouterReport.parse(changed(62, 0)) }
        // No install: the update version is 0 whatever the caller passed.
        #expect(RouterReport.System(version: 5, update: .none, updateVersion: 9).updateVersion == 0)
        // The reason is cut to make room for it; the system is kept.
        #expect(withSystem.fitting(11 + 5 + 17 + 10)?.system == failed)
        #expect(withSystem.fitting(11 + 5 + 17 + 10)?.healthReason.utf8.count == 10)
        #expect(withSystem.fitting(11 + 5 + 16) == nil)
        // The largest report still parses inside one REGISTER.
        let largest = RouterReport(generation: .max, health: .healthy, agentVersion: String(repeating: "v", count: 32),
                                   healthReason: String(repeating: "r", count: 200), tunnelMTU: 65535, system: failed)
        #expect(largest.encoded.count == RouterReport.maximumSize && RouterReport.maximumSize == 262)
        #expect(try MessageCodec.parse(register(largest).authenticated + [UInt8](repeating: 0, count: 16)).body == .register(register(largest)))
    }

    @Test func reportsAreMadeWireSafeWhenMade() throws {
        let messy = RouterReport(generation: .max, health: .healthy, agentVersion: "1.0 beta\u{7}" + String(repeating: "x", count: 40),
                                 healthReason: "line one\nline two\u{85}" + String(repeating: "é", count: 150))
        #expect(messy.agentVersion.hasPrefix("1.0_beta_") && messy.agentVersion.utf8.count == 32)
        #expect(messy.healthReason.hasPrefix("line one line two ") && messy.healthReason.utf8.count <= 200)
        #expect(messy.healthReason.utf8.count == 18 + 182, "cut at a character boundary: é is two bytes")
        let bytes = register(messy).authenticated + [UInt8](repeating: 0, count: 16)
        #expect(try MessageCodec.parse(bytes).body == .register(register(messy)))

        // The client cuts the reason to what fits beside the certificate; no room at all: no report.
        #expect(messy.fitting(11 + 32 + 10)?.healthReason.utf8.count ?? 99 <= 10)
        #expect(messy.fitting(11 + 31) == nil)
        #expect(messy.fitting(1000) == messy)
    }
}
