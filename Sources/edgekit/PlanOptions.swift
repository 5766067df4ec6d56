import ArgumentParser
import EdgeBuild
import EdgeCrypto
import EdgeModel
import Foundation
import PlanYAML

/// `--plan DIR [--secrets S]`, shared by every command that needs the plan's keys.
struct PlanOptions: ParsableArguments {
    @Option(help: "Plan folder holding plan.yaml.")
    var plan: String

    @Option(help: ArgumentHelp("Folder holding master.key (default: $EDGEKIT_SECRETS).", valueName: "dir"))
    var secrets: String?

    func loadPlan() throws -> Plan {
        try PlanLoader.load(directory: plan)
    }

    func loadKeys(for plan: Plan) throws -> PlanKeys {
        try PlanKeys.load(for: plan, secrets: secrets)
    }
}

/// `--serial N`: the profile serial (`ProfileSerial.resolve`).
struct SerialOption: ParsableArguments {
    @Option(help: "Profile serial (default: $SOURCE_DATE_EPOCH, else the current UNIX time). Must grow with every new stick.")
    var serial: UInt64?
}
