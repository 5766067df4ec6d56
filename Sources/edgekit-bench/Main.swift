import EdgeCrypto
import EdgeImage
import EdgeModel
import Foundation
import PlanYAML

/// `edgekit-bench profile PLAN_DIR`: the profile targets of docs/benchmarks.md; `agent …`: the agent's
/// (AgentBench.swift).
/// Prints one line per figure: what, measured, target, and PASS/FAIL.
@main
enum Bench {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch (arguments.first, arguments.count) {
        case ("profile", 2):
            try profile(planDirectory: arguments[1])
        case ("checksums", 3):
            try ImageBuilder.writeSharedChecksums(system: arguments[1], siteStartByte: Int(arguments[2])!)
        case ("mmdebstrap-args", 2):
            bareMmdebstrapArguments(packageCache: arguments[1])
        case ("hash-speed", 2):
            try hashSpeed(file: arguments[1])
        case ("stamp", 4):
            try stamp(system: arguments[1], output: arguments[2], label: arguments[3])
        case ("agent", 4), ("agent", 5):
            do {
                try AgentBench.main(agent: arguments[1], edgekit: arguments[2], plan: arguments[3],
                                    runs: arguments.count == 5 ? max(1, Int(arguments[4]) ?? 15) : 15)
            } catch let failure as BenchFailure {
                FileHandle.standardError.write(Data("edgekit-bench agent: \(failure)\n".utf8))
                exit(1)
            }
        default:
            FileHandle.standardError.write(Data("""
                usage: edgekit-bench profile PLAN_DIR | stamp SYSTEM_DIR OUT_DIR LABEL | checksums SYSTEM_DIR SITE_START_BYTE
                       | mmdebstrap-args PACKAGE_CACHE | hash-speed FILE | agent AGENT_BINARY EDGEKIT_BINARY PLAN_DIR [RUNS]

                """.utf8))
            exit(2)
        }
    }

    static func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
    }

    static func report(_ what: String, _ measured: Double, target: Double) {
        let verdict = measured < target ? "PASS" : "FAIL"
        print(String(format: "%@: %.3f ms (target < %.0f ms) %@", what, measured, target, verdict))
    }

    /// Stamps a synthetic site onto a cached system level 5 times; prints the median.
    static func stamp(system: String, output: String, label: String) throws {
        let builder = ImageBuilder(
            cacheDirectory: "/nonexistent", recipe: BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime), overlayDirectory: "/nonexistent",
            agentBinary: "/nonexistent", packerExecutable: "/nonexistent", progress: .silent)
        let keys = PlanKeys(master: try MasterSecret(bytes: Data(0..<32)), planName: "bench")
        let identity = keys.siteIdentity(site: "bench")
        let layer = ImageBuilder.SiteLayer(site: "bench", files: [
            (path: "etc/edgekit/site.identity", mode: 0o600, data: Data(identity.text.utf8)),
            (path: "etc/edgekit/operator.pub", mode: 0o644, data: Data(keys.operatorKey.publicKey.fileText(comment: "bench").utf8)),
            (path: "etc/edgekit/site.json", mode: 0o644, data: Data("{\"plan\":\"bench\",\"site\":\"bench\"}\n".utf8)),
        ])
        var samples: [Double] = []
        for _ in 0..<5 {
            try? FileManager.default.removeItem(atPath: output)
            samples.append(try milliseconds { try builder.stamp(layer, system: system, outputDirectory: output) })
        }
        samples.sort()
        report("stamp one site onto the \(label) (median of 5: tar.zst + img + bmap + sums)", samples[2], target: 1000)
    }

    /// The bare mmdebstrap call bench/image.sh times against a cold base: the recipe's own options
    /// (package list, variant, dpkg filters) and mirrors, the same local package cache, no edgekit
    /// hooks, no output (`/dev/null`). NUL-separated, for `mapfile -d ''`.
    static func bareMmdebstrapArguments(packageCache: String) {
        let recipe = BaseRecipe(sourceDateEpoch: BaseRecipe.latestFileTime)
        let arguments = recipe.mmdebstrapOptions + ImageBuilder.packageCacheOptions(packageCache) + [recipe.suite, "/dev/null"] + recipe.mirrors
        FileHandle.standardOutput.write(Data(arguments.map { $0 + "\0" }.joined().utf8))
    }

    /// MB/s of the two SHA-256 implementations the image builder uses, over the same file.
    static func hashSpeed(file: String) throws {
        var info = stat()
        stat(file, &info)
        let megabytes = Double(info.st_size) / 1e6
        var resumable = ResumableSHA256()
        let ownTime = try milliseconds { try resumable.update(file: file) }
        let cryptoTime = try milliseconds { _ = try sha256(ofFile: file) }
        print(String(format: "ResumableSHA256: %.0f MB/s; libcrypto SHA256: %.0f MB/s (%.0f MB)",
                     megabytes / ownTime * 1000, megabytes / cryptoTime * 1000, megabytes))
    }

    static func profile(planDirectory: String) throws {
        let plan = try PlanLoader.load(directory: planDirectory)
        let keys = PlanKeys(master: MasterSecret.generate(), planName: plan.name)
        let site = plan.sites[0]
        let router = site.routers[0]
        let sealed = try keys.sealedProfile(plan: plan, site: site, router: router, serial: 10, issuedAt: Date())
        let expectation = SealedProfile.Expectation(
            identity: keys.siteIdentity(site: site.name), operatorKey: keys.operatorKey.publicKey,
            plan: plan.name, site: site.name, lastSerial: 9)
        // Unseal + verify + check, as the agent does at boot: median of 200 runs.
        var samples: [Double] = []
        for _ in 0..<200 {
            samples.append(try milliseconds { _ = try SealedProfile.open(sealed, expecting: expectation) })
        }
        samples.sort()
        report("unseal + verify + check one profile (median of 200)", samples[samples.count / 2], target: 5)

        // Seal every router of a 100-site plan, as `edgekit build` does for all sticks.
        var generator = SystemRandomNumberGenerator()
        let big = try PlanLoader.parse(PlanTemplate.text(name: "bench", relayHost: "relay.example.net", relayPort: 51820, sites: 100, using: &generator))
        let bigKeys = PlanKeys(master: MasterSecret.generate(), planName: big.name)
        var count = 0
        let total = try milliseconds {
            for site in big.sites {
                for router in site.routers {
                    _ = try bigKeys.sealedProfile(plan: big, site: site, router: router, serial: 1, issuedAt: Date())
                    count += 1
                }
            }
        }
        report("seal all \(count) routers of a 100-site plan", total, target: 2000)
    }
}
