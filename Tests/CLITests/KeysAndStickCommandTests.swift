import Foundation
import Testing
import TestSupport

@Suite struct KeysAndStickCommandTests {
    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    /// The strings of an strace line between `open` and `close` marks (quoted paths, `-y` fd paths).
    static func paths(in line: String, between open: Character, and close: Character) -> [String] {
        var result: [String] = []
        var current: String?
        for character in line {
            if var text = current {
                if character == close { result.append(text); current = nil } else { text.append(character); current = text }
            } else if character == open {
                current = ""
            }
        }
        return result
    }

    @Test func keysInitCreatesPrivateFilesAndRefusesToOverwrite() throws {
        try withTemporaryDirectory { dir in
            let secrets = dir.appendingPathComponent("secrets").path
            let made = try runTool("edgekit", ["keys", "init", "--plan", examplePlanPath, "--secrets", secrets])
            #expect(made.status == 0, "\(made.stderr)")
            #expect(try mode(secrets) == 0o700)
            #expect(try mode(secrets + "/master.key") == 0o600)
            let key = try Data(contentsOf: URL(fileURLWithPath: secrets + "/master.key"))
            let again = try runTool("edgekit", ["keys", "init", "--plan", examplePlanPath, "--secrets", secrets])
            #expect(again.status == 1)
            #expect(again.stderrLines == ["\(secrets)/master.key already exists; refusing to overwrite the plan's master secret (every key derives from it)"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: secrets + "/master.key")) == key)
        }
    }

    /// Issue 16 item 3: every file holding a secret is 0600 from the moment it exists, even with
    /// umask 000. strace records each open(O_CREAT)/chmod/fchmod of the secret files (and their
    /// temporaries): none may ever grant group or others a bit.
    @Test func secretFilesAreNeverWiderThan0600EvenWithUmask000() throws {
        guard let strace = ["/usr/bin/strace", "/bin/strace"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            Issue.record("strace is not installed (apt-get install strace); it observes the file modes at creation")
            return
        }
        try withSecrets { secrets, dir in
            let d = dir.path
            let common = ["--plan", examplePlanPath, "--secrets", secrets]
            try FileManager.default.createDirectory(atPath: d + "/meshplan", withIntermediateDirectories: true)
            try Data(MeshPlanFixture.text().utf8).write(to: URL(fileURLWithPath: d + "/meshplan/plan.yaml"))
            let mesh = ["--plan", d + "/meshplan", "--secrets", secrets]
            let runs: [(args: [String], secret: String)] = [
                (["mesh", "render", "--server", "sa", "--out", d + "/m1"] + mesh, d + "/m1/etc/systemd/network/50-edgekit-mesh.key"),
                (["mesh", "render", "--server", "sb", "--format", "wg-quick", "--out", d + "/m2"] + mesh, d + "/m2/etc/wireguard/wg-mesh.conf"),
                (["keys", "identity", "--site", "site-a", "--out", d + "/site-a.identity"] + common, d + "/site-a.identity"),
                (["render", "--site", "site-a", "--router", "1", "--out", d + "/r1"] + common, d + "/r1/etc/edgekit/wireguard.key"),
                (["render", "--relay", "--out", d + "/relay"] + common, d + "/relay/etc/edgekit/relay-wireguard.key"),
                (["keys", "init", "--plan", examplePlanPath, "--secrets", d + "/fresh"], d + "/fresh/master.key"),
            ]
            for (index, run) in runs.enumerated() {
                let log = d + "/strace-\(index).log"
                let traced = try runSystem("sh", ["-c", "umask 000 && exec \"$@\"", "sh", strace, "-f", "-y", "-qq", "-o", log,
                                                  "-e", "trace=open,openat,creat,chmod,fchmod,fchmodat,rename,renameat,renameat2,link,linkat",
                                                  binDirectory.appendingPathComponent("edgekit").path] + run.args)
                #expect(traced.status == 0, "\(run.args.joined(separator: " ")): \(traced.stderr)")
                let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
                // Every name the secret had on its way (temporary files renamed or linked into place).
                var names: Set<String> = [run.secret]
                for call in calls.reversed() where call.contains("rename") || call.contains("link") {
                    let quoted = Self.paths(in: call, between: "\"", and: "\"")
                    if quoted.count >= 2, names.contains(quoted[quoted.count - 1]) { names.insert(quoted[quoted.count - 2]) }
                }
                let creations = calls.filter { call in
                    (call.contains("O_CREAT") || call.contains("chmod("))
                        && !Set(Self.paths(in: call, between: "\"", and: "\"") + Self.paths(in: call, between: "<", and: ">")).isDisjoint(with: names)
                }
                #expect(!creations.isEmpty, "strace saw no creation of \(run.secret)")
                for call in creations {
                    // The mode is the last argument: `…, 0600) = 3` or `fchmod(3</…>, 0600) = 0`.
                    let mode = call.split(separator: ")").first.flatMap { $0.split(separator: ",").last }
                        .map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { Int($0, radix: 8) }
                    #expect(mode.map { $0 & 0o077 == 0 } == true, "\(run.secret) was created or chmodded wider than 0600: \(call)")
                }
            }
            #expect(try mode(d + "/site-a.identity") == 0o600)
            #expect(try mode(d + "/r1/etc/edgekit/wireguard.key") == 0o600)
            #expect(try mode(d + "/relay/etc/edgekit/relay-wireguard.key") == 0o600)
            #expect(try mode(d + "/fresh/master.key") == 0o600)
            #expect(try mode(d + "/m1/etc/systemd/network/50-edgekit-mesh.key") == 0o600)
            #expect(try mode(d + "/m2/etc/wireguard/wg-mesh.conf") == 0o600)
        }
    }

    @Test func secretsAreCheckedLikeSSHKeys() throws {
        try withSecrets { secrets, _ in
            chmod(secrets + "/master.key", 0o644)
            let loose = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath, "--secrets", secrets])
            #expect(loose.status == 1)
            #expect(loose.stderrLines == ["\(secrets)/master.key is readable by group or others (mode 0644); run chmod 600 \(secrets)/master.key"])
            let none = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath], environment: ["EDGEKIT_SECRETS": ""])
            #expect(none.status == 1)
            #expect(none.stderrLines == ["no secrets folder: pass --secrets DIR or set EDGEKIT_SECRETS (the folder holding master.key)"])
        }
    }

    @Test func keysShowPrintsOnlyPublicKeysAndMatchesDerivation() throws {
        try withSecrets { secrets, _ in
            let text = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath], environment: ["EDGEKIT_SECRETS": secrets])
            #expect(text.status == 0)
            #expect(text.stdout.contains("relay wireguard public key: mkGQ/2sO3z0jMVkV9bhDddtKSlqfpv4wQnmUVttYHWg="))
            #expect(text.stdout.contains("router 1 (generation 1) wireguard public key: J1w4QnA598G+pQRldmexzt1UlwFX+Ua+FyDIt8xlGmc="))
            #expect(!text.stdout.contains(Data(0..<32).base64EncodedString()), "never the master secret")
            let json = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath, "--secrets", secrets, "--format", "json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(object?["operator_key_number"] as? String == "a7bed93c52ac53ae")
            #expect((object?["sites"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test func sealedProfileOpensWithAgeAndVerifiesWithSignify() throws {
        try withSecrets { secrets, dir in
            let d = dir.path
            let common = ["--plan", examplePlanPath, "--secrets", secrets]
            #expect(try runTool("edgekit", ["keys", "identity", "--site", "site-b", "--out", d + "/id"] + common).status == 0)
            #expect(try mode(d + "/id") == 0o600)
            #expect(try runTool("edgekit", ["profile", "seal", "--site", "site-b", "--router", "1", "--out", d + "/p.age", "--serial", "5"] + common).status == 0)
            let json = try runTool("edgekit", ["keys", "show", "--format", "json"] + common).stdout
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            try Data((object?["operator_public_key"] as? String ?? "").utf8).write(to: URL(fileURLWithPath: d + "/op.pub"))
            let decrypted = try runSystem("age", ["-d", "-i", d + "/id", "-o", d + "/signed", d + "/p.age"])
            #expect(decrypted.status == 0, "age -d: \(decrypted.stderr)")
            let verified = try runSystem("signify-openbsd", ["-V", "-e", "-p", d + "/op.pub", "-x", d + "/signed", "-m", d + "/profile.json"])
            #expect(verified.status == 0, "signify -V -e: \(verified.stderr)")
            let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/profile.json"))) as? [String: Any]
            #expect(document?["serial"] as? Int == 5)
            #expect((document?["site"] as? [String: Any])?["name"] as? String == "site-b")
        }
    }

    @Test func stickImageIsCleanLabelledReproducibleAndInspectable() throws {
        try withSecrets { secrets, dir in
            let d = dir.path
            let args = ["stick", "build", "--plan", examplePlanPath, "--secrets", secrets, "--site", "site-a", "--router", "1", "--serial", "77"]
            let built = try runTool("edgekit", args + ["--out", d + "/a.img"])
            #expect(built.status == 0, "\(built.stderr)")
            let fsck = try runSystem("fsck.vfat", ["-n", d + "/a.img"])
            #expect(fsck.status == 0, "fsck.vfat -n: \(fsck.stdout)\(fsck.stderr)")
            let label = try runSystem("blkid", ["-p", "-o", "value", "-s", "LABEL", d + "/a.img"])
            #expect(label.stdout == "EDGEPROFILE\n")
            let listing = try runSystem("mdir", ["-b", "-i", d + "/a.img", "::/"])
            #expect(listing.stdout.split(separator: "\n").sorted() == ["::/README.txt", "::/profile.age"])
            let inspected = try runTool("edgekit", ["profile", "inspect", d + "/a.img", "--plan", examplePlanPath, "--secrets", secrets])
            #expect(inspected.status == 0, "\(inspected.stderr)")
            #expect(inspected.stdout.contains("profile example/site-a/router 1: valid"))
            #expect(inspected.stdout.contains("serial           77"))
            // age output is randomised (ephemeral key), so two builds differ only inside profile.age;
            // the filesystem around it is fixed: same size, same label and volume id.
            #expect(try runTool("edgekit", args + ["--out", d + "/b.img"]).status == 0)
            let uuidA = try runSystem("blkid", ["-p", "-o", "value", "-s", "UUID", d + "/a.img"]).stdout
            let uuidB = try runSystem("blkid", ["-p", "-o", "value", "-s", "UUID", d + "/b.img"]).stdout
            #expect(uuidA == uuidB && !uuidA.isEmpty)
        }
    }

    @Test func stickBuildWithBadInputWritesNothing() throws {
        try withSecrets { secrets, dir in
            let before = treeSnapshot(dir)
            let noSite = try runTool("edgekit", ["stick", "build", "--plan", examplePlanPath, "--secrets", secrets, "--site", "site-z", "--router", "1", "--out", dir.path + "/x.img"])
            #expect(noSite.status == 1)
            #expect(noSite.stderrLines == ["--site site-z: no such site in plan example (sites: site-a, site-b)"])
            let noRouter = try runTool("edgekit", ["stick", "build", "--plan", examplePlanPath, "--secrets", secrets, "--site", "site-b", "--router", "2", "--out", dir.path + "/x.img"])
            #expect(noRouter.status == 1)
            #expect(noRouter.stderrLines == ["--router 2: site site-b has no router 2 (slots: 1)"])
            #expect(treeSnapshot(dir) == before)
        }
    }
}

@Suite struct RenderCommandTests {
    @Test func rendersARouterAsInstalledWithItsKey() throws {
        try withSecrets { secrets, dir in
            let out = dir.appendingPathComponent("root").path
            let result = try runTool("edgekit", ["render", "--plan", examplePlanPath, "--secrets", secrets, "--site", "site-a", "--router", "2", "--out", out])
            #expect(result.status == 0, "\(result.stderr)")
            for path in ["/etc/radvd.conf", "/etc/keepalived/keepalived.conf", "/etc/nftables.conf", "/etc/edgekit/wireguard.key"] {
                #expect(FileManager.default.fileExists(atPath: out + path), "\(path)")
            }
            let mode = (try FileManager.default.attributesOfItem(atPath: out + "/etc/edgekit/wireguard.key")[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600)
            let key = try String(contentsOfFile: out + "/etc/edgekit/wireguard.key", encoding: .utf8)
            // Router 2 of site-a with the test master: the public key of the derivation vectors.
            let pub = try runSystemWithInput("wg", ["pubkey"], key)
            #expect(pub == "cLGCeCu2FJNLuJbK2ExdQOL9t5FklxMWp0SEg9QvZiU=\n")
            let lan = try String(contentsOfFile: out + "/etc/systemd/network/20-edgekit-lan.network", encoding: .utf8)
            #expect(lan.contains("Address=fd5e:d9e1:7c2a:1::3/64"))
        }
    }

    @Test func rendersTheRelayAndRefusesAmbiguousFlags() throws {
        try withSecrets { secrets, dir in
            let out = dir.appendingPathComponent("relay").path
            let result = try runTool("edgekit", ["render", "--plan", examplePlanPath, "--secrets", secrets, "--relay", "--out", out])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(FileManager.default.fileExists(atPath: out + "/etc/edgekit/relay.json"))
            #expect(FileManager.default.fileExists(atPath: out + "/etc/edgekit/relay-wireguard.key"))
            let both = try runTool("edgekit", ["render", "--plan", examplePlanPath, "--secrets", secrets, "--relay", "--site", "site-a", "--router", "1", "--out", out])
            #expect(both.status == 2)
            #expect(both.stderr.contains("give either --site SITE --router N, or --relay"))
        }
    }
}

func runSystemWithInput(_ tool: String, _ arguments: [String], _ input: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/" + tool)
    process.arguments = arguments
    let out = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardInput = inPipe
    try process.run()
    inPipe.fileHandleForWriting.write(Data(input.utf8))
    try inPipe.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
