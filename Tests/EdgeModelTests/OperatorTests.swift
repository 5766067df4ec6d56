import EdgeModel
import Foundation
import PlanYAML
import Testing

/// `operators:` and `defaults.ssh_on_lan` in the plan, and the SSH key rule the agent shares
/// (`FieldRules.sshPublicKey`). Refusals of bad keys in a plan: bad-plans/46-operator-ssh-keys.
struct OperatorTests {
    /// Made with ssh-keygen (OpenSSH 9.2) for these tests.
    static let ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH12wi39GXd7gq6X7QV6xQ+xv9DHIgI/8bkkI8CZahk2 alice@laptop"
    static let accepted = [
        ed25519,
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBC3MvoH9kJybBtruALlBP8B4W2ufIqQRU3NJnA6d7YVLRKz688oU7EDLMDyD5hh5vHvFdq2i1kGdorpvFuM1wsY= e256",
        "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBL82lTvaV0CEQZx5eV7N7dDfMmlIkqNO5706EJTFSG2f4ZYZNvx8CKa4MRgB2utIDEb0rct+cLi++Q8jndajcINgudmmVNBM6hYewa6wALiFwFJxQP2/VqSg/YwqPuMssg== e384",
        "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBADPyqzyTPk4sIIGmTiRugy5rJt1oJlsCD6eqcYEvv4mjm+AYWuhZIdk7IXh1OnoncgaPiqwll8XZ794UexcoMF/XQHaLCmkUGuMkm9YGCMPMBwYKmudcx1ZYD1KYWNWt0/v1l9VrRVY1OQr1E5hV/5FuCXvAmdgpAKK/XRKaTjoPDNHPw== e521",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQClJ/turE9ljEFHco38n9XM/Kk3U2XGuz3GNwHOviIIQkVc8fubPcaxiI5FQiblyo+pMA11y97RzRdbyfzOTXage0vJU0hs+HreEK285O0YLYsZ7kuBZ2W/jlG3X/nbRINWcPBivsHTf4osrq04xeoIJRouWL7F1Ko6GOu5eFBypGGF57+pJTNc601n9Q7ePkO1yAS79aEbNijQRnttOf2zTcjXi+XunwYkHhrjohOz4oX6MhtlH0Dsko6TeQ4KVpQ7WxHLp0Weno+D/aXdDDNhDlIEqu4AjGDL1shtBQkXj7177fzCQ0de5uNU5oJIOBtI6dXvnuwgrkXv3eSd1S8X r2048",
    ]
    static let rsa1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCnH3zY58bafjT3TuS9gIlyJDRvDj6srQnPaPkW+IWYz52bCx6htyR/Qogcs24OkutC4QushNfnJB3hzxDoSO9UmCPiSuHtuSYU31Dp6GuX20bNBWSf/PZ1OLdnmWBz1FIUPOAVrcgJ2uhSXZ0h09cB6A0uJundSJnjci4dFipPCQ== r1024"

    static let base = """
        name: net
        ula: fd00:1:2::/48
        tunnel: fd00:9:9::/64
        relay:
          host: relay.example.net
        sites:
          - name: a
            index: 1
            vrrp_id: 1
            routers:
              - slot: 1
                priority: 200

        """

    @Test(arguments: accepted)
    func acceptedKeyTypes(_ line: String) throws {
        let key = try FieldRules.sshPublicKey(line).get()
        #expect(key.description == line, "the line comes back as given")
        #expect(line.hasPrefix(key.type + " "))
    }

    @Test func refusedKeysNameTheProblem() {
        func problem(_ line: String) -> String? {
            if case .failure(let problem) = FieldRules.sshPublicKey(line) { return problem.message }
            return nil
        }
        #expect(problem(Self.rsa1024)?.hasSuffix("is an RSA key of 1024 bits; use 2048 bits or more (or ssh-keygen -t ed25519)") == true)
        #expect(problem(Self.ed25519 + "\nssh-ed25519 AAAA x")?.contains("holds a control character") == true)
        #expect(problem("ssh-ed25519")?.contains("is not an SSH public key line") == true)
        #expect(problem("ssh-foo AAAA")?.contains("has key type \"ssh-foo\"") == true)
        #expect(problem("no-pty " + Self.ed25519)?.contains("starts with options") == true)
        // An ed25519 blob cut short by one byte (re-encoded so the base64 itself is valid).
        let blob = Data(base64Encoded: String(Self.ed25519.split(separator: " ")[1]))!.dropLast()
        #expect(problem("ssh-ed25519 " + blob.base64EncodedString())?.contains("is a damaged ssh-ed25519 key") == true)
        // An ECDSA key whose blob names another curve.
        let p256 = Self.accepted[1].split(separator: " ")
        #expect(problem("ecdsa-sha2-nistp384 " + p256[1])?.contains("says ecdsa-sha2-nistp384 but its key data is of another type") == true)
    }

    @Test func planWithOperators() throws {
        let plan = try PlanLoader.parse(Self.base + """
            defaults:
              ssh_on_lan: true
            operators:
              - name: alice
                ssh_keys:
                  - \(Self.ed25519)
                  - \(Self.accepted[4])
              - name: bob
                ssh_keys:
                  - \(Self.accepted[1])

            """)
        #expect(plan.operators.map(\.name) == ["alice", "bob"])
        #expect(plan.operators[0].sshKeys.map(\.description) == [Self.ed25519, Self.accepted[4]])
        #expect(plan.defaults.sshOnLAN)
    }

    @Test func planWithoutOperatorsHasNone() throws {
        let plan = try PlanLoader.parse(Self.base)
        #expect(plan.operators.isEmpty)
        #expect(!plan.defaults.sshOnLAN)
    }

    @Test func operatorWireFormRoundTrips() throws {
        let person = Operator(name: "alice", sshKeys: [try FieldRules.sshPublicKey(Self.ed25519).get()])
        let data = try DocumentCoding.encode(person)
        #expect(String(decoding: data, as: UTF8.self) == "{\"name\":\"alice\",\"ssh_keys\":[\"\(Self.ed25519)\"]}\n")
        #expect(try DocumentCoding.decode(Operator.self, from: data) == person)
        let hostile = Data("{\"name\":\"alice\",\"ssh_keys\":[\"\(Self.ed25519)\",\"\(Self.rsa1024)\"]}".utf8)
        do {
            _ = try DocumentCoding.decode(Operator.self, from: hostile)
            Issue.record("a 1024-bit RSA key was accepted")
        } catch {
            #expect(error.field == "ssh_keys[1]")
            #expect(error.problem.hasSuffix("is an RSA key of 1024 bits; use 2048 bits or more (or ssh-keygen -t ed25519)"))
        }
    }
}
