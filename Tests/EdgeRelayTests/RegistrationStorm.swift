import Foundation
import Registration

#if canImport(Glibc)
import Glibc
#endif

/// Many routers registering at once, as a load generator rather than one blocking client per router:
/// a few threads in the lab's client namespace, each with one UDP socket and a window of routers in
/// flight, send HELLO → REGISTER (master claim) in a tight loop and resend a router's HELLO when
/// nothing came back within `retryAfter`. A router's index travels in its nonce, so a CHALLENGE or
/// RESULT is matched without a table lookup by address. Every reply's MAC is verified.
struct RegistrationStorm {
    /// What one storm measured.
    struct Outcome: Sendable {
        var accepted = 0
        var refused = 0
        var resent = 0
        var seconds = 0.0
        /// CPU seconds the load generator's threads spent (user + system), for telling its limits from the relay's.
        var generatorCPU = 0.0
    }

    let routers: [ManualRouter]
    let threads: Int
    let window: Int
    let retryAfter: Double

    init(routers: [ManualRouter], threads: Int = 2, window: Int = 96, retryAfter: Double = 1.0) {
        self.routers = routers
        self.threads = threads
        self.window = window
        self.retryAfter = retryAfter
    }

    /// Registers every router; gives up after `timeout` seconds (what is missing shows in `accepted`).
    func run(lab: Lab, timeout: Double = 120) -> Outcome {
        let lock = NSLock()
        let box = OutcomeBox()
        let group = DispatchGroup()
        let started = ContinuousClock.now
        for thread in 0..<threads {
            group.enter()
            let mine = Array(stride(from: thread, to: routers.count, by: threads))
            Thread { [routers, window, retryAfter] in
                defer { group.leave() }
                let outcome = (try? Lab.inNamespace(lab.clientNamespace) {
                    RegistrationStorm.drive(routers, indices: mine, to: lab.relayAddress, port: lab.port,
                                            window: window, retryAfter: retryAfter, timeout: timeout)
                }) ?? Outcome()
                lock.withLock { box.add(outcome) }
            }.start()
        }
        group.wait()
        var result = lock.withLock { box.value }
        result.seconds = (ContinuousClock.now - started).seconds
        return result
    }

    /// One thread's share: `indices` into `routers`, at most `window` in flight.
    static func drive(_ routers: [ManualRouter], indices: [Int], to host: String, port: UInt16,
                      window: Int, retryAfter: Double, timeout: Double) -> Outcome {
        var outcome = Outcome()
        let cpuStart = threadCPU()
        guard let socket = try? RawSocket(to: host, port: port) else { return outcome }
        defer { socket.close() }
        var bufferSize: Int32 = 4 << 20
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
        // In flight: router index → when its HELLO went out.
        var inFlight: [Int: Double] = [:]
        var next = 0
        var done = 0
        let clockStart = ContinuousClock.now
        func now() -> Double { (ContinuousClock.now - clockStart).seconds }
        func nonce(_ index: Int) -> [UInt8] {
            withUnsafeBytes(of: UInt64(index).bigEndian) { Array($0) } + withUnsafeBytes(of: UInt64.random(in: 0...UInt64.max)) { Array($0) }
        }
        func hello(_ index: Int) {
            socket.send(routers[index].hello(nonce: nonce(index)))
            inFlight[index] = now()
        }
        var buffer = [UInt8](repeating: 0, count: 2048)
        while done < indices.count, now() < timeout {
            while inFlight.count < window, next < indices.count {
                hello(indices[next])
                next += 1
            }
            var descriptor = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 20) > 0 {
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    guard n > 0, let parsed = try? MessageCodec.parse(buffer.prefix(n)) else { break }
                    switch parsed.body {
                    case .challenge(let challenge):
                        let index = Int(challenge.nonce.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                        guard index < routers.count, inFlight[index] != nil else { continue }
                        let router = routers[index]
                        guard MessageMAC.verify(router.keys.responseKey, parsed.authenticated, mac: parsed.mac) else { continue }
                        socket.send(router.register(claim: Claim.master, nonce: challenge.nonce, cookie: challenge.cookie))
                    case .result(let answer):
                        let index = Int(answer.nonce.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                        guard index < routers.count, inFlight[index] != nil,
                              MessageMAC.verify(routers[index].keys.responseKey, parsed.authenticated, mac: parsed.mac) else { continue }
                        if answer.status == RegistrationStatus.accepted {
                            outcome.accepted += 1
                        } else if answer.status == RegistrationStatus.temporaryFailure {
                            outcome.resent += 1
                            hello(index)
                            continue
                        } else {
                            outcome.refused += 1
                        }
                        inFlight[index] = nil
                        done += 1
                    default:
                        continue
                    }
                }
            }
            let stale = now() - retryAfter
            for (index, sent) in inFlight where sent < stale {
                outcome.resent += 1
                hello(index)
            }
        }
        outcome.generatorCPU = threadCPU() - cpuStart
        return outcome
    }

    /// CPU seconds of the calling thread.
    static func threadCPU() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

final class OutcomeBox: @unchecked Sendable {
    var value = RegistrationStorm.Outcome()

    func add(_ outcome: RegistrationStorm.Outcome) {
        value.accepted += outcome.accepted
        value.refused += outcome.refused
        value.resent += outcome.resent
        value.generatorCPU += outcome.generatorCPU
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
