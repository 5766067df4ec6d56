import ArgumentParser
import EdgeAgent

@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgekit-agent",
        abstract: "The edge router's first-boot agent (apply, run, notify, status).")
}
