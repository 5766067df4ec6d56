import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation

/// `edgekit render`: every file of one router or of the relay, with its WireGuard private key
/// (0600), laid out under a folder exactly as the agent or the relay bundle installs them.
public enum RenderedTree {
    public enum Target: Sendable {
        case router(Site, Router)
        case relay(Relay)
    }

    /// The rendered files followed by the target's private key file.
    public static func files(plan: Plan, keys: PlanKeys, target: Target) -> [RenderedFile] {
        switch target {
        case .relay(let relay):
            let operatorKey = keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")
            return RelayFiles.files(plan: plan, relay: relay, clientPublicKeys: keys.clientPublicKeys(of: plan)) + [
                RenderedFile(path: ConfigPaths.operatorPublicKey, contents: operatorKey),
                RenderedFile(path: ConfigPaths.relayWireGuardKey, mode: 0o600,
                             contents: keys.relayWireGuardKey(name: relay.name).privateKeyBase64 + "\n"),
            ]
        case .router(let site, let router):
            let routerSecret = keys.routerSecret(site: site, router: router)
            let secret = routerSecret.wireGuardKey.privateKeyBase64
            var files = EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: keys.relayPublicKeys(of: plan)) + [
                RenderedFile(path: ConfigPaths.routerWireGuardKey, mode: 0o600, contents: secret + "\n"),
            ]
            if !plan.operators.isEmpty {
                files.append(RenderedFile(path: ConfigPaths.sshHostKey, mode: 0o600,
                                          contents: routerSecret.sshHostKey.openSSHPrivateKey(comment: "root@\(site.hostname(slot: router.slot))")))
            }
            return files
        }
    }

    /// Writes `files` under `folder` (created; existing files replaced, secrets 0600 from their
    /// first byte); returns the paths written.
    public static func write(_ files: [RenderedFile], under folder: String) throws -> [String] {
        try files.map { file in
            let target = folder + file.path
            let parent = (target as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw BuildError("cannot create \(parent): \(error.localizedDescription)", code: "build.cannot-write", input: parent, cause: error)
            }
            try writeOutputFile(Data(file.contents.utf8), to: target, mode: Int(file.mode), replace: true)
            return target
        }
    }
}
