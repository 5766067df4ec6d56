import ArgumentParser
import CLISupport

@main
enum Main {
    static func main() async {
        await CommandRunner.main(EdgekitCommand.self)
    }
}

struct EdgekitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgekit",
        abstract: "Turn a network plan into edge-router images, sealed profile sticks and a relay bundle.",
        discussion: """
            Start with a plan:   edgekit plan init site-net --name corp --relay relay.example.net
            Check and read it:   edgekit plan check site-net; edgekit plan show site-net
            Watch the fleet:     edgekit fleet status --relay root@relay.example.net
            Exit codes: 0 success, 1 a problem with your input (the message says which), 2 usage.
            Docs: docs/plan.md (plan reference), docs/first-site.md (walkthrough).
            """,
        version: "0.1.0",
        subcommands: [PlanCommand.self, KeysCommand.self, RenderCommand.self, ProfileCommand.self, StickCommand.self, ImageCommand.self, RelayCommand.self, BuildCommand.self, MeshCommand.self, FleetCommand.self, ClientCommand.self])
}
