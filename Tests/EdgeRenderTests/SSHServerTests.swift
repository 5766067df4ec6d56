import EdgeModel
@testable import EdgeRender
import Foundation
import Testing

/// The SSH files of a plan with operators, checked by the real tools: `sshd -t -f` (Debian's
/// OpenSSH) and `nft -c -f`; and nothing at all changes for a plan without operators (GoldenTests).
@Suite struct SSHServerTests {
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH12wi39GXd7gq6X7QV6xQ+xv9DHIgI/8bkkI8CZahk2 alice@laptop"

    static func files(onLAN: Bool) throws -> [RenderedFile] {
        var plan = try Fixtures.examplePlan()
        plan.operators = [Operator(name: "alice", sshKeys: [try FieldRules.sshPublicKey(key).get()])]
        plan.defaults.sshOnLAN = onLAN
        let site = plan.site(named: "site-a")!
        return EdgeRouterConfig.files(plan: plan, site: site, router: site.router(slot: 1)!, relayPublicKeys: [String(repeating: "A", count: 43) + "="])
    }

    @Test("sshd -t accepts the rendered config (host key in place) and nft -c the ruleset with SSH rules", arguments: [false, true])
    func realToolsAccept(onLAN: Bool) throws {
        let files = try Self.files(onLAN: onLAN)
        let lab = try Lab()
        defer { lab.tearDown() }
        let hostKey = lab.directory.appendingPathComponent("ssh_host_ed25519_key").path
        _ = try lab.mustRun(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey])
        let config = try files.file(ConfigPaths.sshdConfig).contents
        #expect(config.contains("ListenAddress fd3b:4f10:a8c6::1:1:1\n"))
        #expect(config.contains("ListenAddress fd5e:d9e1:7c2a:1::1\n") == onLAN)
        #expect(config.contains("PasswordAuthentication no\n") && config.contains("AuthenticationMethods publickey\n"))
        let local = config.replacingOccurrences(of: "HostKey \(ConfigPaths.sshHostKey)", with: "HostKey \(hostKey)")
        // sshd -t wants its privilege-separation directory, /run/sshd: give it a private /run.
        func sshdTest(_ file: String) throws -> ProgramResult {
            try lab.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                         "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -t -f \(file)"])
        }
        let checked = try sshdTest(lab.write("sshd_config", local))
        #expect(checked.status == 0, "\(checked)")
        let broken = try sshdTest(lab.write("broken_sshd_config", local + "PasswordAuthentication maybe\n"))
        #expect(broken.status != 0 && broken.stderr.contains("maybe"), "sshd accepted a broken config: \(broken)")

        let authorized = try files.file(ConfigPaths.sshAuthorizedKeys).contents
        #expect(authorized.contains("# alice\n\(Self.key)\n"))
        let ruleset = try files.file(ConfigPaths.nftables).contents
        #expect(ruleset.contains("iifname \"wg-relay\" ip6 daddr fd3b:4f10:a8c6::1:1:1 tcp dport 22 accept"))
        #expect(ruleset.contains("iifname \"lan0\" ip6 daddr { fd5e:d9e1:7c2a:1::1, fd5e:d9e1:7c2a:1::2 } tcp dport 22 accept") == onLAN)
        #expect(!ruleset.contains("iifname \"uplink0\" tcp dport 22") && !ruleset.contains("iifname \"uplink0\" ip6 daddr"))
        let ns = try lab.namespace("s")
        let nft = try lab.exec(ns, ["nft", "-c", "-f", lab.write("nftables.conf", ruleset)])
        #expect(nft.status == 0 && nft.stderr.isEmpty, "\(nft)")
        #expect(try files.file(ConfigPaths.routerSysctl).contents.contains("net.ipv6.ip_nonlocal_bind = 1\n"))
    }
}
