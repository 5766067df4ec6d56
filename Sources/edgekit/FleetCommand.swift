import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeModel
import Foundation

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Watch the fleet through the relay, and hand it system updates.",
        discussion: "Docs: docs/fleet.md (\"Fleet status\"), docs/updates.md (\"Publishing\").",
        subcommands: [Status.self, Update.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per router: site, slot, claim, handshake age, generation, agent version, health.",
            discussion: """
                Runs `edgekit-relay status --format json` on the relay over ssh
                (ssh -o BatchMode=yes -o ConnectTimeout=10 HOST …), or reads a saved
                copy of that JSON with --from. Sites without a live master come first.
                Generation, agent version and health are what each router reported in
                its last registration ("-": its agent sends no report).
                Exit codes: 0 the table was printed, 1 the relay could not be reached or
                did not answer with its status JSON (one line says which), 2 usage.
                """)

        @Option(help: "The relay's ssh destination (HOST or USER@HOST).") var relay: String?
        @Option(help: "Read a saved `edgekit-relay status --format json` instead of asking the relay.") var from: String?
        @Option(help: "The ssh program and its options, split at spaces (as rsync -e), called as: CMD HOST edgekit-relay status --format json.")
        var sshCommand: String = FleetStatus.defaultSSHCommand
        @Option(help: "Output format: text or json.") var format: OutputFormat = .text

        func validate() throws {
            guard (relay == nil) != (from == nil) else {
                throw ValidationError("give exactly one of --relay HOST or --from FILE")
            }
        }

        func run() async throws {
            let routers = if let from {
                try FleetStatus.load(file: from)
            } else {
                try FleetStatus.routers(from: try FleetStatus.fetch(relay: relay ?? "", sshCommand: sshCommand), source: "relay \(relay ?? "")")
            }
            Output.data(format == .json ? try FleetStatus.json(routers) : FleetStatus.table(routers))
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish update bundles on the relay; the routers fetch and install them by themselves, a site's backup first.",
            discussion: """
                edgekit fleet update --relay root@relay.example.net out/site-a-1765000000.update

                Each bundle goes to the relay over ssh (CMD HOST edgekit-relay publish NAME,
                the bundle on its standard input). The relay writes it under a temporary
                name and checks it as a router would (the plan's operator signature, its
                plan, every member's SHA-256, the name matching the manifest) before one
                rename puts it in its bundles folder; a refused bundle is one line, exit 1,
                and nothing is served. Then one line per router the bundle is for, from the
                relay's status: when it takes the new version. Every router asks the relay
                hourly (edgekit-update.timer; `edgekit-agent update --from-relay --reboot`
                on a router asks at once); the relay hands a site's backup its bundle first
                and the master only once the backup runs it, blessed. Watch with
                `edgekit fleet status` (SYSTEM column).
                Exit codes: 0 every bundle published, 1 a bundle that is not one, a relay
                that cannot be reached or refused it (one line says which), 2 usage.
                """)

        @Option(help: "The relay's ssh destination (HOST or USER@HOST).") var relay: String
        @Option(help: "The ssh program and its options, split at spaces (as rsync -e).")
        var sshCommand: String = FleetStatus.defaultSSHCommand
        @Argument(help: "Update bundles (SITE-VERSION.update or PLAN-BOARD-VERSION.update, as edgekit image update writes them).")
        var bundles: [String]

        func validate() throws {
            guard !bundles.isEmpty else { throw ValidationError("name at least one update bundle") }
        }

        func run() async throws {
            // Every bundle is read before the first goes out: a typo fails before anything changes.
            let opened = try bundles.map(FleetUpdate.open)
            for bundle in opened {
                let bytes = (try? FileManager.default.attributesOfItem(atPath: bundle.path)[.size] as? Int) ?? 0
                Output.error("edgekit: fleet update: sending \(bundle.name) (\(bytes >> 20) MiB) to \(relay); the relay checks it before it serves it")
                Output.data(try FleetUpdate.publish(bundle, relay: relay, sshCommand: sshCommand) + "\n")
            }
            let routers: [RouterLiveness]
            do {
                routers = try FleetStatus.routers(from: try FleetStatus.fetch(relay: relay, sshCommand: sshCommand), source: "relay \(relay)")
            } catch {
                Output.error("edgekit: fleet update: published; the rollout cannot be shown: \(error)")
                return
            }
            for bundle in opened {
                Output.data("\(bundle.name) rolls out:\n")
                for line in FleetUpdate.rollout(bundle, routers: routers) { Output.data("  " + line + "\n") }
            }
        }
    }
}
