import EdgeCrypto
import EdgeImage
import EdgeModel
import EdgeStick
import Foundation

/// `edgekit build`: every (or one) site image of a plan, every router's stick and the relay bundle
/// in one folder, with one SHA256SUMS over all of it (docs/ci.md).
public struct FleetBuild: Sendable {
    public var plan: Plan
    public var sites: [Site]
    public var keys: PlanKeys
    public var serial: UInt64
    public var issuedAt: Date
    /// The `edgekit-relay` binary the relay bundle carries.
    public var relayBinary: String
    /// Also write each site's update bundle, `SITE-VERSION.update` (`edgekit build --update-bundles`;
    /// the builder's system version must be set).
    public var updateBundles = false
    public var outputDirectory: String

    /// Checks what can be checked before minutes of work: bad input fails first, not last.
    public init(plan: Plan, sites: [Site], keys: PlanKeys, serial: UInt64, issuedAt: Date,
                relayBinary: String, outputDirectory: String) throws {
        guard FileManager.default.isReadableFile(atPath: relayBinary) else {
            throw BuildError("relay binary \(relayBinary) is missing (build it with ./build.sh, or pass --relay-binary)",
                             code: "build.missing-input", input: relayBinary)
        }
        self.plan = plan
        self.sites = sites
        self.keys = keys
        self.serial = serial
        self.issuedAt = issuedAt
        self.relayBinary = relayBinary
        self.outputDirectory = outputDirectory
    }

    /// The names of the sticks this build writes, with what is sealed onto each.
    public func sealings() throws -> [(name: String, sealing: Sealing)] {
        try sites.flatMap { site in
            try site.routers.map { router in
                (name: "\(site.name)-r\(router.slot).stick.img",
                 sealing: try Sealing(plan: plan, site: site, router: router, keys: keys, serial: serial, issuedAt: issuedAt))
            }
        }
    }

    /// Stamps every site onto the builder's cached system, seals every stick and writes the relay
    /// bundle, reporting each step on `progress`.
    public func run(builder: ImageBuilder, progress: BuildProgress) throws {
        let started = Date()
        // One system level per board the sites use (each on its own base), in plan order.
        var systems: [(builder: ImageBuilder, system: String)] = []
        var boards: [Board] = []
        for board in sites.map(\.board) where !boards.contains(board) {
            boards.append(board)
        }
        // Every board's agent is checked before any base is built: a missing arm64 agent is one
        // line at once, not after minutes of building the x86-64 images.
        for board in boards {
            _ = try builder.on(board).agent()
        }
        for board in boards {
            let boardBuilder = builder.on(board)
            systems.append((boardBuilder, try boardBuilder.system()))
        }
        let output = outputDirectory
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        // Sites in parallel, as many at once as there are cores: a stamp is mostly in-kernel
        // copying of the cached disk and tarball plus a few small tools.
        let stamps = try sites.map { site in
            (layer: try ImageBuilder.SiteLayer(plan: plan, site: site, keys: keys), level: systems[boards.firstIndex(of: site.board)!])
        }
        try forEachConcurrently(stamps) { stamp in
            try stamp.level.builder.stamp(stamp.layer, system: stamp.level.system, outputDirectory: output, mergeChecksums: false)
        }
        // Update bundles (docs/updates.md): each site's system as SITE-VERSION.update, from the
        // system level its image was stamped from.
        var updates: [String] = []
        if updateBundles {
            for stamp in stamps {
                let path = try stamp.level.builder.updateBundle(plan: plan.name, site: stamp.layer.site, key: keys.operatorKey, outputDirectory: output)
                updates.append(String(path.split(separator: "/").last!))
            }
        }
        let sticks = try sealings()
        try progress.step("sticks", total: sticks.count, unit: .items) { step in
            let done = Counter()
            try forEachConcurrently(sticks) { stick in
                try stick.sealing.writeStick(to: output + "/" + stick.name)
                step.advance(done.add(1), of: sticks.count, detail: stick.name)
            }
            return ((), "sticks: \(sticks.count) for \(sites.count) site(s), serial \(serial)")
        }
        let bundles = plan.relays.map { (relay: $0, name: RelayBundle.fileName(of: $0, in: plan)) }
        try progress.step(bundles.count == 1 ? "relay bundle" : "relay bundles") { _ in
            for bundle in bundles {
                try RelayBundle.write(plan: plan, relay: bundle.relay, keys: keys, binary: relayBinary, to: output + "/" + bundle.name)
            }
            return ((), (bundles.count == 1 ? "relay bundle: " : "relay bundles: ") + bundles.map(\.name).joined(separator: ", "))
        }
        // Sticks and the relay bundles join SHA256SUMS next to the images.
        var sums = ""
        for name in bundles.map(\.name) + sticks.map(\.name) + updates { sums += "\(try sha256(ofFile: output + "/" + name))  \(name)\n" }
        let part = output + "/sticks-and-relay.SHA256SUMS"
        guard FileManager.default.createFile(atPath: part, contents: Data(sums.utf8)) else {
            throw BuildError("cannot write \(part)", code: "build.cannot-write", input: part)
        }
        try ImageBuilder.mergeChecksums(in: output)
        let relayBundles = (bundles.count == 1 ? "the relay bundle" : "\(bundles.count) relay bundles")
            + (updates.isEmpty ? "" : ", \(updates.count) update bundle(s)")
        progress.note(String(format: "done: %d site image(s), %d stick(s) and %@ in %@ (%.1f s)",
                             sites.count, sticks.count, relayBundles, output, Date().timeIntervalSince(started)))
    }
}
