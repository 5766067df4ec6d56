import EdgeErrors
import EdgeModel
import Foundation
import GRDB
import Registration

/// One registered router, as stored (docs/protocol.md, "State").
public struct PeerRecord: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "peer"

    /// Base64 WireGuard public key (the peer key in `wg`).
    public var publicKey: String
    public var plan: String
    public var site: String
    public var slot: Int
    public var serial: Int64
    public var tunnelAddress: String
    public var sitePrefix: String
    /// "master" or "backup": the claim of the last accepted registration.
    public var claim: String
    /// Relay time (microseconds since 1970 on the relay's clock) of the last accepted registration.
    public var lastSeen: Int64
    /// The cookie time of the last accepted registration; a REGISTER must carry a newer one.
    public var lastCookieTime: Int64
    /// The router's last WireGuard endpoint (`ADDRESS:PORT`, IPv6 in brackets) as the relay's
    /// interface saw it, saved every `endpoint_save_ms`; nil until it first handshook. Restored with
    /// the peer, so a re-created interface can handshake with the router at once.
    public var endpoint: String? = nil
    /// What the router reported in its last accepted REGISTER (docs/protocol.md, "Report"); all nil
    /// when that REGISTER carried no report (an agent from before it). Migration v4.
    public var generation: Int64? = nil
    public var agentVersion: String? = nil
    /// "healthy", "unhealthy" or "unknown" (the agent had no verdict yet).
    public var health: String? = nil
    public var healthReason: String? = nil
    /// UNIX seconds when the relay's interface last saw the router's received bytes grow (sampled
    /// every `endpoint_save_ms` by `serve`); nil until then. Liveness: WireGuard rekeys only every
    /// 2 minutes, so a live router's last handshake is often older than 3 keepalives. Migration v5.
    public var lastHeard: Int64? = nil
    /// The MTU of the router's tunnel to this relay, as its last accepted REGISTER reported it; nil
    /// when it did not say. The relay routes the site's /64 with it when this router owns the /64
    /// (`SiteRoutes`, docs/relay.md, "Site MTU"). Migration v6.
    public var tunnelMTU: Int? = nil
    /// The system version the router runs, and its last update install's state ("none", "trial",
    /// "blessed", "failed") and version, as its last accepted REGISTER reported them; nil when it
    /// did not say (docs/updates.md, "Watching"). `updateVersion` is nil when the state is "none".
    /// Migration v8.
    public var systemVersion: Int64? = nil
    public var updateState: String? = nil
    public var updateVersion: Int64? = nil

    enum CodingKeys: String, CodingKey {
        case publicKey = "public_key", plan, site, slot, serial
        case tunnelAddress = "tunnel_address", sitePrefix = "site_prefix", claim
        case lastSeen = "last_seen", lastCookieTime = "last_cookie_time", endpoint
        case generation, agentVersion = "agent_version", health, healthReason = "health_reason"
        case lastHeard = "last_heard", tunnelMTU = "tunnel_mtu"
        case systemVersion = "system_version", updateState = "update_state", updateVersion = "update_version"
    }

    /// Sets the report columns from a REGISTER's report (nil clears them: the router said nothing).
    mutating func record(_ report: RouterReport?) {
        generation = report.map { Int64(clamping: $0.generation) }
        agentVersion = report?.agentVersion
        health = report?.health.description
        healthReason = report?.healthReason
        tunnelMTU = report?.tunnelMTU
        let system = report?.system
        systemVersion = system.map { Int64(clamping: $0.version) }
        updateState = system?.update.description
        updateVersion = system.flatMap { $0.update == .none ? nil : Int64(clamping: $0.updateVersion) }
    }
}

/// Which peer's AllowedIPs hold a site /64.
public struct PrefixOwner: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "prefix_owner"
    public var sitePrefix: String
    public var publicKey: String

    enum CodingKeys: String, CodingKey {
        case sitePrefix = "site_prefix", publicKey = "public_key"
    }
}

/// A revoked site, or one router slot of it; optionally only certificates below a serial.
public struct Revocation: Codable, FetchableRecord, MutablePersistableRecord, Sendable, Equatable {
    public static let databaseTableName = "revocation"
    public var id: Int64?
    public var site: String
    public var slot: Int?
    public var beforeSerial: Int64?
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, site, slot
        case beforeSerial = "before_serial", createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    /// True when a certificate for (site, slot, serial) falls under this revocation.
    public func covers(site: String, slot: Int, serial: Int64) -> Bool {
        self.site == site && (self.slot == nil || self.slot == slot) && (beforeSerial.map { serial < $0 } ?? true)
    }
}

/// Everything in the database, for `status` and for tests.
public struct RelaySnapshot: Codable, Sendable, Equatable {
    public var peers: [PeerRecord]
    public var owners: [PrefixOwner]
    public var revocations: [Revocation]
}

/// The relay's SQLite state (GRDB, WAL). Every registration decision is one write transaction,
/// so the replay check and the update cannot interleave with another registration.
public final class RelayStore: Sendable {
    let queue: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        // `revoke` and `status` may run while the daemon writes.
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL: readers never block the writer. NORMAL: a commit survives kill -9 (it is in the WAL
            // file); a power loss may lose the last commits, which is safe (docs/protocol.md, "State").
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try RelayStore.migrator.migrate(queue)
        } catch let error as DatabaseError {
            throw RelayError.database(path, "\(error.message ?? error.description) (check that its folder exists and is writable)",
                                      cause: ErrorCause(error))
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "peer") { t in
                t.primaryKey("public_key", .text)
                t.column("plan", .text).notNull()
                t.column("site", .text).notNull()
                t.column("slot", .integer).notNull()
                t.column("serial", .integer).notNull()
                t.column("tunnel_address", .text).notNull()
                t.column("site_prefix", .text).notNull()
                t.column("claim", .text).notNull()
                t.column("last_seen", .integer).notNull()
                t.column("last_cookie_time", .integer).notNull()
            }
            try db.create(index: "peer_site_slot", on: "peer", columns: ["site", "slot"])
            try db.create(table: "prefix_owner") { t in
                t.primaryKey("site_prefix", .text)
                t.column("public_key", .text).notNull().references("peer", column: "public_key", onDelete: .cascade)
            }
            try db.create(table: "revocation") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("site", .text).notNull()
                t.column("slot", .integer)
                t.column("before_serial", .integer)
                t.column("created_at", .text).notNull()
            }
        }
        migrator.registerMigration("v2: peer endpoint") { db in
            try db.alter(table: "peer") { t in t.add(column: "endpoint", .text) }
        }
        // Every registration deletes and reads a router's /64 ownership by its key, and deleting a
        // peer checks the foreign key: without this index each was a scan of the whole table, so a
        // registration cost grew with the fleet (bench/relay.sh 10000, docs/benchmarks.md).
        migrator.registerMigration("v3: prefix owner by key") { db in
            try db.create(index: "prefix_owner_public_key", on: "prefix_owner", columns: ["public_key"])
        }
        // The router's own report (issue 18.2, the fleet view): NULL for rows written before it and
        // for routers whose agent sends none.
        migrator.registerMigration("v4: router report") { db in
            try db.alter(table: "peer") { t in
                t.add(column: "generation", .integer)
                t.add(column: "agent_version", .text)
                t.add(column: "health", .text)
                t.add(column: "health_reason", .text)
            }
        }
        // When the relay last heard from each router (its received bytes grew): liveness.
        migrator.registerMigration("v5: last heard") { db in
            try db.alter(table: "peer") { t in t.add(column: "last_heard", .integer) }
        }
        // The router's tunnel MTU from its report: the relay routes small sites with it.
        migrator.registerMigration("v6: tunnel MTU") { db in
            try db.alter(table: "peer") { t in t.add(column: "tunnel_mtu", .integer) }
        }
        // Clients (laptops, phones) the operator revoked: their peers stay out of WireGuard.
        migrator.registerMigration("v7: client revocations") { db in
            try db.create(table: "client_revocation") { t in
                t.primaryKey("name", .text)
                t.column("created_at", .text).notNull()
            }
        }
        // The router's system version and its last update's state from its report: the rollout view.
        migrator.registerMigration("v8: router system") { db in
            try db.alter(table: "peer") { t in
                t.add(column: "system_version", .integer)
                t.add(column: "update_state", .text)
                t.add(column: "update_version", .integer)
            }
        }
        return migrator
    }

    public func snapshot() throws -> RelaySnapshot {
        try queue.read { db in
            RelaySnapshot(
                peers: try PeerRecord.order(Column("site"), Column("slot"), Column("public_key")).fetchAll(db),
                owners: try PrefixOwner.order(Column("site_prefix")).fetchAll(db),
                revocations: try Revocation.order(Column("id")).fetchAll(db))
        }
    }

    /// The largest cookie time ever accepted (the relay clock starts above it).
    public func largestCookieTime() throws -> UInt64 {
        try queue.read { db in
            UInt64(max(0, try Int64.fetchOne(db, sql: "SELECT MAX(last_cookie_time) FROM peer") ?? 0))
        }
    }

    /// WireGuard's AllowedIPs for each key as the database says (nil: the peer must not exist).
    public func allowedIPs(for keys: some Sequence<String>) throws -> [String: [String]?] {
        try queue.read { db in
            var result: [String: [String]?] = [:]
            for key in keys {
                guard let peer = try PeerRecord.fetchOne(db, key: key) else {
                    result[key] = .some(nil)
                    continue
                }
                let owned = try String.fetchAll(db, sql: "SELECT site_prefix FROM prefix_owner WHERE public_key = ? ORDER BY site_prefix", arguments: [key])
                result[key] = .some(["\(peer.tunnelAddress)/128"] + owned)
            }
            return result
        }
    }

    /// The site /64s of `keys`' rows (a registration's own site, whatever owns it now).
    public func sitePrefixes(ofKeys keys: some Sequence<String>) throws -> Set<String> {
        try queue.read { db in
            var prefixes: Set<String> = []
            let statement = try db.cachedStatement(sql: "SELECT site_prefix FROM peer WHERE public_key = ?")
            for key in keys {
                if let prefix = try String.fetchOne(statement, arguments: [key]) { prefixes.insert(prefix) }
            }
            return prefixes
        }
    }

    /// Each site /64 whose owner reported its tunnel MTU → that MTU, for `prefixes` (nil: every one).
    public func siteTunnelMTUs(of prefixes: Set<String>? = nil) throws -> [String: Int] {
        try queue.read { db in
            let sql = """
                SELECT o.site_prefix, p.tunnel_mtu FROM prefix_owner o JOIN peer p ON p.public_key = o.public_key
                WHERE p.tunnel_mtu IS NOT NULL
                """
            var result: [String: Int] = [:]
            guard let prefixes else {
                for row in try Row.fetchAll(db, sql: sql) { result[row[0]] = row[1] }
                return result
            }
            let statement = try db.cachedStatement(sql: sql + " AND o.site_prefix = ?")
            for prefix in prefixes {
                if let row = try Row.fetchOne(statement, arguments: [prefix]) { result[row[0]] = row[1] }
            }
            return result
        }
    }

    /// Every peer with its AllowedIPs and last endpoint: what WireGuard must hold.
    public func desiredPeers() throws -> [(key: String, allowedIPs: [String], endpoint: String?)] {
        let snapshot = try snapshot()
        var owned: [String: [String]] = [:]
        for owner in snapshot.owners { owned[owner.publicKey, default: []].append(owner.sitePrefix) }
        return snapshot.peers.map { ($0.publicKey, ["\($0.tunnelAddress)/128"] + (owned[$0.publicKey] ?? []).sorted(), $0.endpoint) }
    }

    /// Records the endpoints WireGuard reports (public key → `ADDRESS:PORT`) for the peers the
    /// database holds; other keys are ignored, and a peer missing from `endpoints` keeps its stored
    /// one. One transaction; returns how many peers' endpoints changed.
    @discardableResult
    public func saveEndpoints(_ endpoints: [String: String]) throws -> Int {
        guard !endpoints.isEmpty else { return 0 }
        return try queue.write { db in
            var changed = 0
            for (key, endpoint) in endpoints {
                try db.execute(sql: "UPDATE peer SET endpoint = ? WHERE public_key = ? AND endpoint IS NOT ?",
                               arguments: [endpoint, key, endpoint])
                changed += db.changesCount
            }
            return changed
        }
    }

    /// Records that the routers with `keys` were heard from at `time` (UNIX seconds): one
    /// transaction, one cached statement; keys the database does not hold are ignored.
    public func saveHeard(_ keys: some Collection<String>, at time: Int64) throws {
        guard !keys.isEmpty else { return }
        try queue.write { db in
            let update = try db.cachedStatement(sql: "UPDATE peer SET last_heard = ? WHERE public_key = ?")
            for key in keys { try update.execute(arguments: [time, key]) }
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Accepted; these peers changed in the database (WireGuard must follow).
        case accepted(touched: Set<String>, holdsPrefix: Bool)
        case replay
        case revoked
        case superseded
    }

    /// The checks and effects of docs/protocol.md steps 5 (replay), 7 and 8, in one transaction.
    /// `report`: what the router said about itself; stored as given (nil clears the columns).
    ///
    /// Every registration of a storm comes through here one at a time (the relay's one writer), so
    /// it is written as a few cached SQL statements rather than record types: fetching and saving
    /// `PeerRecord`s (Codable, a query built per call, `save` as an update then an insert) took
    /// 525 µs per registration into a table growing to 10k rows, half of the relay's CPU per
    /// registration; these statements take 91 µs (release build, 2026-12-06).
    public func register(publicKey: String, certificate: SiteCertificateFields, claim: String,
                         cookieTime: Int64, now: Int64, report: RouterReport? = nil) throws -> Decision {
        try queue.write { db in
            let lastCookie = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT last_cookie_time FROM peer WHERE public_key = ?"), arguments: [publicKey])
            if let lastCookie, lastCookie >= cookieTime { return .replay }
            let revocations = try Revocation.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM revocation WHERE site = ?"), arguments: [certificate.site])
            if revocations.contains(where: { $0.covers(site: certificate.site, slot: certificate.slot, serial: certificate.serial) }) {
                return .revoked
            }
            let others = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT public_key, serial FROM peer WHERE site = ? AND slot = ? AND public_key != ?"),
                arguments: [certificate.site, certificate.slot, publicKey])
            if others.contains(where: { ($0["serial"] as Int64) > certificate.serial }) { return .superseded }
            var touched: Set<String> = [publicKey]
            for other in others {
                // The slot has one router: a newer certificate's key replaces the older one (its /64
                // ownership goes with it, ON DELETE CASCADE).
                let key: String = other["public_key"]
                try db.cachedStatement(sql: "DELETE FROM peer WHERE public_key = ?").execute(arguments: [key])
                touched.insert(key)
            }
            var record = PeerRecord(
                publicKey: publicKey, plan: certificate.plan, site: certificate.site, slot: certificate.slot,
                serial: certificate.serial, tunnelAddress: certificate.tunnelAddress,
                sitePrefix: certificate.sitePrefix, claim: claim, lastSeen: now, lastCookieTime: cookieTime)
            record.record(report)
            // Insert or update in one statement; the saved endpoint of an existing row stays.
            try db.cachedStatement(sql: """
                INSERT INTO peer (public_key, plan, site, slot, serial, tunnel_address, site_prefix, claim, last_seen,
                                  last_cookie_time, generation, agent_version, health, health_reason, tunnel_mtu,
                                  system_version, update_state, update_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (public_key) DO UPDATE SET
                  plan = excluded.plan, site = excluded.site, slot = excluded.slot, serial = excluded.serial,
                  tunnel_address = excluded.tunnel_address, site_prefix = excluded.site_prefix, claim = excluded.claim,
                  last_seen = excluded.last_seen, last_cookie_time = excluded.last_cookie_time,
                  generation = excluded.generation, agent_version = excluded.agent_version, health = excluded.health,
                  health_reason = excluded.health_reason, tunnel_mtu = excluded.tunnel_mtu,
                  system_version = excluded.system_version, update_state = excluded.update_state,
                  update_version = excluded.update_version
                """).execute(arguments: [
                    record.publicKey, record.plan, record.site, record.slot, record.serial, record.tunnelAddress,
                    record.sitePrefix, record.claim, record.lastSeen, record.lastCookieTime, record.generation,
                    record.agentVersion, record.health, record.healthReason, record.tunnelMTU,
                    record.systemVersion, record.updateState, record.updateVersion,
                ])
            // A certificate for another /64 than before: the old one is no longer this router's.
            try db.cachedStatement(sql: "DELETE FROM prefix_owner WHERE public_key = ? AND site_prefix != ?")
                .execute(arguments: [publicKey, certificate.sitePrefix])
            let owner = try String.fetchOne(
                db.cachedStatement(sql: "SELECT public_key FROM prefix_owner WHERE site_prefix = ?"), arguments: [certificate.sitePrefix])
            guard claim == "master" else {
                return .accepted(touched: touched, holdsPrefix: owner == publicKey)
            }
            if let owner, owner != publicKey { touched.insert(owner) }
            try db.cachedStatement(sql: """
                INSERT INTO prefix_owner (site_prefix, public_key) VALUES (?, ?)
                ON CONFLICT (site_prefix) DO UPDATE SET public_key = excluded.public_key
                """).execute(arguments: [certificate.sitePrefix, publicKey])
            return .accepted(touched: touched, holdsPrefix: true)
        }
    }

    /// Records a revocation (`edgekit-relay revoke`).
    @discardableResult
    public func revoke(site: String, slot: Int?, beforeSerial: Int64?, at date: Date = Date()) throws -> Revocation {
        try queue.write { db in
            var revocation = Revocation(id: nil, site: site, slot: slot, beforeSerial: beforeSerial,
                                        createdAt: ISO8601DateFormatter().string(from: date))
            try revocation.insert(db)
            return revocation
        }
    }

    /// Revokes client `name` (laptop or phone, docs/clients.md); revoking it again changes nothing.
    public func revokeClient(_ name: String, at date: Date = Date()) throws {
        try queue.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO client_revocation (name, created_at) VALUES (?, ?)",
                           arguments: [name, ISO8601DateFormatter().string(from: date)])
        }
    }

    /// The names of the revoked clients.
    public func revokedClients() throws -> Set<String> {
        try queue.read { db in Set(try String.fetchAll(db, sql: "SELECT name FROM client_revocation")) }
    }

    /// Deletes every peer a revocation covers (and, by cascade, its /64 ownership); returns their keys.
    public func enforceRevocations() throws -> [String] {
        let matching = try queue.read { db in try RelayStore.revokedPeers(db) }
        guard !matching.isEmpty else { return [] }
        return try queue.write { db in
            let keys = try RelayStore.revokedPeers(db)
            for key in keys {
                try db.execute(sql: "DELETE FROM prefix_owner WHERE public_key = ?", arguments: [key])
                _ = try PeerRecord.deleteOne(db, key: key)
            }
            return keys
        }
    }

    static func revokedPeers(_ db: Database) throws -> [String] {
        try String.fetchAll(db, sql: """
            SELECT DISTINCT p.public_key FROM peer p JOIN revocation r
              ON r.site = p.site AND (r.slot IS NULL OR r.slot = p.slot)
             AND (r.before_serial IS NULL OR p.serial < r.before_serial)
            ORDER BY p.public_key
            """)
    }
}

/// The certificate fields the store needs, already verified by the caller.
public struct SiteCertificateFields: Sendable, Equatable {
    public var plan: String
    public var site: String
    public var slot: Int
    public var serial: Int64
    public var tunnelAddress: String
    public var sitePrefix: String

    public init(plan: String, site: String, slot: Int, serial: Int64, tunnelAddress: String, sitePrefix: String) {
        self.plan = plan
        self.site = site
        self.slot = slot
        self.serial = serial
        self.tunnelAddress = tunnelAddress
        self.sitePrefix = sitePrefix
    }
}
