import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeStick
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Update bundles on the router (docs/updates.md): what this system is, and whether a bundle may
/// replace it.
public enum SystemUpdate {
    /// A bundle `check` accepted, and the running system it was checked against.
    public typealias Checked = (UpdateBundle, SystemRelease)

    /// The running system's board and version (`/usr/lib/edgekit/system.json` in its root).
    public static func release(paths: AgentPaths) throws -> SystemRelease {
        let path = paths.live(SystemRelease.path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError.badImageFile(path, "missing or unreadable; this image is from before update bundles (reflash it once with a newer image)")
        }
        do {
            return try DocumentCoding.decode(SystemRelease.self, from: data)
        } catch {
            throw AgentError.badImageFile(path, "unreadable: \(error)", cause: ErrorCause(error))
        }
    }

    /// Everything the router checks before it writes a byte of a bundle: the operator's signature
    /// (the image's operator key), plan and site (the site stamp), board and a newer version (the
    /// running system's release), then every member against its SHA-256 in the signed manifest.
    /// `progress` gets the bytes hashed so far.
    public static func check(_ bundle: String, paths: AgentPaths, progress: (UInt64) -> Void = { _ in }) throws -> (UpdateBundle, SystemRelease) {
        let agent = Agent(paths: paths, services: NoServices())
        let (stamp, _, operatorKey) = try agent.loadImageKeys()
        let release = try release(paths: paths)
        let opened = try UpdateBundle.open(bundle, operatorKey: operatorKey)
        try opened.check(plan: stamp.plan, site: stamp.site, release: release)
        try opened.verifyMembers(progress: progress)
        return (opened, release)
    }

    /// `update …: ok: plan P, site S, board B, version N (this system: M), K members, BYTES bytes verified`.
    public static func acceptedLine(_ bundle: UpdateBundle, release: SystemRelease) -> String {
        let manifest = bundle.manifest
        let bytes = manifest.members.reduce(0) { $0 + $1.bytes }
        return "update \(Printable.escaped(bundle.path)): ok: plan \(manifest.plan), \(manifest.site.map { "site \($0)" } ?? "any site"), "
            + "board \(manifest.board), version \(manifest.version) (this system: \(release.version)), \(manifest.members.count) members, \(bytes) bytes verified"
    }

    /// Run at the agent's start: when the last install's trial boot failed and the board runs
    /// another system (the one it came back to), records the failure if the trial could not (its
    /// system never judged itself) and says so in one line, at every start until the next install;
    /// nil otherwise.
    public static func failedTrial(paths: AgentPaths) -> String? {
        guard let running = try? release(paths: paths),
              let record = SlotInstall(paths: paths).reconciledRecord(running: running, save: true),
              record.state == .failed, record.version != running.version else { return nil }
        return "system version \(record.version) (slot \(record.slot.rawValue)) failed its trial boot: \(record.reason ?? "not blessed"); "
            + "running version \(running.version)"
    }
}
