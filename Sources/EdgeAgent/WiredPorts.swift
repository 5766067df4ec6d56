import EdgeModel
import EdgeRender
import EdgeSystem
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// A physical wired Ethernet port as sysfs shows it (`/sys/class/net/NAME`).
public struct WiredPort: Sendable, Equatable {
    /// The kernel's name now (`eth0`, or `uplink0` once a `.link` file renamed it).
    public var name: String
    /// `address`, lower case, colon separated.
    public var mac: String
    /// The port's device with every link resolved, e.g.
    /// `/sys/devices/platform/scb/fd580000.ethernet`: what orders the ports.
    public var devicePath: String
    /// On a USB bus (a `/usbN/` component in the device path, or the device's subsystem is usb).
    public var isUSB: Bool

    /// `eth0 onboard` / `eth1 USB`, for log lines.
    public var summary: String { "\(name), \(isUSB ? "USB" : "onboard")" }
}

/// Which wired port is the uplink and which the LAN when the plan says `auto` (docs/network.md,
/// "Interface names"): the kernel's probe order is not stable when the ports use different drivers
/// (a Pi's onboard port and a USB adapter), so the agent orders them by what they are and where they
/// sit, and pins its choice by MAC address at the first apply.
public enum WiredPorts {
    /// Every physical wired Ethernet port under `classNet` (`/sys/class/net`), in role order:
    /// onboard ports before USB ports, then by device path in natural order (PCI `0000:01:00.0`
    /// before `0000:02:00.0`, USB `1-1.2` before `1-1.10`), then by MAC address. Physical: `type` 1
    /// (ARPHRD_ETHER), a `device` link (bridges, veths, WireGuard, dummies have none), not wireless
    /// and no other DEVTYPE (wlan, wwan, bridge, vlan). Nil when there is no `classNet` at all: a
    /// tree prepared offline (`--root`) has no ports to look at.
    public static func scan(_ classNet: String) -> [WiredPort]? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: classNet) else { return nil }
        let ports = names.compactMap { name -> WiredPort? in
            let folder = classNet + "/" + name
            func read(_ file: String) -> String? {
                (try? String(contentsOfFile: folder + "/" + file, encoding: .utf8))?.trimmingWhitespace()
            }
            guard read("type") == "1",
                  let device = resolved(folder + "/device"),
                  !FileManager.default.fileExists(atPath: folder + "/wireless"),
                  !FileManager.default.fileExists(atPath: folder + "/phy80211"),
                  !(read("uevent") ?? "").split(separator: "\n").contains(where: { $0.hasPrefix("DEVTYPE=") }),
                  let mac = read("address")?.lowercased(), isMAC(mac) else { return nil }
            let subsystem = resolved(device + "/subsystem").map(\.lastPathComponent)
            let onUSBBus = device.split(separator: "/").contains { $0.hasPrefix("usb") && Int($0.dropFirst(3)) != nil }
            return WiredPort(name: name, mac: mac, devicePath: device, isUSB: onUSBBus || subsystem == "usb")
        }
        return ports.sorted(by: inRoleOrder)
    }

    /// Onboard first, then device path (natural order), then MAC, then name.
    static func inRoleOrder(_ a: WiredPort, _ b: WiredPort) -> Bool {
        if a.isUSB != b.isUSB { return !a.isUSB }
        let byPath = naturalOrder(a.devicePath, b.devicePath)
        if byPath != .orderedSame { return byPath == .orderedAscending }
        if a.mac != b.mac { return a.mac < b.mac }
        return a.name < b.name
    }

    /// Path components compared in turn: PCI addresses (`0000:0a:00.0`, fixed-width hex) as text,
    /// anything else with runs of digits compared as numbers (`1-1.2` before `1-1.10`).
    static func naturalOrder(_ a: String, _ b: String) -> ComparisonResult {
        let left = a.split(separator: "/"), right = b.split(separator: "/")
        for (x, y) in zip(left, right) where x != y {
            if isPCIAddress(x) && isPCIAddress(y) { return x < y ? .orderedAscending : .orderedDescending }
            let order = naturalOrder(component: x, y)
            if order != .orderedSame { return order }
        }
        return left.count == right.count ? .orderedSame : (left.count < right.count ? .orderedAscending : .orderedDescending)
    }

    static func naturalOrder(component a: Substring, _ b: Substring) -> ComparisonResult {
        let left = runs(a), right = runs(b)
        for (x, y) in zip(left, right) where x != y {
            if let m = UInt64(x), let n = UInt64(y), m != n { return m < n ? .orderedAscending : .orderedDescending }
            return x < y ? .orderedAscending : .orderedDescending
        }
        return left.count == right.count ? .orderedSame : (left.count < right.count ? .orderedAscending : .orderedDescending)
    }

    /// `1-1.10:1.0` → `1`, `-`, `1`, `.`, `10`, `:`, `1`, `.`, `0`.
    static func runs(_ text: Substring) -> [Substring] {
        var result: [Substring] = []
        var start = text.startIndex
        for index in text.indices.dropFirst() where text[index].isASCIIDigit != text[text.index(before: index)].isASCIIDigit {
            result.append(text[start..<index])
            start = index
        }
        if start < text.endIndex { result.append(text[start...]) }
        return result
    }

    static func isPCIAddress(_ text: Substring) -> Bool {
        let hex = "0123456789abcdef"
        let shape = text.map { hex.contains($0) ? "x" : String($0) }.joined()
        return shape == "xxxx:xx:xx.x"
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && UInt8($0, radix: 16) != nil }
            && text != "00:00:00:00:00:00"
    }

    /// `path` with every symbolic link resolved, or nil when it does not exist.
    static func resolved(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

/// The agent's pins of `auto` ports (`/var/lib/edgekit/ports.json`): made at the first apply that
/// finds the ports, kept by every later one (a new stick, a reboot with the ports probed in another
/// order), and moved only when a pinned port is gone (a USB adapter replaced).
public struct PortPinning {
    public let paths: AgentPaths

    public init(paths: AgentPaths) { self.paths = paths }

    /// Where the ports are read: `/sys/class/net` under the root (a test lays out a tree there).
    public var classNet: String { paths.live("/sys/class/net") }
    public var file: String { paths.portPins }

    /// The pins on disk; none when there is no file (or it cannot be read: the ports are picked again).
    public func load() -> PinnedPorts {
        FileManager.default.contents(atPath: file).flatMap { try? JSONDecoder().decode(PinnedPorts.self, from: $0) }
            ?? PinnedPorts()
    }

    /// Writes `pins` atomically and durably (a temporary file, fsync, rename, fsync of the folder).
    public func save(_ pins: PinnedPorts) throws {
        try save(pins, steps: CrashPoints())
    }

    /// `save`, as a step of an apply (`steps`: the apply's crash points).
    func save(_ pins: PinnedPorts, steps: CrashPoints) throws {
        try DurableFiles.makeDirectories(paths.state, steps: steps)
        steps.step("write \(file)")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            try AtomicFile.write(try encoder.encode(pins) + Data("\n".utf8), to: file, mode: 0o644, replace: true)
        } catch {
            throw AgentError.cannotWrite(file, "\(error)")
        }
    }

    /// The pins `router` needs, and one line for each role that was pinned, moved, or has no port.
    /// A role the plan names or pins by MAC itself gets none, and its port is not free for `auto`.
    /// A pin whose MAC is present stays; a role without one gets the first free port in role order
    /// (`WiredPorts.scan`), so on a fresh device the first port is the uplink and the second the LAN.
    /// Without `ports` (no sysfs: a tree prepared offline) the pins stay as they are, silently.
    public func resolve(for router: Router, ports found: [WiredPort]?) -> (pins: PinnedPorts, lines: [String]) {
        let before = load()
        guard let ports = found else { return (before, []) }
        var pins = PinnedPorts()
        // Ports the plan gives a role by name or MAC are not free.
        var taken = Set<String>()
        for match in [router.uplink, router.lan] {
            switch match {
            case .auto: break
            case .name(let name): taken.formUnion(ports.filter { $0.name == name }.map(\.mac))
            case .mac(let mac): taken.insert(mac.lowercased())
            }
        }
        let roles: [(role: String, key: WritableKeyPath<PinnedPorts, String?>, auto: Bool, kernelName: String)] = [
            ("uplink", \.uplink, router.uplink == .auto, "eth0"), ("LAN", \.lan, router.lan == .auto, "eth1"),
        ]
        // Pins whose port is still there first, so a new pick never takes a pinned port.
        for role in roles where role.auto {
            if let mac = before[keyPath: role.key], ports.contains(where: { $0.mac == mac }), !taken.contains(mac) {
                pins[keyPath: role.key] = mac
                taken.insert(mac)
            }
        }
        var lines: [String] = []
        for role in roles where role.auto && pins[keyPath: role.key] == nil {
            let old = before[keyPath: role.key]
            guard let port = ports.first(where: { !taken.contains($0.mac) }) else {
                let found = ports.isEmpty ? "none" : ports.map(\.summary).joined(separator: "; ")
                if let old {
                    // An adapter unplugged for a moment must not lose its role: keep the pin.
                    pins[keyPath: role.key] = old
                    taken.insert(old)
                    lines.append("ports: \(role.role) auto: pinned port \(old) is not present and no other wired Ethernet port is free "
                                 + "(found: \(found)); keeping its pin")
                } else {
                    lines.append("ports: \(role.role) auto: no wired Ethernet port for it (found: \(found)); "
                                 + "its .link file matches the kernel's \(role.kernelName) until one appears")
                }
                continue
            }
            pins[keyPath: role.key] = port.mac
            taken.insert(port.mac)
            if let old {
                lines.append("ports: \(role.role) auto: pinned port \(old) is gone; moved to \(port.mac) (\(port.summary))")
            } else {
                lines.append("ports: \(role.role) auto: pinned \(port.mac) (\(port.summary))")
            }
        }
        return (pins, lines)
    }
}
