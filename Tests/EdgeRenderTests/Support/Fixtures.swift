import EdgeModel
import EdgeRender
import Foundation
import Testing

/// The example plan and what the renderers make of it.
enum Fixtures {
    /// Any valid WireGuard public key (`wg genkey | wg pubkey`, once); the relay's in the tests.
    static let relayPublicKey = "8SKoOQlTwQURbMli35MBOFIHhOS3RbLAzeWP+sEg1lg="

    /// The package root, found from this file's path (Tests/EdgeRenderTests/Support/Fixtures.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let goldenDirectory = packageRoot.appendingPathComponent("Tests/EdgeRenderTests/Golden")

    static func examplePlan() throws -> Plan {
        try PlanLoader.load(directory: packageRoot.appendingPathComponent("profiles/example").path)
    }

    /// Every rendering of the example plan: one per router (named by hostname) and "relay".
    static func allRenderings() throws -> [(name: String, files: [RenderedFile])] {
        let plan = try examplePlan()
        var result: [(String, [RenderedFile])] = []
        for site in plan.sites {
            for router in site.routers {
                result.append((site.hostname(slot: router.slot),
                               EdgeRouterConfig.files(plan: plan, site: site, router: router,
                                                      relayPublicKey: relayPublicKey)))
            }
        }
        result.append(("relay", RelayFiles.files(plan: plan)))
        return result
    }

    /// The files of router `slot` of `siteName` in the example plan.
    static func router(_ siteName: String, slot: Int) throws -> (plan: Plan, site: Site, router: Router, files: [RenderedFile]) {
        let plan = try examplePlan()
        let site = try #require(plan.site(named: siteName))
        let router = try #require(site.router(slot: slot))
        return (plan, site, router,
                EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKey: relayPublicKey))
    }
}

extension Array where Element == RenderedFile {
    /// The file at `path`; records a test failure when there is none.
    func file(_ path: String) throws -> RenderedFile {
        try #require(first { $0.path == path }, "no rendered file at \(path)")
    }
}
