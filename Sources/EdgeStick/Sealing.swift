import EdgeCrypto
import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One router's sealed `profile.age`, with what a stick needs around it (`edgekit profile seal`,
/// `edgekit stick build`).
public struct Sealing: Sendable {
    public var plan: Plan
    public var site: Site
    public var router: Router
    public var keys: PlanKeys
    public var serial: UInt64
    public var sealed: Data

    /// Seals the profile of `router` at `site` with `serial` (docs/keys.md).
    public init(plan: Plan, site: Site, router: Router, keys: PlanKeys, serial: UInt64, issuedAt: Date) throws {
        self.plan = plan
        self.site = site
        self.router = router
        self.keys = keys
        self.serial = serial
        sealed = try keys.sealedProfile(plan: plan, site: site, router: router, serial: serial, issuedAt: issuedAt)
    }

    public var summary: String { "plan \(plan.name), site \(site.name), router \(router.slot), serial \(serial)" }

    /// Writes the stick image (FAT, label EDGEPROFILE, profile.age + README) to `path`, atomically.
    public func writeStick(to path: String) throws {
        // Volume id from the router's public identity: stable across rebuilds, distinct per router.
        let volumeID = keys.routerSecret(site: site, router: router).wireGuardKey.publicKey.prefix(4)
            .reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        try ProfileStick.build(
            profile: sealed,
            readme: ProfileStick.readme(plan: plan.name, site: site.name, slot: router.slot, serial: serial),
            output: path, volumeID: volumeID)
    }
}
