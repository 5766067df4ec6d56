import EdgeErrors
import Foundation
import TestSupport
import Testing
@testable import EdgeCrypto

/// Our age files against the stock Debian `age`/`age-keygen`, in both directions.
@Suite("age interop with the age CLI", .requiresTool("age", "age-keygen"))
struct AgeInteropTests {
    @Test(arguments: [0, 1, 65536, 65537, 200 * 1024])
    func ageDecryptsOurFiles(size: Int) throws {
        let temp = try TempDirectory()
        let identity = Age.Identity.generate()
        let plaintext = testBytes(size, seed: UInt64(size))
        let keyFile = try temp.write("key.txt", identity.text + "\n")
        let encrypted = try temp.write("file.age", try Age.encrypt(plaintext, to: [identity.recipient]))
        // Through stdout: age creates an -o file only on first write, so not for an empty plaintext.
        let result = try Tool.run("age", ["-d", "-i", keyFile.path, encrypted.path])
        #expect(result.status == 0, "age -d failed: \(result.stderrText)")
        #expect(result.stdout == plaintext)
    }

    @Test(arguments: [0, 1, 65536, 65537, 200 * 1024])
    func weDecryptAgeFiles(size: Int) throws {
        let temp = try TempDirectory()
        let identity = Age.Identity.generate()
        let plaintext = testBytes(size, seed: UInt64(size) + 7)
        let input = try temp.write("in", plaintext)
        let result = try Tool.run("age", ["-r", identity.recipient.text, "-o", temp.file("file.age").path, input.path])
        #expect(result.status == 0, "age -r failed: \(result.stderrText)")
        #expect(try Age.decrypt(try temp.read("file.age"), with: [identity]) == plaintext)
    }

    @Test func ageKeygenIdentitiesWork() throws {
        let temp = try TempDirectory()
        let keyFile = temp.file("key.txt")
        let generated = try Tool.run("age-keygen", ["-o", keyFile.path])
        #expect(generated.status == 0, "age-keygen failed: \(generated.stderrText)")
        let keyText = String(decoding: try temp.read("key.txt"), as: UTF8.self)
        let identity = try Age.Identity(parsing: keyText)
        #expect(keyText.contains("# public key: \(identity.recipient.text)\n"))
        #expect(generated.stderrText.contains(identity.recipient.text))

        // age encrypts to the age-keygen recipient; we decrypt with the age-keygen identity file.
        let plaintext = testBytes(1000)
        let input = try temp.write("in", plaintext)
        let encrypt = try Tool.run("age", ["-r", identity.recipient.text, "-o", temp.file("a.age").path, input.path])
        #expect(encrypt.status == 0, "age -r failed: \(encrypt.stderrText)")
        #expect(try Age.decrypt(try temp.read("a.age"), with: [identity]) == plaintext)

        // We encrypt to it and to someone else; age decrypts with the age-keygen file.
        let other = Age.Identity.generate()
        _ = try temp.write("b.age", try Age.encrypt(plaintext, to: [other.recipient, identity.recipient]))
        let decrypt = try Tool.run("age", ["-d", "-i", keyFile.path, temp.file("b.age").path])
        #expect(decrypt.status == 0, "age -d failed: \(decrypt.stderrText)")
        #expect(decrypt.stdout == plaintext)
    }

    @Test func ageKeygenDerivesOurRecipient() throws {
        let temp = try TempDirectory()
        let identity = Age.Identity.generate()
        let keyFile = try temp.write("key.txt", identity.text + "\n")
        let result = try Tool.run("age-keygen", ["-y", keyFile.path])
        #expect(result.status == 0, "age-keygen -y failed: \(result.stderrText)")
        #expect(result.stdoutText == identity.recipient.text + "\n")
    }

    @Test func ageRejectsWhatWeReject() throws {
        let temp = try TempDirectory()
        let identity = Age.Identity.generate()
        let keyFile = try temp.write("key.txt", identity.text + "\n")
        let file = try Age.encrypt(testBytes(100), to: [identity.recipient])
        // Trailing data after the final chunk: both implementations refuse.
        let trailing = try temp.write("trailing.age", file + Data([0]))
        let result = try Tool.run("age", ["-d", "-i", keyFile.path, "-o", temp.file("out").path, trailing.path])
        #expect(result.status != 0)
        #expect { try Age.decrypt(file + Data([0]), with: [identity]) } throws: { ($0 as? AgeError)?.code == "age.payload" }
        // Someone else's identity: both report no match.
        let otherKey = try temp.write("other.txt", Age.Identity.generate().text + "\n")
        let encrypted = try temp.write("file.age", file)
        let noMatch = try Tool.run("age", ["-d", "-i", otherKey.path, encrypted.path])
        #expect(noMatch.status != 0)
        #expect(noMatch.stderrText.contains("no identity matched"))
    }
}
