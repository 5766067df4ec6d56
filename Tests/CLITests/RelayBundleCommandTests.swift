import Foundation
import Testing

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
