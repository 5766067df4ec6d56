import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import TestSupport
import Testing

/// Errors made from other errors keep them as the cause, and still print the line they printed.
@Suite struct ErrorCauseTests {
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")

    @Test func aTamperedProfileKeepsTheAgeError() throws {
        let identity = Self.keys.siteIdentity(site: "site-a")
        var sealed = try Age.encrypt(Data("not even a signed document".utf8), to: [identity.recipient])
        sealed[sealed.count - 5] ^= 1
        let expectation = SealedProfile.Expectation(identity: identity, operatorKey: Self.keys.operatorKey.publicKey,
                                                    plan: "example", site: "site-a", lastSerial: nil)
        do {
            _ = try SealedProfile.open(sealed, expecting: expectation)
            Issue.record("a tampered profile was opened")
        } catch {
            #expect(error.code == "profile.tampered")
            let age = try #require(error.cause as? AgeError)
            #expect(age.code == "age.payload")
            #expect(error.causes.count == 1)
            #expect(error.description == "profile is damaged or tampered: \(age.message)")
        }
    }

    @Test func aBadMasterKeyFileKeepsTheKeyError() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-cause-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: folder) }
        let master = folder.appendingPathComponent("master.key").path
        #expect(FileManager.default.createFile(atPath: master, contents: Data("not base64!\n".utf8), attributes: [.posixPermissions: 0o600]))
        do {
            _ = try SecretsFolder(path: folder.path).loadMaster()
            Issue.record("a master key that is not base64 was loaded")
        } catch let error as SecretsError {
            #expect(error.code == "secrets.malformed")
            #expect((error.cause as? KeyError)?.code == "key.master-not-base64")
            #expect(error.description == "\(master): the master secret is not one line of base64")
        }
    }
}
