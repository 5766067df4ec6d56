import EdgeErrors
import Foundation
import SystemCrypto
import TestSupport
import Testing
@testable import EdgeCrypto

@Suite("Bech32 (BIP-173)")
struct Bech32Tests {
    @Test(arguments: [
        "A12UEL5L",
        "a12uel5l",
        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "11" + String(repeating: "q", count: 82) + "c8247j",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
        "?1ezyfcl",
    ])
    func validChecksums(_ text: String) throws {
        // Some BIP-173 vectors carry 5-bit data that is not whole bytes; only the checksum
        // and character rules are under test here, so padding errors are acceptable.
        do {
            _ = try Bech32.decode(text)
        } catch {
            #expect(error.message.contains("padding"), "\(text): \(error.message)")
        }
    }

    @Test(arguments: [
        "\u{20}1nwldj5",        // HRP character out of range
        "\u{7F}1axkwrx",
        "pzry9x0s0muk",         // no separator
        "1pzry9x0s0muk",        // empty HRP
        "x1b4n0q5v",            // invalid data character
        "li1dgmt3",             // too short checksum
        "A1G7SGD8",             // checksum computed with upper-case HRP
        "10a06t8",              // empty HRP
        "1qzzfhee",             // empty HRP
        "A12UEL5l",             // mixed case
    ])
    func invalidStrings(_ text: String) {
        #expect(throws: Bech32.DecodingError.self) { try Bech32.decode(text) }
    }

    @Test func roundTripKeepsHRPCase() throws {
        let data = Data((0..<32).map { UInt8($0) })
        let lower = Bech32.encode(hrp: "age", data: data)
        #expect(lower.hasPrefix("age1") && lower == lower.lowercased())
        #expect(try Bech32.decode(lower).data == data)
        let upper = Bech32.encode(hrp: "AGE-SECRET-KEY-", data: data)
        #expect(upper.hasPrefix("AGE-SECRET-KEY-1") && upper == upper.uppercased())
        let decoded = try Bech32.decode(upper)
        #expect(decoded.hrp == "AGE-SECRET-KEY-" && decoded.data == data)
    }
}

@Suite("age keys")
struct AgeKeyTests {
    static let cctvIdentity = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"

    @Test func identityTextRoundTrips() throws {
        let identity = try Age.Identity(parsing: Self.cctvIdentity)
        #expect(identity.text == Self.cctvIdentity)
        let recipient = identity.recipient
        #expect(try Age.Recipient(parsing: recipient.text) == recipient)
        #expect(recipient.text.hasPrefix("age1"))
    }

    @Test func parsesKeygenFile() throws {
        let identity = Age.Identity.generate()
        let file = "# created: 2026-01-01T00:00:00Z\n# public key: \(identity.recipient.text)\n\(identity.text)\n"
        #expect(try Age.Identity(parsing: file).rawRepresentation == identity.rawRepresentation)
    }

    @Test(arguments: [
        "",                                                      // nothing
        "# only a comment\n",
        cctvIdentity.lowercased(),                               // identities are upper case
        "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM1", // checksum
        "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2Lm0", // mixed case
        "\(cctvIdentity)\n\(cctvIdentity)",                     // two keys
    ])
    func rejectsBadIdentities(_ text: String) {
        #expect { try Age.Identity(parsing: text) } throws: { ($0 as? AgeError)?.code == "age.invalid-identity" }
    }

    @Test func rejectsBadRecipients() throws {
        let good = Age.Identity.generate().recipient.text
        for bad in [good.uppercased(), "age2" + good.dropFirst(4), String(good.dropLast()) + (good.last == "q" ? "p" : "q"),
                    Bech32.encode(hrp: "age", data: Data(count: 31))] {
            #expect { try Age.Recipient(parsing: bad) } throws: { ($0 as? AgeError)?.code == "age.invalid-recipient" }
        }
        #expect(throws: AgeError.self) { try Age.Identity(rawRepresentation: Data(count: 31)) }
    }
}

@Suite("age encrypt/decrypt")
struct AgeRoundTripTests {
    @Test(arguments: [0, 1, 100, 65535, 65536, 65537, 2 * 65536, 200 * 1024])
    func roundTrip(size: Int) throws {
        let identity = Age.Identity.generate()
        let plaintext = testBytes(size)
        let file = try Age.encrypt(plaintext, to: [identity.recipient])
        let chunks = max(1, (size + 65535) / 65536)
        #expect(file.count > size + 16 * chunks + 16)
        #expect(try Age.decrypt(file, with: [identity]) == plaintext)
    }

    @Test func multipleRecipientsAndIdentities() throws {
        let a = Age.Identity.generate(), b = Age.Identity.generate(), c = Age.Identity.generate()
        let file = try Age.encrypt(Data("hello".utf8), to: [a.recipient, b.recipient])
        #expect(try Age.decrypt(file, with: [b]) == Data("hello".utf8))
        #expect(try Age.decrypt(file, with: [c, a]) == Data("hello".utf8))
        expectCode("age.no-recipients") { _ = try Age.encrypt(Data(), to: []) }
    }

    @Test func headerIsCanonical() throws {
        let identity = Age.Identity.generate()
        let file = try Age.encrypt(Data("x".utf8), to: [identity.recipient])
        let header = try AgeHeader.parse([UInt8](file))
        #expect(header.stanzas.count == 1)
        #expect(header.stanzas[0].type == "X25519")
        #expect(header.stanzas[0].body.count == 32)
        #expect(AgeHeader.encode(stanzas: header.stanzas) == header.macInput)
    }

    @Test func stanzaBodyLineWrapping() throws {
        for size in [0, 47, 48, 49, 96] {
            let stanza = AgeStanza(type: "grease", arguments: ["a"], body: testBytes(size))
            var encoded = AgeHeader.encode(stanzas: [stanza])
            encoded.append(contentsOf: Array(" \(StrictBase64.encode(Data(count: 32), padded: false))\n".utf8))
            let parsed = try AgeHeader.parse([UInt8](encoded))
            #expect(parsed.stanzas == [stanza], "body of \(size) bytes")
        }
    }
}

/// Tampering with a file we made must give the specific error a caller can act on.
@Suite("age negative cases")
struct AgeNegativeTests {
    let identity = Age.Identity.generate()
    let plaintext = testBytes(70_000)

    func encrypted() throws -> Data { try Age.encrypt(plaintext, to: [identity.recipient]) }

    func code(_ file: Data, _ identities: [Age.Identity]? = nil) -> ErrorCode? {
        do {
            _ = try Age.decrypt(file, with: identities ?? [identity])
            return nil
        } catch let error as AgeError {
            return error.code
        } catch {
            return nil
        }
    }

    /// Splits an age file into header lines (through the MAC line) and the binary rest.
    func split(_ file: Data) throws -> (lines: [String], rest: Data) {
        let header = try AgeHeader.parse([UInt8](file))
        let text = String(decoding: file.prefix(header.payloadOffset), as: UTF8.self)
        return (text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init),
                file.suffix(from: file.startIndex + header.payloadOffset))
    }

    func join(_ lines: [String], _ rest: Data) -> Data { Data((lines.joined(separator: "\n") + "\n").utf8) + rest }

    /// A low-order recipient would make the file key readable by anyone: refused as a bad recipient.
    @Test func lowOrderRecipientIsRefused() throws {
        let lowOrder = try Age.Recipient(parsing: Bech32.encode(hrp: "age", data: Data(count: 32)))
        #expect { try Age.encrypt(plaintext, to: [lowOrder]) } throws: { ($0 as? AgeError)?.code == "age.invalid-recipient" }
    }

    @Test func wrongIdentityIsNoMatch() throws {
        #expect(code(try encrypted(), [Age.Identity.generate()]) == "age.no-match")
    }

    @Test func alteredHeaderFailsTheMAC() throws {
        var (lines, rest) = try split(try encrypted())
        lines.insert("-> grease-stanza x", at: 1)
        lines.insert("", at: 2)
        #expect(code(join(lines, rest)) == "age.header-mac")
    }

    @Test func flippedMACFailsTheMAC() throws {
        var (lines, rest) = try split(try encrypted())
        var mac = Array(lines[lines.count - 1])
        mac[4] = mac[4] == "A" ? "B" : "A"
        lines[lines.count - 1] = String(mac)
        #expect(code(join(lines, rest)) == "age.header-mac")
    }

    @Test func flippedHeaderByteIsHeaderOrMACFailure() throws {
        let file = try encrypted()
        let header = try AgeHeader.parse([UInt8](file))
        // Every single-byte change to the header must be caught by the parser or the MAC
        // (or, for the stanza's own key material, make it not match).
        for offset in stride(from: 0, to: header.payloadOffset, by: 3) {
            var tampered = file
            tampered[offset] ^= 0x01
            let result = code(tampered)
            #expect(result == "age.header" || result == "age.header-mac" || result == "age.no-match" || result == "age.unsupported-version",
                    "byte \(offset) gave \(String(describing: result))")
        }
    }

    @Test func unknownVersionIsUnsupported() throws {
        var (lines, rest) = try split(try encrypted())
        lines[0] = "age-encryption.org/v2"
        #expect(code(join(lines, rest)) == "age.unsupported-version")
        lines[0] = "rage-encryption.org/v1"
        #expect(code(join(lines, rest)) == "age.header")
    }

    @Test func nonCanonicalBase64IsHeaderFailure() throws {
        let (lines, rest) = try split(try encrypted())
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        // The 43-character share and MAC carry 2 unused bits in their last character.
        func bump(_ text: String) -> String {
            var chars = Array(text)
            if let last = chars.last, let index = alphabet.firstIndex(of: last) { chars[chars.count - 1] = alphabet[index + 1] }
            return String(chars)
        }
        var shareLines = lines
        shareLines[1] = bump(lines[1])
        #expect(code(join(shareLines, rest)) == "age.header")
        var macLines = lines
        macLines[lines.count - 1] = bump(lines[lines.count - 1])
        #expect(code(join(macLines, rest)) == "age.header")
        var paddedLines = lines
        paddedLines[1] += "="
        #expect(code(join(paddedLines, rest)) == "age.header")
        var crlfLines = lines
        crlfLines[2] += "\r"
        #expect(code(join(crlfLines, rest)) == "age.header")
    }

    @Test func truncatedPayloadIsPayloadFailure() throws {
        let file = try encrypted()
        let header = try AgeHeader.parse([UInt8](file))
        let payloadStart = header.payloadOffset + 16
        for cut in [1, 16, 17, file.count - payloadStart - 65536 - 16] {
            #expect(code(file.dropLast(cut)) == "age.payload", "cut \(cut)")
        }
        // Cutting exactly after the first (full, non-final) chunk.
        #expect(code(file.prefix(payloadStart + 65536 + 16)) == "age.payload")
        // Cutting into the nonce is reported as a header failure, as in the reference implementation.
        #expect(code(file.prefix(payloadStart - 1)) == "age.header")
    }

    @Test func trailingDataIsPayloadFailure() throws {
        let file = try encrypted()
        #expect(code(file + Data([0])) == "age.payload")
        #expect(code(file + Data(count: 100)) == "age.payload")
    }

    @Test func releasedPlaintextStopsAtTheFailure() throws {
        var file = try encrypted()
        file[file.count - 1] ^= 1
        var released = Data()
        #expect { try Age.decrypt(file, with: [identity]) { released.append($0) } } throws: {
            ($0 as? AgeError)?.code == "age.payload"
        }
        #expect(released == plaintext.prefix(65536))
    }
}

/// Bad input must produce an `AgeError`, never a crash or another error type.
@Suite("age robustness")
struct AgeRobustnessTests {
    @Test func mutationsAndTruncationsOnlyThrowAgeErrors() throws {
        let identity = Age.Identity.generate()
        let file = try Age.encrypt(testBytes(70_000), to: [identity.recipient, Age.Identity.generate().recipient])
        let headerEnd = try AgeHeader.parse([UInt8](file)).payloadOffset + 16
        var state: UInt64 = 42
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var inputs: [Data] = (0...headerEnd + 20).map { file.prefix($0) }
        for _ in 0..<300 {
            var mutated = file
            for _ in 0..<(1 + next(3)) {
                mutated[next(headerEnd + 40)] = UInt8(next(256))
            }
            inputs.append(mutated)
        }
        for input in inputs {
            do {
                _ = try Age.decrypt(input, with: [identity])
            } catch is AgeError {
            } catch {
                Issue.record("non-age error \(error)")
            }
        }
    }
}
