import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeSystem
import Foundation

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "A laptop's or phone's WireGuard file and QR code (the plan's clients:).",
        discussion: """
            Each client of the plan gets a /128 from client_prefix (inside the
            plan's /48) and a key derived from the master secret; bump its
            generation in the plan to rotate the key. It connects to the plan's
            first relay and reaches every site. The relay learns the client from
            its bundle: rebuild and install the relay bundle after adding one
            (edgekit relay bundle), revoke one with
            edgekit-relay revoke --client NAME.

            File:    edgekit client config alice-phone --plan P --out alice.conf
            Phone:   edgekit client config alice-phone --plan P --qr
            Picture: edgekit client config alice-phone --plan P --png alice.png
            Docs: docs/clients.md.
            """,
        subcommands: [Config.self])

    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one client's wg-quick file, or show it as a QR code.",
            discussion: """
                Without --out, --qr or --png the file goes to stdout. It holds the
                client's private key: --out and --png write 0600, replacing the file
                whole. --qr prints the QR code for a terminal instead of the file
                (needs qrencode; scan it with the WireGuard app: "Create from QR code").
                """)

        @OptionGroup var options: PlanOptions
        @Argument(help: "Client name (from the plan's clients:).") var name: String
        @Option(help: "Write the file here (0600; replaced whole).") var out: String?
        @Flag(help: "Print the file as a QR code for a terminal instead.") var qr = false
        @Option(help: "Write the file's QR code as a PNG here (0600; replaced whole).") var png: String?

        func run() async throws {
            let plan = try options.loadPlan()
            let client = try ClientFiles.client(named: name, in: plan)
            let text = ClientFiles.wgQuick(plan: plan, keys: try options.loadKeys(for: plan), client: client)
            // Everything is made before anything is written: a missing qrencode leaves no file.
            let terminal = qr ? try ClientFiles.terminalQRCode(text) : nil
            if let png { try ClientFiles.writePNGQRCode(text, to: png) }
            if let out { try AtomicFile.write(Data(text.utf8), to: out, mode: 0o600, replace: true) }
            if let terminal { Output.data(terminal) }
            if out == nil, png == nil, !qr { Output.data(text) }
            let written = [out, png].compactMap { $0 }
            if !written.isEmpty {
                Output.error("client \(client.name): \(client.address) through relay \(plan.clientRelay.host); wrote \(written.joined(separator: ", "))")
            }
        }
    }
}
