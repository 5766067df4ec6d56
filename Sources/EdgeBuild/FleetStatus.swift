import EdgeErrors
import EdgeModel
import EdgeSystem
import Foundation

/// `edgekit fleet status`: the relay's per-router view, read over ssh (`edgekit-relay status
/// --format json` run on the relay) or from a saved copy, printed as one table (docs/fleet.md,
/// "Fleet status").
public enum FleetStatus {
    /// The ssh invocation unless `--ssh-command` replaces it: no password prompt (BatchMode), and an
    /// unreachable relay fails within 10 s instead of hanging.
    public static let defaultSSHCommand = "ssh -o BatchMode=yes -o ConnectTimeout=10"
    /// What runs on the relay.
    public static let remoteCommand = ["edgekit-relay", "status", "--format", "json"]
    /// The status of a fleet of thousands of routers is a few megabytes; more is not a status.
    public static let outputLimit = 16 << 20

    /// Runs `SSH HOST edgekit-relay status --format json` (`sshCommand` split at white space, as
    /// rsync's `-e`) and returns its stdout. One-line `BuildError` when it cannot run or fails.
    public static func fetch(relay: String, sshCommand: String = defaultSSHCommand) throws -> Data {
        try onRelay(relay, sshCommand: sshCommand, run: remoteCommand, toDo: "read the relay's status from \(relay)").stdout
    }

    /// Runs `remote` on the relay over ssh, `stdinFile` (if any) as its standard input, at most
    /// `outputLimit` bytes of its stdout kept. `toDo` says what failed: "cannot TODO (SSH HOST REMOTE): why",
    /// why being its first line on stderr that does not start with `progressPrefix`.
    static func onRelay(_ relay: String, sshCommand: String, run remote: [String], stdinFile: String? = nil,
                        toDo: String, progressPrefix: String? = nil) throws -> BoundedResult {
        guard !relay.isEmpty, !relay.hasPrefix("-"), !relay.contains(where: \.isWhitespace) else {
            throw BuildError("--relay \"\(Printable.escaped(relay))\" is not a host name (give the relay's ssh destination, e.g. root@relay.example.net)",
                             code: "fleet.relay-host", input: relay)
        }
        let words = sshCommand.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let tool = words.first else {
            throw BuildError("--ssh-command is empty (give a program, e.g. \"ssh -p 2222\")", code: "fleet.ssh-command", input: sshCommand)
        }
        let result: BoundedResult
        do {
            result = try SystemCommand.runBounded(tool, Array(words.dropFirst()) + [relay] + remote, stdinFile: stdinFile, outputLimit: outputLimit)
        } catch {
            throw BuildError("cannot run \"\(Printable.escaped(tool))\" to reach the relay \(relay): not found or not executable (install OpenSSH's client, or give --ssh-command)",
                             code: "fleet.ssh-missing", input: tool, cause: error)
        }
        guard result.succeeded else {
            // The command's progress lines are not why it failed.
            let how = result.exceeded ? "printed more than \(outputLimit >> 20) MB" : Printable.escaped(result.reason(skipping: progressPrefix.map { [$0] } ?? []))
            throw BuildError("cannot \(toDo) (\(Printable.escaped(words.joined(separator: " "))) \(relay) \(remote.joined(separator: " "))): \(how)",
                             code: "fleet.unreachable", input: relay)
        }
        return result
    }

    /// The routers of a status document. `source` names it in the error ("relay.example.net", a file).
    public static func routers(from data: Data, source: String) throws -> [RouterLiveness] {
        struct Document: Decodable { var routers: [RouterLiveness] }
        do {
            return try JSONDecoder().decode(Document.self, from: data).routers
        } catch {
            throw BuildError("\(source): not the JSON of `edgekit-relay status --format json`: \(Printable.escaped(describe(error)))",
                             code: "fleet.bad-json", input: source, cause: error)
        }
    }

    /// A saved status document (`--from FILE`).
    public static func load(file: String) throws -> [RouterLiveness] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BuildError("--from \(Printable.escaped(file)): cannot read it (save one with: ssh RELAY edgekit-relay status --format json > FILE)",
                             code: "fleet.from-unreadable", input: file)
        }
        return try routers(from: data, source: file)
    }

    /// One line per router, in the relay's order (sites without a live master first), columns
    /// aligned; the reason of a health verdict that is not `healthy` closes its line.
    public static func table(_ routers: [RouterLiveness]) -> String {
        let header = ["SITE", "SLOT", "CLAIM", "STATE", "HANDSHAKE", "GENERATION", "AGENT", "SYSTEM", "HEALTH"]
        let rows = routers.map { router -> [String] in
            [Printable.escaped(router.site), "\(router.slot)", Printable.escaped(router.claim), Printable.escaped(router.state),
             router.handshakeAgeSeconds.map { "\($0) s ago" } ?? "never",
             router.generation.map(String.init) ?? "-",
             router.agentVersion.map(Printable.escaped) ?? "-",
             systemText(router),
             healthText(router)]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    /// The system version it runs, with its last update when that is not simply the version it
    /// runs, blessed: `3 (4 failed)`, `3 (4 next boot)` (installed, not booted yet), `4 (trial)` (on
    /// its trial boot); `-` when it did not say.
    static func systemText(_ router: RouterLiveness) -> String {
        guard let version = router.systemVersion else { return "-" }
        guard let state = router.updateState, state != "none", let update = router.updateVersion else { return "\(version)" }
        if update == version { return state == "blessed" ? "\(version)" : "\(version) (\(Printable.escaped(state)))" }
        return "\(version) (\(update) \(state == "trial" ? "next boot" : Printable.escaped(state)))"
    }

    static func healthText(_ router: RouterLiveness) -> String {
        guard let health = router.health else {
            return router.generation == nil && router.agentVersion == nil ? "- (no report: agent older than the fleet view)" : "unknown"
        }
        guard health != "healthy", let reason = router.healthReason, !reason.isEmpty else { return Printable.escaped(health) }
        return "\(Printable.escaped(health)) (\(Printable.escaped(reason)))"
    }

    /// The routers as JSON (`--format json`): the relay's fields, sorted keys.
    public static func json(_ routers: [RouterLiveness]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        struct Document: Encodable { var routers: [RouterLiveness] }
        return String(decoding: try encoder.encode(Document(routers: routers)), as: UTF8.self) + "\n"
    }

    /// A decoding error in one line: which key, at which path.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "top level" : keys
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context)): missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "\(path(context)): \(underlying ?? context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
