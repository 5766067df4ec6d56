import EdgeRelay
import Foundation
import Registration
import Testing

/// docs/protocol.md, "Flood defence": spoofed HELLOs take the global public-key budget, not a real
/// router's registration. The real relay (shipped rate limits) and wireguard-go, flooded from 65,536
/// spoofed sources by `SpoofedHelloFlood`.
@Suite(.serialized, .enabled(if: LabSupport.available, "needs root, ip, wg and wireguard-go"), .slow)
struct FloodTests {
    /// A router the relay has registered before (known from its state database after a restart), and
    /// routers it has never seen, register at the first attempt while spoofed HELLOs arrive at eight
    /// times the global budget.
    @Test func aRegisteredRouterRegistersAgainDuringASpoofedHelloFlood() throws {
        let lab = try Lab()
        defer { lab.close() }
        // The budget scaled down twentyfold and the flood to eight times it: a debug relay on a
        // machine busy with the rest of the suite drains a few thousand datagrams/s, and beyond that
        // the kernel drops real and spoofed ones alike (a 4,000/s flood failed this way in CI);
        // bench/flood.sh measures the shipped budget against 50,000/s with the release relay.
        try lab.useDefaultRateLimits(globalPerSecond: 250)
        try lab.startRelay()
        do {
            let router = try Fixture.router(site: "site-a", slot: 1)
            _ = try lab.timedRegistration(router)
            // A restart: the relay knows the key only from its database now.
            #expect(try lab.stopRelay() == 0)
            try lab.startRelay()

            let flood = try SpoofedHelloFlood(lab: lab, perSecond: 2_000)
            Thread.sleep(forTimeInterval: 1)
            let runs = (0..<3).map { _ in Result { try lab.timedRegistration(router, deadline: .seconds(5)) } }
            // Keys the relay has never seen: their HELLO carries the proof of knowing S, so its key
            // agreement comes from the proven budget the flood cannot reach.
            let newcomers = try (0..<3).map { index in
                let newcomer = try Fixture.synthetic(2000 + index)
                return Result { try lab.timedRegistration(newcomer, deadline: .seconds(5)) }
            }
            let (sent, rate) = try flood.stop()
            #expect(rate > 1_500, "the flood ran at \(Int(rate))/s (\(sent) HELLOs)")
            for run in runs {
                let (seconds, attempts) = try run.get()
                // At most two lost exchanges (a loaded machine drops some datagrams): without the
                // defence each datagram has a 1-in-8 chance, an attempt (two datagrams) 1 in 64.
                #expect(attempts <= 3 && seconds < 3, "registration under flood took \(seconds) s, \(attempts) attempts")
            }
            for run in newcomers {
                // Without the proof each attempt had a 1-in-8 chance (its HELLO at the global budget):
                // all three within three attempts by luck is about 4 %.
                let (seconds, attempts) = try run.get()
                #expect(attempts <= 3 && seconds < 3, "a first registration under flood took \(seconds) s, \(attempts) attempts")
            }
            #expect(try lab.wireGuardPeers()[router.key.publicKeyBase64]?.contains("\(router.tunnel)/128") == true)
        } catch {
            Issue.record("relay log:\n\(lab.logText().suffix(3000))")
            throw error
        }
    }
}

/// bench/flood.sh: registration latency, relay CPU and memory under 50,000 spoofed HELLOs/s.
/// Runs only with EDGEKIT_BENCH=1 (it measures; the functional test above asserts).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["EDGEKIT_BENCH"] == "1" && LabSupport.available,
                             "set EDGEKIT_BENCH=1 (bench/flood.sh)"))
struct FloodBenchmark {
    @Test func registrationLatencyUnderASpoofedHelloFlood() throws {
        let floodRate = Int(ProcessInfo.processInfo.environment["EDGEKIT_FLOOD_RATE"] ?? "") ?? 50_000
        let lab = try Lab()
        defer { lab.close() }
        try lab.useDefaultRateLimits()
        try lab.startRelay()
        let known = try (0..<100).map { try Fixture.synthetic($0) }
        for router in known { _ = try lab.timedRegistration(router) }
        #expect(try lab.stopRelay() == 0)
        try lab.startRelay()
        guard let pid = lab.relayProcess?.processIdentifier else { throw LabError("no relay") }

        let quiet = try known.prefix(10).map { try lab.timedRegistration($0).seconds }.sorted()
        let idle = try ProcessUsage(pid: pid)

        let flood = try SpoofedHelloFlood(lab: lab, perSecond: floodRate)
        Thread.sleep(forTimeInterval: 2)
        let before = try ProcessUsage(pid: pid)
        let started = Date()
        var runs: [(seconds: Double, attempts: Int)] = []
        var failures = 0
        for router in known.suffix(20) {
            if let run = try? lab.timedRegistration(router, deadline: .seconds(30)) { runs.append(run) } else { failures += 1 }
        }
        var firsts: [(seconds: Double, attempts: Int)] = []
        for index in 0..<5 {
            if let run = try? lab.timedRegistration(try Fixture.synthetic(1000 + index), deadline: .seconds(30)) {
                firsts.append(run)
            } else { failures += 1 }
        }
        let after = try ProcessUsage(pid: pid)
        let window = Date().timeIntervalSince(started)
        let (sent, rate) = try flood.stop()

        func f(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }
        let seconds = runs.map(\.seconds).sorted()
        let firstSeconds = firsts.map(\.seconds).sorted()
        let median = seconds.isEmpty ? .infinity : seconds[seconds.count / 2]
        let worst = seconds.last ?? .infinity
        print("""
            flood benchmark (relay binary: \(binDirectory.path), shipped rate limits: 20/s per source, 5000/s global; wireguard-go)
              spoofed HELLOs: \(Int(rate))/s from 65536 sources, \(sent) in all   (asked for \(floodRate)/s)
              registration under flood: \(f(median)) s median, \(f(worst)) s max, \(runs.map(\.attempts).max() ?? 0) attempts max (\(runs.count) registered routers, \(failures) failed)   (target < 1 s)
              first registration of a new key under flood: \(firstSeconds.isEmpty ? "none" : "\(f(firstSeconds[firstSeconds.count / 2])) s median, \(f(firstSeconds.last!)) s max"), \(firsts.map(\.attempts).max() ?? 0) attempts max (\(firsts.count) routers)   (target < 1 s)
              registration without flood: \(f(quiet[quiet.count / 2])) s median
              relay CPU under flood: \(f((after.cpuSeconds - before.cpuSeconds) / window, 2)) cores over \(f(window, 1)) s   (target <= 1 core)
              relay RSS: \(f(idle.residentMiB, 1)) MiB before the flood, \(f(after.residentMiB, 1)) MiB during it, \(f(after.peakResidentMiB, 1)) MiB peak   (target: bounded, < 100 MiB)
            """)
        #expect(!runs.isEmpty)
    }
}
