import ArgumentParser
import CLISupport
import EdgeCrypto
import EdgeModel
import EdgeSystem
import Foundation

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
        let folder = try SecretsFolder.resolve(option: secrets)
        return PlanKeys(master: try folder.loadMaster(), planName: plan.name)
    }

    /// The site and router named on the command line, or a one-line error listing what exists.
    func locate(_ plan: Plan, site name: String, router slot: Int?) throws -> (Site, Router?) {
        guard let site = plan.site(named: name) else {
            throw CommandError("--site \(name): no such site in plan \(plan.name) (sites: \(plan.sites.map(\.name).joined(separator: ", ")))")
        }
        guard let slot else { return (site, nil) }
        guard let router = site.router(slot: slot) else {
            throw CommandError("--router \(slot): site \(name) has no router \(slot) (slots: \(site.routers.map { String($0.slot) }.joined(separator: ", ")))")
        }
        return (site, router)
    }
}

/// `--serial N`: the profile serial. Default: $SOURCE_DATE_EPOCH when set (reproducible CI builds
/// that still grow with every commit), else the current UNIX time; both only ever grow.
struct SerialOption: ParsableArguments {
    @Option(help: "Profile serial (default: $SOURCE_DATE_EPOCH, else the current UNIX time). Must grow with every new stick.")
    var serial: UInt64?

    func resolve() throws -> (serial: UInt64, issuedAt: Date) {
        if let serial { return (serial, Date(timeIntervalSince1970: TimeInterval(serial))) }
        if let text = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"] {
            guard let epoch = UInt64(text) else {
                throw CommandError("SOURCE_DATE_EPOCH \"\(text)\" is not a whole number of seconds")
            }
            return (epoch, Date(timeIntervalSince1970: TimeInterval(epoch)))
        }
        let now = Date()
        return (UInt64(now.timeIntervalSince1970), now)
    }
}

/// Writes `data` to `path` with `mode` through `AtomicFile` (0600 from the first byte for
/// secrets), refusing to replace an existing file unless `replace` is set.
func writeFile(_ data: Data, to path: String, mode: Int, replace: Bool) throws {
    do {
        try AtomicFile.write(data, to: path, mode: mode, replace: replace)
    } catch AtomicFileError.alreadyExists {
        throw CommandError("\(path) already exists; remove it or choose another --out")
    } catch let error as AtomicFileError {
        throw CommandError(error.description)
    }
}
