import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs the end-to-end lab (`lab/lab.sh`, issue 8) once with the binaries built next to this test
/// bundle, then checks its exit status and its report (`lab-report.md`): every figure is there and no
/// functional check failed. Two tests read that one run: the namespace scenarios, and site B's image
/// in qemu, each skipped with its reason (a trait, so the runner reports it skipped, not passed) when
/// this machine cannot run it. A few minutes.
@Suite(.serialized, .slow) struct LabTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where `swift build` put the executables (TestSupport's one locator).
    static let binDirectory = Products.binDirectory

    /// Every tool lab.sh checks for before it starts (its `for tool in …` line), plus those it uses
    /// without checking that are not in every base system.
    static let tools = ["ip", "nft", "wg", "wg-quick", "wireguard-go", "python3", "radvd", "keepalived", "dnsmasq", "busybox", "tcpdump",
                        "mcopy", "nsenter", "unshare", "sysctl", "ping"]

    static func installed(_ tool: String) -> Bool {
        ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
    }

    /// Why the lab cannot run here, or nil.
    static let missing: String? = {
        if geteuid() != 0 { return "needs root (network namespaces)" }
        if let tool = tools.first(where: { !installed($0) }) { return "\(tool) is missing: run ./build.sh deps" }
        for exe in ["edgekit", "edgekit-agent", "edgekit-relay"]
        where !FileManager.default.isExecutableFile(atPath: binDirectory.appendingPathComponent(exe).path) {
            return "\(exe) is not built next to the tests (swift build)"
        }
        return nil
    }()

    /// The static agent the qemu scenario's image carries (`./build.sh test` builds it).
    static var applianceAgent: String {
        ProcessInfo.processInfo.environment["EDGEKIT_AGENT_BINARY"]
            ?? packageRoot.appendingPathComponent(".build/appliance/edgekit-agent").path
    }

    /// Why the qemu scenario cannot run here, or nil. lab.sh checks the same and fails loudly; here a
    /// plain `swift test` without the appliance build runs the namespace scenarios and reports the
    /// qemu test as skipped, with this reason.
    static let qemuMissing: String? = {
        if let missing { return missing }
        if ProcessInfo.processInfo.environment["LAB_QEMU"] == "0" { return "LAB_QEMU=0" }
        if !installed("qemu-system-x86_64") { return "qemu-system-x86_64 is missing: run ./build.sh deps" }
        if !FileManager.default.fileExists(atPath: "/usr/share/OVMF/OVMF_CODE_4M.fd") { return "OVMF is missing: run ./build.sh deps" }
        if !FileManager.default.isExecutableFile(atPath: applianceAgent) { return "\(applianceAgent) is not built (./build.sh test builds it)" }
        return nil
    }()

    /// The aarch64 agent the arm64 image carries (`./build.sh test` cross-builds it and sets this).
    static var arm64Agent: String? { ProcessInfo.processInfo.environment["EDGEKIT_ARM64_AGENT_BINARY"] }

    /// Why the qemu scenario cannot boot site B's `arm64-uefi` image here, or nil.
    static let arm64QemuMissing: String? = {
        if let qemuMissing { return qemuMissing }
        if !installed("qemu-system-aarch64") { return "qemu-system-aarch64 is missing: run ./build.sh deps" }
        if !FileManager.default.fileExists(atPath: "/usr/share/AAVMF/AAVMF_CODE.fd") { return "AAVMF is missing: run ./build.sh deps" }
        guard let arm64Agent, FileManager.default.isExecutableFile(atPath: arm64Agent) else {
            return "no aarch64 agent (EDGEKIT_ARM64_AGENT_BINARY; ./build.sh test cross-builds it)"
        }
        return nil
    }()

    /// The report rows lab.sh must write for the namespace scenarios: (scenario, part of the figure).
    static let namespaceFigures = [
        ("boot", "routers start → all three registered"),
        ("SLAAC + RIO", "both servers have their /64 address and the /48 route"),
        ("ULA ping", "first reply server A → server B"),
        ("dual stack", "relay endpoint of b1 / a1 / a2"),
        ("dual stack", "b1 / a1 / a2 as the relay sees them"),
        ("mesh", "wg-quick up of the generated files → first reply sa → sb over the mesh /128s"),
        ("mesh", "relay capture on"),
        ("mesh", "third server sc: new files applied → first reply sc → sb across sites"),
        ("mesh", "third server sc joins: routers' rendered files and sticks"),
        ("uplink down (master)", "traffic gap server A → server B"),
        ("uplink down mended", "a1 master again after the mend"),
        ("uplink down mended", "traffic gap server A → server B while a1 takes the site back"),
        ("black hole (master)", "traffic gap server A → server B"),
        ("black hole mended", "a1 master again after the mend"),
        ("black hole mended", "traffic gap server A → server B while a1 takes the site back"),
        ("failover (kill -9 master)", "traffic gap server A → server B"),
        ("failover (kill -9 master)", "VIPs left on the killed a1's lan0"),
        ("stick swap", "spare start → registered with the relay"),
        ("stick swap", "spare start → first reply"),
        ("stick swap", "spare is master and owns site A's /64"),
        ("stick swap", "traffic gap while the spare took over"),
        ("stick swap", "20 pings A → B after the takeover"),
        ("graceful stop of the master", "traffic gap server A → server B"),
        ("tampered stick", "refusal: agent status stick, log line"),
        ("tampered stick", "traffic gap while the tampered spare booted"),
        ("relay restart", "edgekit-relay listening again"),
        ("relay restart", "traffic gap A → B"),
        ("relay restart", "registration accepted by the restarted relay"),
        ("relay crash (daemon + interface)", "registrations accepted by the relay while it came back"),
        ("relay crash (daemon + interface)", "interface gone → first reply"),
        ("relay crash (daemon + interface)", "traffic gap A → B"),
        // Several relays (issue 17.1, 17.2), after the qemu scenario in the same run.
        ("several relays", "routers start → all three registered with both relays"),
        ("several relays", "20 pings A → B: packets into the first relay / into relay two"),
        ("several relays", "relay two's status: routers' state"),
        ("crash with the units' restarts", "kill -9 of keepalived and the agent on the master"),
        ("crash with the units' restarts", "afterwards: VIPs / agents / both relays"),
        ("relay 1 dies hard", "traffic gap A → B"),
        ("relay 1 dies hard", "registrations at relay two in the 15 s after"),
        ("relay 1 comes back", "traffic gap A → B while site B moves back"),
        ("both relays down, one back", "first reply A → B"),
    ]

    static let qemuFigures = [
        ("qemu", "qemu start → the guest's agent starts"),
        ("qemu", "qemu start → b1's stick applied in the guest"),
        ("qemu", "qemu start → the guest registered with the relay"),
        ("qemu", "qemu start → first reply server A → server B through the guest"),
        ("qemu", "server B's next hop fe80::1"),
    ]

    /// One run of lab.sh, shared by both tests (the qemu scenario comes last in the same run).
    struct Run: Sendable {
        var status: Int32
        var log: String
        var report: String
        var seconds: Int
        var withQemu: Bool
    }

    static let run: Result<Run, LabRunError> = runLab()

    /// A second, shorter run: the start-up scenarios and the qemu one only, site B on `arm64-uefi`.
    static let arm64Run: Result<Run, LabRunError> = runLab(["LAB_ONLY": "qemu", "LAB_QEMU_BOARD": "arm64-uefi"])

    struct LabRunError: Error, CustomStringConvertible {
        var description: String
    }

    static func runLab(_ settings: [String: String] = [:]) -> Result<Run, LabRunError> {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-lab-report-\(UUID().uuidString).md")
        defer { try? FileManager.default.removeItem(at: report) }
        let process = Process()
        // Through coreutils' `env --default-signal`: every signal unblocked and at its default. The
        // child would inherit the spawning thread's mask, and test threads block SIGTERM (lab.sh's
        // graceful-stop scenario needs it); setting this thread's mask around `run()` was not enough
        // (CI17's second lab run still started with SIGINT, SIGTERM and SIGCHLD blocked).
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--default-signal", packageRoot.appendingPathComponent("lab/lab.sh").path]
        var environment = ProcessInfo.processInfo.environment
        environment["EDGEKIT_BIN_DIR"] = binDirectory.path
        environment["LAB_REPORT"] = report.path
        if qemuMissing != nil { environment["LAB_QEMU"] = "0" }
        environment.merge(settings) { _, setting in setting }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        do {
            try process.run()
        } catch {
            return .failure(LabRunError(description: "cannot start lab/lab.sh: \(error)"))
        }
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let text = (try? String(contentsOf: report, encoding: .utf8)) ?? ""
        let seconds = Int(Date().timeIntervalSince(started))
        let how = settings.isEmpty ? "" : " with " + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("lab/lab.sh\(how) took \(seconds) s (qemu scenario \(qemuMissing == nil ? "included" : "skipped: \(qemuMissing!)"))")
        return .success(Run(status: process.terminationStatus, log: log, report: text, seconds: seconds, withQemu: qemuMissing == nil))
    }

    /// A report row split into its cells (lab.sh escapes a `|` inside a value as `\|`).
    struct Row {
        var scenario: String
        var middle: String
        var target: String
        var verdict: String
        var line: String
    }

    static func rows(_ report: String) -> [Row] {
        report.split(separator: "\n").compactMap { line -> Row? in
            guard line.hasPrefix("| "), line.hasSuffix(" |"), !line.hasPrefix("| ---"), !line.hasPrefix("| scenario |") else { return nil }
            let cells = line.dropFirst(2).dropLast(2).components(separatedBy: " | ")
            guard cells.count >= 5 else { return Row(scenario: cells.first ?? "", middle: "", target: "", verdict: "", line: String(line)) }
            return Row(scenario: cells[0], middle: cells[1..<(cells.count - 2)].joined(separator: " | "),
                       target: cells[cells.count - 2], verdict: cells[cells.count - 1], line: String(line))
        }
    }

    /// Each expected figure has a complete row; a functional check (a target that is not a timing
    /// "<N s" and not "-") says met; a timing target says met or MISSED (reported, not failed here:
    /// timing under a loaded CI machine must not flake the suite; LAB_STRICT_TARGETS=1 fails lab.sh).
    func check(_ figures: [(String, String)], in run: Run) {
        let rows = Self.rows(run.report)
        for (scenario, figure) in figures {
            let row = rows.first { $0.scenario == scenario && $0.middle.contains(figure) }
            #expect(row != nil, "the report has no figure \"\(scenario): \(figure)\":\n\(run.report)")
            guard let row else { continue }
            #expect(!row.verdict.isEmpty, "incomplete row: \(row.line)")
            #expect(row.verdict != "FAIL", "a failed check in the report: \(row.line)")
            if row.target.hasPrefix("<") {
                #expect(["met", "MISSED"].contains(row.verdict), "a timing row without a verdict: \(row.line)")
                if row.verdict == "MISSED" { print("LabTests: timing target missed (reported, not failed): \(row.line)") }
            } else if row.target == "-" {
                #expect(row.verdict == "measured", "an informational row with a verdict: \(row.line)")
            } else {
                #expect(row.verdict == "met", "a functional check that did not pass: \(row.line)")
            }
        }
    }

    @Test("lab: sites, relay, dual stack, failover, stick swap, tampered stick, relay restart and crash, several relays (lab/lab.sh)",
          .enabled(if: LabTests.missing == nil, Comment(rawValue: LabTests.missing ?? "")))
    func namespaceScenarios() throws {
        let run = try Self.run.get()
        #expect(run.status == 0, "lab/lab.sh failed:\n\(run.log)")
        guard run.status == 0 else { return }
        check(Self.namespaceFigures, in: run)
        // The closing line must not claim more than the rows say.
        let missed = Self.rows(run.report).filter { $0.verdict == "MISSED" }.count
        let summary = missed == 0 ? "Every assertion passed and every timing target was met."
                                  : "Every functional assertion passed, but \(missed) timing target(s) were MISSED"
        #expect(run.report.contains(summary), "the report's closing line does not match its verdicts:\n\(run.report)")
    }

    @Test("lab: site B's real image in qemu registers with the lab relay and carries server A ↔ B traffic",
          .enabled(if: LabTests.qemuMissing == nil, Comment(rawValue: LabTests.qemuMissing ?? "")))
    func qemuScenario() throws {
        let run = try Self.run.get()
        #expect(run.withQemu)
        #expect(run.status == 0, "lab/lab.sh failed:\n\(run.log)")
        guard run.status == 0 else { return }
        check(Self.qemuFigures, in: run)
    }

    /// The same with site B on `arm64-uefi` (issue 15): its image, with the aarch64 agent, boots
    /// under qemu-system-aarch64 (`virt`, AAVMF) on the same taps, applies b1's stick, registers and
    /// carries the servers' traffic. A run of its own (`LAB_ONLY=qemu`: the start-up scenarios and
    /// this one), after the full run.
    @Test("lab: site B's arm64-uefi image in qemu-system-aarch64 registers with the lab relay and carries server A ↔ B traffic",
          .enabled(if: LabTests.arm64QemuMissing == nil, Comment(rawValue: LabTests.arm64QemuMissing ?? "")))
    func arm64QemuScenario() throws {
        let run = try Self.arm64Run.get()
        #expect(run.status == 0, "lab/lab.sh with site B on arm64-uefi failed:\n\(run.log)")
        guard run.status == 0 else { return }
        #expect(run.report.contains("site B on arm64-uefi"), "the report names the board:\n\(run.report)")
        check(Self.qemuFigures, in: run)
    }
}
