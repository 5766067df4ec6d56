import EdgeErrors
import EdgeModel
import EdgeStick
import EdgeSystem
import Foundation

/// `edgekit fleet update` (docs/updates.md, "Publishing"): puts bundles on the relay over ssh
/// (`edgekit-relay publish NAME`, the bundle on its standard input; the relay checks it as a router
/// would before any router is offered it), then says which routers will take each and in what
/// order, from the relay's status. The routers fetch it themselves (edgekit-update.timer).
public enum FleetUpdate {
    /// A bundle the operator named, as its manifest claims (the relay and the routers verify it).
    public struct Bundle: Sendable {
        public var path: String
        public var name: String
        public var manifest: UpdateManifest
    }

    /// Reads what `path` claims to be. One-line `BuildError` for a file that is not an update
    /// bundle or whose name is not the one its manifest gives it (the relay serves by name).
    public static func open(_ path: String) throws -> Bundle {
        let manifest: UpdateManifest
        do {
            manifest = try UpdateBundle.unverifiedManifest(path)
        } catch {
            throw BuildError(error.message, code: "fleet.bundle", input: path)
        }
        let name = (path as NSString).lastPathComponent
        let expected = BundleFileName.name(plan: manifest.plan, site: manifest.site, board: manifest.board, version: manifest.version)
        guard name == expected else {
            // Unverified text: escaped before it reaches a terminal.
            throw BuildError("\(Printable.escaped(path)): holds \(manifest.site.map { "site \(Printable.escaped($0))" } ?? "any site"), board \(Printable.escaped(manifest.board)), version \(manifest.version), so the routers look for it as \(Printable.escaped(expected)); rename it",
                             code: "fleet.bundle-name", input: path)
        }
        return Bundle(path: path, name: name, manifest: manifest)
    }

    /// Streams the bundle to `edgekit-relay publish NAME` on the relay; returns the relay's line.
    public static func publish(_ bundle: Bundle, relay: String, sshCommand: String = FleetStatus.defaultSSHCommand) throws -> String {
        let result = try FleetStatus.onRelay(relay, sshCommand: sshCommand, run: ["edgekit-relay", "publish", bundle.name],
                                             stdinFile: bundle.path, toDo: "publish \(bundle.name) on \(relay)",
                                             progressPrefix: "edgekit-relay: publish: ")
        return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One line per router the bundle is for (its site's, or every router for a bundle for any
    /// site, those of its board taking it), saying when it takes the new version under the relay's
    /// rule: backups at their next check, a master once the other routers of its site run it,
    /// blessed (docs/updates.md, "From the relay").
    public static func rollout(_ bundle: Bundle, routers: [RouterLiveness]) -> [String] {
        let version = Int64(clamping: bundle.manifest.version)
        let targets = routers.filter { bundle.manifest.site == nil || $0.site == bundle.manifest.site }
            .sorted { ($0.site, $0.claim == "master" ? 1 : 0, $0.slot) < ($1.site, $1.claim == "master" ? 1 : 0, $1.slot) }
        guard !targets.isEmpty else {
            return ["no router of \(bundle.manifest.site.map { "site \(Printable.escaped($0))" } ?? "the plan") is registered with the relay: the bundle waits there"]
        }
        // The relay offers a bundle for any site only to routers that ask for its board.
        let ifBoard = bundle.manifest.site == nil ? " if it is a \(Printable.escaped(bundle.manifest.board))" : ""
        return targets.map { router in
            let who = "\(Printable.escaped(router.site)) router \(router.slot) (\(Printable.escaped(router.claim)))"
            let runs = router.systemVersion.map { "runs \($0)" } ?? "does not report its system"
            if let running = router.systemVersion, running >= version {
                return "\(who) \(runs): has version \(version) already"
            }
            if router.updateState == "failed", let failed = router.updateVersion, failed >= version {
                return "\(who) \(runs): version \(failed) failed its trial boot there; it is not offered this bundle"
            }
            let partners = routers.filter { $0.site == router.site && $0.publicKey != router.publicKey }.map { "router \($0.slot)" }
            if router.claim == "master", !partners.isEmpty {
                return "\(who) \(runs): takes version \(version)\(ifBoard) once \(partners.joined(separator: " and ")) \(partners.count == 1 ? "runs" : "run") it, blessed"
            }
            let alone = router.claim == "master" ? " (no backup: the site is down while it reboots)" : ""
            return "\(who) \(runs): takes version \(version)\(ifBoard) at its next hourly check\(alone)"
        }
    }
}
