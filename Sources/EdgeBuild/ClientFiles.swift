import EdgeCrypto
import EdgeModel
import EdgeRender
import EdgeSystem
import Foundation

/// `edgekit client config`: a client's wg-quick file (docs/clients.md), its key derived from the
/// master secret, and the QR code a phone scans.
public enum ClientFiles {
    /// The client named on the command line, or a one-line refusal listing the plan's clients.
    public static func client(named name: String, in plan: Plan) throws(BuildError) -> Client {
        guard !plan.clients.isEmpty else {
            throw BuildError("plan \(plan.name) has no clients: add \"clients:\" to plan.yaml (docs/plan.md, \"Clients\")",
                             code: "build.no-clients", input: plan.name)
        }
        guard let client = plan.client(named: name) else {
            throw BuildError("client \(name): no such client in plan \(plan.name) (clients: \(plan.clients.map(\.name).joined(separator: ", ")))",
                             code: "build.no-such-client", input: name)
        }
        return client
    }

    /// The QR code of `text` for a terminal (`qrencode -t ansiutf8`), what a phone's WireGuard app
    /// scans.
    public static func terminalQRCode(_ text: String) throws -> String {
        try SystemCommand.check("qrencode", ["-t", "ansiutf8"], stdin: Data(text.utf8),
                                what: "making the QR code (apt-get install qrencode)").output
    }

    /// Writes the QR code of `text` as a PNG to `path` (0600: it holds the client's private key),
    /// whole or not at all.
    public static func writePNGQRCode(_ text: String, to path: String) throws {
        let png = try SystemCommand.check("qrencode", ["-t", "png", "-o", "-"], stdin: Data(text.utf8),
                                          what: "making the QR code (apt-get install qrencode)")
        try AtomicFile.write(png.stdout, to: path, mode: 0o600, replace: true)
    }

    /// The client's wg-quick file.
    public static func wgQuick(plan: Plan, keys: PlanKeys, client: Client) -> String {
        ClientConfig.wgQuick(plan: plan, client: client, privateKey: keys.clientWireGuardKey(client).privateKeyBase64,
                             relayPublicKey: keys.relayWireGuardKey(name: plan.clientRelay.name).publicKeyBase64)
    }
}
