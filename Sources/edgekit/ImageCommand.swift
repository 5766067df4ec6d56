import ArgumentParser
import CLISupport
import EdgeBuild
import EdgeCrypto
import EdgeImage
import EdgeModel
import Foundation

/// `--cache`, `--overlays`, `--agent`: where the image builder finds its inputs.
struct ImageOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Cache folder for the Debian base and system layers (default: $EDGEKIT_CACHE, else ./cache).", valueName: "dir"))
    var cache: String?

    @Option(help: ArgumentHelp("Overlay tree laid over the rootfs.", valueName: "dir"))
    var overlays: String = "overlays"

    @Option(help: ArgumentHelp("edgekit-agent binary to install on x86-64 boards (pc-uefi, pc-bios), built with the static Swift stdlib (default: next to this edgekit).", valueName: "file"))
    var agent: String?

    @Option(name: .customLong("agent-arm64"),
            help: ArgumentHelp("edgekit-agent binary to install on arm64 boards (arm64-uefi, rpi), cross-built for aarch64 (./build.sh makes .build/appliance-arm64/edgekit-agent; docs/cross-build.md).", valueName: "file"))
    var arm64Agent: String?

    @Flag(help: ArgumentHelp("Build the Debian base of each board anew from the archive, even when cached: the cache key does not follow the archive, so this is how Debian's security updates reach the images (docs/image.md, \"Security updates\")."))
    var refreshBase = false

    @Option(name: .customLong("system-version"),
            help: ArgumentHelp("The system's version, a whole number that grows with every release (e.g. the commit time); written into the image (/usr/lib/edgekit/system.json), and an update bundle must carry a larger one than the router runs (default 0; docs/updates.md).", valueName: "n"))
    var systemVersion: UInt64 = 0

    func builder(progress: BuildProgress) throws -> ImageBuilder {
        var builder = try ImageBuilder(cache: cache, overlays: overlays, agent: agent ?? Executables.sibling("edgekit-agent"), arm64Agent: arm64Agent,
                                       packer: Executables.current, progress: progress)
        builder.refreshBase = refreshBase
        builder.systemVersion = systemVersion
        return builder
    }
}

extension PlanOptions {
    /// The plan, its site named `name` and the plan's keys: what a command about one site's image needs.
    func loadSite(_ name: String) throws -> (Plan, Site, PlanKeys) {
        let plan = try loadPlan()
        let (site, _) = try plan.locate(site: name, router: nil)
        return (plan, site, try loadKeys(for: plan))
    }
}

extension ProgressDisplay {
    /// The image builder's events, shown on this display.
    var buildProgress: BuildProgress {
        BuildProgress { [self] event in
            switch event {
            case .begin(let step, let total, let unit):
                let shown: ProgressDisplay.Unit = switch unit {
                case .bytes: .bytes
                case .percent: .percent
                case .items: .items
                }
                begin(step, total: total, unit: shown)
            case .advance(let step, let completed, let total, let detail):
                advance(step, completed: completed, total: total, detail: detail)
            case .end(let step, let summary):
                end(step, summary: summary)
            case .note(let text):
                note(text)
            }
        }
    }
}

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build a site's appliance image (rootfs tarball, bootable disk image, bmap, checksums).",
        subcommands: [Build.self, Update.self, PackBase.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write SITE.rootfs.tar.zst, SITE.img, SITE.img.bmap, SITE.spdx.json and SHA256SUMS into OUTDIR.",
            discussion: """
                The Debian base is built once with mmdebstrap and cached under
                --cache; overlays and the agent form a second cached level;
                stamping a site onto them takes under a second. SITE.spdx.json
                lists every Debian package in the image (SPDX 2.3, package URLs).
                Flash with: bmaptool copy SITE.img /dev/sdX   (docs/image.md)
                """)

        @OptionGroup var options: PlanOptions
        @Option(help: "Site name.") var site: String
        @Option(help: "Output folder.") var out: String
        @OptionGroup var image: ImageOptions

        func run() async throws {
            let (plan, site, keys) = try options.loadSite(site)
            let display = ProgressDisplay()
            let outputs = try display.showing {
                let builder = try image.builder(progress: display.buildProgress).on(site.board)
                let system = try builder.system()
                return try builder.stamp(try ImageBuilder.SiteLayer(plan: plan, site: site, keys: keys), system: system, outputDirectory: out)
            }
            Output.data(outputs.joined(separator: "\n") + "\n")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write SITE-VERSION.update into OUTDIR: the site's system as a signed update bundle for its routers.",
            discussion: """
                The bundle holds the system level's root filesystem (zstd), its
                kernel and initrd, its software bill, and a manifest (plan, site,
                board, version, sizes, SHA-256) signed with the operator key. A
                router checks all of it before writing a byte, and refuses a
                version that is not newer than its own. For example:
                  V=$(git log -1 --format=%ct)
                  edgekit image update --plan P --site a --system-version $V --out o
                  edgekit-agent update --check a-$V.update          (on a router)
                By hand:
                  tar -xf BUNDLE manifest.sig
                  signify-openbsd -V -e -p operator.pub -x manifest.sig -m m.json
                (docs/updates.md)
                """)

        @OptionGroup var options: PlanOptions
        @Option(help: "Site whose board and plan the bundle is for.") var site: String
        @Flag(name: .customLong("any-site"), help: "Let every site of the plan on that board install it (the system is the same for all; default: only --site).")
        var anySite = false
        @Option(help: "Output folder.") var out: String
        @OptionGroup var image: ImageOptions

        func run() async throws {
            let (plan, site, keys) = try options.loadSite(site)
            let display = ProgressDisplay()
            let path = try display.showing {
                let builder = try image.builder(progress: display.buildProgress).on(site.board)
                return try builder.updateBundle(plan: plan.name, site: anySite ? nil : site.name,
                                                key: keys.operatorKey, outputDirectory: out)
            }
            Output.data(path + "\n")
        }
    }

    /// Run inside mmdebstrap's user namespace when building without root; not for people.
    struct PackBase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pack-base", abstract: "(internal) Pack an mmdebstrap tree into the base cache.", shouldDisplay: false)

        @Argument var root: String
        @Argument var output: String
        @Option var epoch: Int
        @Option var board: String = Board.default.name

        func run() async throws {
            guard let board = Board.named(board) else { throw CommandError("--board \(board): no such board") }
            let display = ProgressDisplay()
            try display.showing {
                try ImageBuilder.packBase(root: root, output: output, epoch: epoch, board: board, progress: display.buildProgress)
            }
        }
    }
}

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Build the relay bundle.",
        subcommands: [Bundle.self])

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write relay.tar.zst: rendered relay files, its WireGuard key (0600), the operator key and edgekit-relay.",
            discussion: """
                Install on the VPS with: tar --zstd -xpf relay.tar.zst -C / && systemctl daemon-reload (docs/relay.md).
                A plan with several relays (relays: in plan.yaml) has one bundle per relay: name it with
                --relay NAME. `edgekit build` writes all of them (relay-NAME.tar.zst).
                """)

        @OptionGroup var options: PlanOptions
        @Option(help: ArgumentHelp("The relay to bundle, by its name in relays: (needed when the plan has several).", valueName: "name"))
        var relay: String?
        @Option(help: "Output file.") var out: String
        @Option(help: ArgumentHelp("edgekit-relay binary to include (default: next to this edgekit).", valueName: "file"))
        var relayBinary: String?

        func run() async throws {
            let plan = try options.loadPlan()
            let chosen = try plan.locate(relay: relay)
            let keys = try options.loadKeys(for: plan)
            try RelayBundle.write(plan: plan, relay: chosen, keys: keys, binary: relayBinary ?? Executables.sibling("edgekit-relay"), to: out)
            Output.error("wrote \(out)")
        }
    }
}

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build every (or one) site image, every router's stick and the relay bundle into OUTDIR.",
        discussion: """
            One CI job per site: edgekit build --plan P --out out --site SITE (docs/ci.md).
            Outputs: SITE.img, SITE.img.bmap, SITE.rootfs.tar.zst, SITE.spdx.json,
            SITE-rN.stick.img, relay.tar.zst, SHA256SUMS; with --update-bundles and
            --system-version N also SITE-N.update for the routers in the field
            (docs/updates.md). A cached Debian base is built anew when the archive
            has published since (docs/ci.md, "Security updates").
            """)

    @OptionGroup var options: PlanOptions
    @Option(help: "Output folder.") var out: String
    @Option(help: "Build only this site (default: every site).") var site: String?
    @OptionGroup var image: ImageOptions
    @Option(help: ArgumentHelp("edgekit-relay binary for the relay bundle (default: next to this edgekit).", valueName: "file"))
    var relayBinary: String?
    @OptionGroup var serialOption: SerialOption
    @Flag(help: ArgumentHelp("Also write each site's update bundle, SITE-VERSION.update (needs --system-version; docs/updates.md)."))
    var updateBundles = false

    func validate() throws {
        if updateBundles && image.systemVersion == 0 {
            throw ValidationError("--update-bundles needs --system-version N (a number that grows with every release, e.g. the commit time)")
        }
    }

    func run() async throws {
        let plan = try options.loadPlan()
        let sites = try site.map { [try plan.locate(site: $0, router: nil).0] } ?? plan.sites
        let (serial, issuedAt) = try ProfileSerial.resolve(serialOption.serial)
        // Bad input fails before minutes of work, not after.
        var build = try FleetBuild(plan: plan, sites: sites, keys: try options.loadKeys(for: plan), serial: serial, issuedAt: issuedAt,
                                   relayBinary: relayBinary ?? Executables.sibling("edgekit-relay"), outputDirectory: out)
        build.updateBundles = updateBundles
        let display = ProgressDisplay()
        try display.showing {
            try build.run(builder: try image.builder(progress: display.buildProgress), progress: display.buildProgress)
        }
    }
}
