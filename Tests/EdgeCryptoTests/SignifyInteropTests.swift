import Foundation
import Testing
import TestSupport
@testable import EdgeCrypto

/// Our signify files against the stock Debian `signify-openbsd`, in both directions.
@Suite("signify interop with signify-openbsd", .requiresTool("signify-openbsd"))
struct SignifyInteropTests {
    static let tool = "signify-openbsd"

    /// Writes `key.pub` and `key.sec` for a fresh key of ours.
    func ourKey(in temp: borrowing TempDirectory) throws -> Signify.SecretKey {
        let key = Signify.SecretKey.generate()
        _ = try temp.write("key.pub", key.publicKey.fileText(comment: "edgekit test public key"))
        _ = try temp.write("key.sec", key.fileText(comment: "edgekit test secret key"))
        return key
    }

    @Test(arguments: [0, 1, 5000, 200 * 1024])
    func signifyVerifiesOurDetachedSignatures(size: Int) throws {
        let temp = try TempDirectory()
        let key = try ourKey(in: temp)
        let message = testBytes(size)
        let msg = try temp.write("msg", message)
        let sig = try temp.write("msg.sig", Signify.sign(message, with: key).fileText(comment: "verify with key.pub"))
        let result = try Tool.run(Self.tool, ["-V", "-p", temp.file("key.pub").path, "-x", sig.path, "-m", msg.path])
        #expect(result.status == 0, "signify -V failed: \(result.stderrText)")
        #expect(result.stdoutText == "Signature Verified\n")
    }

    @Test(arguments: [0, 1, 5000, 200 * 1024])
    func signifyVerifiesOurEmbeddedSignatures(size: Int) throws {
        let temp = try TempDirectory()
        let key = try ourKey(in: temp)
        let message = testBytes(size, seed: 99)
        let sig = try temp.write("msg.sig", Signify.signEmbedded(message, with: key, comment: "verify with key.pub"))
        let out = temp.file("out")
        let result = try Tool.run(Self.tool, ["-V", "-e", "-p", temp.file("key.pub").path, "-x", sig.path, "-m", out.path])
        #expect(result.status == 0, "signify -V -e failed: \(result.stderrText)")
        #expect(result.stdoutText == "Signature Verified\n")
        #expect(try temp.read("out") == message)
    }

    @Test func weVerifySignifyKeysAndSignatures() throws {
        let temp = try TempDirectory()
        let pub = temp.file("gen.pub").path, sec = temp.file("gen.sec").path
        let generate = try Tool.run(Self.tool, ["-G", "-n", "-c", "signify made this", "-p", pub, "-s", sec])
        #expect(generate.status == 0, "signify -G failed: \(generate.stderrText)")
        let publicKey = try Signify.PublicKey(parsing: String(decoding: try temp.read("gen.pub"), as: UTF8.self))
        let secretKey = try Signify.SecretKey(parsing: String(decoding: try temp.read("gen.sec"), as: UTF8.self))
        #expect(secretKey.publicKey == publicKey)

        let message = testBytes(3000, seed: 5)
        let msg = try temp.write("msg", message)
        let detached = try Tool.run(Self.tool, ["-S", "-s", sec, "-m", msg.path, "-x", temp.file("msg.sig").path])
        #expect(detached.status == 0, "signify -S failed: \(detached.stderrText)")
        let sigText = String(decoding: try temp.read("msg.sig"), as: UTF8.self)
        #expect(sigText.hasPrefix("untrusted comment: verify with gen.pub\n"))
        let signature = try Signify.Signature(parsing: sigText)
        try Signify.verify(message, signature: signature, publicKey: publicKey)
        #if os(Linux)
        // Both sides use deterministic RFC 8032 Ed25519, so the signatures are identical.
        #expect(Signify.sign(message, with: secretKey) == signature)
        #endif

        let embedded = try Tool.run(Self.tool, ["-S", "-e", "-s", sec, "-m", msg.path, "-x", temp.file("msg.esig").path])
        #expect(embedded.status == 0, "signify -S -e failed: \(embedded.stderrText)")
        let embeddedFile = try temp.read("msg.esig")
        #expect(try Signify.verifyEmbedded(embeddedFile, publicKey: publicKey) == message)
        #if os(Linux)
        #expect(Signify.signEmbedded(message, with: secretKey, comment: "verify with gen.pub") == embeddedFile)
        #endif
    }

    @Test func signifySignsWithOurSecretKey() throws {
        let temp = try TempDirectory()
        let key = try ourKey(in: temp)
        let message = Data("firmware image\n".utf8)
        let msg = try temp.write("msg", message)
        let result = try Tool.run(Self.tool, ["-S", "-s", temp.file("key.sec").path, "-m", msg.path, "-x", temp.file("msg.sig").path])
        #expect(result.status == 0, "signify -S with our key failed: \(result.stderrText)")
        let signature = try Signify.Signature(parsing: String(decoding: try temp.read("msg.sig"), as: UTF8.self))
        try Signify.verify(message, signature: signature, publicKey: key.publicKey)
    }

    @Test func bothRejectTamperingAndOtherKeys() throws {
        let temp = try TempDirectory()
        let key = try ourKey(in: temp)
        let other = Signify.SecretKey.generate()
        _ = try temp.write("other.pub", other.publicKey.fileText(comment: "other"))
        var file = Signify.signEmbedded(Data("config v2".utf8), with: key, comment: "verify with key.pub")

        // Signed by another key.
        _ = try temp.write("a.sig", file)
        let wrongKey = try Tool.run(Self.tool, ["-V", "-e", "-p", temp.file("other.pub").path, "-x", temp.file("a.sig").path, "-m", temp.file("a.out").path])
        #expect(wrongKey.status != 0)
        #expect(signifyCode { _ = try Signify.verifyEmbedded(file, publicKey: other.publicKey) } == "signify.wrong-key")

        // Tampered message.
        file[file.count - 2] ^= 0x20
        _ = try temp.write("b.sig", file)
        let tampered = try Tool.run(Self.tool, ["-V", "-e", "-p", temp.file("key.pub").path, "-x", temp.file("b.sig").path, "-m", temp.file("b.out").path])
        #expect(tampered.status != 0)
        #expect(tampered.stderrText.contains("signature verification failed"))
        #expect(signifyCode { _ = try Signify.verifyEmbedded(file, publicKey: key.publicKey) } == "signify.bad-signature")
    }
}
