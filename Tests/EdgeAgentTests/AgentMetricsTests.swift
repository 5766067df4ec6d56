import EdgeAgent
import Foundation
import TestSupport
import Testing

/// `edgekit.prom` in the node exporter's textfile directory: written by `run` and by `apply` from
/// what `status` shows, checked by promtool, rewritten only when it changed.
@Suite struct AgentMetricsTests {
    func samples(_ path: String) throws -> Set<String> {
        Set(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
    }

    func identity(_ path: String) throws -> String {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return "\(attributes[.systemFileNumber] ?? 0) \((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
    }

    @Test("run and apply write the edgekit_* series; promtool accepts them", .requiresTool("promtool"))
    func runAndApplyWriteTheSeries() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let directory = root + AgentMetrics.textfileDirectory
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let file = directory + "/" + AgentMetrics.fileName
            let stick = try scratch.stickFolder("stick", slot: 2, serial: 1000)

            let run = try runTool("edgekit-agent", ["run", "--once", "--root", root, "--stick", stick, "--services", "none",
                                                    "--registration-deadline", "1"])
            #expect(run.status == 0, "\(run)")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(try Promtool.problems(inMetrics: text) == nil)
            let first = try samples(file)
            for line in [
                "edgekit_agent_info{plan=\"example\",profile_site=\"site-a\",profile_slot=\"2\"} 1",
                "edgekit_agent_generation 1",
                "edgekit_agent_serial 1000",
                "edgekit_agent_last_apply{result=\"applied\"} 1",
                "edgekit_agent_last_apply{result=\"refused\"} 0",
                "edgekit_agent_last_apply_success 1",
                "edgekit_agent_failed_services 0",
                "edgekit_agent_vrrp_state{state=\"unknown\"} 1",
                "edgekit_agent_vrrp_state{state=\"master\"} 0",
                // The relay's name does not resolve here: not registered; --once has ended.
                "edgekit_agent_registered 0",
                "edgekit_agent_running 0",
                "edgekit_agent_drift_files 0",
                "edgekit_agent_drift_checkable 1",
            ] {
                #expect(first.contains(line), "missing \(line) in:\n\(text)")
            }
            // No tunnel here: no handshake sample rather than a made-up one.
            #expect(!first.contains { $0.hasPrefix("edgekit_agent_tunnel_last_handshake_timestamp_seconds ") })

            // The same stick again: the series say the same, so the file is not rewritten.
            let before = try identity(file)
            Thread.sleep(forTimeInterval: 0.05)
            let again = try scratch.apply(root, stick)
            #expect(again.status == 0, "\(again)")
            #expect(try identity(file) == before)

            // A file changed by hand, then an older stick refused: both show.
            let radvd = root + "/etc/radvd.conf"
            let handle = try #require(FileHandle(forWritingAtPath: radvd))
            handle.seekToEndOfFile()
            handle.write(Data("# changed by hand\n".utf8))
            try handle.close()
            let older = try scratch.stickFolder("older", slot: 2, serial: 999)
            let refused = try scratch.apply(root, older)
            #expect(refused.status == 1, "\(refused)")
            let after = try samples(file)
            for line in ["edgekit_agent_last_apply{result=\"refused\"} 1", "edgekit_agent_last_apply{result=\"applied\"} 0",
                         "edgekit_agent_last_apply_success 0", "edgekit_agent_drift_files 1", "edgekit_agent_generation 1"] {
                #expect(after.contains(line), "missing \(line)")
            }
            #expect(try Promtool.problems(inMetrics: String(contentsOfFile: file, encoding: .utf8)) == nil)
            // Only edgekit.prom: the temporary file was renamed into place.
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [AgentMetrics.fileName])
        }
    }

    @Test func noTextfileDirectoryNoFile() throws {
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let stick = try scratch.stickFolder("stick", slot: 2, serial: 1000)
            let applied = try scratch.apply(root, stick)
            #expect(applied.status == 0, "\(applied)")
            #expect(!FileManager.default.fileExists(atPath: root + "/var/lib/prometheus"))
            #expect(try AgentMetrics.publish(paths: AgentPaths(root: root)) == false)
        }
    }
}
