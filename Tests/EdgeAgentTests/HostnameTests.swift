import Foundation
import Testing
import TestSupport

/// The site's hostname from the stamp (docs/agent.md, "Hostname"): every site's disk image boots
/// with the shared rootfs's `/etc/hostname` = `edgekit`, and the agent makes it the stamp's at every
/// start of `apply` and `run`, stick or no stick. Under `--root DIR` only DIR/etc/hostname; on `/`
/// also the running hostname (proven in a chroot inside a private UTS namespace).
@Suite struct HostnameTests {
    /// A site-a root as the disk image has it: the stamp says `site-a-edge`, /etc/hostname `edgekit`.
    static func imageRoot(_ scratch: Scratch, _ name: String = "root") throws -> String {
        let root = try scratch.makeRoot(name)
        try Data("edgekit\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/hostname"))
        return root
    }

    /// This process's running hostname (gethostname(2)).
    static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test("apply --root writes DIR/etc/hostname from the stamp once, never the running hostname; a second apply touches nothing")
    func applyWritesTheHostnameFile() throws {
        try Scratch.with { scratch in
            let root = try Self.imageRoot(scratch)
            let stick = try scratch.stickFolder("stick", serial: 1000)
            let running = Self.hostname

            let dry = try scratch.apply(root, stick, ["--dry-run"])
            #expect(dry.stdout.hasPrefix("would write /etc/hostname (site-a-edge, from /etc/edgekit/site.json)\n"), "\(dry)")
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "edgekit\n", "a dry run changes nothing")

            let first = try scratch.apply(root, stick)
            #expect(first.status == 0, "\(first)")
            #expect(first.stdout.hasPrefix("hostname: wrote /etc/hostname (site-a-edge, from /etc/edgekit/site.json)\napplied generation 1 "),
                    "\(first)")
            #expect(!first.stdout.contains("running system's hostname"), "never sethostname under --root: \(first)")
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "site-a-edge\n")
            var info = stat()
            #expect(lstat(root + "/etc/hostname", &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o7777 == 0o644)
            #expect(!FileManager.default.fileExists(atPath: root + "/etc/.hostname.edgekit-new"))
            #expect(Self.hostname == running, "the test machine's hostname must not change")

            let identity = treeIdentity(root)
            let again = try scratch.apply(root, stick)
            #expect(again.stdout.hasPrefix("generation 1 already applied"), "no hostname line when there is nothing to do: \(again)")
            #expect(treeIdentity(root) == identity, "\(changedEntries(identity, treeIdentity(root)))")

            // No /etc/hostname at all (a tree prepared by hand): written too.
            try FileManager.default.removeItem(atPath: root + "/etc/hostname")
            #expect(try scratch.apply(root, stick).stdout.hasPrefix("hostname: wrote /etc/hostname (site-a-edge"))
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "site-a-edge\n")
        }
    }

    /// `edgekit-agent hostname`, what edgekit-hostname.service runs before the login prompts.
    @Test("edgekit-agent hostname writes DIR/etc/hostname from the stamp and nothing else; again: already; no stamp: says so")
    func hostnameCommand() throws {
        try Scratch.with { scratch in
            let root = try Self.imageRoot(scratch)
            let running = Self.hostname
            let before = treeIdentity(root)
            let dry = try runTool("edgekit-agent", ["hostname", "--root", root, "--dry-run"])
            #expect(dry.status == 0 && dry.stdout == "would write /etc/hostname (site-a-edge, from /etc/edgekit/site.json)\n", "\(dry)")
            #expect(treeIdentity(root) == before, "a dry run changes nothing")
            let first = try runTool("edgekit-agent", ["hostname", "--root", root])
            #expect(first.status == 0 && first.stdout == "hostname: wrote /etc/hostname (site-a-edge, from /etc/edgekit/site.json)\n", "\(first)")
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "site-a-edge\n")
            let changed = changedEntries(before, treeIdentity(root)).map { String($0.prefix { $0 != ":" }) }
            #expect(changed == ["etc", "etc/hostname"], "only the hostname file (and its folder, renamed into): \(changed)")
            #expect(Self.hostname == running, "never sethostname under --root")
            let again = try runTool("edgekit-agent", ["hostname", "--root", root])
            #expect(again.status == 0 && again.stdout == "hostname: already the site stamp's\n", "\(again)")

            try FileManager.default.removeItem(atPath: root + "/etc/edgekit/site.json")
            let unstamped = try runTool("edgekit-agent", ["hostname", "--root", root])
            #expect(unstamped.status == 0 && unstamped.stdout == "hostname: no site stamp at \(root)/etc/edgekit/site.json; nothing to do\n",
                    "\(unstamped)")
            let help = try runTool("edgekit-agent", ["hostname", "--help"])
            #expect(help.status == 0 && help.stdout.contains("before the login prompts"))
        }
    }

    @Test("the hostname is set even when the stick is refused or absent, and nothing else changes")
    func hostnameWithoutAGoodStick() throws {
        try Scratch.with { scratch in
            // A refused stick: its one line, exit 1, and the only change under --root is etc/hostname.
            let root = try Self.imageRoot(scratch)
            let before = treeHash(root)
            let missing = scratch.path("no-such-stick")
            let refused = try scratch.apply(root, missing)
            #expect(refused.status == 1 && refused.stderrLines == ["stick \(missing) does not exist"], "\(refused)")
            #expect(refused.stdout == "hostname: wrote /etc/hostname (site-a-edge, from /etc/edgekit/site.json)\n", "\(refused)")
            let after = treeHash(root)
            #expect(Set(after.keys).union(before.keys).filter { after[$0] != before[$0] } == ["etc/hostname"])

            // run with no stick at all (label search finds none): the hostname at its start.
            let probe = try runSystem("blkid", ["-c", "/dev/null", "-t", "LABEL=EDGEPROFILE", "-o", "device"])
            guard probe.stdout.isEmpty else {
                print("skipped the run part: this machine has a device labelled EDGEPROFILE (\(probe.stdout))")
                return
            }
            let bootRoot = try Self.imageRoot(scratch, "boot")
            let run = try runTool("edgekit-agent", ["run", "--once", "--root", bootRoot, "--registration-deadline", "1"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stderr.contains("hostname: wrote /etc/hostname (site-a-edge, from /etc/edgekit/site.json)"), "\(run)")
            #expect(run.stderrLines.contains("edgekit-agent: no profile stick found (label EDGEPROFILE); nothing applied yet"), "\(run)")
            #expect(try String(contentsOfFile: bootRoot + "/etc/hostname", encoding: .utf8) == "site-a-edge\n")
        }
    }

    @Test("a stamp whose hostname is not a host name is one line naming the stamp; the apply goes on")
    func invalidHostnameIsNamed() throws {
        try Scratch.with { scratch in
            let root = try Self.imageRoot(scratch)
            try Data("{\"plan\": \"example\", \"site\": \"site-a\", \"hostname\": \"site a/edge\"}\n".utf8)
                .write(to: URL(fileURLWithPath: root + "/etc/edgekit/site.json"))
            let result = try scratch.apply(root, try scratch.stickFolder("stick", serial: 1000))
            #expect(result.status == 0, "\(result)")
            #expect(result.stderrLines == ["\(root)/etc/edgekit/site.json: hostname \"site a/edge\" is not a valid host name (labels of "
                                           + "letters, digits and inner hyphens, separated by dots, at most 64 characters); rebuild the image"],
                    "\(result)")
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "edgekit\n")
        }
    }

    /// On `/` (the appliance), in a chroot holding a site-a image root, inside a private UTS and
    /// mount namespace: sethostname(2) really changes the (namespace's) running hostname.
    @Test("on the system root the running hostname is set too, and /etc/hostname written",
          .requiresRoot(andTools: "unshare", "chroot", "hostname"))
    func systemRootSetsTheRunningHostname() throws {
        try Scratch.with { scratch in
            let root = try Self.imageRoot(scratch, "chroot")
            _ = try scratch.stickFolder("chroot/stick", serial: 1000)
            for link in ["bin", "lib", "lib64", "sbin"] {
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/" + link)
                try FileManager.default.createSymbolicLink(atPath: root + "/" + link, withDestinationPath: target)
            }
            let bin = binDirectory.path
            // An aarch64 agent under qemu-aarch64 (./build.sh test's second pass) needs its sysroot too.
            let sysroot = ProcessInfo.processInfo.environment["QEMU_LD_PREFIX"] ?? ""
            for directory in ["usr", "opt", "dev", "proc", String(bin.dropFirst()), String(sysroot.dropFirst())] where !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            if let cache = FileManager.default.contents(atPath: "/etc/ld.so.cache") {
                try cache.write(to: URL(fileURLWithPath: root + "/etc/ld.so.cache"))
            }
            let running = Self.hostname
            let script = """
                for d in /usr /opt /dev /proc \(bin) \(sysroot); do mount --bind "$d" "\(root)$d" || exit 90; done
                hostname edgekit || exit 91
                echo "=== apply"; chroot \(root) \(bin)/edgekit-agent apply --stick /stick --services none 2>&1; echo "rc=$?"
                echo "=== again"; chroot \(root) \(bin)/edgekit-agent apply --stick /stick --services none 2>&1; echo "rc=$?"
                echo "=== hostname"; hostname
                """
            let result = try runSystem("unshare", ["-u", "-m", "--propagation", "private", "sh", "-c", script])
            let out = NamespaceTests.sections(result.stdout)
            #expect(out["apply"]?.hasPrefix("""
                hostname: set the running system's hostname to site-a-edge (was edgekit, from /etc/edgekit/site.json)
                hostname: wrote /etc/hostname (site-a-edge, from /etc/edgekit/site.json)
                applied generation 1 (site site-a router 2, serial 1000) from /stick
                """) == true, "\(result)")
            #expect(out["apply"]?.hasSuffix("rc=0\n") == true, "\(result)")
            #expect(out["again"] == "generation 1 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\nrc=0\n",
                    "\(result)")
            #expect(out["hostname"]?.trimmingCharacters(in: .whitespacesAndNewlines) == "site-a-edge", "the namespace's running hostname: \(result)")
            #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "site-a-edge\n")
            #expect(Self.hostname == running, "the test machine's own hostname is untouched")
        }
    }
}
