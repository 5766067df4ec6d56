import EdgeSystem
import Foundation

/// The relay's WireGuard interface, driven through `wg` only (kernel WireGuard and wireguard-go alike).
public struct WireGuardControl: Sendable {
    public let interface: String

    public init(interface: String) { self.interface = interface }

    /// One change of one peer: its complete AllowedIPs list, or removal.
    public enum PeerChange: Sendable, Equatable {
        case set(key: String, allowedIPs: [String])
        case remove(key: String)
    }

    /// The `wg set` arguments applying `changes` in one call.
    public func setArguments(_ changes: [PeerChange]) -> [String] {
        var arguments = ["set", interface]
        for change in changes {
            switch change {
            case .set(let key, let allowed):
                // `allowed-ips` replaces the peer's whole list: the call is idempotent.
                arguments += ["peer", key, "allowed-ips", allowed.joined(separator: ",")]
            case .remove(let key):
                arguments += ["peer", key, "remove"]
            }
        }
        return arguments
    }

    /// Applies every change with one `wg set`.
    public func apply(_ changes: [PeerChange]) throws {
        guard !changes.isEmpty else { return }
        try SystemCommand.check("wg", setArguments(changes), what: "updating WireGuard interface \(interface)")
    }

    /// Makes the interface hold exactly `peers` with our private key (`wg syncconf` with a 0600
    /// temporary file: the key never appears in argv). Peers not listed are removed; a peer's
    /// endpoint is set when one is given (WireGuard roams it to wherever the router's packets come from).
    public func synchronise(privateKey: String, listenPort: UInt16?,
                            peers: [(key: String, allowedIPs: [String], endpoint: String?)]) throws {
        let text = WireGuardControl.configText(privateKey: privateKey, listenPort: listenPort, peers: peers)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-relay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("\(interface).conf")
        do {
            try AtomicFile.write(Data(text.utf8), to: file.path, mode: 0o600, replace: true)
        } catch {
            throw RelayError.wireGuard("cannot write a temporary WireGuard config: \(error)")
        }
        try SystemCommand.check("wg", ["syncconf", interface, file.path], what: "restoring WireGuard interface \(interface)")
    }

    /// The `wg syncconf` file for `synchronise`.
    public static func configText(privateKey: String, listenPort: UInt16?,
                           peers: [(key: String, allowedIPs: [String], endpoint: String?)]) -> String {
        var text = "[Interface]\nPrivateKey = \(privateKey)\n"
        if let listenPort { text += "ListenPort = \(listenPort)\n" }
        for peer in peers {
            text += "\n[Peer]\nPublicKey = \(peer.key)\nAllowedIPs = \(peer.allowedIPs.joined(separator: ", "))\n"
            if let endpoint = peer.endpoint { text += "Endpoint = \(endpoint)\n" }
        }
        return text
    }

    /// Each peer's last handshake in UNIX seconds, 0 for none (`wg show IF latest-handshakes`).
    public func latestHandshakes() throws -> [String: Int] {
        let result = try SystemCommand.check("wg", ["show", interface, "latest-handshakes"], what: "reading WireGuard interface \(interface)")
        return WireGuardControl.parsePairs(result.output).compactMapValues { Int($0) }
    }

    /// `KEY<TAB>VALUE` lines, as `wg show IF latest-handshakes` prints them.
    public static func parsePairs(_ text: String) -> [String: String] {
        WireGuardShow.pairs(text)
    }

    /// The two `wg set` calls that make WireGuard start a handshake with each of `keys` now:
    /// persistent keepalive from 0 to N sends a keepalive at once (wireguard-go `device/uapi.go`,
    /// Linux `drivers/net/wireguard/netlink.c`), which, without a session, is a handshake initiation;
    /// the second call turns keepalive off again (the routers keep the tunnel alive, not the relay).
    /// Two calls: within one, the later 0 would cancel the immediate keepalive.
    public func handshakeArguments(_ keys: [String]) -> [[String]] {
        guard !keys.isEmpty else { return [] }
        return ["25", "0"].map { interval in
            ["set", interface] + keys.flatMap { ["peer", $0, "persistent-keepalive", interval] }
        }
    }

    /// Has WireGuard initiate a handshake with each of `keys` (their endpoints must be set).
    public func startHandshakes(_ keys: [String]) throws {
        for arguments in handshakeArguments(keys) {
            try SystemCommand.check("wg", arguments, what: "starting handshakes on WireGuard interface \(interface)")
        }
    }

    /// One peer line of `wg show IF dump`.
    public struct DumpPeer: Sendable, Equatable {
        public var publicKey: String
        /// `ADDRESS:PORT` (IPv6 in brackets) as WireGuard has it; nil before the first handshake.
        public var endpoint: String?
        public var allowedIPs: [String]
        /// UNIX time of the last handshake, 0 for none.
        public var latestHandshake: Int
        /// Bytes received from and sent to the peer since the interface holds it.
        public var receiveBytes: UInt64
        public var transmitBytes: UInt64

        public init(publicKey: String, endpoint: String? = nil, allowedIPs: [String], latestHandshake: Int = 0,
                    receiveBytes: UInt64 = 0, transmitBytes: UInt64 = 0) {
            self.publicKey = publicKey
            self.endpoint = endpoint
            self.allowedIPs = allowedIPs
            self.latestHandshake = latestHandshake
            self.receiveBytes = receiveBytes
            self.transmitBytes = transmitBytes
        }
    }

    /// The interface's peers as `wg show IF dump` lists them, AllowedIPs sorted.
    public func dump() throws -> [DumpPeer] {
        let result = try SystemCommand.check("wg", ["show", interface, "dump"], what: "reading WireGuard interface \(interface)")
        return WireGuardControl.parseDump(result.output)
    }

    /// Parses `wg show IF dump`: first line the interface, then one tab-separated line per peer
    /// (public key, preshared key, endpoint, allowed ips, handshake, rx, tx, keepalive).
    public static func parseDump(_ text: String) -> [DumpPeer] {
        text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 4 else { return nil }
            let allowed = fields[3] == "(none)" ? [] : fields[3].split(separator: ",").map(String.init).sorted()
            func number(_ index: Int) -> UInt64 { index < fields.count ? UInt64(fields[index]) ?? 0 : 0 }
            return DumpPeer(publicKey: fields[0], endpoint: fields[2] == "(none)" ? nil : fields[2], allowedIPs: allowed,
                            latestHandshake: Int(number(4)),
                            receiveBytes: number(5), transmitBytes: number(6))
        }.sorted { $0.publicKey < $1.publicKey }
    }
}

/// Runs blocking work (a `wg` process) on a dispatch thread instead of a Swift concurrency thread.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}
