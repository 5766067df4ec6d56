import ArgumentParser
import CLISupport
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
        subcommands: [Init.self, Show.self, Identity.self])

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
            _ = try options.locate(plan, site: site, router: nil)
            let text = try options.loadKeys(for: plan).siteIdentityFile(site: site)
            try writeFile(Data(text.utf8), to: out, mode: 0o600, replace: false)
            Output.error("wrote \(out) (site \(site) identity, mode 0600)")
        }
    }
}

/// Public keys only: what `keys show` prints and CI may publish.
struct PublicKeySummary: Encodable {
    var plan: String
    var operatorKeyNumber: String
    var operatorPublicKey: String
    var relayWireguardPublicKey: String
    var sites: [SiteKeys]

    struct SiteKeys: Encodable {
        var name: String
        var imageRecipient: String
        var routers: [RouterKeys]
        enum CodingKeys: String, CodingKey { case name, routers, imageRecipient = "image_recipient" }
    }

    struct RouterKeys: Encodable {
        var slot: Int
        var generation: Int
        var wireguardPublicKey: String
        enum CodingKeys: String, CodingKey { case slot, generation, wireguardPublicKey = "wireguard_public_key" }
    }

    enum CodingKeys: String, CodingKey {
        case plan, sites
        case operatorKeyNumber = "operator_key_number"
        case operatorPublicKey = "operator_public_key"
        case relayWireguardPublicKey = "relay_wireguard_public_key"
    }

    init(plan: Plan, keys: PlanKeys) {
        self.plan = plan.name
        operatorKeyNumber = keys.operatorKeyNumber.map { String(format: "%02x", $0) }.joined()
        operatorPublicKey = keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")
        relayWireguardPublicKey = keys.relayWireGuardKey.publicKeyBase64
        sites = plan.sites.map { site in
            SiteKeys(
                name: site.name, imageRecipient: keys.siteIdentity(site: site.name).recipient.text,
                routers: site.routers.map { router in
                    RouterKeys(slot: router.slot, generation: router.generation,
                               wireguardPublicKey: keys.routerSecret(site: site, router: router).wireGuardKey.publicKeyBase64)
                })
        }
    }

    var text: String {
        var lines = [
            "plan \(plan)",
            "operator key (signify, key number \(operatorKeyNumber)):",
        ]
        lines += operatorPublicKey.split(separator: "\n").map { "  \($0)" }
        lines.append("relay wireguard public key: \(relayWireguardPublicKey)")
        for site in sites {
            lines.append("site \(site.name)")
            lines.append("  image recipient (age): \(site.imageRecipient)")
            for router in site.routers {
                lines.append("  router \(router.slot) (generation \(router.generation)) wireguard public key: \(router.wireguardPublicKey)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
