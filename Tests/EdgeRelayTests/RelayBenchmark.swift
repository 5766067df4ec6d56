import EdgeRelay
import Foundation
import Registration
import Testing

/// bench/relay.sh: registrations per second and the time from a master claim to WireGuard routing
/// the /64 to the new router. Runs only with EDGEKIT_BENCH=1 (it measures, it does not assert speed).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["EDGEKIT_BENCH"] == "1" && LabSupport.available,
                             "set EDGEKIT_BENCH=1 (bench/relay.sh)"))
struct RelayBenchmark {
    @Test func registrationsPerSecondAndMasterMoveLatency() throws {
        let lab = try Lab()
        defer { lab.close() }
        try lab.startRelay()
        let routers = try (0..<256).map { try Fixture.synthetic($0) }

        // Throughput: 32 router threads, each registering its own routers back to back.
        let workers = 32
        let seconds = 4.0
        let counts = Counts()
        let group = DispatchGroup()
        let until = Date().addingTimeInterval(seconds)
        let started = Date()
        for worker in 0..<workers {
            group.enter()
            Thread {
                defer { group.leave() }
                _ = try? Lab.inNamespace(lab.clientNamespace) {
                    var index = worker
                    while Date() < until {
                        let ok = (try? routers[index % routers.count].client(relay: lab.relayAddress, port: lab.port)
                            .registerBlocking(claim: .master)) != nil
                        index += workers
                        counts.add(ok)
                    }
                }
            }.start()
        }
        group.wait()
        let elapsed = Date().timeIntervalSince(started)
        let (accepted, failed) = counts.values
        let batchLines = lab.logText().split(separator: "\n").filter { $0.contains("wg set applied") }
        func field(_ line: Substring, _ name: String) -> Double {
            guard let range = line.range(of: "\(name)=") else { return 0 }
            return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." }) ?? 0
        }
        let perBatch = batchLines.map { field($0, "registrations") }.reduce(0, +) / Double(max(1, batchLines.count))
        let wgSeconds = batchLines.map { field($0, "duration") }.reduce(0, +) / Double(max(1, batchLines.count))
        let rate = Double(accepted) / elapsed

        // Master moves: alternate two routers of site-a; the RESULT is sent only after `wg set`
        // returned, so the call's duration bounds claim → /64 moved; a dump confirms each move.
        let r1 = try Fixture.router(site: "site-a", slot: 1)
        let r2 = try Fixture.router(site: "site-a", slot: 2)
        let clients = try [r1, r2].map { try $0.client(relay: lab.relayAddress, port: lab.port) }
        var latencies: [Double] = []
        for round in 0..<40 {
            let which = round % 2
            let client = clients[which]
            let duration: Double = try lab.inClient {
                let start = ContinuousClock.now
                _ = try client.registerBlocking(claim: .master)
                let d = ContinuousClock.now - start
                return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
            }
            latencies.append(duration)
            let owner = [r1, r2][which].key.publicKeyBase64
            #expect(try lab.wireGuardPeers()[owner]?.contains("fd5e:d9e1:7c2a:1::/64") == true)
        }
        latencies.sort()
        let median = latencies[latencies.count / 2]
        let p95 = latencies[Int(Double(latencies.count) * 0.95)]
        print("""
            relay benchmark (relay binary: \(binDirectory.path), batch window 5 ms, wireguard-go)
              registrations/s: \(String(format: "%.0f", rate)) accepted (\(accepted) in \(String(format: "%.1f", elapsed)) s, \(failed) failed, \(workers) router threads)   target: >= 500/s
                wg set calls: \(batchLines.count), \(String(format: "%.1f", perBatch)) registrations each, \(String(format: "%.1f", wgSeconds * 1000)) ms each
              master claim -> /64 moved in wg: median \(String(format: "%.1f", median)) ms, p95 \(String(format: "%.1f", p95)) ms (HELLO+REGISTER round trips, batch window, one wg set)   target: < 50 ms
            """)
        #expect(accepted > 0)
    }
}

final class Counts: @unchecked Sendable {
    let lock = NSLock()
    var accepted = 0
    var failed = 0

    func add(_ ok: Bool) {
        lock.lock()
        if ok { accepted += 1 } else { failed += 1 }
        lock.unlock()
    }

    var values: (Int, Int) {
        lock.lock()
        defer { lock.unlock() }
        return (accepted, failed)
    }
}
