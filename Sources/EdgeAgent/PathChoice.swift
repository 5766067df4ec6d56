#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Which relay carries the site's traffic to the other sites (docs/relay.md, "Running several
/// relays"). Every relay is probed through its own tunnel, once a second; a relay is up after `rise`
/// answered probes in a row and down after `misses` unanswered ones (a relay starts down).
///
/// The choice follows the site's order of preference (`Plan.relays(preferredBy:)`). It leaves a relay
/// as soon as that relay is down, for the first relay that is up or answered the last probe (any
/// relay that answers beats one that does not), and it moves back to a more preferred relay only
/// after that relay has been up for `holdDown`, so a relay that flaps does not drag the site's
/// traffic with it. With no relay answering, the choice stays where it was: the route is the best
/// guess until one answers again.
public struct PathChoice: Sendable, Equatable {
    /// One relay's probe record.
    public struct Path: Sendable, Equatable {
        public var name: String
        public var up = false
        /// When it last came up (valid while `up`).
        public var upSince = Date.distantPast
        var missedInARow = 0
        var answeredInARow = 0
    }

    /// In the site's order of preference.
    public private(set) var paths: [Path]
    /// The relay the route points at, nil until one has been up.
    public private(set) var chosen: String?
    public let misses: Int
    public let rise: Int
    public let holdDown: TimeInterval

    public init(relays: [String], misses: Int = 2, rise: Int = 3, holdDown: TimeInterval = 10) {
        paths = relays.map { Path(name: $0) }
        self.misses = max(1, misses)
        self.rise = max(1, rise)
        self.holdDown = holdDown
    }

    /// Whether any relay is up now.
    public var anyUp: Bool { paths.contains { $0.up } }

    /// Takes one round of probes (relay name → answered) at `now`; returns the new choice when it
    /// changed, else nil.
    public mutating func record(_ answers: [String: Bool], at now: Date) -> String? {
        for index in paths.indices {
            guard let answered = answers[paths[index].name] else { continue }
            if answered {
                paths[index].answeredInARow += 1
                paths[index].missedInARow = 0
                if !paths[index].up, paths[index].answeredInARow >= rise {
                    paths[index].up = true
                    paths[index].upSince = now
                }
            } else {
                paths[index].missedInARow += 1
                paths[index].answeredInARow = 0
                if paths[index].up, paths[index].missedInARow >= misses { paths[index].up = false }
            }
        }
        let before = chosen
        chosen = choice(at: now) ?? chosen
        return chosen != before ? chosen : nil
    }

    /// The relay to route through now, or nil to keep the current choice.
    func choice(at now: Date) -> String? {
        let currentUp = paths.first { $0.name == chosen }?.up ?? false
        for path in paths {
            if currentUp {
                // Off a working relay only for a more preferred one, up for the hold-down time.
                if path.name == chosen { return path.name }
                if path.up, now.timeIntervalSince(path.upSince) >= holdDown { return path.name }
            } else if path.up || path.answeredInARow > 0 {
                // Off a dead relay (or a first choice): the first that answers.
                return path.name
            }
        }
        return nil
    }
}
