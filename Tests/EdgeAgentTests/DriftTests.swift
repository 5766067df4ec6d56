import EdgeRender
import Foundation
import Testing
import TestSupport

/// Issue 18.4: `status` names the live files that differ from the applied generation's manifest,
/// `apply --repair` puts them back without the stick. Each test runs the built `edgekit-agent`.
@Suite struct DriftTests {
    static let radvd = ConfigPaths.radvd
    static let nftables = ConfigPaths.nftables
    static let keepalived = ConfigPaths.keepalived
    static let key = ConfigPaths.routerWireGuardKey

    static func mode(_ path: String) -> UInt16 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt16(info.st_mode & 0o7777) : 0
    }

    static func octal(_ mode: UInt16) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func drifted(_ status: [String: Any]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for file in status["drifted_files"] as? [[String: Any]] ?? [] {
            result[file["path"] as? String ?? "?"] = file["problems"] as? [String] ?? []
        }
        return result
    }

    static func agent(_ arguments: [String]) throws -> ToolResult {
        try runTool("edgekit-agent", arguments)
    }

    @Test("status names an edited, a chmod-ed and a deleted file; apply --repair restores them byte for byte without the stick")
    func driftIsReportedAndRepaired() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", serial: 1000)
            let first = try scratch.apply(root, stick)
            try #require(first.status == 0, "\(first)")
            let clean = liveView(root)
            var status = try ApplyTests.status(root)
            #expect(status["drift"] as? Int == 0 && Self.drifted(status).isEmpty && status["drift_problem"] is NSNull, "\(status)")
            let quiet = try Self.agent(["status", "--root", root])
            #expect(quiet.stdout.contains("drift         drift=0 (the live files are generation 1's)\n"), "\(quiet)")

            // By hand: an editor writes through the link, a chmod follows it, an rm removes the link.
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: root + Self.radvd))
            handle.seekToEndOfFile()
            handle.write(Data("# edited by hand\n".utf8))
            try handle.close()
            let nftMode = Self.mode(root + Self.nftables)
            let newMode: UInt16 = nftMode == 0o600 ? 0o640 : 0o600
            #expect(chmod(root + Self.nftables, mode_t(newMode)) == 0)
            #expect(unlink(root + Self.keepalived) == 0)

            status = try ApplyTests.status(root)
            #expect(status["drift"] as? Int == 3, "\(status)")
            #expect(Self.drifted(status) == [
                Self.keepalived: ["missing"],
                Self.nftables: ["mode \(Self.octal(newMode)), expected \(Self.octal(nftMode))"],
                Self.radvd: ["content differs"],
            ], "\(status)")
            let text = try Self.agent(["status", "--root", root])
            #expect(text.status == 0, "status reports drift, it does not fail on it: \(text)")
            let lines = text.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("drift") }
            #expect(lines == [
                "drift         drift=3 (files differ from generation 1; apply --repair restores them)",
                "drifted       \(Self.keepalived): missing",
                "drifted       \(Self.nftables): mode \(Self.octal(newMode)), expected \(Self.octal(nftMode))",
                "drifted       \(Self.radvd): content differs",
            ], "\(text)")

            // A dry run says what it would do and changes nothing.
            let drifted = treeHash(root)
            let dry = try Self.agent(["apply", "--repair", "--dry-run", "--root", root])
            #expect(dry.status == 0, "\(dry)")
            #expect(dry.stdout.hasPrefix("dry run: would repair generation 1: drift=3; nothing was changed\n"), "\(dry)")
            #expect(dry.stdout.hasSuffix("would restart: nftables, keepalived, radvd\n"), "\(dry)")
            #expect(treeHash(root) == drifted)
            // So does a dry run of the same stick, which would restore the same files.
            let dryStick = try scratch.apply(root, stick, ["--dry-run"])
            #expect(dryStick.status == 0, "\(dryStick)")
            for path in [Self.keepalived, Self.nftables, Self.radvd] { #expect(dryStick.stdout.contains("would change \(path)\n"), "\(dryStick)") }
            #expect(dryStick.stdout.hasSuffix("would restart: nftables, keepalived, radvd\n"), "\(dryStick)")
            #expect(treeHash(root) == drifted)

            // No stick: every file back as generation 1 had it, only their services named.
            let repair = try Self.agent(["apply", "--repair", "--root", root])
            #expect(repair.status == 0, "\(repair)")
            #expect(repair.stdout == """
                repaired generation 1 as generation 2 from its own files, without the stick: drift=3 restored; previous generation 0 kept
                restored \(Self.keepalived): missing
                restored \(Self.nftables): mode \(Self.octal(newMode)), expected \(Self.octal(nftMode))
                restored \(Self.radvd): content differs
                not restarting (--services none): nftables, keepalived, radvd

                """, "\(repair)")
            #expect(liveView(root) == clean, "the live files must be byte for byte (and mode for mode) the applied ones")
            #expect(Self.mode(root + Self.nftables) == nftMode)
            status = try ApplyTests.status(root)
            #expect(status["drift"] as? Int == 0 && Self.drifted(status).isEmpty, "\(status)")
            #expect(status["generation"] as? Int == 2 && status["previous_generation"] as? Int == 0, "\(status)")
            #expect(status["serial"] as? Int == 1000)
            let generations = try FileManager.default.contentsOfDirectory(atPath: root + "/var/lib/edgekit/generations").sorted()
            #expect(generations == ["0", "2"], "the drifted generation is replaced, not kept")

            // Nothing drifted: nothing at all changes (bytes, and not one inode or mtime).
            let content = treeHash(root)
            let identity = treeIdentity(root)
            let again = try Self.agent(["apply", "--repair", "--root", root])
            #expect(again.status == 0, "\(again)")
            #expect(again.stdout == "generation 2 matches its manifest: drift=0, nothing changed, nothing restarted\n", "\(again)")
            #expect(treeHash(root) == content)
            #expect(treeIdentity(root) == identity, "a repair with no drift touched: \(changedEntries(identity, treeIdentity(root)))")

            // The same stick again is "already applied": the repair made the same generation.
            let same = try scratch.apply(root, stick)
            #expect(same.stdout == "generation 2 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\n", "\(same)")
        }
    }

    @Test("the WireGuard key is compared, never printed; a chmod of it is repaired, an edit in place needs the stick")
    func secretDrift() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", serial: 1000)
            try #require(try scratch.apply(root, stick).status == 0)
            let clean = liveView(root)
            let original = try String(contentsOfFile: root + Self.key, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

            #expect(chmod(root + Self.key, 0o644) == 0)
            let status = try ApplyTests.status(root)
            #expect(Self.drifted(status) == [Self.key: ["mode 0644, expected 0600"]], "\(status)")
            let repair = try Self.agent(["apply", "--repair", "--root", root])
            #expect(repair.status == 0, "\(repair)")
            #expect(repair.stdout.contains("not restarting (--services none): tunnel"), "\(repair)")
            #expect(liveView(root) == clean)

            // Edited in place: the only copy of the key changed, and only the stick can derive it.
            let forged = Data(repeating: 7, count: 32).base64EncodedString()
            try Data((forged + "\n").utf8).write(to: URL(fileURLWithPath: root + Self.key))
            for format in ["text", "json"] {
                let shown = try Self.agent(["status", "--root", root, "--format", format])
                #expect(shown.stdout.contains("content differs"), "\(shown)")
                #expect(!shown.stdout.contains(original) && !shown.stdout.contains(forged), "status must not print the key: \(shown)")
            }
            let before = treeHash(root)
            let refused = try Self.agent(["apply", "--repair", "--root", root])
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderrLines == ["apply --repair: \(Self.key) changed in generation 2 itself and no copy with its recorded SHA-256 is left (previous generation, applied profile); nothing was changed: apply the stick (without --repair) to restore it"], "\(refused)")
            #expect(!refused.stdout.contains(original) && !refused.stderr.contains(original) && !refused.stderr.contains(forged))
            #expect(treeHash(root) == before)

            // As that line says: the stick puts it back.
            let restored = try scratch.apply(root, stick)
            #expect(restored.status == 0, "\(restored)")
            #expect(restored.stdout.contains("change \(Self.key)") && !restored.stdout.contains(original), "\(restored)")
            #expect(liveView(root) == clean)
            #expect(try ApplyTests.status(root)["drift"] as? Int == 0)
        }
    }

    @Test("apply --repair refuses with one line and changes nothing: with --stick, with nothing applied, with no manifest")
    func repairRefusals() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", serial: 1000)

            var before = treeHash(root)
            let nothing = try Self.agent(["apply", "--repair", "--root", root])
            #expect(nothing.status == 1, "\(nothing)")
            #expect(nothing.stderrLines == ["apply --repair: nothing applied yet under \(root), so there is nothing to repair; apply the stick first"], "\(nothing)")
            #expect(nothing.stdout.isEmpty)
            #expect(treeHash(root) == before)

            try #require(try scratch.apply(root, stick).status == 0)
            before = treeHash(root)
            let both = try Self.agent(["apply", "--repair", "--stick", stick, "--root", root])
            #expect(both.status == 1, "\(both)")
            #expect(both.stderrLines == ["apply: --repair restores the applied generation without a stick; drop --stick \(stick), or drop --repair to apply the stick"], "\(both)")
            #expect(treeHash(root) == before)

            // A generation written without a manifest (or with one this agent cannot read).
            #expect(unlink(root + "/var/lib/edgekit/generations/1/manifest.json") == 0)
            before = treeHash(root)
            let status = try ApplyTests.status(root)
            #expect(status["drift"] is NSNull && status["drifted_files"] is NSNull, "\(status)")
            #expect(status["drift_problem"] as? String == "generation 1 has no manifest; run apply from the stick once", "\(status)")
            #expect(status["generation"] as? Int == 1, "\(status)")
            let text = try Self.agent(["status", "--root", root])
            #expect(text.stdout.contains("drift         unknown: generation 1 has no manifest; run apply from the stick once\n"), "\(text)")
            let refused = try Self.agent(["apply", "--repair", "--root", root])
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderrLines == ["generation 1 has no manifest; run apply from the stick once"], "\(refused)")
            #expect(treeHash(root) == before)

            // As that line says.
            let again = try scratch.apply(root, stick)
            #expect(again.status == 0, "\(again)")
            #expect(try ApplyTests.status(root)["drift"] as? Int == 0)
        }
    }

    /// With stand-in daemons (`--services processes`): the repair restarts exactly the services of
    /// the drifted files, and a repair with nothing drifted spawns nothing.
    @Test("apply --repair restarts only the services whose files drifted", .requiresRoot(andTools: "unshare"))
    func repairRestartsOnlyDriftedServices() throws {
        try Scratch.with { scratch in
            let fakes = try FakeTools(in: scratch)
            let root = try scratch.makeRoot()
            defer { FakeTools.stopDaemons(under: root) }
            let stick = try scratch.stickImage("stick.img", serial: 1000)
            let first = try runIsolated(["apply", "--root", root, "--stick", stick, "--services", "processes"], environment: fakes.environment)
            try #require(first.status == 0, "\(first)")
            let clean = liveView(root)

            try Data("# replaced by hand\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/radvd.conf.new"))
            #expect(rename(root + "/etc/radvd.conf.new", root + Self.radvd) == 0)
            fakes.clear()
            let repair = try runIsolated(["apply", "--repair", "--root", root, "--services", "processes"], environment: fakes.environment)
            #expect(repair.status == 0, "\(repair)")
            #expect(repair.stdout.contains("restored \(Self.radvd): replaced by a regular file, not the link to generation 1's file (content differs)"), "\(repair)")
            #expect(repair.stdout.hasSuffix("restarted (processes): radvd\n"), "\(repair)")
            #expect(!fakes.calls.isEmpty && Set(fakes.calls.map { $0.split(separator: " ").first.map(String.init) ?? "" }) == ["radvd"],
                    "only radvd's file drifted: \(fakes.calls)")
            #expect(liveView(root) == clean)

            fakes.clear()
            let none = try runIsolated(["apply", "--repair", "--root", root, "--services", "processes"], environment: fakes.environment)
            #expect(none.status == 0 && none.stdout.contains("drift=0, nothing changed, nothing restarted"), "\(none)")
            #expect(fakes.calls.isEmpty, "\(fakes.calls)")
        }
    }

    /// The repair goes through the apply's transaction, so a power cut at any of its steps (the
    /// debug-only EDGEKIT_AGENT_CRASH_AT hook) leaves every live file as it was drifted or as it is
    /// restored, and the next `apply --repair` ends with the tree a clean repair leaves. (Links put
    /// back before the switch already show the drifted generation's intact copy: each file is one or
    /// the other, the generation store is always one committed generation.)
    @Test("power loss at any step of a repair leaves each file drifted or restored, and the next repair completes it")
    func crashDuringRepair() throws {
        try Scratch.with { scratch in
            let start = try scratch.makeRoot("start")
            try #require(try scratch.apply(start, try scratch.stickFolder("stick", serial: 1000)).status == 0)
            let clean = liveView(start)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: start + Self.radvd))
            handle.seekToEndOfFile()
            handle.write(Data("# edited by hand\n".utf8))
            try handle.close()
            #expect(chmod(start + Self.nftables, 0o600) == 0)
            #expect(unlink(start + Self.keepalived) == 0)
            let drifted = liveView(start)
            let repaired = scratch.path("repaired")
            try copyTree(start, repaired)
            try #require(try Self.agent(["apply", "--repair", "--root", repaired]).status == 0)
            let done = treeHash(repaired)
            #expect(liveView(repaired) == clean)

            var step = 1
            while step < 500 {
                let root = scratch.path("crash-\(step)")
                try copyTree(start, root)
                defer { try? FileManager.default.removeItem(atPath: root) }
                let crashed = try runTool("edgekit-agent", ["apply", "--repair", "--root", root],
                                          environment: ["EDGEKIT_AGENT_CRASH_AT": String(step)])
                if crashed.status == 0 && !crashed.signalled { break }  // past the last step
                #expect(crashed.signalled && crashed.status == SIGKILL, "step \(step): \(crashed)")
                let seen = liveView(root)
                for path in Set(seen.keys).union(drifted.keys).union(clean.keys) {
                    #expect(seen[path] == drifted[path] || seen[path] == clean[path], "step \(step): \(path) is neither drifted nor restored")
                }
                let recovered = try Self.agent(["apply", "--repair", "--root", root])
                #expect(recovered.status == 0, "step \(step): \(recovered)")
                #expect(treeHash(root) == done, "step \(step): the tree after recovery differs from a clean repair")
                step += 1
            }
            #expect(step > 20, "the hook must cover the repair's writes, fsyncs and renames (\(step - 1) steps)")
            print("crashed at each of \(step - 1) steps of a repair")
        }
    }
}
