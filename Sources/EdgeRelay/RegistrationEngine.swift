import EdgeCrypto
import EdgeModel
import Foundation
import Logging
import NIOConcurrencyHelpers
import Registration
import SystemCrypto

/// The relay's side of docs/protocol.md for authenticated datagrams: MAC check, cookies, certificate
/// checks, the SQLite decision, and batched WireGuard updates. Returns the reply to send, or nil
/// for silence. One actor: decisions are serial, so the database is the one source of truth. The
/// checks before a decision (MACs, cookies, X25519) are `nonisolated`: they touch no state but the
/// `knownKeys` cache, so a flood of HELLOs never queues in front of a router's REGISTER.
public actor RegistrationEngine {
    let config: RelayConfig
    let store: RelayStore
    let wireGuard: WireGuardControl
    let relayKey: WireGuardKeyPair
    /// The key of HELLO's proof (`HelloProof`), derived once from the relay's public key (raw bytes:
    /// SystemCrypto's key types are not Sendable).
    let helloProofKey: [UInt8]
    let relayPrivateKeyBase64: String
    let operatorKey: Signify.PublicKey
    let cookies: CookieJar
    public let clock: RelayClock
    let logger: Logger

    /// MAC keys of router keys that proved themselves (docs/protocol.md, "Flood defence").
    public nonisolated let knownKeys = KnownRouterKeys()
    /// Registrations by result and dropped datagrams, for the metrics endpoint.
    public nonisolated let counters = RelayCounters()

    var dirty: Set<String> = []
    var waiters: [CheckedContinuation<Bool, Never>] = []
    var flushScheduled = false
    var flushing = false
    /// `wg set` batches applied since start (for the log and the benchmark).
    public private(set) var batchesApplied = 0
    /// The routes that give small sites their tunnel's MTU (`SiteRoutes`).
    public private(set) var siteRoutes: SiteRoutes
    /// The clients whose revocation WireGuard already reflects.
    var revokedClients: Set<String> = []
    /// Site /64 → its DMZ's /64 (relay.json `dmz_routes`, docs/dmz.md), as the database writes prefixes.
    let dmzBySite: [String: String]
    /// The same the other way round: DMZ /64 → its site's /64.
    let siteByDMZ: [String: String]

    public init(config: RelayConfig, store: RelayStore, relayPrivateKey: WireGuardKey, operatorKey: Signify.PublicKey,
                logger: Logger) throws {
        self.config = config
        self.store = store
        wireGuard = WireGuardControl(interface: config.interface)
        siteRoutes = SiteRoutes(interface: config.interface)
        dmzBySite = Dictionary(config.dmzRoutes.map { ("\($0.sitePrefix)", "\($0.prefix)") }, uniquingKeysWith: { first, _ in first })
        siteByDMZ = Dictionary(config.dmzRoutes.map { ("\($0.prefix)", "\($0.sitePrefix)") }, uniquingKeysWith: { first, _ in first })
        relayKey = WireGuardKeyPair(privateKey: relayPrivateKey.agreementKey)
        helloProofKey = HelloProof.key(relayPublicKey: relayKey.publicKey).withUnsafeBytes { Array($0) }
        relayPrivateKeyBase64 = relayPrivateKey.privateKeyBase64
        self.operatorKey = operatorKey
        cookies = CookieJar(lifetimeSeconds: config.cookieLifetimeSeconds)
        clock = RelayClock(floor: try store.largestCookieTime())
        self.logger = logger
    }

    /// Start-up, before the socket is bound: apply revocations, then make WireGuard hold exactly the database.
    public func restore() async throws {
        let revoked = try store.enforceRevocations()
        if !revoked.isEmpty { logger.info("removed revoked peers", metadata: ["count": "\(revoked.count)"]) }
        try await synchronise()
        try pinStoredPeers()
    }

    /// Derives the MAC keys of every stored peer (one X25519 each, at start only), so registered
    /// routers are checked with one HMAC and never wait for the global budget, from the first
    /// datagram after a restart (docs/protocol.md, "Flood defence").
    func pinStoredPeers() throws {
        let started = ContinuousClock.now
        var pinned = 0
        for peer in try store.desiredPeers() {
            guard let raw = Data(base64Encoded: peer.key), raw.count == Wire.keySize,
                  let keys = try? SessionKeys(relay: relayKey, routerPublicKey: [UInt8](raw)) else { continue }
            knownKeys.pin([UInt8](raw), keys)
            pinned += 1
        }
        logger.info("registered router keys known", metadata: ["keys": "\(pinned)", "duration": "\(ContinuousClock.now - started)"])
    }

    /// Makes WireGuard hold exactly the database, endpoints included; then starts a handshake with
    /// every peer that has a stored endpoint but no session on the interface (it was re-created), so
    /// traffic resumes now instead of when each router's WireGuard gives up on its old session
    /// (about 15 s: keepalive timeout plus rekey timeout).
    func synchronise() async throws {
        // What the interface knows is fresher than the last save (a router may have roamed since).
        await saveEndpoints()
        revokedClients = try store.revokedClients()
        let peers = try store.desiredPeers().map { ($0.key, withDMZs($0.allowedIPs), $0.endpoint) } + clientPeers()
        let control = wireGuard
        let key = relayPrivateKeyBase64
        let port = config.wireguardPort
        let started = try await offThread { () -> Int in
            try control.synchronise(privateKey: key, listenPort: port, peers: peers)
            let handshakes = try control.latestHandshakes()
            let idle = peers.filter { $0.endpoint != nil && (handshakes[$0.key] ?? 0) == 0 }.map(\.key)
            try control.startHandshakes(idle)
            return idle.count
        }
        logger.info("WireGuard holds the stored peers", metadata: [
            "interface": "\(config.interface)", "peers": "\(peers.count)",
            "endpoints": "\(peers.filter { $0.endpoint != nil }.count)", "handshakes_started": "\(started)"])
        await synchroniseSiteRoutes(prefixes: nil)
        if let publicPrefix = config.publicPrefix {
            do {
                try siteRoutes.installPublicPrefix("\(publicPrefix)")
            } catch {
                logger.error("cannot route the public prefix; the DMZs are unreachable", metadata: ["error": "\(error)"])
            }
        }
    }

    /// `allowed` (a router's tunnel /128 and the site /64s it holds) with the DMZ /64 of each of
    /// those sites (docs/dmz.md): a DMZ follows its site's master, and WireGuard accepts from that
    /// router only the DMZ's own sources (the relay's source-address check).
    func withDMZs(_ allowed: [String]) -> [String] {
        allowed + allowed.compactMap { dmzBySite[$0] }
    }

    /// The clients of relay.json (laptops, phones; docs/clients.md) that are not revoked, as
    /// WireGuard peers: their /128 each, no endpoint (a client always speaks first).
    func clientPeers() -> [(key: String, allowedIPs: [String], endpoint: String?)] {
        config.clients.filter { !revokedClients.contains($0.name) }.map { ($0.publicKey, ["\($0.address)/128"], nil) }
    }

    /// Makes the site routes of `prefixes` (nil: every site, and every route found on the interface)
    /// follow their owners' tunnel MTUs. A failure is logged, never fatal: the site is still reached,
    /// only without packet-too-big for packets its tunnel cannot carry.
    func synchroniseSiteRoutes(prefixes: Set<String>?) async {
        var routes = siteRoutes
        do {
            if prefixes == nil { try routes.load() }
            guard let interfaceMTU = routes.interfaceMTU else { return }
            // A site's DMZ /64 comes through the site's tunnel: it gets the site's route MTU too
            // (docs/dmz.md). Installed DMZ routes are asked about by their site.
            let asked = prefixes.map { Set($0.union(routes.installed.keys).map { siteByDMZ[$0] ?? $0 }) }
            var desired = try store.siteTunnelMTUs(of: asked)
            for (site, dmz) in dmzBySite {
                if let mtu = desired[site] { desired[dmz] = mtu }
            }
            let withDMZs = prefixes.map { $0.union($0.compactMap { dmzBySite[$0] }) }
            let wanted = (withDMZs ?? Set(desired.keys)).union(routes.installed.keys)
            let changes = SiteRoutes.changes(installed: routes.installed, desired: desired, prefixes: wanted, interfaceMTU: interfaceMTU)
            guard !changes.isEmpty else {
                siteRoutes = routes
                return
            }
            let before = routes
            routes = try await offThread { () -> SiteRoutes in
                var after = before
                try after.apply(changes)
                return after
            }
            logger.info("site routes set", metadata: [
                "interface": "\(config.interface)", "changes": "\(changes.count)", "routes": "\(routes.installed.count)"])
        } catch {
            logger.error("site routes could not be set", metadata: ["error": "\(error)"])
        }
        siteRoutes = routes
    }

    /// Each peer's received bytes at the last `samplePeers`, to see whose grew.
    var receivedBytes: [String: UInt64] = [:]

    /// Every `endpoint_save_ms`: one `wg show dump` gives each peer's endpoint, saved (only changes
    /// are written), and its received bytes: the routers whose bytes grew since the last sample were
    /// heard from (every live router sends a keepalive each `keepalive` seconds; the first sample
    /// only takes the counts). Failing is not fatal: the routers' own WireGuard re-handshakes after
    /// about 15 s without an endpoint, and `status` then goes by handshakes alone.
    public func samplePeers(now: Date = Date()) async {
        guard let peers = await readPeers() else { return }
        saveEndpoints(of: peers)
        let heard = peers.filter { peer in receivedBytes[peer.publicKey].map { peer.receiveBytes > $0 } ?? false }.map(\.publicKey)
        receivedBytes = Dictionary(peers.map { ($0.publicKey, $0.receiveBytes) }, uniquingKeysWith: { a, _ in a })
        do {
            try store.saveHeard(heard, at: Int64(now.timeIntervalSince1970))
        } catch {
            logger.warning("could not record which routers were heard from", metadata: ["error": "\(error)"])
        }
    }

    /// Saves every peer's current WireGuard endpoint in the database (only changes are written).
    public func saveEndpoints() async {
        if let peers = await readPeers() { saveEndpoints(of: peers) }
    }

    func readPeers() async -> [WireGuardControl.DumpPeer]? {
        let control = wireGuard
        do {
            return try await offThread { try control.dump() }
        } catch {
            logger.warning("could not read the WireGuard interface's peers", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func saveEndpoints(of peers: [WireGuardControl.DumpPeer]) {
        let endpoints = Dictionary(peers.compactMap { peer in peer.endpoint.map { (peer.publicKey, $0) } }, uniquingKeysWith: { a, _ in a })
        do {
            let changed = try store.saveEndpoints(endpoints)
            if changed > 0 { logger.debug("peer endpoints saved", metadata: ["changed": "\(changed)"]) }
        } catch {
            logger.warning("could not save the peers' endpoints", metadata: ["error": "\(error)"])
        }
    }

    /// The cheap checks of docs/protocol.md ("Flood defence"), before any public-key work and before
    /// the global budget: a REGISTER's cookie (one HMAC: only a key whose HELLO passed the MAC, from
    /// this address, holds one), then, for a known router key, the MAC (one HMAC).
    public nonisolated func screen(_ message: ParsedMessage, from address: [UInt8]) -> Screening {
        let routerKey: [UInt8]
        switch message.body {
        case .hello(let hello):
            routerKey = hello.routerKey
        case .register(let register):
            guard cookies.check(register.cookie, routerKey: register.routerKey, address: address, now: clock.now) != nil
            else { return .drop }
            routerKey = register.routerKey
        case .challenge, .result:
            return .drop
        }
        guard let keys = knownKeys.lookup(routerKey) else {
            // An unknown key: a HELLO that proves it knows S gets the proven budget, one from a
            // router before the proof (16 zero bytes) the global one, a wrong proof nothing.
            guard case .hello(let hello) = message.body, hello.proof != HelloProof.none else { return .needsKeyAgreement }
            return MessageMAC.verify(SymmetricKey(data: helloProofKey), message.authenticated.prefix(HelloProof.covered), mac: hello.proof)
                ? .provenKeyAgreement : .drop
        }
        return MessageMAC.verify(keys.requestKey, message.authenticated, mac: message.mac) ? .authenticated : .drop
    }

    /// Handles one parsed datagram from `address` (16 bytes, IPv4 mapped). nil: stay silent.
    /// Only a REGISTER that passed its MAC and cookie reaches the actor.
    public nonisolated func handle(_ message: ParsedMessage, from address: [UInt8]) async -> [UInt8]? {
        switch message.body {
        case .hello(let hello):
            guard let keys = verifiedKeys(hello.routerKey, message) else { return nil }
            let cookie = cookies.issue(time: clock.now, routerKey: hello.routerKey, address: address)
            return MessageMAC.seal(Challenge(nonce: hello.nonce, cookie: cookie).authenticated, with: keys.responseKey)
        case .register(let register):
            guard let keys = verifiedKeys(register.routerKey, message),
                  let cookieTime = cookies.check(register.cookie, routerKey: register.routerKey, address: address, now: clock.now)
            else { return nil }
            // Steps 6-7 outside the actor: the certificate's signature and fields depend on nothing
            // it holds, so registrations verify on every core and only the database decision waits
            // its turn (a 10k-router storm had the relay at one core, the Ed25519 inside the actor).
            let answer: RegistrationAnswer
            switch checkCertificate(register, cookieTime: cookieTime) {
            case .refused(let refusal):
                answer = refusal
            case .valid(let certificate):
                guard let decided = await decide(register, certificate: certificate, cookieTime: cookieTime) else { return nil }
                answer = decided
            }
            // A certificate the operator signed: this key stays known for the life of the process.
            if answer.status == .accepted { knownKeys.pin(register.routerKey, keys) }
            return MessageMAC.seal(answer.authenticated, with: keys.responseKey)
        case .challenge, .result:
            return nil
        }
    }

    /// The router key's MAC keys when the message's MAC verifies under them; an X25519 only for a
    /// key not yet known, which is remembered once its MAC verified (never before: random keys in a
    /// flood must not push known ones out).
    nonisolated func verifiedKeys(_ routerKey: [UInt8], _ message: ParsedMessage) -> SessionKeys? {
        if let known = knownKeys.lookup(routerKey) {
            return MessageMAC.verify(known.requestKey, message.authenticated, mac: message.mac) ? known : nil
        }
        guard let derived = try? SessionKeys(relay: relayKey, routerPublicKey: routerKey),
              MessageMAC.verify(derived.requestKey, message.authenticated, mac: message.mac) else { return nil }
        knownKeys.remember(routerKey, derived)
        return derived
    }

    nonisolated func refusal(_ status: RegistrationStatus, _ register: Register, _ cookieTime: UInt64) -> RegistrationAnswer {
        RegistrationAnswer(status: status, routesSitePrefix: false, claimedMaster: register.claim == .master,
                           nonce: register.nonce, cookieTime: cookieTime,
                           tunnelAddress: [UInt8](repeating: 0, count: 16), sitePrefix: [UInt8](repeating: 0, count: 16))
    }

    enum CertificateCheck: Sendable {
        case valid(SiteCertificate)
        case refused(RegistrationAnswer)
    }

    /// Steps 6 and 7 of docs/protocol.md: the certificate is the operator's, for this plan, inside its
    /// prefixes and for the key that sent it. Outside the actor (it reads only constants).
    nonisolated func checkCertificate(_ register: Register, cookieTime: UInt64) -> CertificateCheck {
        let routerKey = Data(register.routerKey).base64EncodedString()
        let certificate: SiteCertificate
        do {
            certificate = try SiteCertificate.verify(Data(register.certificate), operatorKey: operatorKey)
        } catch {
            logger.notice("refused: certificate invalid", metadata: ["key": "\(routerKey)", "why": "\(error)"])
            counters.count(.certificateInvalid)
            return .refused(refusal(.certificateInvalid, register, cookieTime))
        }
        guard certificate.plan == config.plan, certificate.sitePrefix.length == 64,
              config.ula.contains(certificate.sitePrefix), config.tunnelPrefix.contains(certificate.tunnelAddress),
              !config.ula.contains(certificate.tunnelAddress) else {
            logger.notice("refused: certificate for another plan or outside its prefixes", metadata: [
                "key": "\(routerKey)", "plan": "\(certificate.plan)", "site_prefix": "\(certificate.sitePrefix)",
                "tunnel": "\(certificate.tunnelAddress)"])
            counters.count(.certificateForeign)
            return .refused(refusal(.certificateForeign, register, cookieTime))
        }
        guard Data(base64Encoded: certificate.wireguardPublicKey) == Data(register.routerKey) else {
            logger.notice("refused: certificate names another key", metadata: ["key": "\(routerKey)"])
            counters.count(.keyMismatch)
            return .refused(refusal(.keyMismatch, register, cookieTime))
        }
        return .valid(certificate)
    }

    /// Steps 5 (replay), 8 and 9 of docs/protocol.md for an authenticated REGISTER with a valid cookie
    /// and a certificate `checkCertificate` accepted: the serial decision against the database.
    func decide(_ register: Register, certificate: SiteCertificate, cookieTime: UInt64) async -> RegistrationAnswer? {
        let routerKey = Data(register.routerKey).base64EncodedString()
        let fields = SiteCertificateFields(
            plan: certificate.plan, site: certificate.site, slot: certificate.slot,
            serial: Int64(bitPattern: certificate.serial), tunnelAddress: certificate.tunnelAddress.description,
            sitePrefix: certificate.sitePrefix.description)
        let decision: RelayStore.Decision
        do {
            decision = try store.register(publicKey: routerKey, certificate: fields, claim: register.claim.description,
                                          cookieTime: Int64(cookieTime), now: Int64(clock.now), report: register.report)
        } catch {
            logger.error("state database write failed", metadata: ["error": "\(error)"])
            counters.count(.temporaryFailure)
            return refusal(.temporaryFailure, register, cookieTime)
        }
        switch decision {
        case .replay:
            logger.debug("dropped: cookie not newer than the last accepted one", metadata: ["key": "\(routerKey)"])
            counters.count(.replay)
            return nil
        case .revoked:
            logger.notice("refused: revoked", metadata: ["key": "\(routerKey)", "site": "\(certificate.site)", "slot": "\(certificate.slot)"])
            counters.count(.revoked)
            return refusal(.revoked, register, cookieTime)
        case .superseded:
            logger.notice("refused: superseded by a newer certificate", metadata: ["key": "\(routerKey)", "site": "\(certificate.site)", "slot": "\(certificate.slot)"])
            counters.count(.superseded)
            return refusal(.superseded, register, cookieTime)
        case .accepted(let touched, let holdsPrefix):
            let applied = await applySoon(touched)
            logger.info("registered", metadata: [
                "site": "\(certificate.site)", "slot": "\(certificate.slot)", "claim": "\(register.claim)",
                "holds_site_prefix": "\(holdsPrefix)", "applied": "\(applied)"])
            counters.count(applied ? .accepted : .temporaryFailure)
            guard applied else { return refusal(.temporaryFailure, register, cookieTime) }
            return RegistrationAnswer(
                status: .accepted, routesSitePrefix: holdsPrefix, claimedMaster: register.claim == .master,
                nonce: register.nonce, cookieTime: cookieTime, tunnelAddress: certificate.tunnelAddress.bytes,
                sitePrefix: holdsPrefix ? certificate.sitePrefix.address.bytes : [UInt8](repeating: 0, count: 16))
        }
    }

    /// Queues WireGuard updates for `keys`; returns once a `wg set` that includes them ran (true) or failed.
    func applySoon(_ keys: Set<String>) async -> Bool {
        dirty.formUnion(keys)
        return await withCheckedContinuation { continuation in
            waiters.append(continuation)
            scheduleFlush()
        }
    }

    func scheduleFlush() {
        guard !flushScheduled, !flushing, !dirty.isEmpty || !waiters.isEmpty else { return }
        flushScheduled = true
        let window = config.batchWindowMilliseconds
        Task {
            if window > 0 { try? await Task.sleep(for: .milliseconds(window)) }
            await self.flush()
        }
    }

    /// Applies every queued change with one `wg set`, computed from the database (so the call
    /// carries each touched peer's complete state, whatever happened in between).
    func flush() async {
        flushScheduled = false
        flushing = true
        let keys = dirty
        let batch = waiters
        dirty = []
        waiters = []
        var succeeded = true
        do {
            let desired = try store.allowedIPs(for: keys.sorted())
            let changes: [WireGuardControl.PeerChange] = desired.keys.sorted().map { key in
                if let allowed = desired[key] ?? nil { return .set(key: key, allowedIPs: withDMZs(allowed)) }
                return .remove(key: key)
            }
            let control = wireGuard
            let started = ContinuousClock.now
            try await offThread { try control.apply(changes) }
            batchesApplied += 1
            logger.debug("wg set applied", metadata: [
                "peers": "\(changes.count)", "registrations": "\(batch.count)", "duration": "\(ContinuousClock.now - started)"])
            // Applied to WireGuard: the registrations succeed whatever the routes do (an unreadable
            // database here leaves the routes of this batch to the next one that reads it).
            await synchroniseSiteRoutes(prefixes: (try? store.sitePrefixes(ofKeys: keys)) ?? [])
        } catch {
            succeeded = false
            logger.error("WireGuard update failed; re-synchronising from the database", metadata: ["error": "\(error)"])
            do { try await synchronise() } catch {
                logger.error("WireGuard re-synchronisation failed", metadata: ["error": "\(error)"])
            }
        }
        for waiter in batch { waiter.resume(returning: succeeded) }
        flushing = false
        scheduleFlush()
    }

    /// Applies revocations written by `edgekit-relay revoke` since the last poll: routers' and
    /// clients' (a client's key is in no database row, so the batch removes its peer).
    public func pollRevocations() async {
        do {
            var removed = try store.enforceRevocations()
            let clients = try store.revokedClients()
            let newlyRevoked = clients.subtracting(revokedClients)
            revokedClients = clients
            removed += config.clients.filter { newlyRevoked.contains($0.name) }.map(\.publicKey)
            guard !removed.isEmpty else { return }
            logger.notice("revoked peers removed", metadata: ["count": "\(removed.count)"])
            _ = await applySoon(Set(removed))
        } catch {
            logger.error("revocation poll failed", metadata: ["error": "\(error)"])
        }
    }
}

/// What the receive loop does with a datagram after `RegistrationEngine.screen`.
public enum Screening: Sendable, Equatable {
    /// Silence: a cookie or a MAC that does not verify.
    case drop
    /// Its MAC verified under a known router key: charge only its source's bucket.
    case authenticated
    /// Its router key is unknown: checking it costs an X25519, charged to the global budget too.
    case needsKeyAgreement
    /// A HELLO of an unknown key whose proof of knowing S verified: the X25519 is charged to the
    /// proven budget, which a flood of made-up keys cannot reach.
    case provenKeyAgreement

    /// What the datagram's key agreement is charged to, if it needs one.
    public var budget: RateLimiter.Budget {
        switch self {
        case .drop, .authenticated: .sourceOnly
        case .needsKeyAgreement: .global
        case .provenKeyAgreement: .proven
        }
    }
}

/// MAC keys per router key, for keys that proved themselves: `pinned` for registered routers (from
/// the state database at start and every accepted registration; bounded by the certificates the
/// operator signed), `recent` for keys whose HELLO passed the MAC but that have not registered
/// (bounded; an arbitrary entry makes room). Random keys that fail the MAC never enter.
public final class KnownRouterKeys: Sendable {
    struct Tables {
        var pinned: [[UInt8]: SessionKeys] = [:]
        var recent: [[UInt8]: SessionKeys] = [:]
    }

    let tables = NIOLockedValueBox(Tables())
    /// Keys that passed a HELLO's MAC but have not registered yet (about 300 bytes each).
    static let recentLimit = 8192

    public init() {}

    public func lookup(_ routerKey: [UInt8]) -> SessionKeys? {
        tables.withLockedValue { $0.pinned[routerKey] ?? $0.recent[routerKey] }
    }

    func pin(_ routerKey: [UInt8], _ keys: SessionKeys) {
        tables.withLockedValue { tables in
            tables.recent[routerKey] = nil
            tables.pinned[routerKey] = keys
        }
    }

    func remember(_ routerKey: [UInt8], _ keys: SessionKeys) {
        tables.withLockedValue { tables in
            guard tables.pinned[routerKey] == nil else { return }
            if tables.recent.count >= KnownRouterKeys.recentLimit, tables.recent[routerKey] == nil {
                tables.recent.remove(at: tables.recent.startIndex)
            }
            tables.recent[routerKey] = keys
        }
    }

    /// Known keys: (registered routers, recent HELLOs).
    public var counts: (pinned: Int, recent: Int) {
        tables.withLockedValue { ($0.pinned.count, $0.recent.count) }
    }
}
