import ArgumentParser
import CLISupport
import EdgeBuild

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
    @Option(help: ArgumentHelp("With --relay: which relay, by its name in relays: (needed when the plan has several).", valueName: "name"))
    var relayName: String?
    @Option(help: "Output folder (created; existing files are replaced).") var out: String

    func validate() throws {
        guard relay != (site != nil || router != nil), relay || (site != nil && router != nil) else {
            throw ValidationError("give either --site SITE --router N, or --relay")
        }
        if relayName != nil && !relay { throw ValidationError("--relay-name goes with --relay") }
    }

    func run() async throws {
        let plan = try options.loadPlan()
        let target: RenderedTree.Target
        if relay {
            target = .relay(try plan.locate(relay: relayName))
        } else {
            let (site, router) = try plan.locate(site: site!, router: router!)
            target = .router(site, router!)
        }
        let written = try RenderedTree.write(RenderedTree.files(plan: plan, keys: try options.loadKeys(for: plan), target: target), under: out)
        Output.data(written.joined(separator: "\n") + "\n")
    }
}
