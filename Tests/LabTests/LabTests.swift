import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs the end-to-end namespace lab (`lab/lab.sh`, issue 8) with the binaries built next to this
/// test bundle, and checks its exit status and that `lab-report.md` holds every measured figure.
/// Needs root and the lab's tools; skips with the reason otherwise. Takes a few minutes.
@Suite struct LabTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where `swift build` put the executables: next to the test bundle that runs us.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["EDGEKIT_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("edgekit-agent").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static var missing: String? {
        if geteuid() != 0 { return "needs root (network namespaces)" }
        for tool in ["ip", "nft", "wg", "wireguard-go", "radvd", "keepalived", "dnsmasq", "busybox", "tcpdump", "mcopy", "nsenter"] {
            let found = ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + tool) }
            if !found { return "\(tool) is missing: run ./build.sh deps" }
        }
        for exe in ["edgekit", "edgekit-agent", "edgekit-relay"]
        where !FileManager.default.isExecutableFile(atPath: binDirectory.appendingPathComponent(exe).path) {
            return "\(exe) is not built next to the tests (swift build)"
        }
        return nil
    }

    /// The report rows lab.sh must write: one per measured figure (scenario, figure).
    static let figures = [
        ("boot", "routers start → all three registered"),
        ("SLAAC + RIO", "both servers have their /64 address and the /48 route"),
        ("ULA ping", "first reply server A → server B"),
        ("mesh", "relay capture on"),
        ("failover (kill -9 master)", "traffic gap server A → server B"),
        ("stick swap", "spare start → registered with the relay"),
        ("stick swap", "spare start → first reply"),
        ("stick swap", "spare is master and owns site A's /64"),
        ("graceful stop of the master", "traffic gap server A → server B"),
        ("tampered stick", "refusal line"),
        ("tampered stick", "traffic gap while the tampered spare booted"),
        ("relay restart", "edgekit-relay listening again"),
        ("relay restart", "traffic gap A → B"),
        ("relay crash (daemon + interface)", "crash → first reply"),
        ("qemu", "qemu start → the guest's agent starts"),
        ("qemu", "qemu start → b1's stick applied in the guest"),
        ("qemu", "qemu start → the guest registered with the relay"),
        ("qemu", "qemu start → first reply server A → server B through the guest"),
        ("qemu", "server B's next hop fe80::1"),
    ]

    /// The static agent the qemu scenario's image carries (`./build.sh test` builds it).
    static var applianceAgent: String {
        ProcessInfo.processInfo.environment["EDGEKIT_AGENT_BINARY"]
            ?? packageRoot.appendingPathComponent(".build/appliance/edgekit-agent").path
    }

    /// Why the qemu scenario cannot run here, or nil. lab.sh checks the same and fails loudly; this
    /// turns a plain `swift test` without the appliance build into a namespace-only run, said aloud.
    static var qemuMissing: String? {
        if ProcessInfo.processInfo.environment["LAB_QEMU"] == "0" { return "LAB_QEMU=0" }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") { return "qemu-system-x86_64 is missing: run ./build.sh deps" }
        if !FileManager.default.fileExists(atPath: "/usr/share/OVMF/OVMF_CODE_4M.fd") { return "OVMF is missing: run ./build.sh deps" }
        if !FileManager.default.isExecutableFile(atPath: applianceAgent) { return "\(applianceAgent) is not built (./build.sh test builds it)" }
        return nil
    }

    @Test("lab: sites, relay, failover, stick swap, tampered stick, relay restart, site B's image in qemu (lab/lab.sh)")
    func namespaceLab() throws {
        if let missing = Self.missing {
            print("LabTests skipped: \(missing)")
            return
        }
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-lab-report-\(UUID().uuidString).md")
        defer { try? FileManager.default.removeItem(at: report) }
        let process = Process()
        process.executableURL = Self.packageRoot.appendingPathComponent("lab/lab.sh")
        var environment = ProcessInfo.processInfo.environment
        environment["EDGEKIT_BIN_DIR"] = Self.binDirectory.path
        environment["LAB_REPORT"] = report.path
        let qemuMissing = Self.qemuMissing
        if let qemuMissing {
            print("LabTests: the qemu scenario is skipped: \(qemuMissing)")
            environment["LAB_QEMU"] = "0"
        }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        // The child inherits this thread's signal mask, and test threads block most signals: lab.sh
        // would then start daemons that ignore SIGTERM (its graceful-stop scenario needs it). Spawn
        // with an empty mask and restore ours afterwards (no suspension in between: a sync function).
        var empty = sigset_t(), saved = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        try process.run()
        pthread_sigmask(SIG_SETMASK, &saved, nil)
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print("lab/lab.sh took \(Int(Date().timeIntervalSince(started))) s")
        #expect(process.terminationStatus == 0, "lab/lab.sh failed:\n\(log)")
        guard process.terminationStatus == 0 else { return }
        let text = try String(contentsOf: report, encoding: .utf8)
        for (scenario, figure) in Self.figures where scenario != "qemu" || qemuMissing == nil {
            let row = text.split(separator: "\n").first { $0.hasPrefix("| \(scenario) |") && $0.contains(figure) }
            #expect(row != nil, "the report has no figure \"\(scenario): \(figure)\":\n\(text)")
            if let row { #expect(row.split(separator: "|").count >= 5, "incomplete row: \(row)") }
        }
    }
}
