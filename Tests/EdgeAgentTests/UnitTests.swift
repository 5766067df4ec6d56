import Foundation
import Testing

/// The agent's systemd unit from overlays/, checked by systemd itself.
@Suite struct UnitTests {
    static let overlay = packageRoot.appendingPathComponent("overlays/etc/systemd/system").path

    /// `systemd-analyze verify` in a scratch root with systemd's own units and stand-ins for the
    /// programs edgekit's units start.
    func verify(_ contents: String, as unit: String = "edgekit-agent.service", in scratch: Scratch,
                beside others: [String: String] = [:]) throws -> ToolResult {
        let root = scratch.path("unit-root-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/systemd", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/usr/local/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/usr/local/sbin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/etc/systemd/system", withIntermediateDirectories: true)
        #expect(try runSystem("cp", ["-a", "/lib/systemd/system", root + "/usr/lib/systemd/"]).status == 0)
        for program in ["/usr/local/bin/edgekit-agent", "/usr/local/sbin/edgekit-grow-data"] {
            FileManager.default.createFile(atPath: root + program, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        }
        for (name, text) in others.merging([unit: contents], uniquingKeysWith: { $1 }) {
            try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/etc/systemd/system/" + name))
        }
        return try runSystem("systemd-analyze", ["verify", "--man=no", "--root=\(root)", "/etc/systemd/system/" + unit])
    }

    /// Reads `unit` from overlays/ and expects systemd-analyze to accept it as it is, without a
    /// warning, and to name `complaint` once `broken.0` is replaced by `broken.1`; nil where
    /// systemd-analyze is missing (recorded as an issue).
    func expectVerifies(_ unit: String, broken: (String, String), complaint: String, beside others: [String] = []) throws -> String? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            Issue.record("systemd-analyze is missing: run ./build.sh to install systemd")
            return nil
        }
        let text = try String(contentsOfFile: Self.overlay + "/" + unit, encoding: .utf8)
        var neighbours: [String: String] = [:]
        for other in others { neighbours[other] = try String(contentsOfFile: Self.overlay + "/" + other, encoding: .utf8) }
        try Scratch.with { scratch in
            let good = try verify(text, as: unit, in: scratch, beside: neighbours)
            #expect(good.status == 0, "\(good)")
            #expect(good.stderr.isEmpty, "systemd-analyze warned: \(good)")
            #expect(text.contains(broken.0), "the broken copy must differ from the good one")
            let bad = try verify(text.replacingOccurrences(of: broken.0, with: broken.1), as: unit, in: scratch, beside: neighbours)
            #expect(bad.stderr.contains(complaint), "\(bad)")
        }
        return text
    }

    /// The rpi board's unit that makes the data partition (docs/image.md, "Growing to the card"):
    /// accepted, a oneshot that stays active (the mount requires it), its lines on the console.
    @Test("systemd-analyze verify accepts edgekit-grow-data.service and flags a broken copy")
    func growDataUnitVerifies() throws {
        guard let unit = try expectVerifies("edgekit-grow-data.service", broken: ("Type=oneshot", "Type=oneshoot"), complaint: "oneshoot") else {
            return
        }
        for line in ["Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/local/sbin/edgekit-grow-data", "StandardError=journal+console"] {
            #expect(unit.split(separator: "\n").contains { $0 == line }, "\(line)")
        }
    }

    /// The site's hostname before the login prompts (docs/agent.md, "Hostname").
    @Test("systemd-analyze verify accepts edgekit-hostname.service, ordered before the gettys, and flags a broken copy")
    func hostnameUnitVerifies() throws {
        guard let unit = try expectVerifies("edgekit-hostname.service", broken: ("Type=oneshot", "Type=oneshoot"), complaint: "oneshoot") else {
            return
        }
        let lines = Set(unit.split(separator: "\n").map(String.init))
        for line in ["Type=oneshot", "ExecStart=/usr/local/bin/edgekit-agent hostname", "Wants=getty-pre.target",
                     "Before=getty-pre.target systemd-user-sessions.service edgekit-agent.service",
                     "After=etc-edgekit-site.mount", "ConditionPathExists=/etc/edgekit/site.json"] {
            #expect(lines.contains(line), "\(line)")
        }
        #expect(!unit.contains("ProtectHostname=yes"), "sethostname(2) must reach the system")
        let wanted = Self.overlay + "/multi-user.target.wants/edgekit-hostname.service"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: wanted)) == "../edgekit-hostname.service", "enabled")
    }

    @Test("systemd-analyze verify accepts edgekit-agent.service and flags a broken copy")
    func agentUnitVerifies() throws {
        guard let unit = try expectVerifies("edgekit-agent.service", broken: ("ProtectHome=yes", "ProtectHomes=yes"),
                                            complaint: "Unknown key 'ProtectHomes'") else {
            return
        }
        // Documentation= must lead somewhere on the device. The image has no docs, man or info
        // pages (BaseRecipe excludes them), so only a file the overlay itself ships, or a web page, will do.
        for line in unit.split(separator: "\n") where line.hasPrefix("Documentation=") {
            for uri in line.dropFirst("Documentation=".count).split(separator: " ") {
                if uri.hasPrefix("file://") {
                    let path = String(uri.dropFirst("file://".count))
                    #expect(FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent("overlays").path + path),
                            "Documentation=\(uri): the image does not ship \(path)")
                } else {
                    #expect(uri.hasPrefix("https://") || uri.hasPrefix("http://"),
                            "Documentation=\(uri): the image has no man or info pages")
                }
            }
        }
        // The agent sets the system hostname from the site stamp: ProtectHostname= would forbid
        // sethostname(2) (and confine it to a private UTS namespace).
        #expect(!unit.split(separator: "\n").contains { $0.hasPrefix("ProtectHostname=") }, "the agent must be able to set the hostname")
        // What the boot test needs of it: the console line, READY after the boot apply, enabled.
        #expect(unit.contains("StandardError=journal+console"))
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("ExecStart=/usr/local/bin/edgekit-agent run"))
        let wants = Self.overlay + "/multi-user.target.wants/edgekit-agent.service"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: wants)) == "../edgekit-agent.service")
    }

    /// Updates on a schedule (docs/updates.md, "On a schedule"): the timer and the unit it starts.
    @Test("systemd-analyze verify accepts edgekit-update.timer and .service, enabled by timers.target, and flags broken copies")
    func updateTimerAndServiceVerify() throws {
        guard let service = try expectVerifies("edgekit-update.service", broken: ("Type=oneshot", "Type=oneshoot"), complaint: "oneshoot"),
              let timer = try expectVerifies("edgekit-update.timer", broken: ("OnUnitActiveSec=1h", "OnUnitActiveSec=1 fortnight"),
                                             complaint: "Failed to parse timer value, ignoring: 1 fortnight", beside: ["edgekit-update.service"]) else {
            return
        }
        let serviceLines = Set(service.split(separator: "\n").map(String.init))
        for line in ["ExecStart=/usr/local/bin/edgekit-agent update --from-relay --scheduled --reboot",
                     "ConditionPathExists=/etc/edgekit/site.json", "After=edgekit-agent.service var-lib-edgekit.mount edgekit-health.service"] {
            #expect(serviceLines.contains(line), "\(line)")
        }
        let timerLines = Set(timer.split(separator: "\n").map(String.init))
        for line in ["OnBootSec=30min", "OnUnitActiveSec=1h", "RandomizedDelaySec=15min", "WantedBy=timers.target"] {
            #expect(timerLines.contains(line), "\(line)")
        }
        let wanted = Self.overlay + "/timers.target.wants/edgekit-update.timer"
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: wanted)) == "../edgekit-update.timer", "enabled")
    }
}
