import Foundation

/// Token buckets keyed by source address, in a fixed table (docs/protocol.md, "Rate limits"):
/// memory does not grow with the number of sources; sources whose keyed hash collides share a
/// bucket. Two global buckets cap the total public-key work under a flood of spoofed sources: one for
/// HELLOs that prove they know the relay's key (`HelloProof`), one for everything else that needs
/// key agreement; only datagrams that need that work are charged to them (`allow(_:now:budget:)`).
public struct RateLimiter: Sendable {
    struct Bucket: Sendable {
        var tokens: Double
        var updated: UInt64
    }

    let rate: Double
    let burst: Double
    let globalRate: Double
    var buckets: [Bucket]
    var global: Bucket
    var proven: Bucket
    /// Hasher is seeded per process, so an outsider cannot aim many sources at one bucket.
    let seed: Int

    public init(perSecond: Double, burst: Double, globalPerSecond: Double, buckets: Int) {
        rate = perSecond
        self.burst = burst
        globalRate = globalPerSecond
        self.buckets = Array(repeating: Bucket(tokens: burst, updated: 0), count: max(1, buckets))
        global = Bucket(tokens: max(globalPerSecond, 1), updated: 0)
        proven = global
        seed = Int.random(in: .min ... .max)
    }

    /// Which global bucket a datagram is charged to besides its source's.
    public enum Budget: Sendable, Equatable {
        /// A known router key: no key agreement, the source's bucket only.
        case sourceOnly
        /// An unknown key without proof: the budget a spoofed flood competes for.
        case global
        /// An unknown key whose HELLO proved it knows the relay's key.
        case proven
    }

    /// Takes one token from the source's bucket, and from a global one when the datagram needs an
    /// X25519 (its router key is not among the known ones); false means drop the datagram.
    /// `now` is in nanoseconds of a monotonic clock.
    public mutating func allow(_ address: [UInt8], now: UInt64, budget: Budget = .global) -> Bool {
        var hasher = Hasher()
        hasher.combine(seed)
        hasher.combine(address)
        let index = Int(UInt(bitPattern: hasher.finalize()) % UInt(buckets.count))
        RateLimiter.refill(&buckets[index], rate: rate, cap: burst, now: now)
        guard buckets[index].tokens >= 1 else { return false }
        switch budget {
        case .sourceOnly:
            break
        case .global:
            guard RateLimiter.take(&global, rate: globalRate, now: now) else { return false }
        case .proven:
            guard RateLimiter.take(&proven, rate: globalRate, now: now) else { return false }
        }
        buckets[index].tokens -= 1
        return true
    }

    static func take(_ bucket: inout Bucket, rate: Double, now: UInt64) -> Bool {
        refill(&bucket, rate: rate, cap: max(rate, 1), now: now)
        guard bucket.tokens >= 1 else { return false }
        bucket.tokens -= 1
        return true
    }

    static func refill(_ bucket: inout Bucket, rate: Double, cap: Double, now: UInt64) {
        if bucket.updated == 0 {
            bucket.updated = now
            return
        }
        let elapsed = Double(now &- bucket.updated) / 1e9
        bucket.tokens = min(cap, bucket.tokens + elapsed * rate)
        bucket.updated = now
    }
}
