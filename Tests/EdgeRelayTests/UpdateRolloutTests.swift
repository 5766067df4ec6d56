import EdgeModel
import Foundation
import Logging
import NIOHTTP1
import Testing
@testable import EdgeRelay

/// Which bundle the relay offers a router (docs/updates.md, "From the relay"), and what its update
/// endpoint answers whom. The lab test with the real daemon and agents is RelayUpdateLabTests.
@Suite struct UpdateRolloutTests {
    static func peer(_ site: String, _ slot: Int, claim: String, system: Int64?, update: String? = nil, updateVersion: Int64? = nil) -> PeerRecord {
        var peer = PeerRecord(publicKey: "\(site)-\(slot)=", plan: "example", site: site, slot: slot, serial: 1000,
                              tunnelAddress: "fd3b:4f10:a8c6::1:\(site == "site-a" ? 1 : 2):\(slot)", sitePrefix: "fd5e::/64",
                              claim: claim, lastSeen: 0, lastCookieTime: 0)
        peer.systemVersion = system
        peer.updateState = update
        peer.updateVersion = updateVersion
        return peer
    }

    static let bundles = [
        ServedBundle(name: "site-a-5.update", bytes: 100)!,
        ServedBundle(name: "site-a-4.update", bytes: 90)!,
        ServedBundle(name: "example-pc-uefi-6.update", bytes: 80)!,
        ServedBundle(name: "example-pc-uefi-5.update", bytes: 70)!,
        ServedBundle(name: "site-b-4.update", bytes: 60)!,
    ]

    @Test func bundleNamesAreTargetAndVersionAndNeverPaths() {
        #expect(ServedBundle(name: "site-a-5.update", bytes: 1)?.target == "site-a")
        #expect(ServedBundle(name: "example-pc-uefi-1765000000.update", bytes: 1).map { "\($0.target) \($0.version)" } == "example-pc-uefi 1765000000")
        for bad in ["site-a.update", "site-a-0.update", "-5.update", "site-a-5.tar", "../site-a-5.update", "a/site-a-5.update",
                    ".site-a-5.update", "site a-5.update", "site-a-x.update", "", String(repeating: "a", count: 250) + "-5.update"] {
            #expect(ServedBundle(name: bad, bytes: 1) == nil, "\(bad)")
        }
    }

    @Test func theBackupFirstThenTheMasterOnceTheBackupIsBlessed() {
        let master = Self.peer("site-a", 1, claim: "master", system: 3)
        var backup = Self.peer("site-a", 2, claim: "backup", system: 3)
        func decide(_ router: PeerRecord, board: String? = "pc-uefi", version: UInt64 = 3) -> UpdateRollout.Decision {
            UpdateRollout.decide(router: router, peers: [master, backup, Self.peer("site-b", 1, claim: "master", system: 3)],
                                 bundles: Self.bundles, plan: "example", board: board, version: version)
        }
        // The newest for the site or the board: the board's 6.
        #expect(decide(backup) == .bundle(Self.bundles[2]))
        // Without a board, only the site's own.
        #expect(decide(backup, board: nil) == .bundle(Self.bundles[0]))
        #expect(decide(master) == .wait("site site-a router 2 (backup) runs version 3, not yet 6 blessed; the backup updates first"))
        // On its trial boot of 6: still not.
        backup.systemVersion = 6
        backup.updateState = "trial"
        backup.updateVersion = 6
        #expect(decide(master) == .wait("site site-a router 2 (backup) runs version 6, not yet 6 blessed; the backup updates first"))
        backup.updateState = "blessed"
        #expect(decide(master) == .bundle(Self.bundles[2]))
        // Its trial failed: the master stays.
        backup.systemVersion = 3
        backup.updateState = "failed"
        #expect(decide(master) == .wait("site site-a router 2 (backup) failed version 6 on its trial boot; the master stays on 3"))
        // And the backup is not offered 6 again.
        #expect(decide(backup) == .none("version 6 failed its trial boot on this router; it needs a newer bundle than example-pc-uefi-6.update"))
        // Nothing newer than what it runs.
        #expect(decide(master, version: 6) == .none("no bundle newer than version 6 for site site-a or board pc-uefi"))
        // A router alone at its site does not wait for anyone.
        #expect(UpdateRollout.decide(router: Self.peer("site-b", 1, claim: "master", system: 3), peers: [master, backup],
                                     bundles: Self.bundles, plan: "example", board: "arm64-uefi", version: 3) == .bundle(Self.bundles[4]))
        // A partner that says nothing about its system holds the master back.
        backup.systemVersion = nil
        #expect(decide(master) == .wait("site site-a router 2 (backup) does not report its system version yet; the backup updates first"))
    }

    @Test func updateKeysAreChecked() throws {
        var config = RelayConfig(interface: "wg0", privateKeyFile: "/k", operatorPublicKeyFile: "/o", plan: "example",
                                 ula: IPv6Prefix("fd5e:d9e1:7c2a::/48")!, tunnelPrefix: IPv6Prefix("fd3b:4f10:a8c6::/64")!,
                                 stateDatabase: "/s", bundlesDirectory: "/var/lib/edgekit-relay/bundles", updateAddresses: ["fd3b:4f10:a8c6::1"])
        #expect(config.problem() == nil)
        config.bundlesDirectory = "bundles"
        #expect(config.problem() == "bundles_directory \"bundles\" must be an absolute path")
        config.bundlesDirectory = "/b"
        config.updateAddresses = ["relay.example.net"]
        #expect(config.problem() == "update_addresses entry \"relay.example.net\" is not an IP address (the relay's tunnel address)")
        config.updateAddresses = ["::1"]
        config.updatePort = config.metricsPort
        #expect(config.problem() == "update_port must differ from metrics_port")
        // Written only when set; read back the same.
        config.updatePort = RelayConfig.defaultUpdatePort
        let json = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(RelayConfig.self, from: json) == config)
        #expect(!String(decoding: json, as: UTF8.self).contains("update_port"))
    }

    @Test func theEndpointAnswersRegisteredRoutersOnlyAndServesNoPath() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("relay-updates-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/bundles", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("bundle".utf8).write(to: URL(fileURLWithPath: folder + "/bundles/site-b-4.update"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: folder + "/secret-4.update"))
        let store = try RelayStore(path: folder + "/state.sqlite")
        let fields = SiteCertificateFields(plan: "example", site: "site-b", slot: 1, serial: 1000,
                                           tunnelAddress: "fd3b:4f10:a8c6::1:2:1", sitePrefix: "fd5e:d9e1:7c2a:2::/64")
        _ = try store.register(publicKey: "B1=", certificate: fields, claim: "master", cookieTime: 1, now: 1)
        var config = RelayConfig(interface: "wg0", privateKeyFile: "/k", operatorPublicKeyFile: "/o", plan: "example",
                                 ula: IPv6Prefix("fd5e:d9e1:7c2a::/48")!, tunnelPrefix: IPv6Prefix("fd3b:4f10:a8c6::/64")!,
                                 stateDatabase: folder + "/state.sqlite")
        config.bundlesDirectory = folder + "/bundles"
        let endpoint = UpdateEndpoint(config: config, store: store, logger: Logger(label: "test"), onListening: { _ in })
        func text(_ answer: UpdateEndpoint.Answer) -> String {
            switch answer {
            case .text(let status, let body): "\(status.code) \(body)"
            case .file(let path, let bytes): "file \(path) \(bytes)"
            }
        }
        let router = "fd3b:4f10:a8c6::1:2:1"
        #expect(text(try endpoint.answer(.GET, "/update?board=pc-uefi&version=3", from: router)) == "200 bundle site-b-4.update 6 4\n")
        #expect(text(try endpoint.answer(.GET, "/update?board=pc-uefi&version=4", from: router))
                == "200 none no bundle newer than version 4 for site site-b or board pc-uefi\n")
        #expect(text(try endpoint.answer(.GET, "/update?board=pc-uefi", from: router)) == "400 GET /update?board=BOARD&version=N: version is missing or not a number\n")
        #expect(text(try endpoint.answer(.GET, "/bundles/site-b-4.update", from: router)) == "file \(folder)/bundles/site-b-4.update 6")
        #expect(text(try endpoint.answer(.GET, "/bundles/../secret-4.update", from: router)).hasPrefix("404 "))
        #expect(text(try endpoint.answer(.GET, "/bundles/%2e%2e%2fsecret-4.update", from: router)).hasPrefix("404 "))
        #expect(text(try endpoint.answer(.POST, "/update?version=3", from: router)).hasPrefix("405 "))
        // Not a registered router's tunnel address: nothing, not even whether a bundle exists.
        #expect(text(try endpoint.answer(.GET, "/bundles/site-b-4.update", from: "fd3b:4f10:a8c6::1:9:9"))
                == "403 not a registered router's tunnel address: fd3b:4f10:a8c6::1:9:9\n")
        #expect(text(try endpoint.answer(.GET, "/update?version=3", from: nil)).hasPrefix("403 "))
    }
}
