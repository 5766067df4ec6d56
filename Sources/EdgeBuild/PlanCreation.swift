import EdgeModel
import Foundation
import PlanYAML

/// `edgekit plan init`: a new commented plan with a fresh random ULA /48, checked before a byte
/// is written, never over an existing plan.
public enum PlanCreation {
    /// Writes DIR/plan.yaml for `name`, relay `relay` (HOST or HOST:PORT) and `sites` sites of two
    /// routers each; returns the path written.
    public static func write(directory: String, name: String, relay: String, sites: Int) throws(BuildError) -> String {
        let (host, port) = try relayEndpoint(relay)
        guard (1...1000).contains(sites) else {
            throw BuildError("--sites \(sites) must be between 1 and 1000", code: "build.bad-flag", input: String(sites))
        }
        var generator = SystemRandomNumberGenerator()
        let text = PlanTemplate.text(name: name, relayHost: host, relayPort: port, sites: sites, using: &generator)
        // Check before writing anything: a bad --name or --relay must leave no file behind.
        do {
            _ = try PlanLoader.parse(text)
        } catch let error as PlanError {
            let reasons = error.diagnostics.map(\.message).joined(separator: "; ")
            // Escaped: --name and --relay are echoed, and must not break the line.
            throw BuildError(PlanDiagnostic.escapingControlCharacters(
                "cannot create a plan from --name \"\(name)\" --relay \"\(relay)\": \(reasons)"), code: "build.bad-flag", cause: error)
        } catch {
            throw BuildError("cannot create a plan from --name \"\(name)\": \(error)", code: "build.bad-flag", cause: error)
        }
        let path = (directory as NSString).appendingPathComponent(PlanLoader.fileName)
        if FileManager.default.fileExists(atPath: path) {
            throw BuildError("\(path) already exists; edit it, or choose another folder", code: "build.output-exists", input: path)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
        } catch {
            throw BuildError("cannot write \(path): \(error.localizedDescription)", code: "build.cannot-write", input: path, cause: error)
        }
        return path
    }

    /// `--relay HOST[:PORT]`, the port defaulting to WireGuard's.
    static func relayEndpoint(_ relay: String) throws(BuildError) -> (host: String, port: UInt16) {
        let parts = relay.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else {
            throw BuildError("--relay \"\(relay)\" must be HOST or HOST:PORT, e.g. relay.example.net:51820", code: "build.bad-flag", input: relay)
        }
        guard parts.count == 2 else { return (String(parts[0]), Relay.defaultWireGuardPort) }
        guard let port = UInt16(parts[1]), port > 0 else {
            throw BuildError("--relay \"\(relay)\": port \"\(parts[1])\" must be 1-65535", code: "build.bad-flag", input: relay)
        }
        return (String(parts[0]), port)
    }
}
