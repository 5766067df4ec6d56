import Foundation
import SystemCrypto
import Testing

/// Published test vectors, byte for byte, so a mistake in SystemCrypto or a libcrypto that computes
/// something else fails here rather than as an age file or a signature nobody else can read.
@Suite struct VectorTests {
    @Test func sha2OfABC() {
        #expect(hex(SHA256.hash(data: Data("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(SHA512.hash(data: Data("abc".utf8))) == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    }

    /// A hasher is a value: a copy goes on from where the original was and neither sees the
    /// other's input (the two share one libcrypto context until one of them changes), and
    /// finalizing does not end either.
    @Test func hasherCopiesAreIndependent() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        let ab = hex(SHA256.hash(data: Data("ab".utf8)))
        var original = SHA256()
        original.update(data: Data("ab".utf8))
        var copy = original
        copy.update(data: Data("c".utf8))
        #expect(hex(copy.finalize()) == abc)
        #expect(hex(original.finalize()) == ab)
        #expect(hex(original.finalize()) == ab)
        original.update(data: Data("c".utf8))
        #expect(hex(original.finalize()) == abc)
        #expect(hex(copy.finalize()) == abc)
    }

    /// RFC 4231 section 4, test cases 1–4, 6 and 7 (case 5 is a truncated MAC, which this API does
    /// not make): short, long and longer-than-a-block keys.
    @Test(arguments: [
        (bytes(repeating: 0x0b, 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        (bytes(repeating: 0xaa, 20), bytes(repeating: 0xdd, 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"),
        (Array(1...25), bytes(repeating: 0xcd, 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
         "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"),
        (bytes(repeating: 0xaa, 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
        (bytes(repeating: 0xaa, 131),
         Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
         "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"),
    ] as [([UInt8], [UInt8], String, String)])
    func hmac(keyBytes: [UInt8], data: [UInt8], sha256: String, sha512: String) {
        let key = SymmetricKey(data: keyBytes)
        #expect(hex(HMAC<SHA256>.authenticationCode(for: data, using: key)) == sha256)
        #expect(hex(HMAC<SHA512>.authenticationCode(for: data, using: key)) == sha512)

        // In pieces, as KeySchedule and Cookie use it.
        var incremental = HMAC<SHA256>(key: key)
        incremental.update(data: data.prefix(5))
        incremental.update(data: data.dropFirst(5))
        #expect(hex(incremental.finalize()) == sha256)

        #expect(HMAC<SHA256>.isValidAuthenticationCode(unhex(sha256), authenticating: data, using: key))
        var altered = unhex(sha256)
        altered[31] ^= 1
        #expect(!HMAC<SHA256>.isValidAuthenticationCode(altered, authenticating: data, using: key))
        #expect(!HMAC<SHA256>.isValidAuthenticationCode(unhex(sha256).prefix(16), authenticating: data, using: key))
    }

    /// RFC 5869 appendix A, test cases 1–3 (SHA-256; case 3 has an empty salt and info).
    @Test(arguments: [
        (bytes(repeating: 0x0b, 22), Array(0x00...0x0c), Array(0xf0...0xf9), 42,
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
        (Array(0x00...0x4f), Array(0x60...0xaf), Array(0xb0...0xff), 82,
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
        (bytes(repeating: 0x0b, 22), [], [], 42,
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
    ] as [([UInt8], [UInt8], [UInt8], Int, String)])
    func hkdf(inputKeyMaterial: [UInt8], salt: [UInt8], info: [UInt8], length: Int, output: String) {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: inputKeyMaterial), salt: salt,
                                         info: info, outputByteCount: length)
        #expect(key.withUnsafeBytes { hex($0) } == output)
    }

    /// RFC 7748 section 5.2: the scalar is clamped and the u-coordinate's top bit ignored (the
    /// second u has it set).
    @Test(arguments: [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ])
    func x25519(scalar: String, u: String, result: String) throws {
        let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex(scalar))
        let shared = try key.sharedSecretFromKeyAgreement(with: Curve25519.KeyAgreement.PublicKey(rawRepresentation: unhex(u)))
        #expect(shared.withUnsafeBytes { hex($0) } == result)
        // The raw representation is the key as given, unclamped.
        #expect(hex(key.rawRepresentation) == scalar)
    }

    /// RFC 7748 section 6.1: both public keys, and the same shared secret from either side.
    @Test func x25519DiffieHellman() throws {
        let alice = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(hex(alice.publicKey.rawRepresentation) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(hex(bob.publicKey.rawRepresentation) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(try alice.sharedSecretFromKeyAgreement(with: bob.publicKey).withUnsafeBytes { hex($0) } == shared)
        #expect(try bob.sharedSecretFromKeyAgreement(with: alice.publicKey).withUnsafeBytes { hex($0) } == shared)
    }

    /// Low-order points (0, 1 and a point of order 8) give the all-zero secret, which is refused.
    @Test(arguments: [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    ])
    func x25519RefusesLowOrderPoints(point: String) throws {
        let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: unhex(point))
        #expect(throws: CryptoKitError.lowOrderPoint) { try key.sharedSecretFromKeyAgreement(with: peer) }
    }

    @Test func generatedKeysAgreeAndAreClamped() throws {
        let a = Curve25519.KeyAgreement.PrivateKey()
        let b = Curve25519.KeyAgreement.PrivateKey()
        let raw = [UInt8](a.rawRepresentation)
        #expect(raw[0] & 7 == 0 && raw[31] & 0xc0 == 0x40)
        #expect(try a.sharedSecretFromKeyAgreement(with: b.publicKey).withUnsafeBytes { hex($0) }
                == b.sharedSecretFromKeyAgreement(with: a.publicKey).withUnsafeBytes { hex($0) })
        #expect(throws: CryptoKitError.incorrectKeySize) { try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 1, count: 31)) }
        #expect(throws: CryptoKitError.incorrectKeySize) { try Curve25519.KeyAgreement.PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 33)) }
    }

    /// RFC 8032 section 7.1, tests 1–3 (empty, one-byte and two-byte messages): Ed25519 is
    /// deterministic, so the signatures match exactly.
    @Test(arguments: [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ])
    func ed25519(secret: String, publicKey: String, message: String, signature: String) throws {
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: unhex(secret))
        #expect(hex(key.rawRepresentation) == secret)
        #expect(hex(key.publicKey.rawRepresentation) == publicKey)
        #expect(try hex(key.signature(for: unhex(message))) == signature)

        let verifier = try Curve25519.Signing.PublicKey(rawRepresentation: unhex(publicKey))
        #expect(verifier.isValidSignature(unhex(signature), for: unhex(message)))
        var altered = unhex(signature)
        altered[10] ^= 1
        #expect(!verifier.isValidSignature(altered, for: unhex(message)))
        #expect(!verifier.isValidSignature(unhex(signature), for: unhex(message) + [0]))
        #expect(!verifier.isValidSignature(unhex(signature).prefix(63), for: unhex(message)))
    }

    /// RFC 8439 section 2.8.2: the AEAD with additional data.
    @Test func chaCha20Poly1305() throws {
        let plaintext = Data("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let key = SymmetricKey(data: Array(0x80...0x9f) as [UInt8])
        let nonce = try ChaChaPoly.Nonce(data: unhex("070000004041424344454647"))
        let aad = unhex("50515253c0c1c2c3c4c5c6c7")
        let box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
        #expect(hex(box.ciphertext) == "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116")
        #expect(hex(box.tag) == "1ae10b594f09e26a7e902ecbd0600691")
        #expect(try ChaChaPoly.open(box, using: key, authenticating: aad) == plaintext)
        #expect(throws: CryptoKitError.authenticationFailure) { try ChaChaPoly.open(box, using: key, authenticating: aad.dropLast()) }
    }

    /// A flipped bit anywhere (ciphertext, tag, nonce) or a wrong key fails to open, as age needs.
    @Test func chaChaPolyRefusesTamperedBoxes() throws {
        let key = SymmetricKey(size: .bits256)
        let nonce = try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))
        let box = try ChaChaPoly.seal(Data("a file key".utf8), using: key, nonce: nonce)
        #expect(try ChaChaPoly.open(box, using: key) == Data("a file key".utf8))

        var ciphertext = box.ciphertext
        ciphertext[3] ^= 0x80
        var tag = box.tag
        tag[15] ^= 1
        let otherNonce = try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 11) + [1])
        let tampered = try [
            ChaChaPoly.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: box.tag),
            ChaChaPoly.SealedBox(nonce: nonce, ciphertext: box.ciphertext, tag: tag),
            ChaChaPoly.SealedBox(nonce: otherNonce, ciphertext: box.ciphertext, tag: box.tag),
        ]
        for tampered in tampered {
            #expect(throws: CryptoKitError.authenticationFailure) { try ChaChaPoly.open(tampered, using: key) }
        }
        #expect(throws: CryptoKitError.authenticationFailure) { try ChaChaPoly.open(box, using: SymmetricKey(size: .bits256)) }
        #expect(throws: CryptoKitError.incorrectKeySize) { try ChaChaPoly.open(box, using: SymmetricKey(size: .bits128)) }
        #expect(throws: CryptoKitError.incorrectParameterSize) { try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 8)) }
        #expect(throws: CryptoKitError.incorrectParameterSize) { try ChaChaPoly.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag.prefix(15)) }
    }

    @Test func randomKeysHaveTheirSizeAndDiffer() {
        let a = SymmetricKey(size: .bits128)
        let b = SymmetricKey(size: .bits128)
        #expect(a.withUnsafeBytes { $0.count } == 16)
        #expect(SymmetricKey(size: .bits256).withUnsafeBytes { $0.count } == 32)
        #expect(a.withUnsafeBytes { hex($0) } != b.withUnsafeBytes { hex($0) })
    }
}

private func bytes(repeating byte: UInt8, _ count: Int) -> [UInt8] {
    [UInt8](repeating: byte, count: count)
}

private func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    bytes.map { String(format: "%02x", $0) }.joined()
}

private func unhex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
