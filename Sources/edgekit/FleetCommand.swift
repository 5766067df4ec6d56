import ArgumentParser
import CLISupport
import EdgeBuild

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Watch the fleet through the relay.",
        discussion: "Docs: docs/fleet.md (\"Fleet status\").",
        subcommands: [Status.self])

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
}
