import EdgeCrypto
import EdgeModel
import Foundation

/// `edgekit-bench profile PLAN_DIR`: the profile targets of docs/benchmarks.md.
/// Prints one line per figure: what, measured, target, and PASS/FAIL.
@main
enum Bench {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.first == "profile", arguments.count == 2 else {
            FileHandle.standardError.write(Data("usage: edgekit-bench profile PLAN_DIR\n".utf8))
            exit(2)
        }
        try profile(planDirectory: arguments.last!)
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
