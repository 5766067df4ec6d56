import EdgeBuild
import EdgeCrypto
import EdgeImage
import EdgeModel
import Foundation
import Testing
import TestSupport

/// `edgekit fleet update` on the operator's side (docs/updates.md, "Publishing"): what it reads
/// of a bundle before sending it, and the rollout it announces. Publishing through ssh to the real
/// relay, and routers fetching what was published, is RelayUpdateLabTests.
@Suite struct FleetUpdateTests {
    static let key = try! Signify.SecretKey(seed: Data(repeating: 3, count: 32), keyNumber: Data(repeating: 4, count: 8))

    static func bundle(_ folder: String, name: String, site: String?, version: UInt64) throws -> String {
        let root = folder + "/root.img"
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: root))
        let path = folder + "/" + name
        _ = try UpdateBundleWriter.write(to: path, plan: "example", site: site, release: SystemRelease(board: "pc-uefi", version: version),
                                         system: "0123456789abcdef", root: (file: root, offset: 0, bytes: 4096), files: [], key: key,
                                         mtime: 0, progress: .silent)
        return path
    }

    /// site-a: a master and its backup on 3; site-b: one router that failed 5 and runs 3; site-c: one router on 5.
    static let routers = """
        {"routers": [
          {"claim": "master", "public_key": "A1=", "registered_age_seconds": 1, "registered_at": "2027-01-15T08:00:00Z",
           "routes_site_prefix": true, "serial": 1, "site": "site-a", "slot": 1, "state": "up", "system_version": 3},
          {"claim": "backup", "public_key": "A2=", "registered_age_seconds": 1, "registered_at": "2027-01-15T08:00:00Z",
           "routes_site_prefix": false, "serial": 1, "site": "site-a", "slot": 2, "state": "up", "system_version": 3},
          {"claim": "master", "public_key": "B1=", "registered_age_seconds": 1, "registered_at": "2027-01-15T08:00:00Z",
           "routes_site_prefix": true, "serial": 1, "site": "site-b", "slot": 1, "state": "up", "system_version": 3,
           "update_state": "failed", "update_version": 5},
          {"claim": "master", "public_key": "C1=", "registered_age_seconds": 1, "registered_at": "2027-01-15T08:00:00Z",
           "routes_site_prefix": true, "serial": 1, "site": "site-c", "slot": 1, "state": "up"}
        ]}
        """

    @Test func theRolloutNamesEachRouterBackupFirst() throws {
        try TemporaryDirectory.with("edgekit-fleet-update") { dir in
            let routers = try FleetStatus.routers(from: Data(Self.routers.utf8), source: "test")
            let siteA = try FleetUpdate.open(try Self.bundle(dir.path, name: "site-a-5.update", site: "site-a", version: 5))
            #expect(FleetUpdate.rollout(siteA, routers: routers) == [
                "site-a router 2 (backup) runs 3: takes version 5 at its next hourly check",
                "site-a router 1 (master) runs 3: takes version 5 once router 2 runs it, blessed",
            ])
            let anySite = try FleetUpdate.open(try Self.bundle(dir.path, name: "example-pc-uefi-5.update", site: nil, version: 5))
            #expect(FleetUpdate.rollout(anySite, routers: routers) == [
                "site-a router 2 (backup) runs 3: takes version 5 if it is a pc-uefi at its next hourly check",
                "site-a router 1 (master) runs 3: takes version 5 if it is a pc-uefi once router 2 runs it, blessed",
                "site-b router 1 (master) runs 3: version 5 failed its trial boot there; it is not offered this bundle",
                "site-c router 1 (master) does not report its system: takes version 5 if it is a pc-uefi at its next hourly check (no backup: the site is down while it reboots)",
            ])
            let siteD = try FleetUpdate.open(try Self.bundle(dir.path, name: "site-d-5.update", site: "site-d", version: 5))
            #expect(FleetUpdate.rollout(siteD, routers: routers) == ["no router of site site-d is registered with the relay: the bundle waits there"])
        }
    }

    @Test func aFileThatIsNotABundleOrIsMisnamedIsOneLine() throws {
        try TemporaryDirectory.with("edgekit-fleet-update") { dir in
            let made = try Self.bundle(dir.path, name: "site-a-5.update", site: "site-a", version: 5)
            let renamed = dir.path + "/site-a-6.update"
            try FileManager.default.copyItem(atPath: made, toPath: renamed)
            let garbage = dir.path + "/site-a-7.update"
            try Data("Welcome to relay!\n".utf8).write(to: URL(fileURLWithPath: garbage))
            for (path, expected) in [
                (renamed, "\(renamed): holds site site-a, board pc-uefi, version 5, so the routers look for it as site-a-5.update; rename it"),
                (garbage, "update bundle \(garbage): "),
                (dir.path + "/absent.update", "update bundle \(dir.path)/absent.update: cannot be read"),
            ] {
                do {
                    _ = try FleetUpdate.open(path)
                    Issue.record("\(path) was read as a bundle")
                } catch {
                    #expect("\(error)".hasPrefix(expected) && !"\(error)".contains("\n"), "\(error)")
                }
            }
        }
    }
}
