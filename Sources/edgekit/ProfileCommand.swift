import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeModel
import EdgeStick
import Foundation

struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Seal a router's profile (profile.age) and inspect sealed profiles.",
        discussion: """
            profile.age is an age v1 file sealed to the site image identity; inside is a signify
            embedded-signature file signed with the operator key; the signed message is the profile
            document (docs/keys.md). To check one by hand:
              age -d -i IDENTITY -o signed profile.age
              signify-openbsd -V -e -p operator.pub -x signed -m profile.json
            """,
        subcommands: [Seal.self, Inspect.self])

    struct Seal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write profile.age for one router.")

        @OptionGroup var target: RouterProfileOptions
        @Option(help: "Output file (replaced atomically if it exists).") var out: String

        func run() async throws {
            let sealing = try target.seal()
            try writeOutputFile(sealing.sealed, to: out, mode: 0o600, replace: true)
            Output.error("wrote \(out): \(sealing.summary)")
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unseal, verify and show a profile (profile.age, a stick image or a stick folder); secrets redacted.",
            discussion: "Exit 1 with one line naming the problem when the profile is not valid for the plan.")

        @Argument(help: "profile.age, a stick image/device, or a folder holding profile.age.")
        var file: String

        @OptionGroup var options: PlanOptions

        @Option(help: "Only try this site's identity (default: every site of the plan).")
        var site: String?

        @Option(help: "Refuse a profile older than this serial, as a device that applied it would.")
        var lastSerial: UInt64?

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func run() async throws {
            let plan = try options.loadPlan()
            let sites = try site.map { [try plan.locate(site: $0, router: nil).0] } ?? plan.sites
            let report = try ProfileReport(input: file, plan: plan, keys: try options.loadKeys(for: plan), sites: sites, lastSerial: lastSerial)
            switch format {
            case .json: Output.data(try DocumentCoding.pretty(report.redacted))
            case .text: Output.data(try report.text())
            }
        }
    }
}

struct StickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stick",
        abstract: "Build a router's profile stick image.",
        subcommands: [Build.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a FAT image labelled EDGEPROFILE holding profile.age and a README.",
            discussion: """
                Built without root, loop devices or mounts (mkfs.vfat + mtools). Write it to a USB
                stick with: dd if=stick.img of=/dev/sdX bs=1M conv=fsync
                """)

        @OptionGroup var target: RouterProfileOptions
        @Option(help: "Output image (replaced atomically if it exists).") var out: String

        func run() async throws {
            let sealing = try target.seal()
            try sealing.writeStick(to: out)
            Output.error("wrote \(out): stick for \(sealing.summary)")
        }
    }
}

/// `--plan --secrets --site --router --serial`: one router's sealed profile.
struct RouterProfileOptions: ParsableArguments {
    @OptionGroup var options: PlanOptions
    @Option(help: "Site name.") var site: String
    @Option(help: "Router slot.") var router: Int
    @OptionGroup var serialOption: SerialOption

    func seal() throws -> Sealing {
        let plan = try options.loadPlan()
        let (site, router) = try plan.locate(site: site, router: router)
        let (serial, issuedAt) = try ProfileSerial.resolve(serialOption.serial)
        return try Sealing(plan: plan, site: site, router: router!, keys: try options.loadKeys(for: plan), serial: serial, issuedAt: issuedAt)
    }
}
