#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// The relay's stateless cookies (docs/protocol.md, "Cookie"): `T || HMAC(secret, T || R || A)[0..<16]`.
///
/// The secret is random per relay start and never stored, so a restart invalidates every
/// outstanding cookie. Nothing is remembered between issuing and checking.
public struct CookieJar: Sendable {
    let secretBytes: [UInt8]
    var secret: SymmetricKey { SymmetricKey(data: secretBytes) }
    /// How long a cookie stays valid, in microseconds of relay time.
    public let lifetime: UInt64
    static let label = Array("edgekit/registration/v1/cookie".utf8)

    public init(secret: SymmetricKey = SymmetricKey(size: .bits256), lifetimeSeconds: Double = 30) {
        self.secretBytes = secret.withUnsafeBytes { [UInt8]($0) }
        self.lifetime = UInt64(max(0, lifetimeSeconds) * 1_000_000)
    }

    func tag(time: UInt64, routerKey: [UInt8], address: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: secret)
        hmac.update(data: CookieJar.label + uint64Bytes(time) + routerKey + address)
        return Array(Array(hmac.finalize()).prefix(16))
    }

    /// A cookie for router key `routerKey` seen from `address` (16 bytes, IPv4 mapped) at relay time `time`.
    public func issue(time: UInt64, routerKey: [UInt8], address: [UInt8]) -> [UInt8] {
        uint64Bytes(time) + tag(time: time, routerKey: routerKey, address: address)
    }

    /// The cookie's relay time when it is ours, for this key and address, and fresh at `now`; else nil.
    public func check(_ cookie: [UInt8], routerKey: [UInt8], address: [UInt8], now: UInt64) -> UInt64? {
        guard cookie.count == Wire.cookieSize else { return nil }
        let time = readUInt64(cookie, at: 0)
        let expected = tag(time: time, routerKey: routerKey, address: address)
        var difference: UInt8 = 0
        for (a, b) in zip(expected, cookie[8...]) { difference |= a ^ b }
        guard difference == 0, time <= now, now - time <= lifetime else { return nil }
        return time
    }
}

/// The relay's only clock: microseconds that never go backwards, within a run (monotonic clock)
/// or across restarts (`base` starts above every timestamp the relay ever stored).
public struct RelayClock: Sendable {
    public let base: UInt64
    let start: ContinuousClock.Instant

    /// `floor` is the largest cookie time in the state database (0 when empty).
    public init(floor: UInt64, wallClock: Date = Date()) {
        let wall = UInt64(max(0, wallClock.timeIntervalSince1970) * 1_000_000)
        base = max(wall, floor &+ 1)
        start = ContinuousClock.now
    }

    public var now: UInt64 {
        let elapsed = ContinuousClock.now - start
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        return base + UInt64(max(0, micros))
    }
}
