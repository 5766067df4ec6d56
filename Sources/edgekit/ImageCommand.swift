import ArgumentParser
import CLISupport
import EdgeCrypto
import EdgeImage
import EdgeModel
import EdgeRender
import EdgeStick
import Foundation

/// `--cache`, `--overlays`, `--agent`: where the image builder finds its inputs.
struct ImageOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Cache folder for the Debian base and system layers (default: $EDGEKIT_CACHE, else ./cache).", valueName: "dir"))
    var cache: String?

    @Option(help: ArgumentHelp("Overlay tree laid over the rootfs.", valueName: "dir"))
    var overlays: String = "overlays"

    @Option(help: ArgumentHelp("edgekit-agent binary to install, built with the static Swift stdlib (default: next to this edgekit).", valueName: "file"))
    var agent: String?

    func builder(progress: BuildProgress) throws -> ImageBuilder {
        let cacheDirectory = cache ?? ProcessInfo.processInfo.environment["EDGEKIT_CACHE"] ?? "cache"
        let epoch = try BaseRecipe.imageFileTime()
        return ImageBuilder(
            cacheDirectory: absolute(cacheDirectory), recipe: BaseRecipe(sourceDateEpoch: epoch),
            overlayDirectory: absolute(overlays), agentBinary: absolute(agent ?? siblingExecutable("edgekit-agent")),
            packerExecutable: currentExecutable(), progress: progress)
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

    /// Runs `body` and takes the bar off the screen afterwards, so an error starts on its own line.
    func showing<T>(_ body: () throws -> T) rethrows -> T {
        defer { stop() }
        return try body()
    }
}

/// Runs `body` for every item, as many at once as there are cores; the first error stops the
/// items not yet started and is rethrown.
func forEachConcurrently<Item: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) throws -> Void) throws {
    let failure = FirstError()
    DispatchQueue.concurrentPerform(iterations: items.count) { index in
        guard !failure.isSet else { return }
        do {
            try body(items[index])
        } catch {
            failure.set(error)
        }
    }
    try failure.rethrow()
}

/// A count that several threads add to.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// Adds `amount` and returns the new count.
    func add(_ amount: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += amount
        return value
    }
}

final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return error != nil
    }

    func set(_ error: any Error) {
        lock.lock()
        defer { lock.unlock() }
        if self.error == nil { self.error = error }
    }

    func rethrow() throws {
        lock.lock()
        defer { lock.unlock() }
        if let error { throw error }
    }
}

func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

func siblingExecutable(_ name: String) -> String {
    (currentExecutable() as NSString).deletingLastPathComponent + "/" + name
}

func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// The files a site adds to the system: its image identity (0600), the operator key, the public
/// parameters (site.json) and, in the rootfs tarball, the hostname.
func siteLayer(plan: Plan, site: Site, keys: PlanKeys) throws -> ImageBuilder.SiteLayer {
    // The agent's own type, so what the image writes is exactly what the agent reads.
    let stamp = try DocumentCoding.encode(SiteStamp(plan: plan.name, site: site.name, hostname: site.name))
    let identityText = keys.siteIdentityFile(site: site.name)
    let operatorKey = keys.operatorKey.publicKey.fileText(comment: "edgekit operator key of plan \(plan.name)")
    return ImageBuilder.SiteLayer(site: site.name, files: [
        (path: "etc/edgekit/operator.pub", mode: 0o644, data: Data(operatorKey.utf8)),
        (path: "etc/edgekit/site.identity", mode: 0o600, data: Data(identityText.utf8)),
        (path: "etc/edgekit/site.json", mode: 0o644, data: stamp),
        (path: "etc/hostname", mode: 0o644, data: Data("\(site.name)\n".utf8)),
    ])
}

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build a site's appliance image (rootfs tarball, bootable disk image, bmap, checksums).",
        subcommands: [Build.self, PackBase.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write SITE.rootfs.tar.zst, SITE.img, SITE.img.bmap and SHA256SUMS into OUTDIR.",
            discussion: """
                The Debian base is built once with mmdebstrap and cached under --cache; overlays and the
                agent form a second cached level; stamping a site onto them takes under a second.
                Flash with: bmaptool copy SITE.img /dev/sdX   (docs/image.md)
                """)

        @OptionGroup var options: PlanOptions
        @Option(help: "Site name.") var site: String
        @Option(help: "Output folder.") var out: String
        @OptionGroup var image: ImageOptions

        func run() async throws {
            let plan = try options.loadPlan()
            let (site, _) = try options.locate(plan, site: site, router: nil)
            let keys = try options.loadKeys(for: plan)
            let display = ProgressDisplay()
            let outputs = try display.showing {
                let builder = try image.builder(progress: display.buildProgress)
                let system = try builder.system()
                return try builder.stamp(try siteLayer(plan: plan, site: site, keys: keys), system: system, outputDirectory: out)
            }
            Output.data(outputs.joined(separator: "\n") + "\n")
        }
    }

    /// Run inside mmdebstrap's user namespace when building without root; not for people.
    struct PackBase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pack-base", abstract: "(internal) Pack an mmdebstrap tree into the base cache.", shouldDisplay: false)

        @Argument var root: String
        @Argument var output: String
        @Option var epoch: Int

        func run() async throws {
            let display = ProgressDisplay()
            try display.showing {
                try ImageBuilder.packBase(root: root, output: output, epoch: epoch, progress: display.buildProgress)
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
            discussion: "Install on the VPS with: tar --zstd -xpf relay.tar.zst -C / && systemctl daemon-reload (docs/relay.md).")

        @OptionGroup var options: PlanOptions
        @Option(help: "Output file.") var out: String
        @Option(help: ArgumentHelp("edgekit-relay binary to include (default: next to this edgekit).", valueName: "file"))
        var relayBinary: String?

        func run() async throws {
            let plan = try options.loadPlan()
            let keys = try options.loadKeys(for: plan)
            try RelayBundle.write(plan: plan, keys: keys, binary: relayBinary ?? siblingExecutable("edgekit-relay"), to: out)
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
            Outputs: SITE.img, SITE.img.bmap, SITE.rootfs.tar.zst, SITE-rN.stick.img, relay.tar.zst, SHA256SUMS.
            """)

    @OptionGroup var options: PlanOptions
    @Option(help: "Output folder.") var out: String
    @Option(help: "Build only this site (default: every site).") var site: String?
    @OptionGroup var image: ImageOptions
    @Option(help: ArgumentHelp("edgekit-relay binary for the relay bundle (default: next to this edgekit).", valueName: "file"))
    var relayBinary: String?
    @OptionGroup var serialOption: SerialOption

    func run() async throws {
        let plan = try options.loadPlan()
        let sites = try site.map { [try options.locate(plan, site: $0, router: nil).0] } ?? plan.sites
        let keys = try options.loadKeys(for: plan)
        let (serial, issuedAt) = try serialOption.resolve()
        // Bad input fails before minutes of work, not after.
        let relayProgram = relayBinary ?? siblingExecutable("edgekit-relay")
        guard FileManager.default.isReadableFile(atPath: relayProgram) else {
            throw CommandError("relay binary \(relayProgram) is missing (build it with ./build.sh, or pass --relay-binary)")
        }
        let started = Date()
        let display = ProgressDisplay()
        let progress = display.buildProgress
        try display.showing {
            let builder = try image.builder(progress: progress)
            let system = try builder.system()
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            // Sites in parallel, as many at once as there are cores: a stamp is mostly in-kernel
            // copying of the cached disk and tarball plus a few small tools.
            let layers = try sites.map { try siteLayer(plan: plan, site: $0, keys: keys) }
            let output = out
            try forEachConcurrently(layers) { layer in
                try builder.stamp(layer, system: system, outputDirectory: output, mergeChecksums: false)
            }
            let sealings = try sites.flatMap { site in
                try site.routers.map { router in
                    (name: "\(site.name)-r\(router.slot).stick.img",
                     sealing: try Sealing(plan: plan, site: site, router: router, keys: keys, serial: serial, issuedAt: issuedAt))
                }
            }
            try progress.step("sticks", total: sealings.count, unit: .items) { step in
                let done = Counter()
                try forEachConcurrently(sealings) { stick in
                    try stick.sealing.writeStick(to: output + "/" + stick.name)
                    step.advance(done.add(1), of: sealings.count, detail: stick.name)
                }
                return ((), "sticks: \(sealings.count) for \(sites.count) site(s), serial \(serial)")
            }
            try progress.step("relay bundle") { _ in
                try RelayBundle.write(plan: plan, keys: keys, binary: relayProgram, to: out + "/relay.tar.zst")
                return ((), "relay bundle: relay.tar.zst")
            }
            // Sticks and the relay bundle join SHA256SUMS next to the images.
            var sums = ""
            for name in ["relay.tar.zst"] + sealings.map(\.name) { sums += "\(try sha256(ofFile: out + "/" + name))  \(name)\n" }
            let part = out + "/sticks-and-relay.SHA256SUMS"
            guard FileManager.default.createFile(atPath: part, contents: Data(sums.utf8)) else { throw CommandError("cannot write \(part)") }
            try ImageBuilder.mergeChecksums(in: out)
            progress.note(String(format: "done: %d site image(s), %d stick(s) and the relay bundle in %@ (%.1f s)",
                                 sites.count, sealings.count, out, Date().timeIntervalSince(started)))
        }
    }
}
