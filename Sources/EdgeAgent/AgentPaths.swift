import EdgeErrors
import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Where the agent reads and writes, all under one root: `/` on the appliance, a scratch folder in
/// tests and when preparing a tree offline (DESIGN.md, "Paths on the appliance").
public struct AgentPaths: Sendable, Equatable {
    /// The root every absolute path is taken under; `/` on the appliance.
    public var root: String

    public init(root: String = "/") {
        var cleaned = root
        while cleaned.count > 1 && cleaned.hasSuffix("/") { cleaned.removeLast() }
        self.root = cleaned.isEmpty ? "/" : cleaned
    }

    public var isSystemRoot: Bool { root == "/" }

    /// `absolute` (e.g. `/etc/radvd.conf`) under the root.
    public func live(_ absolute: String) -> String {
        isSystemRoot ? absolute : root + absolute
    }

    public var siteIdentity: String { live("/etc/edgekit/site.identity") }
    public var operatorKey: String { live("/etc/edgekit/operator.pub") }
    public var siteStamp: String { live(Self.stampPath) }
    public static let stampPath = "/etc/edgekit/site.json"

    /// Persistent state: generations, the `current`/`previous` links, the transition journal.
    public var state: String { live(Self.stateDirectory) }
    public static let stateDirectory = "/var/lib/edgekit"
    public var generations: String { state + "/generations" }
    public var staging: String { state + "/staging" }
    public var current: String { state + "/current" }
    public var previous: String { state + "/previous" }
    /// Written before a switch, removed when the services run the new files (docs/agent.md).
    public var journal: String { state + "/transition.json" }
    /// Services of the current generation that did not come up (docs/agent.md, "Restarts and rollback").
    public var failedServices: String { state + "/failed-services.json" }
    /// The MAC addresses of the ports the agent chose for a plan's `auto` uplink and LAN (docs/network.md,
    /// "Interface names"): device facts, kept across generations, sticks and reboots.
    public var portPins: String { state + "/ports.json" }

    /// Runtime state, gone at reboot on the appliance (tmpfs): VRRP state, status, notify socket, pids.
    public var runtime: String { live("/run/edgekit") }
    public var notifySocket: String { runtime + "/agent.sock" }
    public var vrrpState: String { runtime + "/vrrp-state" }
    public var statusFile: String { runtime + "/status.json" }
    /// Pid files and logs of daemons started by `ChildProcessServices`.
    public var processes: String { runtime + "/processes" }

    public func generation(_ number: Int) -> String { generations + "/\(number)" }
}

extension SiteStamp {
    /// Reads and decodes the stamp (`EdgeModel.SiteStamp`); a missing or malformed one is an
    /// `AgentError.badImageFile`.
    public static func load(from path: String) throws -> SiteStamp {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError.badImageFile(path, "missing or unreadable; the image was not stamped for a site")
        }
        do {
            return try DocumentCoding.decode(SiteStamp.self, from: data)
        } catch {
            throw AgentError.badImageFile(path, "not a site stamp ({\"plan\", \"site\", \"hostname\"}): \(error)", cause: ErrorCause(error))
        }
    }
}
