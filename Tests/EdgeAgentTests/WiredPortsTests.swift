@testable import EdgeAgent
import EdgeModel
import EdgeRender
import Foundation
import Testing

/// A tree laid out like sysfs under a root: `sys/devices/<device>/net/<name>` with `type`,
/// `address`, `uevent` and a `device` link, `sys/class/net/<name>` linking to it, as the kernel has them.
struct FakeSysfs {
    let root: String
    var classNet: String { root + "/sys/class/net" }

    init(root: String) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root + "/sys/class/net", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/sys/bus/usb", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/sys/bus/platform", withIntermediateDirectories: true)
    }

    /// A port `name` of the device at `device` (a path under /sys/devices). `device` nil: a virtual
    /// interface (no device link, under devices/virtual/net). `subsystem`: the device's bus.
    func port(_ name: String, mac: String, device: String?, type: Int = 1, subsystem: String? = nil,
              devtype: String? = nil, wireless: Bool = false) throws {
        let folder = root + "/sys/devices/" + (device ?? "virtual") + "/net/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("\(type)\n".utf8).write(to: URL(fileURLWithPath: folder + "/type"))
        try Data("\(mac)\n".utf8).write(to: URL(fileURLWithPath: folder + "/address"))
        try Data(("INTERFACE=\(name)\nIFINDEX=2\n" + (devtype.map { "DEVTYPE=\($0)\n" } ?? "")).utf8)
            .write(to: URL(fileURLWithPath: folder + "/uevent"))
        if device != nil { try FileManager.default.createSymbolicLink(atPath: folder + "/device", withDestinationPath: "../..") }
        if wireless { try FileManager.default.createDirectory(atPath: folder + "/wireless", withIntermediateDirectories: true) }
        if let device, let subsystem {
            let link = root + "/sys/devices/" + device + "/subsystem"
            if !FileManager.default.fileExists(atPath: link) {
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: root + "/sys/bus/" + subsystem)
            }
        }
        try FileManager.default.createSymbolicLink(atPath: classNet + "/" + name,
                                                   withDestinationPath: "../../devices/" + (device ?? "virtual") + "/net/" + name)
    }

    /// The kernel's names gone (a reboot), before the ports are laid out again.
    func removeAll() throws {
        for folder in [classNet, root + "/sys/devices"] where FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.removeItem(atPath: folder)
        }
        try FileManager.default.createDirectory(atPath: classNet, withIntermediateDirectories: true)
    }

    func order() -> [String] { (WiredPorts.scan(classNet) ?? []).map(\.name) }

    // Real boards' device paths.
    static let pi4Onboard = "platform/scb/fd580000.ethernet"
    static func pi4USB(_ port: String) -> String { "platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-\(port)/2-\(port):1.0" }
    static let pi3Onboard = "platform/soc/3f980000.usb/usb1/1-1/1-1.1/1-1.1.1/1-1.1.1:1.0"
    static func pi3USB(_ port: String) -> String { "platform/soc/3f980000.usb/usb1/1-1/1-1.\(port)/1-1.\(port):1.0" }
    static func pci(_ bus: String) -> String { "pci0000:00/0000:00:1c.0/0000:\(bus):00.0" }
}

@Suite struct WiredPortsTests {
    static func withSysfs(_ body: (FakeSysfs, AgentPaths) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-ports-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try body(try FakeSysfs(root: root), AgentPaths(root: root))
    }

    @Test("a PC: PCI order, hex bus numbers as hex, whatever the kernel's names; virtual and wireless interfaces are not ports")
    func pciOrder() throws {
        try Self.withSysfs { sysfs, _ in
            try sysfs.port("eth0", mac: "00:1b:21:00:00:0a", device: FakeSysfs.pci("0a"), subsystem: "pci")
            try sysfs.port("eth1", mac: "00:1b:21:00:00:02", device: FakeSysfs.pci("02"), subsystem: "pci")
            try sysfs.port("eth2", mac: "00:1b:21:00:00:01", device: FakeSysfs.pci("01"), subsystem: "pci")
            try sysfs.port("br0", mac: "02:00:00:00:00:01", device: nil, devtype: "bridge")
            try sysfs.port("veth0", mac: "02:00:00:00:00:02", device: nil)
            try sysfs.port("wg-relay", mac: "00:00:00:00:00:00", device: nil, type: 65534)
            try sysfs.port("lo", mac: "00:00:00:00:00:00", device: nil, type: 772)
            try sysfs.port("wlan0", mac: "dc:a6:32:00:00:09", device: "pci0000:00/0000:00:1c.0/0000:03:00.0", subsystem: "pci",
                           devtype: "wlan", wireless: true)
            try sysfs.port("wwan0", mac: "02:00:00:00:00:03", device: FakeSysfs.pci("04"), subsystem: "pci", devtype: "wwan")
            #expect(sysfs.order() == ["eth2", "eth1", "eth0"])
        }
    }

    @Test("a Pi 4: the onboard bcmgenet port is first (the uplink), the USB adapter second, even when the adapter probed first")
    func pi4() throws {
        try Self.withSysfs { sysfs, _ in
            try sysfs.port("eth0", mac: "00:e0:4c:68:00:01", device: FakeSysfs.pi4USB("1"), subsystem: "usb")
            try sysfs.port("eth1", mac: "dc:a6:32:01:02:03", device: FakeSysfs.pi4Onboard, subsystem: "platform")
            let ports = try #require(WiredPorts.scan(sysfs.classNet))
            #expect(ports.map(\.name) == ["eth1", "eth0"])
            #expect(ports.map(\.isUSB) == [false, true])
            #expect(ports[0].devicePath == sysfs.root + "/sys/devices/" + FakeSysfs.pi4Onboard)
        }
    }

    @Test("a Pi 3B+: the onboard lan78xx sits on the internal USB hub at 1-1.1.1 and still sorts before any adapter")
    func pi3BPlus() throws {
        try Self.withSysfs { sysfs, _ in
            try sysfs.port("eth0", mac: "00:e0:4c:68:00:02", device: FakeSysfs.pi3USB("1.3"), subsystem: "usb")
            try sysfs.port("eth1", mac: "00:e0:4c:68:00:03", device: FakeSysfs.pi3USB("2"), subsystem: "usb")
            try sysfs.port("eth2", mac: "b8:27:eb:00:00:01", device: FakeSysfs.pi3Onboard, subsystem: "usb")
            let ports = try #require(WiredPorts.scan(sysfs.classNet))
            #expect(ports.map(\.name) == ["eth2", "eth0", "eth1"])
            #expect(ports.map(\.isUSB) == [true, true, true])
        }
    }

    @Test("USB ports in natural order (1-1.2 before 1-1.10), by subsystem too, and by MAC when the paths are equal")
    func naturalOrder() throws {
        try Self.withSysfs { sysfs, _ in
            try sysfs.port("eth0", mac: "00:e0:4c:00:00:10", device: "pci0000:00/0000:00:14.0/usb1/1-1/1-1.10/1-1.10:1.0", subsystem: "usb")
            try sysfs.port("eth1", mac: "00:e0:4c:00:00:02", device: "pci0000:00/0000:00:14.0/usb1/1-1/1-1.2/1-1.2:1.0", subsystem: "usb")
            // No /usbN/ in its path, but on the usb bus: still a USB port, so after the onboard one.
            try sysfs.port("eth2", mac: "00:e0:4c:00:00:03", device: "platform/gadget.0", subsystem: "usb")
            try sysfs.port("eth3", mac: "00:11:22:33:44:55", device: "platform/ff540000.ethernet", subsystem: "platform")
            #expect(sysfs.order() == ["eth3", "eth1", "eth0", "eth2"])
        }
        #expect(WiredPorts.naturalOrder("a/1-1.2:1.0", "a/1-1.10:1.0") == .orderedAscending)
        #expect(WiredPorts.naturalOrder("pci0000:00/0000:0a:00.0", "pci0000:00/0000:02:00.0") == .orderedDescending)
        #expect(WiredPorts.naturalOrder("x/usb2/2-1", "x/usb10/10-1") == .orderedAscending)
        let a = WiredPort(name: "eth1", mac: "00:00:00:00:00:02", devicePath: "/p", isUSB: false)
        let b = WiredPort(name: "eth0", mac: "00:00:00:00:00:01", devicePath: "/p", isUSB: false)
        #expect([a, b].sorted(by: WiredPorts.inRoleOrder).map(\.name) == ["eth0", "eth1"])
    }

    @Test("no sysfs at all (a tree prepared offline) is no ports, not zero ports")
    func offlineTree() throws {
        #expect(WiredPorts.scan("/nonexistent-\(UUID().uuidString)/sys/class/net") == nil)
        try Self.withSysfs { sysfs, _ in #expect(WiredPorts.scan(sysfs.classNet) == []) }
    }

    static let autoRouter = Router(slot: 1, priority: 200, generation: 1, uplink: .auto, lan: .auto,
                                   tunnelAddress: IPv6Address("fd00::1")!, lanAddress: IPv6Address("fd00:1::2")!)

    @Test("the pin file round trip: written atomically under the state folder, read back the same")
    func pinFile() throws {
        try Self.withSysfs { _, paths in
            let pinning = PortPinning(paths: paths)
            #expect(pinning.load() == PinnedPorts())
            let pins = PinnedPorts(uplink: "dc:a6:32:01:02:03", lan: "00:e0:4c:68:00:01")
            try pinning.save(pins)
            #expect(pinning.file == paths.root + "/var/lib/edgekit/ports.json")
            #expect(pinning.load() == pins)
            let text = try String(contentsOfFile: pinning.file, encoding: .utf8)
            #expect(text.contains("\"uplink\" : \"dc:a6:32:01:02:03\"") && text.hasSuffix("}\n"), "\(text)")
            var info = stat()
            #expect(stat(pinning.file, &info) == 0 && info.st_mode & 0o777 == 0o644)
            // Nothing left beside it (no temporary file).
            #expect(try FileManager.default.contentsOfDirectory(atPath: paths.state) == ["ports.json"])
        }
    }

    @Test("pins are kept when the kernel probes the ports in another order, and moved only when a pinned port is gone")
    func pinsKeepAndMove() throws {
        try Self.withSysfs { sysfs, paths in
            let pinning = PortPinning(paths: paths)
            let onboard = "dc:a6:32:01:02:03", adapter = "00:e0:4c:68:00:01", replacement = "00:e0:4c:68:00:99"
            try sysfs.port("eth0", mac: onboard, device: FakeSysfs.pi4Onboard, subsystem: "platform")
            try sysfs.port("eth1", mac: adapter, device: FakeSysfs.pi4USB("1"), subsystem: "usb")
            let first = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(first.pins == PinnedPorts(uplink: onboard, lan: adapter))
            #expect(first.lines == ["ports: uplink auto: pinned \(onboard) (eth0, onboard)",
                                    "ports: LAN auto: pinned \(adapter) (eth1, USB)"])
            try pinning.save(first.pins)

            // Next boot: the adapter probed first and is eth0 now; the pins hold, nothing to say.
            try sysfs.removeAll()
            try sysfs.port("eth0", mac: adapter, device: FakeSysfs.pi4USB("1"), subsystem: "usb")
            try sysfs.port("eth1", mac: onboard, device: FakeSysfs.pi4Onboard, subsystem: "platform")
            let again = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(again.pins == first.pins && again.lines.isEmpty, "\(again)")

            // Even a pin the rule would not choose today stays (the roles never swap under a running site).
            try pinning.save(PinnedPorts(uplink: adapter, lan: onboard))
            let kept = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(kept.pins == PinnedPorts(uplink: adapter, lan: onboard) && kept.lines.isEmpty)
            try pinning.save(first.pins)

            // The adapter replaced: the LAN moves to the new one, the uplink stays.
            try sysfs.removeAll()
            try sysfs.port("eth0", mac: onboard, device: FakeSysfs.pi4Onboard, subsystem: "platform")
            try sysfs.port("eth1", mac: replacement, device: FakeSysfs.pi4USB("2"), subsystem: "usb")
            let moved = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(moved.pins == PinnedPorts(uplink: onboard, lan: replacement))
            #expect(moved.lines == ["ports: LAN auto: pinned port \(adapter) is gone; moved to \(replacement) (eth1, USB)"])
            try pinning.save(moved.pins)

            // The adapter unplugged: no port for the LAN; its pin stays for when it comes back.
            try sysfs.removeAll()
            try sysfs.port("eth0", mac: onboard, device: FakeSysfs.pi4Onboard, subsystem: "platform")
            let missing = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(missing.pins == moved.pins)
            #expect(missing.lines == ["ports: LAN auto: pinned port \(replacement) is not present and no other wired Ethernet port is free (found: eth0, onboard); keeping its pin"])
        }
    }

    @Test("one port on a fresh device: the uplink is pinned, the LAN says it has none; a named or MAC port is not free for auto")
    func fewerPorts() throws {
        try Self.withSysfs { sysfs, paths in
            let pinning = PortPinning(paths: paths)
            try sysfs.port("eth0", mac: "dc:a6:32:01:02:03", device: FakeSysfs.pi4Onboard, subsystem: "platform")
            let one = pinning.resolve(for: Self.autoRouter, ports: WiredPorts.scan(sysfs.classNet))
            #expect(one.pins == PinnedPorts(uplink: "dc:a6:32:01:02:03", lan: nil))
            #expect(one.lines.last == "ports: LAN auto: no wired Ethernet port for it (found: eth0, onboard); its .link file matches the kernel's eth1 until one appears")

            try sysfs.port("eth1", mac: "00:e0:4c:68:00:01", device: FakeSysfs.pi4USB("1"), subsystem: "usb")
            var router = Self.autoRouter
            router.uplink = .mac("dc:a6:32:01:02:03")
            let lanOnly = pinning.resolve(for: router, ports: WiredPorts.scan(sysfs.classNet))
            #expect(lanOnly.pins == PinnedPorts(uplink: nil, lan: "00:e0:4c:68:00:01"), "the plan's uplink MAC is taken")
            router.uplink = .name("eth1")
            let named = pinning.resolve(for: router, ports: WiredPorts.scan(sysfs.classNet))
            #expect(named.pins == PinnedPorts(uplink: nil, lan: "dc:a6:32:01:02:03"), "the plan's uplink name is taken")
            // Nothing auto: no pins, nothing said.
            router.lan = .name("eth0")
            #expect(pinning.resolve(for: router, ports: WiredPorts.scan(sysfs.classNet)) == (PinnedPorts(), []))
        }
    }
}

/// `edgekit-agent apply` with the plan's `auto` ports and a fake sysfs under `--root`.
@Suite struct PortPinningApplyTests {
    static let onboard = "dc:a6:32:01:02:03"
    static let adapter = "00:e0:4c:68:00:01"
    static let replacement = "00:e0:4c:68:00:99"

    /// The two ports of a Pi 4, the USB adapter probed first (eth0) unless `swapped`.
    static func pi4(_ sysfs: FakeSysfs, swapped: Bool = false, adapter: String = adapter) throws {
        try sysfs.removeAll()
        try sysfs.port(swapped ? "eth1" : "eth0", mac: adapter, device: FakeSysfs.pi4USB("1"), subsystem: "usb")
        try sysfs.port(swapped ? "eth0" : "eth1", mac: onboard, device: FakeSysfs.pi4Onboard, subsystem: "platform")
    }

    static func link(_ root: String, _ path: String) -> String {
        (try? String(contentsOfFile: root + path, encoding: .utf8)) ?? ""
    }

    @Test("apply pins the auto ports and renders MACAddress= .link files; a reboot with the ports swapped keeps them; a replaced adapter moves the LAN")
    func applyPins() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let sysfs = try FakeSysfs(root: root)
            try Self.pi4(sysfs)
            let stick = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let pins = root + "/var/lib/edgekit/ports.json"

            let dry = try scratch.apply(root, stick, ["--dry-run"])
            #expect(dry.status == 0, "\(dry)")
            #expect(dry.stdout.contains("ports: uplink auto: pinned \(Self.onboard) (eth1, onboard)"), "\(dry)")
            #expect(!FileManager.default.fileExists(atPath: pins), "a dry run pins nothing")

            let first = try scratch.apply(root, stick)
            #expect(first.status == 0, "\(first)")
            #expect(first.stdout.contains("applied generation 1"), "\(first)")
            #expect(first.stdout.contains("ports: uplink auto: pinned \(Self.onboard) (eth1, onboard)\nports: LAN auto: pinned \(Self.adapter) (eth0, USB)\n"), "\(first)")
            let uplink = Self.link(root, ConfigPaths.uplinkLink), lan = Self.link(root, ConfigPaths.lanLink)
            #expect(uplink.contains("[Match]\n") && uplink.contains("\nMACAddress=\(Self.onboard)\nType=ether\n\n[Link]\nName=uplink0\n"), "\(uplink)")
            #expect(lan.contains("\nMACAddress=\(Self.adapter)\nType=ether\n\n[Link]\nName=lan0\n"), "\(lan)")
            #expect(!uplink.contains("OriginalName") && !lan.contains("OriginalName"))
            let saved = try JSONDecoder().decode(PinnedPorts.self, from: try #require(FileManager.default.contents(atPath: pins)))
            #expect(saved == PinnedPorts(uplink: Self.onboard, lan: Self.adapter))

            let status = try runTool("edgekit-agent", ["status", "--root", root])
            #expect(status.stdout.contains("ports         uplink \(Self.onboard) (eth1), lan \(Self.adapter) (eth0) (pinned for auto)\n"), "\(status)")
            let json = try ApplyTests.status(root)
            let ports = try #require(json["ports"] as? [[String: Any]], "\(json)")
            #expect(ports.map { $0["role"] as? String } == ["uplink", "lan"])
            #expect(ports.map { $0["mac"] as? String } == [Self.onboard, Self.adapter])
            #expect(ports.map { $0["name"] as? String } == ["eth1", "eth0"])

            // The next boot probes the onboard port first: same pins, same files, nothing to do.
            try Self.pi4(sysfs, swapped: true)
            let applied = storedTree(root)
            let again = try scratch.apply(root, stick)
            #expect(again.stdout == "generation 1 already applied (site site-a router 2, serial 1000): nothing changed, nothing restarted\n", "\(again)")
            #expect(storedTree(root) == applied)
            // A repair renders the applied profile again, with the same pins: nothing drifted.
            let repair = try runTool("edgekit-agent", ["apply", "--root", root, "--repair"])
            #expect(repair.stdout.contains("drift=0"), "\(repair)")

            // The adapter replaced: the LAN moves to the new one (one line says so), the uplink stays.
            try Self.pi4(sysfs, adapter: Self.replacement)
            let moved = try scratch.apply(root, stick)
            #expect(moved.status == 0, "\(moved)")
            #expect(moved.stdout.contains("applied generation 2"), "\(moved)")
            #expect(moved.stdout.contains("change \(ConfigPaths.lanLink)\n") && !moved.stdout.contains(ConfigPaths.uplinkLink), "\(moved)")
            #expect(moved.stdout.contains("ports: LAN auto: pinned port \(Self.adapter) is gone; moved to \(Self.replacement) (eth0, USB)\n"), "\(moved)")
            #expect(Self.link(root, ConfigPaths.lanLink).contains("MACAddress=\(Self.replacement)\n"))
            #expect(Self.link(root, ConfigPaths.uplinkLink) == uplink)
        }
    }

    @Test("a tree without sysfs (prepared offline) pins nothing and keeps the kernel-order form, silently")
    func offline() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("a", slot: 2, serial: 1000)
            let first = try scratch.apply(root, stick)
            #expect(first.status == 0 && !first.stdout.contains("ports:"), "\(first)")
            #expect(Self.link(root, ConfigPaths.uplinkLink).contains("\nOriginalName=eth0\nType=ether\n"))
            #expect(!FileManager.default.fileExists(atPath: root + "/var/lib/edgekit/ports.json"))
            #expect(try ApplyTests.status(root)["ports"] is NSNull)
        }
    }
}
