import EdgeCrypto
import EdgeRender
import Foundation
import Logging

/// `edgekit-agent run`: apply at boot, register with the relay, then watch: register again on every
/// VRRP transition to master and when the tunnel's handshake goes stale (after re-resolving the
/// relay's name), retrying with exponential backoff and jitter. Logs each state change once.
public final class Supervisor {
    let agent: Agent
    let registrar: any RelayRegistrar
    let logger: Logger
    let stick: String?
    var state: RuntimeState
    var lastLogged: [String: String] = [:]

    public init(agent: Agent, registrar: any RelayRegistrar, logger: Logger, stick: String?) {
        self.agent = agent
        self.registrar = registrar
        self.logger = logger
        self.stick = stick
        state = RuntimeState(stick: "none", stickPath: nil, lastApply: nil, noStickAtBoot: false,
                             registration: "not attempted yet", registeredAt: nil, services: agent.services.name)
    }

    var paths: AgentPaths { agent.paths }

    /// Logs `message` only when the value for `key` changed since the last time.
    func logChange(_ key: String, _ message: String, level: Logger.Level = .info) {
        guard lastLogged[key] != message else { return }
        lastLogged[key] = message
        logger.log(level: level, "\(message)")
    }

    /// The boot apply. No stick: keep the last generation and print the console line.
    public func applyAtBoot() {
        do {
            let recovered = try agent.recover()
            if !recovered.isEmpty {
                logger.info("recovered an interrupted apply: restarted \(recovered.map(\.rawValue).joined(separator: ", "))")
            }
        } catch {
            logger.error("recovering an interrupted apply failed: \(error)")
        }
        do {
            let report = try agent.apply(stick: stick, dryRun: false)
            state.stick = "found"
            state.stickPath = report.stick
            state.lastApply = report.lines.first
            for line in report.lines { logger.info("\(line)") }
        } catch AgentError.noStick(let keeping) {
            state.stick = "none"
            state.noStickAtBoot = true
            state.lastApply = AgentError.noStickLine(keeping: keeping)
            // Exactly this line on the console (StandardError=journal+console): the image boot test greps it.
            FileHandle.standardError.write(Data((AgentError.noStickLine(keeping: keeping) + "\n").utf8))
        } catch {
            state.stick = "refused"
            state.lastApply = "\(error)"
            let keeping = agent.store.current.map { "keeping generation \($0.number)" } ?? "nothing applied yet"
            logger.error("\(error) (\(keeping))")
        }
        state.save(paths: paths)
    }

    /// The claim for the current generation, or nil when nothing is applied.
    func claim() -> Claim? {
        guard agent.store.current != nil,
              let data = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile)),
              let document = try? JSONDecoder().decode(ProfileDocument.self, from: data) else { return nil }
        return Claim(master: VRRPNotify.current(paths: paths) == .master, certificate: document.certificate,
                     relayHost: document.plan.relay.host, registrationPort: document.plan.relay.registrationPort,
                     relayPublicKey: document.plan.relay.publicKey, privateKeyFile: paths.live(ConfigPaths.routerWireGuardKey))
    }

    /// One registration attempt; true when the relay accepted it.
    public func registerOnce() async -> Bool {
        guard let claim = claim() else {
            state.registration = "not attempted: no generation applied"
            logChange("registration", "registration: not attempted, no generation applied")
            state.save(paths: paths)
            return false
        }
        let role = claim.master ? "master" : "backup"
        var accepted = false
        do {
            switch try await registrar.register(claim: claim) {
            case .registered(let detail):
                state.registration = "registered as \(role): \(detail)"
                state.registeredAt = DocumentCoding.timestamp(Date())
                accepted = true
            case .refused(let reason):
                state.registration = "refused by the relay: \(reason)"
            }
        } catch {
            state.registration = "failed: \(error)"
        }
        logChange("registration", "registration (\(role)): \(state.registration)", level: accepted ? .info : .warning)
        state.save(paths: paths)
        return accepted
    }

    /// The supervision loop; returns only when the process is told to stop (SIGTERM ends it).
    public func supervise() async {
        let socket = bindNotifySocket()
        var registrationDue = Date()
        var failures = 0
        var lastVRRP = VRRPNotify.current(paths: paths)
        var nextTunnelCheck = Date().addingTimeInterval(30)
        var staleSince: Date?
        if let lastVRRP { logChange("vrrp", "VRRP state: \(lastVRRP.rawValue)") }
        while true {
            waitForPoke(socket, seconds: 1)
            let now = Date()
            let vrrp = VRRPNotify.current(paths: paths)
            if vrrp != lastVRRP {
                lastVRRP = vrrp
                logChange("vrrp", "VRRP state: \(vrrp?.rawValue ?? "unknown")")
                if vrrp == .master { registrationDue = now; failures = 0 }
            }
            if now >= nextTunnelCheck {
                nextTunnelCheck = now.addingTimeInterval(30)
                if let handshake = Tunnel.latestHandshake() {
                    let stale = handshake == 0 || Int(now.timeIntervalSince1970) - handshake > Tunnel.staleAfter
                    if stale {
                        staleSince = staleSince ?? now
                        logChange("tunnel", "tunnel: no handshake for over \(Tunnel.staleAfter) s; re-resolving the relay", level: .warning)
                        if let claim = claim(), now.timeIntervalSince(staleSince!) >= 0 {
                            if let address = Tunnel.resolve(claim.relayHost, port: relayWireGuardPort()) {
                                try? Tunnel.setEndpoint(relayPublicKey: claim.relayPublicKey, address: address)
                                logChange("endpoint", "relay \(claim.relayHost) is at \(address)")
                            } else {
                                logChange("endpoint", "relay \(claim.relayHost) does not resolve", level: .warning)
                            }
                            if registrationDue == .distantFuture { registrationDue = now }
                        }
                    } else {
                        staleSince = nil
                        logChange("tunnel", "tunnel: handshake fresh")
                    }
                } else {
                    logChange("tunnel", "tunnel: \(InterfaceNames.routerTunnel) is absent", level: .warning)
                }
            }
            if now >= registrationDue {
                if await registerOnce() {
                    failures = 0
                    registrationDue = .distantFuture
                } else {
                    failures += 1
                    registrationDue = now.addingTimeInterval(Supervisor.backoff(failures: failures))
                }
            }
        }
    }

    func relayWireGuardPort() -> UInt16 {
        guard let data = FileManager.default.contents(atPath: paths.live(Agent.appliedProfile)),
              let document = try? JSONDecoder().decode(ProfileDocument.self, from: data) else { return 51820 }
        return document.plan.relay.wireguardPort
    }

    /// 5 s doubling to 5 min, ±25 % jitter so a site's routers (and sites after a relay outage) spread out.
    public static func backoff(failures: Int) -> TimeInterval {
        let base = min(300, 5 * pow(2, Double(max(0, failures - 1))))
        return base * Double.random(in: 0.75...1.25)
    }

    func bindNotifySocket() -> Int32 {
        try? FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        unlink(paths.notifySocket)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = VRRPNotify.unixAddress(paths.notifySocket)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            logger.warning("cannot listen on \(paths.notifySocket): \(DurableFiles.errorText()); polling \(paths.vrrpState) instead")
            close(fd)
            return -1
        }
        return fd
    }

    /// Sleeps up to `seconds`, waking early when `notify` pokes the socket (drains what arrived).
    func waitForPoke(_ fd: Int32, seconds: Int32) {
        guard fd >= 0 else { Thread.sleep(forTimeInterval: TimeInterval(seconds)); return }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&entry, 1, seconds * 1000) > 0 {
            var buffer = [UInt8](repeating: 0, count: 128)
            while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
        }
    }

    /// Tells systemd (Type=notify) the boot apply is done; a no-op outside systemd.
    public static func notifySystemd(_ message: String) {
        guard var path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var abstract = false
        if path.hasPrefix("@") { abstract = true; path.removeFirst() }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = (abstract ? [0] : []) + Array(path.utf8.prefix(106))
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = message.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text, strlen(text), 0, $0, length) }
            }
        }
    }
}
