import EdgeErrors
import Foundation
import Testing
@testable import EdgeCrypto

func hexData(_ hex: String) -> Data {
    var out = Data()
    var chars = hex.makeIterator()
    while let high = chars.next(), let low = chars.next() {
        out.append(UInt8(String([high, low]), radix: 16) ?? 0)
    }
    return out
}

func signifyCode(_ body: () throws -> Void) -> ErrorCode? {
    do {
        try body()
        return nil
    } catch let error as SignifyError {
        return error.code
    } catch {
        return nil
    }
}

@Suite("signify formats")
struct SignifyTests {
    // RFC 8032 section 7.1, test 1 (empty message).
    static let rfcSeed = hexData("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    static let rfcPublic = hexData("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    static let rfcSignature = hexData("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    static let keyNumber = hexData("0102030405060708")

    @Test func knownAnswer() throws {
        let key = try Signify.SecretKey(seed: Self.rfcSeed, keyNumber: Self.keyNumber)
        #expect(key.publicKey.key == Self.rfcPublic)
        #expect(key.publicKey.keyNumber == Self.keyNumber)
        let signature = try Signify.Signature(keyNumber: Self.keyNumber, bytes: Self.rfcSignature)
        try Signify.verify(Data(), signature: signature, publicKey: key.publicKey)
        // libcrypto's Ed25519 is the deterministic RFC 8032 algorithm.
        #expect(Signify.sign(Data(), with: key) == signature)
    }

    @Test func fileLayout() throws {
        let key = try Signify.SecretKey(seed: Self.rfcSeed, keyNumber: Self.keyNumber)
        let pub = key.publicKey.fileText(comment: "test public key")
        let lines = pub.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[0] == "untrusted comment: test public key" && lines[2].isEmpty)
        #expect(StrictBase64.decode(Array(lines[1].utf8), padded: true) == Data("Ed".utf8) + Self.keyNumber + Self.rfcPublic)

        let sec = key.fileText(comment: "test secret key")
        let secLines = sec.split(separator: "\n")
        let raw = try #require(StrictBase64.decode(Array(secLines[1].utf8), padded: true))
        #expect(raw.count == 104)
        #expect(raw.prefix(4) == Data("EdBK".utf8))
        #expect(raw[4..<8] == Data([0, 0, 0, 0]))
        #expect(raw[32..<40] == Self.keyNumber)
        #expect(raw[40..<104] == Self.rfcSeed + Self.rfcPublic)
    }

    @Test func filesRoundTrip() throws {
        let key = Signify.SecretKey.generate()
        let parsedKey = try Signify.SecretKey(parsing: key.fileText(comment: "k"))
        #expect(parsedKey.publicKey == key.publicKey)
        #expect(parsedKey.fileText(comment: "k") == key.fileText(comment: "k"))
        #expect(try Signify.PublicKey(parsing: key.publicKey.fileText(comment: "p")) == key.publicKey)
        let signature = Signify.sign(Data("msg".utf8), with: key)
        #expect(try Signify.Signature(parsing: signature.fileText(comment: "s")) == signature)
        try Signify.verify(Data("msg".utf8), signature: signature, publicKey: key.publicKey)
    }

    @Test(arguments: [0, 1, 1000, 100_000])
    func embeddedRoundTrip(size: Int) throws {
        let key = Signify.SecretKey.generate()
        let message = testBytes(size)
        let file = Signify.signEmbedded(message, with: key, comment: "verify with key.pub")
        let text = String(decoding: file.prefix(file.count - size), as: UTF8.self)
        #expect(text.hasPrefix("untrusted comment: verify with key.pub\n"))
        #expect(try Signify.Signature(parsing: text) == Signify.sign(message, with: key))
        #expect(try Signify.verifyEmbedded(file, publicKey: key.publicKey) == message)
    }

    @Test func commentsAreSanitised() throws {
        let key = Signify.SecretKey.generate()
        let text = key.publicKey.fileText(comment: "two\nlines")
        #expect(text.hasPrefix("untrusted comment: two lines\n"))
        #expect(try Signify.PublicKey(parsing: key.publicKey.fileText(comment: "")) == key.publicKey)
        #expect(try Signify.PublicKey(parsing: key.publicKey.fileText(comment: String(repeating: "é", count: 900))) == key.publicKey)
    }

    // MARK: Negative cases

    @Test func tamperedEmbeddedMessageIsBadSignature() throws {
        let key = Signify.SecretKey.generate()
        var file = Signify.signEmbedded(Data("release 1.0".utf8), with: key, comment: "c")
        file[file.count - 1] ^= 1
        #expect(signifyCode { _ = try Signify.verifyEmbedded(file, publicKey: key.publicKey) } == "signify.bad-signature")
        #expect(signifyCode { _ = try Signify.verifyEmbedded(file + Data("x".utf8), publicKey: key.publicKey) } == "signify.bad-signature")
    }

    @Test func tamperedSignatureIsBadSignature() throws {
        let key = Signify.SecretKey.generate()
        let signature = Signify.sign(Data("m".utf8), with: key)
        var bytes = signature.bytes
        bytes[5] ^= 0x40
        let tampered = try Signify.Signature(keyNumber: signature.keyNumber, bytes: bytes)
        #expect(signifyCode { try Signify.verify(Data("m".utf8), signature: tampered, publicKey: key.publicKey) } == "signify.bad-signature")
    }

    @Test func otherKeyIsWrongKey() throws {
        let key = Signify.SecretKey.generate(), other = Signify.SecretKey.generate()
        let signature = Signify.sign(Data("m".utf8), with: key)
        #expect(signifyCode { try Signify.verify(Data("m".utf8), signature: signature, publicKey: other.publicKey) } == "signify.wrong-key")
        let file = Signify.signEmbedded(Data("m".utf8), with: key, comment: "c")
        #expect(signifyCode { _ = try Signify.verifyEmbedded(file, publicKey: other.publicKey) } == "signify.wrong-key")
        // Same key number, different key: the signature check catches it.
        let impostor = try Signify.PublicKey(keyNumber: key.keyNumber, key: other.publicKey.key)
        #expect(signifyCode { try Signify.verify(Data("m".utf8), signature: signature, publicKey: impostor) } == "signify.bad-signature")
    }

    @Test func malformedFiles() throws {
        let key = Signify.SecretKey.generate()
        let good = key.publicKey.fileText(comment: "c")
        let base64 = String(good.split(separator: "\n")[1])
        let cases: [(String, ErrorCode)] = [
            ("", "signify.malformed"),
            ("trusted comment: c\n\(base64)\n", "signify.malformed"),
            ("untrusted comment: \n\(base64)\n", "signify.malformed"),                       // empty comment
            ("untrusted comment: c\n\(base64)", "signify.malformed"),                         // no final newline
            ("untrusted comment: c\n\(base64)\r\n", "signify.malformed"),                     // CR
            ("untrusted comment: c\n \(base64)\n", "signify.malformed"),                      // whitespace
            ("untrusted comment: c\n\(base64)=\n", "signify.malformed"),                      // extra padding
            ("untrusted comment: c\n\(base64.dropLast(4))\n", "signify.malformed"),           // too short
            ("untrusted comment: c\n\(base64)\nextra", "signify.malformed"),                  // trailing data
            ("untrusted comment: \(String(repeating: "x", count: 1024))\n\(base64)\n", "signify.malformed"),
            (Signify.fileText(comment: "c", defaultComment: "", payload: Data("Xx".utf8) + Data(count: 40)), "signify.unsupported"),
        ]
        for (text, expected) in cases {
            #expect(signifyCode { _ = try Signify.PublicKey(parsing: text) } == expected, "\(text.debugDescription)")
        }
        // Non-canonical trailing bits: 42 bytes is exactly 56 characters, so use the signature
        // (74 bytes, one '=') whose last data character carries 2 unused bits.
        let sig = Signify.sign(Data(), with: key).fileText(comment: "c")
        var sigLines = sig.split(separator: "\n").map(String.init)
        var chars = Array(sigLines[1])
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let index = try #require(alphabet.firstIndex(of: chars[chars.count - 2]))
        chars[chars.count - 2] = alphabet[index + 1]
        sigLines[1] = String(chars)
        #expect(signifyCode { _ = try Signify.Signature(parsing: sigLines.joined(separator: "\n") + "\n") } == "signify.malformed")
    }

    @Test func secretKeyChecks() throws {
        let key = Signify.SecretKey.generate()
        let lines = key.fileText(comment: "c").split(separator: "\n").map(String.init)
        let raw = try #require(StrictBase64.decode(Array(lines[1].utf8), padded: true))
        func file(_ bytes: Data) -> String { "untrusted comment: c\n" + StrictBase64.encode(bytes, padded: true) + "\n" }

        var encrypted = raw
        encrypted[7] = 42
        #expect(signifyCode { _ = try Signify.SecretKey(parsing: file(encrypted)) } == "signify.unsupported")
        var otherKDF = raw
        otherKDF[2] = UInt8(ascii: "X")
        #expect(signifyCode { _ = try Signify.SecretKey(parsing: file(otherKDF)) } == "signify.unsupported")
        var badChecksum = raw
        badChecksum[24] ^= 1
        #expect(signifyCode { _ = try Signify.SecretKey(parsing: file(badChecksum)) } == "signify.malformed")
        #expect(signifyCode { _ = try Signify.SecretKey(seed: Data(count: 31), keyNumber: Data(count: 8)) } == "signify.malformed")
        #expect(signifyCode { _ = try Signify.SecretKey(seed: Data(count: 32), keyNumber: Data(count: 7)) } == "signify.malformed")
    }
}

/// Bad input must produce a `SignifyError`, never a crash or another error type.
@Suite("signify robustness")
struct SignifyRobustnessTests {
    @Test func mutationsAndTruncationsOnlyThrowSignifyErrors() throws {
        let key = Signify.SecretKey.generate()
        let files = [
            Data(key.fileText(comment: "s").utf8),
            Data(key.publicKey.fileText(comment: "p").utf8),
            Signify.signEmbedded(Data("m".utf8), with: key, comment: "e"),
        ]
        var state: UInt64 = 7
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        for file in files {
            var inputs: [Data] = (0...file.count).map { file.prefix($0) }
            for _ in 0..<200 {
                var mutated = file
                mutated[next(mutated.count)] = UInt8(next(256))
                inputs.append(mutated)
            }
            for input in inputs {
                let text = String(decoding: input, as: UTF8.self)
                for attempt in [
                    { _ = try Signify.SecretKey(parsing: text) },
                    { _ = try Signify.PublicKey(parsing: text) },
                    { _ = try Signify.Signature(parsing: text) },
                    { _ = try Signify.verifyEmbedded(input, publicKey: key.publicKey) },
                ] as [() throws -> Void] {
                    do { try attempt() } catch is SignifyError {} catch { Issue.record("non-signify error \(error)") }
                }
            }
        }
    }
}
