import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeModel
import PlanYAML

extension PlanError: UserFacingError {
    public var lines: [String] { diagnostics.map(\.description) }
}

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Create, check and show a network plan (DIR/plan.yaml).",
        subcommands: [Init.self, Check.self, Show.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new commented plan with a fresh random ULA /48.",
            discussion: """
                The /48 is fd00::/8 plus 40 bits from the kernel's CSPRNG (RFC 4193 section 3.2).
                The relay's tunnel range is a second random ULA /64 outside the /48.
                Refuses to overwrite an existing DIR/plan.yaml.

                Example: edgekit plan init corp-net --name corp --relay relay.example.net:51820 --sites 2
                """)

        @Argument(help: "Folder for the plan (created if missing).")
        var directory: String

        @Option(help: "DNS-safe plan name (lower-case letters, digits, hyphens).")
        var name: String

        @Option(help: ArgumentHelp("Relay DNS name, optionally with its WireGuard port (default 51820); registration uses the next port.", valueName: "host[:port]"))
        var relay: String

        @Option(help: "Number of sites to start with (1-1000), each with two routers.")
        var sites: Int = 1

        func run() async throws {
            let path = try PlanCreation.write(directory: directory, name: name, relay: relay, sites: sites)
            Output.error("wrote \(path); next: edgekit keys init --plan \(directory)")
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a plan; print every problem as plan.yaml:LINE: message and exit 1.",
            discussion: "Checks shape (unknown keys, types) and meaning (prefixes, uniqueness, VRRP, MTU, ports).")

        @Argument(help: "Plan folder holding plan.yaml.")
        var directory: String

        func run() async throws {
            let plan = try PlanLoader.load(directory: directory)
            let routers = plan.sites.reduce(0) { $0 + $1.routers.count }
            Output.data("plan \(plan.name) is valid: \(plan.sites.count) site(s), \(routers) router(s)\n")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the resolved addressing of every site and router.",
            discussion: "--format json is stable for scripts, e.g. a CI matrix: jq -r '.sites[].name'")

        @Argument(help: "Plan folder holding plan.yaml.")
        var directory: String

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func run() async throws {
            let summary = PlanSummary(try PlanLoader.load(directory: directory))
            switch format {
            case .text: Output.data(summary.text())
            case .json: Output.data(try summary.json())
            }
        }
    }
}
