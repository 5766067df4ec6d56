import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeRender

extension MeshFormat: ExpressibleByArgument {}

struct MeshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "Write the servers' WireGuard mesh files (the plan's servers: and mesh:).",
        discussion: """
            Each server of the plan gets a /128 from mesh.prefix and one WireGuard
            interface, wg-mesh, whose peers are every other server at
            [its site address]:mesh.port. Keys derive from the master secret per
            server; bump a server's generation in the plan to rotate its key.
            Routers and the relay only route the mesh: adding a server changes
            these files, never an image or a stick. Re-render every server after
            adding or re-keying one.

            One server:   edgekit mesh render --plan P --server db1 --out db1
            Every server: edgekit mesh bundle --plan P --out mesh  (mesh/db1/…)
            Docs: docs/mesh.md (install, MTU), docs/plan.md (servers:, mesh:).
            """,
        subcommands: [Render.self, Bundle.self])

    struct Render: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one server's mesh files under OUTDIR, laid out as installed.",
            discussion: """
                networkd: OUTDIR/etc/systemd/network/50-edgekit-mesh.netdev, .network
                  and .key (0600; chown the key to systemd-network on the server).
                wg-quick: OUTDIR/etc/wireguard/wg-mesh.conf (0600, holds the key);
                  start it with: wg-quick up wg-mesh
                Prints the paths written. Existing files are replaced (docs/mesh.md).
                """)

        @OptionGroup var options: PlanOptions
        @Option(help: "Server name (from the plan's servers:).") var server: String
        @Option(help: "networkd (a .netdev/.network pair and a key file) or wg-quick (one file).")
        var format: MeshFormat = .networkd
        @Option(help: "Output folder (created; existing files are replaced).") var out: String

        func run() async throws {
            let plan = try options.loadPlan()
            let written = try MeshBundle.render(plan: plan, keys: try options.loadKeys(for: plan), server: server,
                                                format: format, to: out)
            Output.data(written.joined(separator: "\n") + "\n")
        }
    }

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every server's mesh files, each under OUTDIR/SERVER/, laid out as installed.",
            discussion: "Copy OUTDIR/SERVER/ onto server SERVER (docs/mesh.md, \"Install\"). Prints the paths written.")

        @OptionGroup var options: PlanOptions
        @Option(help: "networkd (a .netdev/.network pair and a key file) or wg-quick (one file).")
        var format: MeshFormat = .networkd
        @Option(help: "Output folder (created; existing files are replaced).") var out: String

        func run() async throws {
            let plan = try options.loadPlan()
            let written = try MeshBundle.bundle(plan: plan, keys: try options.loadKeys(for: plan), format: format, to: out)
            Output.data(written.joined(separator: "\n") + "\n")
        }
    }
}
