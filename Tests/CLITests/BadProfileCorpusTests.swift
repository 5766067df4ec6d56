import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import Testing

/// The fail-closed corpus (issue "Keys, sealed profiles…"): every bad stick or profile gives exit 1,
/// one exact line naming what was wrong, and nothing on stdout.
@Suite struct BadProfileCorpusTests {
    @Test func corpusIsLargeAndDistinct() throws {
        #expect(BadProfileCorpus.names.count >= 20)
        #expect(Set(BadProfileCorpus.names).count == BadProfileCorpus.names.count)
    }

    @Test func theGoodProfileIsAccepted() throws {
        try withSecrets { secrets, dir in
            let file = dir.appendingPathComponent("good.age")
            try BadProfileCorpus.goodSealed.write(to: file)
            let result = try runTool("edgekit", ["profile", "inspect", file.path, "--plan", examplePlanPath, "--secrets", secrets])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("profile example/site-a/router 2: valid"))
            #expect(!result.stdout.contains(BadProfileCorpus.good().routerSecret), "the router secret must never be printed")
        }
    }

    @Test(arguments: BadProfileCorpus.names)
    func badInputIsRefusedWithItsOwnLine(_ name: String) throws {
        try withSecrets { secrets, dir in
            let (path, flags, expected) = try BadProfileCorpus.make(name, in: dir)
            let result = try runTool("edgekit", ["profile", "inspect", path, "--plan", examplePlanPath, "--secrets", secrets] + flags,
                                     environment: try BadProfileCorpus.environment(name, in: dir))
            #expect(result.status == 1, "\(name): exit status")
            #expect(result.stderrLines == [expected], "\(name)")
            #expect(result.stdout.isEmpty, "\(name): nothing on stdout")
        }
    }

    /// The code `SealedProfile.open` gives each corpus case that is a profile file (not a stick):
    /// what a program matches, while the CLI's line above is what a person reads.
    static let openCodes: [String: ErrorCode] = [
        "empty file": "profile.empty", "10 MB of garbage": "profile.too-large", "300 KB of garbage": "profile.too-large",
        "1 KB of garbage": "profile.not-age", "age version 2 header": "profile.not-age",
        "tampered ciphertext": "profile.tampered", "tampered header": "profile.tampered",
        "truncated in the header": "profile.tampered", "truncated payload": "profile.tampered", "trailing data": "profile.tampered",
        "sealed to another site": "profile.another-identity", "another operator's key": "profile.another-key",
        "tampered signature": "profile.bad-signature", "signature over a different document": "profile.bad-signature",
        "valid age but unsigned plaintext": "profile.unsigned", "unknown schema version": "profile.unknown-schema",
        "another plan": "profile.another-plan", "another site": "profile.another-site",
        "older serial than the last applied": "profile.older-serial", "malformed document": "profile.malformed",
        "certificate by another key": "profile.certificate-invalid",
        "certificate for another slot": "profile.certificate-mismatch",
        "router secret does not match the certificate": "profile.certificate-mismatch",
        "uplink that adds a networkd section": "profile.malformed", "LAN address outside the site /64": "profile.malformed",
        "unknown field": "profile.malformed", "negative serial": "profile.malformed",
    ]

    @Test(arguments: openCodes.keys.sorted())
    func openRefusesWithTheCasesCode(_ name: String) throws {
        try withTemporaryDirectory { dir in
            let (path, flags, _) = try BadProfileCorpus.make(name, in: dir)
            let lastSerial = flags.firstIndex(of: "--last-serial").map { UInt64(flags[$0 + 1])! }
            let keys = BadProfileCorpus.keys
            let expectation = SealedProfile.Expectation(
                identity: keys.siteIdentity(site: "site-a"), operatorKey: keys.operatorKey.publicKey,
                plan: "example", site: "site-a", lastSerial: lastSerial)
            let sealed = try Data(contentsOf: URL(fileURLWithPath: path))
            do {
                _ = try SealedProfile.open(sealed, expecting: expectation)
                Issue.record("\(name): opened")
            } catch let error as ProfileError {
                #expect(error.code == Self.openCodes[name], "\(name): \(error)")
            }
        }
    }

    @Test func everyCaseHasADifferentMessage() throws {
        try withSecrets { _, _ in
            var messages: [String: String] = [:]
            for name in BadProfileCorpus.names {
                try withTemporaryDirectory { dir in
                    let expected = try BadProfileCorpus.make(name, in: dir).expected
                    // Strip the path so only the reason is compared.
                    let reason = expected.components(separatedBy: ": ").dropFirst().joined(separator: ": ")
                    messages[name] = reason.isEmpty ? expected : reason
                }
            }
            // Some inputs legitimately share a reason (all AEAD failures look alike by design);
            // everything else must be told apart.
            let shared: Set = ["tampered ciphertext", "truncated payload", "trailing data",
                               "tampered signature", "signature over a different document",
                               "1 KB of garbage", "age version 2 header", "unformatted stick image",
                               // Too large, whatever carries it: one documented line per reader.
                               "300 KB of garbage", "FAT stick with a 300 KB profile"]
            let distinct = BadProfileCorpus.names.filter { !shared.contains($0) }.compactMap { messages[$0] }
            #expect(Set(distinct).count == distinct.count)
        }
    }
}

let examplePlanPath = packageRoot.appendingPathComponent("profiles/example").path

/// A secrets folder holding the fixed test master key (0x00…0x1f), and a scratch folder.
func withSecrets(_ body: (String, URL) throws -> Void) throws {
    try withTemporaryDirectory { dir in
        let secrets = dir.appendingPathComponent("secrets")
        try FileManager.default.createDirectory(at: secrets, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = secrets.appendingPathComponent("master.key")
        FileManager.default.createFile(atPath: key.path, contents: Data((Data(0..<32).base64EncodedString() + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        try body(secrets.path, dir)
    }
}

/// Runs a system tool (not one of ours) and returns what it did.
func runSystem(_ tool: String, _ arguments: [String]) throws -> ToolResult {
    let process = Process()
    let candidates = ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].map { $0 + tool }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("\(tool) is not installed; run ./build.sh to install it")
        throw CocoaError(.fileNoSuchFile)
    }
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
}
