import ArgumentParser
import CLISupport
import EdgeModel
import EdgeRelay
import Foundation
import Logging
import ServiceLifecycle

@main
enum Main {
    static func main() async {
        await CommandRunner.main(RelayCommand.self)
    }
}

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgekit-relay",
        abstract: "The relay's registration daemon (serve, status, revoke, publish).",
        discussion: """
            Protocol and config file: docs/protocol.md, docs/relay.md.
            Exit codes: 0 success, 1 a problem with your input (the message says which), 2 usage.
            """,
        version: "0.1.0",
        subcommands: [Serve.self, Status.self, Revoke.self, Publish.self])
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The relay config file (JSON, docs/relay.md).")
    var config: String = RelayConfig.defaultPath

    func load() throws -> RelayConfig { try RelayConfig.load(path: config) }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore WireGuard from the state database, then answer registrations until SIGTERM/SIGINT.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        let config = try options.load()
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw CommandError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "edgekit-relay")
        let server = RelayServer(config: config, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup,
                             failureTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger))
        try await group.run()
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each registered router (claim, up/down, handshake age, generation, agent version, health, last registration), the owner of each site /64, the revocations and the update bundles served.",
        discussion: "A router is down when WireGuard has not heard from it for longer than 3 keepalives (keepalive_seconds). Sites without a live master come first. Docs: docs/relay.md, \"Status\".")

    @OptionGroup var options: ConfigOption

    @Option(help: "Output format: text or json.")
    var format: OutputFormat = .text

    func run() async throws {
        let config = try options.load()
        let snapshot = try RelayStore(path: config.stateDatabase).snapshot()
        var handshakes: [String: Int] = [:]
        do {
            handshakes = try WireGuardControl(interface: config.interface).latestHandshakes()
        } catch {
            // Without the interface every router shows down, and this line says why.
            Output.error("edgekit-relay: status: \(error); every router is shown down")
        }
        let routers = RouterLiveness.rows(snapshot, handshakes: handshakes, keepaliveSeconds: config.keepaliveSeconds, now: Date())
        let bundles = config.bundlesDirectory.map(ServedBundle.list)
        switch format {
        case .json: Output.data(try RelayStatus.json(snapshot, routers: routers, bundles: bundles))
        case .text: Output.data(RelayStatus.text(snapshot, routers: routers, bundles: bundles))
        }
    }
}

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put an update bundle read from standard input into bundles_directory, for the routers to fetch.",
        discussion: """
            edgekit-relay publish site-a-1765000000.update < site-a-1765000000.update
            edgekit fleet update runs this over ssh. The bundle is written under a
            temporary name and checked as a router would check it (the plan's operator
            signature from operator_public_key_file, this relay's plan, every member's
            SHA-256, and NAME matching the manifest's site or board and version) before
            one rename makes it servable; a refused bundle is one line, exit 1, and
            leaves nothing in the folder. Routers take it at their next check
            (edgekit-update.timer, hourly) or on `edgekit-agent update --from-relay`,
            a site's backup first. Docs: docs/updates.md ("Publishing").
            """)

    @OptionGroup var options: ConfigOption

    @Argument(help: "The bundle's name: SITE-VERSION.update or PLAN-BOARD-VERSION.update.")
    var name: String

    func run() async throws {
        let config = try options.load()
        let published = try BundlePublisher(config: config).publish(name: name, from: STDIN_FILENO) {
            Output.error("edgekit-relay: publish: " + $0)
        }
        Output.data(published.line + "\n")
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke a site, one router of it, or a client; a running relay removes the peers within revocation_poll_ms.",
        discussion: """
            edgekit-relay revoke --site site-b                  every router of site-b
            edgekit-relay revoke --site site-b --router 2       only router 2 of site-b
            edgekit-relay revoke --client alice-phone           a laptop or phone of relay.json's clients
            A revoked client stays out of WireGuard across restarts; to let it in again, give it a new
            key (bump its generation in the plan, docs/clients.md) and a new name, or start over.
            """)

    @OptionGroup var options: ConfigOption

    @Option(help: "The site to revoke.")
    var site: String?

    @Option(name: .customLong("router"), help: "Only this router slot (default: every router of the site).")
    var slot: Int?

    @Option(help: "Only certificates with a serial below this one (a re-issued stick with a newer serial registers again).")
    var beforeSerial: Int64?

    @Option(help: "A client (laptop or phone) of relay.json's clients to revoke, instead of a site.")
    var client: String?

    func validate() throws {
        guard (site == nil) != (client == nil) else {
            throw ValidationError("name what to revoke: --site SITE (and --router N) or --client NAME, one of the two")
        }
        if client != nil, slot != nil || beforeSerial != nil {
            throw ValidationError("--router and --before-serial go with --site, not --client")
        }
    }

    func run() async throws {
        let config = try options.load()
        let store = try RelayStore(path: config.stateDatabase)
        if let client {
            guard config.clients.contains(where: { $0.name == client }) else {
                let known = config.clients.map(\.name)
                throw CommandError("revoke: no client \"\(client)\" in \(options.config) (clients: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            try store.revokeClient(client)
            Output.error("revoked client \(client); a running relay removes its peer within \(config.revocationPollMilliseconds) ms")
            return
        }
        guard let site else { return }
        try store.revoke(site: site, slot: slot, beforeSerial: beforeSerial)
        let what = slot.map { "router \($0) of site \(site)" } ?? "every router of site \(site)"
        let serial = beforeSerial.map { " (certificates with serial below \($0))" } ?? ""
        Output.error("revoked \(what)\(serial); a running relay removes its peers within \(config.revocationPollMilliseconds) ms")
    }
}
