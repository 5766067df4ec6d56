import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeCrypto
import EdgeModel
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create the plan's master secret and show the public keys derived from it.",
        discussion: """
            Every key derives from one 32-byte master secret (docs/keys.md). Keep the secrets folder
            outside the repository; CI needs exactly master.key (one line of base64).
            """,
        subcommands: [Init.self, Show.self, Identity.self, KnownHostsLines.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create master.key (0600) in the secrets folder (0700). Never overwrites.")

        @OptionGroup var options: PlanOptions

        func run() async throws {
            let plan = try options.loadPlan()
            let folder = try SecretsFolder.resolve(option: options.secrets)
            try folder.create(MasterSecret.generate())
            Output.error("wrote \(folder.masterPath) for plan \(plan.name); back it up in your secret store")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every public key of the plan (never a secret).")

        @OptionGroup var options: PlanOptions

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func run() async throws {
            let plan = try options.loadPlan()
            let keys = try options.loadKeys(for: plan)
            let summary = PublicKeySummary(plan: plan, keys: keys)
            switch format {
            case .json: Output.data(try DocumentCoding.pretty(summary))
            case .text: Output.data(summary.text)
            }
        }
    }

    struct Identity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a site's image identity in age's form (0600); `age -d -i FILE` opens its profiles.")

        @OptionGroup var options: PlanOptions

        @Option(help: "Site name.")
        var site: String

        @Option(help: "Output file (must not exist).")
        var out: String

        func run() async throws {
            let plan = try options.loadPlan()
            _ = try plan.locate(site: site, router: nil)
            let text = try options.loadKeys(for: plan).siteIdentityFile(site: site)
            try writeOutputFile(Data(text.utf8), to: out, mode: 0o600, replace: false)
            Output.error("wrote \(out) (site \(site) identity, mode 0600)")
        }
    }

    struct KnownHostsLines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "known-hosts",
            abstract: "Print a known_hosts line for every router's tunnel address (its SSH host key).",
            discussion: """
                Host keys derive from the master secret per router (docs/keys.md), so the lines hold
                across a stick swap to a spare. Append them to ~/.ssh/known_hosts, then:
                ssh -J root@RELAY root@TUNNEL_ADDRESS
                """)

        @OptionGroup var options: PlanOptions

        func run() async throws {
            let plan = try options.loadPlan()
            let keys = try options.loadKeys(for: plan)
            if plan.operators.isEmpty {
                Output.error("note: plan \(plan.name) has no operators, so no router runs sshd yet (docs/plan.md, operators:)")
            }
            Output.data(KnownHosts.lines(plan: plan, keys: keys).map { $0 + "\n" }.joined())
        }
    }
}
