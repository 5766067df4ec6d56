import Foundation
import Testing
import TestSupport

/// `edgekit relay bundle`: what the VPS unpacks to become the relay (docs/relay.md).
@Suite struct RelayBundleCommandTests {
    @Test func bundleHoldsTheRenderedFilesThePrivateKeyAndTheBinary() throws {
        try withSecrets { secrets, dir in
            let program = dir.appendingPathComponent("edgekit-relay").path
            FileManager.default.createFile(atPath: program, contents: Data("#!/bin/sh\necho relay\n".utf8), attributes: [.posixPermissions: 0o755])
            let bundle = dir.appendingPathComponent("relay.tar.zst").path
            let made = try runTool("edgekit", ["relay", "bundle", "--plan", examplePlanPath, "--secrets", secrets, "--out", bundle, "--relay-binary", program])
            #expect(made.status == 0, "\(made.stderr)")
            #expect(made.stderrLines == ["wrote \(bundle)"])
            let listing = try runSystem("tar", ["--zstd", "-tvf", bundle, "--numeric-owner"])
            #expect(listing.status == 0, "\(listing.stderr)")
            let members = listing.stdout.split(separator: "\n").map(String.init)
            func member(_ path: String) -> String? { members.first { $0.hasSuffix(" ./" + path) } }
            #expect(member("etc/edgekit/relay-wireguard.key")?.hasPrefix("-rw------- 0/0 ") == true, "\(members)")
            #expect(member("usr/local/bin/edgekit-relay")?.hasPrefix("-rwxr-xr-x 0/0 ") == true)
            #expect(member("etc/edgekit/relay.json") != nil && member("etc/edgekit/operator.pub") != nil)
            // Unpacked as the install line says, the key is the relay key `keys show` prints.
            let root = dir.appendingPathComponent("vps").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            #expect(try runSystem("tar", ["--zstd", "-xpf", bundle, "-C", root]).status == 0)
            let key = try String(contentsOfFile: root + "/etc/edgekit/relay-wireguard.key", encoding: .utf8)
            let pub = try runSystemWithInput("wg", ["pubkey"], key)
            let shown = try runTool("edgekit", ["keys", "show", "--plan", examplePlanPath, "--secrets", secrets])
            #expect(shown.stdout.contains("relay wireguard public key: " + pub.trimmingCharacters(in: .whitespacesAndNewlines)), "\(pub)")
            #expect(FileManager.default.contents(atPath: root + "/usr/local/bin/edgekit-relay") == FileManager.default.contents(atPath: program))
        }
    }

    /// With `relays:`, one bundle per relay, by name: each with its own key (the one `keys show`
    /// prints for it) and its own relay.json ports; without --relay the command says which exist.
    @Test func eachRelayOfSeveralHasItsOwnBundle() throws {
        try withSecrets { secrets, dir in
            let plan = dir.appendingPathComponent("plan").path
            try FileManager.default.createDirectory(atPath: plan, withIntermediateDirectories: true)
            try MeshPlanFixture.twoRelaysText().write(toFile: plan + "/plan.yaml", atomically: true, encoding: .utf8)
            let program = dir.appendingPathComponent("edgekit-relay").path
            FileManager.default.createFile(atPath: program, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
            let which = try runTool("edgekit", ["relay", "bundle", "--plan", plan, "--secrets", secrets, "--out", dir.appendingPathComponent("x.tar.zst").path,
                                                "--relay-binary", program])
            #expect(which.status == 1)
            #expect(which.stderrLines == ["plan example has 2 relays; name one with --relay NAME (relays: eu, us)"])
            let unknown = try runTool("edgekit", ["relay", "bundle", "--plan", plan, "--secrets", secrets, "--relay", "asia",
                                                  "--out", dir.appendingPathComponent("x.tar.zst").path, "--relay-binary", program])
            #expect(unknown.status == 1)
            #expect(unknown.stderrLines == ["--relay asia: no such relay in plan example (relays: eu, us)"])
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.tar.zst").path))

            let shown = try runTool("edgekit", ["keys", "show", "--plan", plan, "--secrets", secrets])
            var publicKeys: Set<String> = []
            for (name, registrationPort) in [("eu", 51821), ("us", 51831)] {
                let bundle = dir.appendingPathComponent("relay-\(name).tar.zst").path
                let made = try runTool("edgekit", ["relay", "bundle", "--plan", plan, "--secrets", secrets, "--relay", name, "--out", bundle,
                                                   "--relay-binary", program])
                #expect(made.status == 0, "\(made.stderr)")
                let root = dir.appendingPathComponent("vps-\(name)").path
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
                #expect(try runSystem("tar", ["--zstd", "-xpf", bundle, "-C", root]).status == 0)
                let key = try String(contentsOfFile: root + "/etc/edgekit/relay-wireguard.key", encoding: .utf8)
                let pub = try runSystemWithInput("wg", ["pubkey"], key).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(shown.stdout.contains("relay \(name) wireguard public key: \(pub)"), "\(shown.stdout)")
                publicKeys.insert(pub)
                let config = try String(contentsOfFile: root + "/etc/edgekit/relay.json", encoding: .utf8)
                #expect(config.contains("\"listen_port\" : \(registrationPort)"), "\(config)")
            }
            #expect(publicKeys.count == 2)
        }
    }

    @Test func aMissingBinaryIsOneLineAndWritesNothing() throws {
        try withSecrets { secrets, dir in
            let bundle = dir.appendingPathComponent("relay.tar.zst").path
            let missing = dir.appendingPathComponent("no-relay").path
            let result = try runTool("edgekit", ["relay", "bundle", "--plan", examplePlanPath, "--secrets", secrets, "--out", bundle, "--relay-binary", missing])
            #expect(result.status == 1)
            #expect(result.stderrLines == ["relay binary \(missing) is missing (build it with ./build.sh, or pass --relay-binary)"])
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("relay") }
            #expect(left.isEmpty, "nothing written: \(left)")
        }
    }
}
