import EdgeCrypto
import EdgeModel
import Foundation
import PlanYAML
import Testing
import TestSupport

/// `edgekit client config` as an operator runs it (docs/clients.md): the file on stdout or 0600 on
/// disk, a QR code that decodes to exactly the file, and one line with exit 1 on bad input, nothing
/// written.
@Suite struct ClientCommandTests {
    func planFolder(_ dir: URL, clients: Bool = true) throws -> String {
        let folder = dir.appendingPathComponent("plan")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var text = try String(contentsOfFile: Products.examplePlan + "/plan.yaml", encoding: .utf8)
        if clients { text += "\nclients:\n  - name: alice-phone\n  - name: bob-laptop\n    generation: 2\n" }
        try Data(text.utf8).write(to: folder.appendingPathComponent("plan.yaml"))
        return folder.path
    }

    @Test("the file: the client's derived key and /128, the relay's key and host, the plan's /48", .requiresTool("wg-quick"))
    func theFileOnStdout() throws {
        try withSecrets { secrets, dir in
            let plan = try planFolder(dir)
            let result = try runTool("edgekit", ["client", "config", "alice-phone", "--plan", plan, "--secrets", secrets])
            #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
            let loaded = try PlanLoader.load(directory: plan)
            let keys = PlanKeys(master: try MasterSecret(bytes: Data(0..<32)), planName: loaded.name)   // withSecrets's master.key
            let client = try #require(loaded.client(named: "alice-phone"))
            let lines = Set(result.stdout.split(separator: "\n").map(String.init))
            for line in ["PrivateKey = \(keys.clientWireGuardKey(client).privateKeyBase64)", "Address = \(client.address)/128",
                         "MTU = 1280", "PublicKey = \(keys.relayWireGuardKey().publicKeyBase64)",
                         "Endpoint = relay.example.net:51820", "AllowedIPs = fd5e:d9e1:7c2a::/48", "PersistentKeepalive = 25"] {
                #expect(lines.contains(line), "\(line)\n\(result.stdout)")
            }
            // `keys show` lists its public key (what the relay bundle carries), and nothing secret.
            let show = try runTool("edgekit", ["keys", "show", "--plan", plan, "--secrets", secrets])
            #expect(show.stdout.contains("client alice-phone (generation 1) wireguard public key: \(keys.clientWireGuardKey(client).publicKeyBase64)\n"),
                    "\(show.stdout)")
            #expect(!show.stdout.contains(keys.clientWireGuardKey(client).privateKeyBase64))
            // Another client and another generation: another key.
            let bob = try runTool("edgekit", ["client", "config", "bob-laptop", "--plan", plan, "--secrets", secrets])
            let bobKey = keys.clientWireGuardKey(client: "bob-laptop", generation: 2).privateKeyBase64
            #expect(bob.stdout.contains("PrivateKey = \(bobKey)\n"))
            #expect(bobKey != keys.clientWireGuardKey(client: "bob-laptop", generation: 1).privateKeyBase64)
            // wg-quick's own parser takes it (`wg-quick strip` leaves what `wg setconf` reads).
            let file = dir.appendingPathComponent("alice.conf")
            try Data(result.stdout.utf8).write(to: file)
            let stripped = try runSystem("wg-quick", ["strip", file.path])
            #expect(stripped.status == 0 && stripped.stdout.contains("[Peer]"), "\(stripped.stderr)")
        }
    }

    @Test("--out and --png write 0600; the QR code decodes to exactly the file; --qr prints it for a terminal",
          .requiresTool("qrencode", "zbarimg", "wg-quick"))
    func qrCodes() throws {
        try withSecrets { secrets, dir in
            let plan = try planFolder(dir)
            let out = dir.appendingPathComponent("alice.conf").path, png = dir.appendingPathComponent("alice.png").path
            let result = try runTool("edgekit", ["client", "config", "alice-phone", "--plan", plan, "--secrets", secrets, "--out", out, "--png", png])
            #expect(result.status == 0 && result.stdout.isEmpty, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("client alice-phone: fd5e:d9e1:7c2a:ffff:"), "\(result.stderr)")
            for path in [out, png] {
                let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
                #expect(mode == 0o600, "\(path): \(String(mode, radix: 8))")
            }
            let file = try String(contentsOfFile: out, encoding: .utf8)
            let decoded = try runSystem("zbarimg", ["-q", "--raw", png])
            #expect(decoded.status == 0)
            #expect(decoded.stdout == file + "\n", "zbarimg ends its output with a newline; the rest is the file")
            let terminal = try runTool("edgekit", ["client", "config", "alice-phone", "--plan", plan, "--secrets", secrets, "--qr"])
            #expect(terminal.status == 0 && terminal.stdout.contains("█") && !terminal.stdout.contains("PrivateKey"))
        }
    }

    @Test("an unknown client, a plan without clients, a bad --out: one line, exit 1, nothing written")
    func badInput() throws {
        try withSecrets { secrets, dir in
            let plan = try planFolder(dir)
            let before = treeSnapshot(dir)
            let unknown = try runTool("edgekit", ["client", "config", "carol", "--plan", plan, "--secrets", secrets,
                                                  "--out", dir.appendingPathComponent("c.conf").path])
            #expect(unknown.status == 1)
            #expect(unknown.stderr == "client carol: no such client in plan example (clients: alice-phone, bob-laptop)\n")
            let missingFolder = try runTool("edgekit", ["client", "config", "alice-phone", "--plan", plan, "--secrets", secrets,
                                                        "--out", dir.appendingPathComponent("no/such/folder/a.conf").path])
            #expect(missingFolder.status == 1 && missingFolder.stderr.split(separator: "\n").count == 1, "\(missingFolder.stderr)")
            #expect(treeSnapshot(dir) == before)
            let plain = try planFolder(dir.appendingPathComponent("plain"), clients: false)
            let none = try runTool("edgekit", ["client", "config", "alice-phone", "--plan", plain, "--secrets", secrets])
            #expect(none.status == 1)
            #expect(none.stderr == "plan example has no clients: add \"clients:\" to plan.yaml (docs/plan.md, \"Clients\")\n")
            let help = try runTool("edgekit", ["client", "config", "--help"])
            #expect(help.status == 0 && help.stdout.contains("--png"))
        }
    }
}
