import ArgumentParser
import EdgeRelay

@main
struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgekit-relay",
        abstract: "The relay's registration daemon (serve, status, revoke).")
}
