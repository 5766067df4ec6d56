import ArgumentParser
import CLISupport
import EdgeCrypto
import EdgeModel
import EdgeRender
import Foundation

struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Write every file of one router or of the relay under OUTDIR, laid out as installed.",
        discussion: """
            OUTDIR/etc/radvd.conf, OUTDIR/etc/keepalived/keepalived.conf, … exactly as the agent (or
            the relay bundle) installs them, including the WireGuard private key file (0600). Useful to
            review a change before sealing sticks: render into a folder and diff it. docs/network.md
            explains every file.
            """)

    @OptionGroup var options: PlanOptions
    @Option(help: "Site name (with --router).") var site: String?
    @Option(help: "Router slot (with --site).") var router: Int?
    @Flag(help: "Render the relay's files instead of a router's.") var relay = false
    @Option(help: "Output folder (created; existing files are replaced).") var out: String

    func validate() throws {
        guard relay != (site != nil || router != nil), relay || (site != nil && router != nil) else {
            throw ValidationError("give either --site SITE --router N, or --relay")
        }
    }

    func run() async throws {
        let plan = try options.loadPlan()
        let keys = try options.loadKeys(for: plan)
        var files: [RenderedFile]
        var secretPath: String
        var secret: String
        if relay {
            files = RelayFiles.files(plan: plan)
            secretPath = ConfigPaths.relayWireGuardKey
            secret = keys.relayWireGuardKey.privateKeyBase64
            files.append(RenderedFile(path: ConfigPaths.operatorPublicKey, contents: keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")))
        } else {
            let (site, router) = try options.locate(plan, site: site!, router: router!)
            files = EdgeRouterConfig.files(plan: plan, site: site, router: router!, relayPublicKey: keys.relayWireGuardKey.publicKeyBase64)
            secretPath = ConfigPaths.routerWireGuardKey
            secret = keys.routerSecret(site: site, router: router!).wireGuardKey.privateKeyBase64
        }
        for file in files {
            try place(Data(file.contents.utf8), at: file.path, mode: Int(file.mode))
        }
        try place(Data((secret + "\n").utf8), at: secretPath, mode: 0o600)
        Output.data(files.map { out + $0.path }.joined(separator: "\n") + "\n" + out + secretPath + "\n")
    }

    func place(_ data: Data, at path: String, mode: Int) throws {
        let target = out + path
        do {
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw CommandError("cannot create \((target as NSString).deletingLastPathComponent): \(error.localizedDescription)")
        }
        try writeFile(data, to: target, mode: mode, replace: true)
    }
}
