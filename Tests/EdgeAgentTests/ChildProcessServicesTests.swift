@testable import EdgeAgent
import EdgeRender
import Foundation
import Testing

/// `ChildProcessServices` on its own, where no daemon needs to run (nothing here touches the host's
/// network: every tool it would call is one that cannot start).
@Suite struct ChildProcessServicesTests {
    @Test("a daemon that cannot be started is reported as that service, not another", arguments: [
        (RouterService.keepalived, "keepalived"), (.radvd, "radvd"), (.tunnel, "wireguard-go"),
    ])
    func spawnFailureNamesTheService(_ service: RouterService, _ tool: String) throws {
        try Scratch.with { scratch in
            let root = scratch.path("root")
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            // Executable, so it is found, but not a program: posix_spawn fails with ENOEXEC.
            let broken = scratch.path("not-a-program")
            _ = FileManager.default.createFile(atPath: broken, contents: Data([0, 1, 2, 3]), attributes: [.posixPermissions: 0o755])
            let paths = AgentPaths(root: root)
            // The tunnel's restart starts one wireguard-go per tunnel file of the generation.
            let setconf = paths.live(ConfigPaths.routerTunnelSetconf)
            try FileManager.default.createDirectory(atPath: (setconf as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: setconf, contents: Data())
            let services = ChildProcessServices(paths: paths, tools: [tool: broken])
            do {
                try services.restart(service)
                Issue.record("\(tool) started although it cannot")
            } catch let failure as ServiceFailure {
                #expect(failure.service == service, "\(failure)")
                #expect(failure.detail == "cannot start \(broken): Exec format error", "\(failure)")
            }
        }
    }
}
