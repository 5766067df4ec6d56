import EdgeCrypto
import EdgeErrors
import EdgeModel
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// What the relay confirmed (a verified RESULT with status `accepted`).
public struct RegistrationResult: Sendable, Equatable {
    public var claim: Claim
    /// The /128 the relay routes to this router.
    public var tunnelAddress: IPv6Address
    /// The site /64 when the relay routes it to this router (a master claim), else nil.
    public var sitePrefix: IPv6Prefix?
    /// The relay's timestamp of this registration (relay clock, microseconds).
    public var relayTime: UInt64
    /// The address the answer came from, as `host:port` (`[v6]:port`).
    public var relayAddress: String
    /// HELLO/REGISTER exchanges it took, 1 when nothing was lost.
    public var attempts: Int
}

/// Why a registration did not happen, in words for the device's status and logs.
public enum RegistrationFailure: EdgeError, Equatable, Sendable {
    /// The relay answered (authenticated) and refused; retrying will not help.
    case refused(RegistrationStatus, relay: String)
    /// No verified answer before the deadline.
    case timedOut(host: String, port: UInt16, attempts: Int, lastProblem: String)
    /// The client's own inputs are unusable (relay public key, certificate size, …).
    case invalidConfiguration(String, cause: ErrorCause = .none)

    public var description: String {
        switch self {
        case .refused(let status, let relay): "relay \(relay) \(status)"
        case .timedOut(let host, let port, let attempts, let problem):
            "no answer from relay \(host) port \(port) after \(attempts) attempts (last: \(problem)); check the relay's DNS name, that UDP port \(port) is open, and that the relay's public key in the profile is current"
        case .invalidConfiguration(let why, _): "cannot register: \(why)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .refused: "registration.refused"
        case .timedOut: "registration.timed-out"
        case .invalidConfiguration: "registration.invalid-configuration"
        }
    }

    public var cause: (any Error)? {
        if case .invalidConfiguration(_, let cause) = self { return cause.error }
        return nil
    }
}

/// The router's side of docs/protocol.md: HELLO → CHALLENGE → REGISTER → RESULT, with retries.
///
/// Every attempt resolves the relay's name again (its address may change), waits at most
/// `attemptTimeout` for each answer, and ignores anything that does not verify. Between attempts it
/// backs off exponentially with full jitter, until `deadline` has passed since the call began.
///
///     let client = try RegistrationClient(profile: document, log: log)
///     let result = try await client.register(claim: .master)
public struct RegistrationClient: Sendable {
    public struct Configuration: Sendable {
        public var relayHost: String
        public var relayPort: UInt16
        /// The relay's WireGuard public key (32 bytes).
        public var relayPublicKey: [UInt8]
        public var routerKey: WireGuardKey
        /// The signed site certificate, exactly as in the profile.
        public var certificate: [UInt8]
        public var attemptTimeout: Duration = .seconds(1)
        public var initialBackoff: Duration = .milliseconds(200)
        public var maximumBackoff: Duration = .seconds(8)
        /// The whole call gives up after this long.
        public var deadline: Duration = .seconds(60)
        /// Generation, agent version and health, sent with every REGISTER (docs/protocol.md,
        /// "Report"); nil sends the REGISTER of agents before the report.
        public var report: RouterReport?

        public init(relayHost: String, relayPort: UInt16, relayPublicKey: [UInt8], routerKey: WireGuardKey,
                    certificate: [UInt8]) {
            self.relayHost = relayHost
            self.relayPort = relayPort
            self.relayPublicKey = relayPublicKey
            self.routerKey = routerKey
            self.certificate = certificate
        }
    }

    public let configuration: Configuration
    let keys: SessionKeys
    let routerPublicKey: [UInt8]
    let log: RegistrationLog

    public init(configuration: Configuration, log: RegistrationLog) throws {
        guard configuration.relayPublicKey.count == Wire.keySize else {
            throw RegistrationFailure.invalidConfiguration("the relay public key is \(configuration.relayPublicKey.count) bytes, not 32")
        }
        guard (1...Wire.maximumCertificateSize).contains(configuration.certificate.count) else {
            throw RegistrationFailure.invalidConfiguration(
                "the site certificate is \(configuration.certificate.count) bytes; a REGISTER carries 1 to \(Wire.maximumCertificateSize)")
        }
        let pair = WireGuardKeyPair(privateKey: configuration.routerKey.agreementKey)
        do {
            keys = try SessionKeys(router: pair, relayPublicKey: configuration.relayPublicKey)
        } catch {
            throw RegistrationFailure.invalidConfiguration("the relay public key is unusable: \(error)", cause: ErrorCause(error))
        }
        routerPublicKey = pair.publicKey
        self.configuration = configuration
        self.log = log
    }

    /// A client from an opened profile: relay host, registration port and key, router key, certificate.
    public init(profile: ProfileDocument, log: RegistrationLog) throws {
        guard let relayKey = Data(base64Encoded: profile.plan.relay.publicKey) else {
            throw RegistrationFailure.invalidConfiguration("the profile's relay public_key is not base64")
        }
        try self.init(
            configuration: Configuration(
                relayHost: profile.plan.relay.host, relayPort: profile.plan.relay.registrationPort,
                relayPublicKey: [UInt8](relayKey), routerKey: try profile.secret().wireGuardKey,
                certificate: Array(profile.certificate.utf8)),
            log: log)
    }

    /// Registers with retries until accepted, refused, or the deadline passes. Cancellable between attempts.
    public func register(claim: Claim) async throws -> RegistrationResult {
        let started = ContinuousClock.now
        var attempts = 0
        var lastProblem = "no attempt made"
        var fallback = ReportFallback()
        while true {
            try Task.checkCancellation()
            let remaining = configuration.deadline - (ContinuousClock.now - started)
            guard remaining > .zero else { throw timedOut(attempts, lastProblem) }
            attempts += 1
            let number = attempts
            let report = fallback.sendReport ? fittingReport : nil
            let outcome = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(returning: self.attempt(claim: claim, number: number, remaining: remaining, report: report))
                }
            }
            if fallback.record(outcome, reported: report != nil) { logFallback() }
            if let result = try decide(outcome, attempts: attempts, problem: &lastProblem) { return result }
            let pause = min(backoff(after: attempts), configuration.deadline - (ContinuousClock.now - started))
            if pause > .zero { try await Task.sleep(for: pause) }
        }
    }

    /// The same as `register(claim:)`, on the calling thread (for threads that must own their
    /// sockets, such as a thread that entered another network namespace).
    public func registerBlocking(claim: Claim) throws -> RegistrationResult {
        let started = ContinuousClock.now
        var attempts = 0
        var lastProblem = "no attempt made"
        var fallback = ReportFallback()
        while true {
            let remaining = configuration.deadline - (ContinuousClock.now - started)
            guard remaining > .zero else { throw timedOut(attempts, lastProblem) }
            attempts += 1
            let report = fallback.sendReport ? fittingReport : nil
            let outcome = attempt(claim: claim, number: attempts, remaining: remaining, report: report)
            if fallback.record(outcome, reported: report != nil) { logFallback() }
            if let result = try decide(outcome, attempts: attempts, problem: &lastProblem) { return result }
            let pause = min(backoff(after: attempts), configuration.deadline - (ContinuousClock.now - started))
            if pause > .zero { Threads.sleep(Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18) }
        }
    }

    func timedOut(_ attempts: Int, _ problem: String) -> RegistrationFailure {
        .timedOut(host: configuration.relayHost, port: configuration.relayPort, attempts: attempts, lastProblem: problem)
    }

    func decide(_ outcome: AttemptOutcome, attempts: Int, problem: inout String) throws -> RegistrationResult? {
        switch outcome {
        case .problem(let text), .unanswered(let text):
            problem = text
            log.debug("registration attempt failed", metadata: ["attempt": "\(attempts)", "problem": "\(text)"])
            return nil
        case .answer(let answer, let relay, let claim):
            switch answer.status {
            case .accepted:
                let tunnel = IPv6Address(bytes: answer.tunnelAddress) ?? IPv6Address(high: 0, low: 0)
                let prefix = answer.routesSitePrefix
                    ? IPv6Address(bytes: answer.sitePrefix).map { IPv6Prefix(address: $0, length: 64) } : nil
                log.info("registered with the relay", metadata: [
                    "relay": "\(relay)", "claim": "\(claim)", "tunnel": "\(tunnel)",
                    "site_prefix": "\(prefix.map(\.description) ?? "-")", "attempts": "\(attempts)",
                ])
                return RegistrationResult(claim: claim, tunnelAddress: tunnel, sitePrefix: prefix,
                                          relayTime: answer.cookieTime, relayAddress: relay, attempts: attempts)
            case .temporaryFailure:
                problem = "relay \(relay): \(answer.status)"
                return nil
            default:
                log.error("the relay refused the registration", metadata: ["relay": "\(relay)", "status": "\(answer.status)"])
                throw RegistrationFailure.refused(answer.status, relay: relay)
            }
        }
    }

    /// Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in
    /// 0...min(maximum, initial · 2^(attempt-1)), so a site's routers and a fleet after a relay
    /// restart do not retry in lockstep.
    func backoff(after attempt: Int) -> Duration {
        let cap = configuration.initialBackoff * (1 << min(attempt - 1, 20))
        let ceiling = min(cap, configuration.maximumBackoff)
        return ceiling * Double.random(in: 0...1)
    }

    /// The report, its reason cut to what the datagram has room for beside the certificate; nil
    /// (a REGISTER without report) when not even its fixed fields fit: the claim matters more.
    var fittingReport: RouterReport? {
        configuration.report?.fitting(Wire.maximumSize - Wire.registerOverhead - Wire.reportLengthSize - configuration.certificate.count)
    }

    enum AttemptOutcome {
        case answer(RegistrationAnswer, relay: String, claim: Claim)
        case problem(String)
        /// The relay sent a CHALLENGE, but no RESULT came for the REGISTER.
        case unanswered(String)
    }

    /// A relay from before the report drops a REGISTER that carries one, silently (docs/protocol.md,
    /// "Versions"): after two attempts in a row whose REGISTER with a report got a CHALLENGE but no
    /// RESULT, the rest of this registration sends none. The next registration tries again.
    struct ReportFallback {
        static let unansweredLimit = 2
        private(set) var sendReport = true
        var unansweredInARow = 0

        /// Counts `outcome`; true when this attempt made the registration give up the report.
        mutating func record(_ outcome: AttemptOutcome, reported: Bool) -> Bool {
            guard reported, sendReport else { return false }
            guard case .unanswered = outcome else {
                unansweredInARow = 0
                return false
            }
            unansweredInARow += 1
            guard unansweredInARow >= Self.unansweredLimit else { return false }
            sendReport = false
            return true
        }
    }

    func logFallback() {
        log.notice("the relay answered no REGISTER with a report twice in a row; registering without the report (update the relay, docs/protocol.md \"Versions\")",
                      metadata: ["relay": "\(configuration.relayHost)"])
    }

    /// One HELLO/CHALLENGE/REGISTER/RESULT exchange on a fresh socket, with a fresh nonce.
    /// `report`: sent with the REGISTER (nil: the REGISTER of agents before the report).
    func attempt(claim: Claim, number: Int, remaining: Duration, report: RouterReport?) -> AttemptOutcome {
        let addresses: [ResolvedAddress]
        switch UDPExchange.resolve(host: configuration.relayHost, port: configuration.relayPort) {
        case .success(let list): addresses = list
        case .failure(let problem): return .problem(problem.text)
        }
        // Walk through the addresses across attempts (e.g. IPv6 unreachable, IPv4 fine).
        let address = addresses[(number - 1) % addresses.count]
        let waitLimit = min(configuration.attemptTimeout, remaining)
        let waitMilliseconds = Int(waitLimit.components.seconds * 1000 + waitLimit.components.attoseconds / 1_000_000_000_000_000)
        do {
            let socket = try UDPExchange.Socket(connectedTo: address)
            defer { socket.close() }
            var generator = SystemRandomNumberGenerator()
            let nonce = (0..<Wire.nonceSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let hello = Hello(routerKey: routerPublicKey, nonce: nonce, relayPublicKey: configuration.relayPublicKey)
            try socket.send(MessageMAC.seal(hello.authenticated, with: keys.requestKey))

            guard let cookie = try wait(socket, milliseconds: waitMilliseconds, accept: { (message: ParsedMessage) -> [UInt8]? in
                guard case .challenge(let challenge) = message.body, challenge.nonce == nonce,
                      MessageMAC.verify(keys.responseKey, message.authenticated, mac: message.mac) else { return nil }
                return challenge.cookie
            }) else { return .problem("no CHALLENGE from \(address.text) within \(waitLimit)") }

            let register = Register(claim: claim, routerKey: routerPublicKey, nonce: nonce, cookie: cookie,
                                    certificate: configuration.certificate, report: report)
            try socket.send(MessageMAC.seal(register.authenticated, with: keys.requestKey))
            guard let answer = try wait(socket, milliseconds: waitMilliseconds, accept: { (message: ParsedMessage) -> RegistrationAnswer? in
                guard case .result(let answer) = message.body, answer.nonce == nonce,
                      answer.cookieTime == register.cookieTime,
                      MessageMAC.verify(keys.responseKey, message.authenticated, mac: message.mac) else { return nil }
                return answer
            }) else { return .unanswered("no RESULT from \(address.text) within \(waitLimit)") }
            return .answer(answer, relay: address.text, claim: claim)
        } catch {
            return .problem(error.text)
        }
    }

    /// Receives until `accept` returns a value or the time is up; unverifiable datagrams are ignored.
    func wait<T>(_ socket: UDPExchange.Socket, milliseconds: Int,
                 accept: (ParsedMessage) -> T?) throws(UDPProblem) -> T? {
        let until = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            let left = until - ContinuousClock.now
            guard left > .zero else { return nil }
            let leftMilliseconds = Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1
            guard let datagram = try socket.receive(withinMilliseconds: leftMilliseconds) else { return nil }
            guard let message = try? MessageCodec.parse(datagram) else { continue }
            if let value = accept(message) { return value }
        }
    }
}
