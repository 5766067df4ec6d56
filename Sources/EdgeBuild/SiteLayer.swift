import EdgeCrypto
import EdgeImage
import EdgeModel
import Foundation

extension ImageBuilder.SiteLayer {
    /// The files a site adds to the system: its image identity (0600), the operator key, the public
    /// parameters (site.json, the same `SiteStamp` the agent reads) and, in the rootfs tarball, the
    /// hostname.
    public init(plan: Plan, site: Site, keys: PlanKeys) throws {
        let stamp = try DocumentCoding.encode(SiteStamp(plan: plan.name, site: site.name, hostname: site.name))
        let identityText = keys.siteIdentityFile(site: site.name)
        let operatorKey = keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")
        self.init(site: site.name, files: [
            (path: "etc/edgekit/operator.pub", mode: 0o644, data: Data(operatorKey.utf8)),
            (path: "etc/edgekit/site.identity", mode: 0o600, data: Data(identityText.utf8)),
            (path: "etc/edgekit/site.json", mode: 0o644, data: stamp),
            (path: "etc/hostname", mode: 0o644, data: Data("\(site.name)\n".utf8)),
        ])
    }
}
