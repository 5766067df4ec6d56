import EdgeCrypto
import EdgeErrors
import EdgeModel
import Foundation
import PlanYAML
import Testing

/// The router's SSH host key (docs/keys.md): derived from the router secret, written in OpenSSH's
/// own private key format, read back by the real `ssh-keygen`; and operators carried in the
/// profile, checked by the agent with the plan's rules.
@Suite struct SSHHostKeyTests {
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: "example")
    static let operatorKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH12wi39GXd7gq6X7QV6xQ+xv9DHIgI/8bkkI8CZahk2 alice@laptop"

    /// Computed independently with Python's `cryptography` (HKDF-SHA256 + Ed25519) from docs/keys.md.
    @Test func derivationVectors() throws {
        let secret = try RouterSecret(bytes: Data(0..<32))
        #expect(secret.sshHostKey.publicKeyLine == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKBsYFP2GG9EDCdkL+VVGscKeLXWcTTeh2sS9FJOkYVf")
        let siteA1 = Self.keys.routerSecret(site: "site-a", slot: 1, generation: 1)
        #expect(siteA1.sshHostKey.publicKeyLine == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTM5sbbj7sgDXPPEEbsoycytNyK3PR0GabhfFVWlwbR")
        // A new generation is a new host key; the WireGuard key and the host key are unrelated.
        #expect(Self.keys.routerSecret(site: "site-a", slot: 1, generation: 2).sshHostKey != siteA1.sshHostKey)
        #expect(siteA1.sshHostKey.seed != siteA1.wireGuardKey.privateKey)
    }

    @Test func sshKeygenReadsThePrivateKeyFile() throws {
        let hostKey = Self.keys.routerSecret(site: "site-a", slot: 2, generation: 1).sshHostKey
        let text = hostKey.openSSHPrivateKey(comment: "root@site-a-r2")
        #expect(text == hostKey.openSSHPrivateKey(comment: "root@site-a-r2"), "the same bytes every time")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-sshkey-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("ssh_host_ed25519_key").path
        FileManager.default.createFile(atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        let derived = try Tool.run("ssh-keygen", ["-y", "-f", file])
        #expect(derived.status == 0, "\(derived.stderrText)")
        #expect(derived.stdoutText == hostKey.publicKeyLine + " root@site-a-r2\n")
        let fingerprint = try Tool.run("ssh-keygen", ["-l", "-f", file])
        #expect(fingerprint.stdoutText.hasPrefix("256 \(hostKey.fingerprint) root@site-a-r2 (ED25519)"), "\(fingerprint.stdoutText)")
        // And ssh-keygen's own file of the same key is the same up to its random check integers.
        let converted = try Tool.run("ssh-keygen", ["-p", "-N", "", "-P", "", "-f", file])
        #expect(converted.status == 0, "\(converted.stderrText)")
        #expect(try Tool.run("ssh-keygen", ["-y", "-f", file]).stdoutText == derived.stdoutText)
    }

    @Test func knownHostsLine() throws {
        let hostKey = Self.keys.routerSecret(site: "site-a", slot: 1, generation: 1).sshHostKey
        #expect(hostKey.knownHostsLine(address: "fd3b:4f10:a8c6::1:1:1", comment: "site-a-r1")
                == "fd3b:4f10:a8c6::1:1:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKTM5sbbj7sgDXPPEEbsoycytNyK3PR0GabhfFVWlwbR site-a-r1")
    }

    // MARK: Operators in the profile

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func document(operators: [Operator], sshOnLAN: Bool = false) throws -> ProfileDocument {
        var plan = try PlanLoader.load(directory: Self.root.appendingPathComponent("profiles/example").path)
        plan.operators = operators
        plan.defaults.sshOnLAN = sshOnLAN
        let site = plan.site(named: "site-a")!
        return try Self.keys.profile(plan: plan, site: site, router: site.router(slot: 1)!, serial: 1000,
                                     issuedAt: Date(timeIntervalSince1970: 1000))
    }

    func open(_ body: Data) throws(ProfileError) -> ProfileDocument {
        let signed = Signify.signEmbedded(body, with: Self.keys.operatorKey, comment: "test")
        let sealed = try! Age.encrypt(signed, to: [Self.keys.siteIdentity(site: "site-a").recipient])
        return try SealedProfile.open(sealed, expecting: .init(
            identity: Self.keys.siteIdentity(site: "site-a"), operatorKey: Self.keys.operatorKey.publicKey,
            plan: "example", site: "site-a", lastSerial: nil))
    }

    @Test func profileCarriesOperatorsAndTheLANSwitch() throws {
        let alice = Operator(name: "alice", sshKeys: [try FieldRules.sshPublicKey(Self.operatorKey).get()])
        let document = try document(operators: [alice], sshOnLAN: true)
        let body = try DocumentCoding.encode(document)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains("\"operators\":[{\"name\":\"alice\",\"ssh_keys\":[\"\(Self.operatorKey)\"]}]"))
        #expect(text.contains("\"ssh_on_lan\":true"))
        let opened = try open(body)
        #expect(opened.plan.operators == [alice])
        #expect(opened.plan.defaults.sshOnLAN)
        #expect(try opened.model().plan.operators == [alice])
    }

    @Test func profileWithoutOperatorsHasNeitherField() throws {
        let text = String(decoding: try DocumentCoding.encode(try document(operators: [])), as: UTF8.self)
        #expect(!text.contains("operators") && !text.contains("ssh_on_lan"))
    }

    /// Signed by the operator key, and still refused: a key line with a newline would add an
    /// unchecked line to authorized_keys; a weak RSA key; an empty list.
    @Test(arguments: [
        ("\(operatorKey)\\nssh-ed25519 AAAA evil", "plan.operators[0].ssh_keys[0] \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH12wi39GXd7gq6X7QV6xQ+xv9DH…\" holds a control character (a line break?); give one key per list entry, on one line"),
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCnH3zY58bafjT3TuS9gIlyJDRvDj6srQnPaPkW+IWYz52bCx6htyR/Qogcs24OkutC4QushNfnJB3hzxDoSO9UmCPiSuHtuSYU31Dp6GuX20bNBWSf/PZ1OLdnmWBz1FIUPOAVrcgJ2uhSXZ0h09cB6A0uJundSJnjci4dFipPCQ== r1024",
         "plan.operators[0].ssh_keys[0] \"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCnH3zY58bafjT3TuS9gIlyJDRv…\" is an RSA key of 1024 bits; use 2048 bits or more (or ssh-keygen -t ed25519)"),
    ])
    func hostileOperatorKeyIsRefused(_ line: String, _ expected: String) throws {
        let alice = Operator(name: "alice", sshKeys: [try FieldRules.sshPublicKey(Self.operatorKey).get()])
        var text = String(decoding: try DocumentCoding.encode(try document(operators: [alice])), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"\(Self.operatorKey)\"", with: "\"\(line)\"")
        do {
            _ = try open(Data(text.utf8))
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.description == "profile document is malformed: " + expected)
        }
    }
}
