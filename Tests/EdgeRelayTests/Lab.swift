import EdgeCrypto
import EdgeModel
import EdgeRelay
import Foundation
import PlanYAML
import Registration
import SystemCrypto
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Where `swift build` put the executables (TestSupport's one locator).
let binDirectory = Products.binDirectory
let packageRoot = Products.packageRoot

@_silgen_name("setns") func c_setns(_ fd: Int32, _ nstype: Int32) -> Int32
let CLONE_NEWNET_FLAG: Int32 = 0x4000_0000

struct LabError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@discardableResult
func sh(_ tool: String, _ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool.hasPrefix("/") ? tool : "/usr/bin/env")
    process.arguments = tool.hasPrefix("/") ? arguments : [tool] + arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let result = (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    if !allowFailure && result.0 != 0 {
        throw LabError("\(tool) \(arguments.joined(separator: " ")) failed (\(result.0)): \(result.2)")
    }
    return result
}

/// Whether the namespace lab can run here; the reason when it cannot.
enum LabSupport {
    static let missing: String? = {
        if geteuid() != 0 { return "needs root (network namespaces)" }
        for tool in ["ip", "wg", "wireguard-go"] where (try? sh("which", [tool], allowFailure: true).status) != 0 {
            return "\(tool) is not installed (./build.sh installs wireguard-tools, wireguard-go, iproute2)"
        }
        if !FileManager.default.fileExists(atPath: binDirectory.appendingPathComponent("edgekit-relay").path) {
            return "edgekit-relay is not built next to the tests (swift build)"
        }
        return nil
    }()
    static var available: Bool {
        if let missing { print("EdgeRelayTests lab skipped: \(missing)") }
        return missing == nil
    }
}

/// The example plan with the fixed test master secret 0x00…0x1f (as Tests/CLITests).
enum Fixture {
    static let plan = try! PlanLoader.load(directory: packageRoot.appendingPathComponent("profiles/example").path)
    static let keys = PlanKeys(master: try! MasterSecret(bytes: Data(0..<32)), planName: plan.name)
    static let foreignKeys = PlanKeys(master: try! MasterSecret(bytes: Data(32..<64)), planName: plan.name)

    /// A router of the example plan: its WireGuard key and signed certificate.
    static func router(site name: String, slot: Int, serial: UInt64 = 1000, keys: PlanKeys = keys) throws -> LabRouter {
        let site = try #require(plan.site(named: name))
        let router = try #require(site.router(slot: slot))
        return LabRouter(key: keys.routerSecret(site: site, router: router).wireGuardKey,
                         certificate: Array(try keys.certificate(plan: plan, site: site, router: router, serial: serial).utf8),
                         site: name, slot: slot, tunnel: router.tunnelAddress, prefix: site.prefix)
    }

    /// A synthetic router (sites beyond the plan: the relay needs no per-site config).
    static func synthetic(_ index: Int) throws -> LabRouter {
        let raw = Data(SHA256.hash(data: Data("storm \(index)".utf8)))
        let key = try WireGuardKey(privateKey: raw)
        let prefix = try #require(plan.ula.subnet(UInt64(1000 + index), length: 64))
        let tunnel = try #require(plan.tunnel.host(UInt64(0x2_0000_0000) + UInt64(index)))
        let certificate = try SiteCertificate(
            plan: plan.name, site: "storm-\(index)", slot: 1, wireguardPublicKey: key.publicKeyBase64,
            tunnelAddress: tunnel, sitePrefix: prefix, serial: 1000).signed(with: keys.operatorKey)
        return LabRouter(key: key, certificate: Array(certificate.utf8), site: "storm-\(index)", slot: 1,
                         tunnel: tunnel, prefix: prefix)
    }
}

struct LabRouter: Sendable {
    var key: WireGuardKey
    var certificate: [UInt8]
    var site: String
    var slot: Int
    var tunnel: IPv6Address
    var prefix: IPv6Prefix

    /// `report`: generation, agent version and health sent with each REGISTER; nil sends the
    /// REGISTER of an agent from before the report.
    func client(relay: String, port: UInt16, deadline: Duration = .seconds(10), report: RouterReport? = nil) throws -> RegistrationClient {
        var configuration = RegistrationClient.Configuration(
            relayHost: relay, relayPort: port, relayPublicKey: [UInt8](Fixture.keys.relayWireGuardKey().publicKey),
            routerKey: key, certificate: certificate)
        configuration.report = report
        configuration.attemptTimeout = .milliseconds(500)
        configuration.initialBackoff = .milliseconds(50)
        configuration.maximumBackoff = .milliseconds(500)
        configuration.deadline = deadline
        return try RegistrationClient(configuration: configuration, log: .none)
    }
}

nonisolated(unsafe) var labCounter = 0
let labCounterLock = NSLock()

/// Two network namespaces joined by a veth pair: `relay` (wireguard-go + edgekit-relay serve) and
/// `client` (routers, as threads that entered the namespace). Unique names, removed by `close()`.
final class Lab: @unchecked Sendable {
    let relayNamespace: String
    let clientNamespace: String
    let interface: String
    let directory: URL
    let relayAddress = "10.77.0.1"
    let clientAddress = "10.77.0.2"
    let port: UInt16 = 51821
    var wireGuardProcess: Process?
    /// wireguard-go processes of router tunnels in the client namespace (`startRouterTunnel`).
    var routerTunnels: [(process: Process, interface: String)] = []
    var relayProcess: Process?
    var relayLog: URL { directory.appendingPathComponent("relay.log") }
    var configPath: String { directory.appendingPathComponent("relay.json").path }
    var databasePath: String { directory.appendingPathComponent("state.sqlite").path }

    init(perSourcePerSecond: Double = 100_000, batchWindowMilliseconds: Int = 5, endpointSaveMilliseconds: Int = 10_000,
         globalPerSecond: Double = 1_000_000, clients: [RelayConfig.Client] = [],
         publicPrefix: IPv6Prefix? = nil, dmzRoutes: [RelayConfig.DMZRoute] = []) throws {
        labCounterLock.lock()
        labCounter += 1
        let n = labCounter
        labCounterLock.unlock()
        let tag = "\(getpid() % 100_000)\(n)"
        relayNamespace = "ekr\(tag)"
        clientNamespace = "ekc\(tag)"
        interface = "ekwg\(tag)"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-relay-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try sh("ip", ["netns", "add", relayNamespace])
            try sh("ip", ["netns", "add", clientNamespace])
            try sh("ip", ["-n", relayNamespace, "link", "add", "ekv0", "type", "veth", "peer", "name", "ekv1", "netns", clientNamespace])
            for (ns, address) in [(relayNamespace, relayAddress), (clientNamespace, clientAddress)] {
                let link = ns == relayNamespace ? "ekv0" : "ekv1"
                try sh("ip", ["-n", ns, "link", "set", "lo", "up"])
                try sh("ip", ["-n", ns, "addr", "add", "\(address)/24", "dev", link])
                try sh("ip", ["-n", ns, "link", "set", link, "up"])
            }
            wireGuardProcess = try startWireGuard(in: relayNamespace, interface)
            try writeConfig(perSourcePerSecond: perSourcePerSecond, batchWindowMilliseconds: batchWindowMilliseconds,
                            endpointSaveMilliseconds: endpointSaveMilliseconds, globalPerSecond: globalPerSecond, clients: clients,
                            publicPrefix: publicPrefix, dmzRoutes: dmzRoutes)
        } catch {
            close()
            throw error
        }
    }

    /// wireguard-go for `interface` in `namespace` (WireGuardGo.start), its output kept in this lab's folder.
    func startWireGuard(in namespace: String, _ interface: String) throws -> Process {
        try WireGuardGo.start(in: namespace, interface, logDirectory: directory)
    }

    /// The relay loses its WireGuard interface: wireguard-go killed (-9), the interface gone, then a
    /// fresh, empty one (what a crash of wireguard-go or a reboot leaves for the daemon to restore).
    func recreateRelayInterface() throws {
        if let process = wireGuardProcess {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try waitFor("\(interface) to vanish") {
            (try sh("ip", ["-n", relayNamespace, "link", "show", interface], allowFailure: true)).status != 0
        }
        try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(interface).sock")
        wireGuardProcess = try startWireGuard(in: relayNamespace, interface)
    }

    /// A router's WireGuard in the client namespace: its key, the relay as its one peer at the relay's
    /// WireGuard port, no keepalive (so it sends nothing unless told). Returns the interface name.
    func startRouterTunnel(_ router: LabRouter) throws -> String {
        let name = "\(interface)r\(routerTunnels.count)"
        let process = try startWireGuard(in: clientNamespace, name)
        routerTunnels.append((process, name))
        let keyFile = directory.appendingPathComponent("\(name).key")
        _ = FileManager.default.createFile(atPath: keyFile.path, contents: Data((router.key.privateKeyBase64 + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        _ = try routerWG(["set", name, "private-key", keyFile.path, "peer", Fixture.keys.relayWireGuardKey().publicKeyBase64,
                      "endpoint", "\(relayAddress):51820", "allowed-ips", "\(Fixture.plan.tunnel)"])
        return name
    }

    func routerWG(_ arguments: [String]) throws -> String {
        try sh("ip", ["netns", "exec", clientNamespace, "wg"] + arguments).out
    }

    func writeConfig(perSourcePerSecond: Double, batchWindowMilliseconds: Int, endpointSaveMilliseconds: Int,
                     globalPerSecond: Double = 1_000_000, clients: [RelayConfig.Client] = [],
                     publicPrefix: IPv6Prefix? = nil, dmzRoutes: [RelayConfig.DMZRoute] = []) throws {
        let keyFile = directory.appendingPathComponent("relay.key")
        _ = FileManager.default.createFile(atPath: keyFile.path, contents: Data((Fixture.keys.relayWireGuardKey().privateKeyBase64 + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        let operatorFile = directory.appendingPathComponent("operator.pub")
        try Fixture.keys.operatorKey.publicKey.fileText(comment: "example operator").write(to: operatorFile, atomically: true, encoding: .utf8)
        let config = RelayConfig(
            listenAddress: "0.0.0.0", listenPort: port, interface: interface, wireguardPort: 51820,
            privateKeyFile: keyFile.path, operatorPublicKeyFile: operatorFile.path, plan: Fixture.plan.name,
            ula: Fixture.plan.ula, tunnelPrefix: Fixture.plan.tunnel, stateDatabase: databasePath,
            rateLimit: .init(perSourcePerSecond: perSourcePerSecond, perSourceBurst: max(10, perSourcePerSecond / 10),
                             globalPerSecond: globalPerSecond, buckets: 1024),
            batchWindowMilliseconds: batchWindowMilliseconds, revocationPollMilliseconds: 200,
            endpointSaveMilliseconds: endpointSaveMilliseconds, clients: clients, publicPrefix: publicPrefix, dmzRoutes: dmzRoutes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(config).write(to: URL(fileURLWithPath: configPath))
    }

    func wg(_ arguments: [String]) throws -> String {
        try sh("ip", ["netns", "exec", relayNamespace, "wg"] + arguments).out
    }

    /// `wg show IF dump` peers: key → sorted AllowedIPs.
    func wireGuardPeers() throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for peer in WireGuardControl.parseDump(try wg(["show", interface, "dump"])) { result[peer.publicKey] = peer.allowedIPs }
        return result
    }

    /// What the database says WireGuard must hold.
    func databasePeers() throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for peer in try RelayStore(path: databasePath).desiredPeers() { result[peer.key] = peer.allowedIPs.sorted() }
        return result
    }

    func snapshot() throws -> RelaySnapshot { try RelayStore(path: databasePath).snapshot() }

    func startRelay() throws {
        _ = FileManager.default.createFile(atPath: relayLog.path, contents: nil)
        let handle = try FileHandle(forWritingTo: relayLog)
        handle.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", relayNamespace, binDirectory.appendingPathComponent("edgekit-relay").path,
                             "serve", "--config", configPath, "--log-level", "debug"]
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let before = (try? String(contentsOf: relayLog, encoding: .utf8))?.components(separatedBy: "listening for registrations").count ?? 1
        try process.run()
        relayProcess = process
        try waitFor("edgekit-relay to listen (log: \(relayLog.path))") {
            guard process.isRunning else { throw LabError("edgekit-relay exited: \(self.logText())") }
            return ((try? String(contentsOf: self.relayLog, encoding: .utf8))?.components(separatedBy: "listening for registrations").count ?? 1) > before
        }
    }

    func logText() -> String { (try? String(contentsOf: relayLog, encoding: .utf8)) ?? "" }

    /// Starts the relay and runs `body`; a failure records the end of the relay's log with it. The
    /// lab is closed either way.
    func withRelay(_ body: (Lab) throws -> Void) throws {
        defer { close() }
        try startRelay()
        do {
            try body(self)
        } catch {
            Issue.record("relay log:\n\(logText().suffix(3000))")
            throw error
        }
    }

    /// SIGTERM (graceful) or SIGKILL; waits for the process to end.
    func stopRelay(signal: Int32 = SIGTERM) throws -> Int32 {
        guard let process = relayProcess else { return 0 }
        // `ip netns exec` execs the relay, so the pid is the relay's.
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw LabError("edgekit-relay did not stop within 10 s of signal \(signal)")
        }
        relayProcess = nil
        return process.terminationStatus
    }

    func relayTool(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try sh(binDirectory.appendingPathComponent("edgekit-relay").path, arguments, allowFailure: true)
    }

    /// Runs `body` on a thread inside the client namespace (sockets it opens live there).
    func inClient<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        try Lab.inNamespace(clientNamespace, body)
    }

    static func inNamespace<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let fd = open("/var/run/netns/\(name)", O_RDONLY)
            guard fd >= 0, c_setns(fd, CLONE_NEWNET_FLAG) == 0 else {
                box.result = .failure(LabError("cannot enter network namespace \(name)"))
                return
            }
            Glibc.close(fd)
            box.result = Result { try body() }
        }
        thread.stackSize = 4 << 20
        thread.start()
        done.wait()
        return try box.result!.get()
    }

    func waitFor(_ what: String, timeout: TimeInterval = 15, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(20_000)
        }
        throw LabError("timed out waiting for \(what)")
    }

    /// Polls `value` every 20 ms until it is non-nil; throws after `timeout` seconds.
    func waitForValue<T>(_ what: String, timeout: TimeInterval = 15, _ value: () throws -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = try value() { return found }
            usleep(20_000)
        }
        throw LabError("timed out waiting for \(what)")
    }

    func close() {
        if let relayProcess, relayProcess.isRunning {
            kill(relayProcess.processIdentifier, SIGKILL)
            relayProcess.waitUntilExit()
        }
        for process in [wireGuardProcess].compactMap({ $0 }) + routerTunnels.map(\.process) where process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        for tunnel in routerTunnels { try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(tunnel.interface).sock") }
        _ = try? sh("ip", ["netns", "del", relayNamespace], allowFailure: true)
        _ = try? sh("ip", ["netns", "del", clientNamespace], allowFailure: true)
        try? FileManager.default.removeItem(atPath: "/var/run/wireguard/\(interface).sock")
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A raw UDP socket in the client namespace for hand-made datagrams.
struct RawSocket {
    let fd: Int32

    init(to host: String, port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { throw LabError("connect failed") }
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The next datagram within `milliseconds`, or nil (nothing came back).
    func receive(milliseconds: Int32 = 300) -> [UInt8]? {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, milliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? Array(buffer.prefix(n)) : nil
    }

    func close() { Glibc.close(fd) }
}

/// A hand-driven router: HELLO/REGISTER built here, so tests can capture, replay and forge.
struct ManualRouter {
    var router: LabRouter
    var keys: SessionKeys
    var publicKey: [UInt8] { [UInt8](router.key.publicKey) }

    init(_ router: LabRouter) throws {
        self.router = router
        keys = try SessionKeys(router: WireGuardKeyPair(privateKey: router.key.agreementKey),
                               relayPublicKey: [UInt8](Fixture.keys.relayWireGuardKey().publicKey))
    }

    /// A HELLO as today's agent sends it (with the proof of knowing S), or as one from before the
    /// proof (`proven: false`, 16 zero bytes).
    func hello(nonce: [UInt8], proven: Bool = true) -> [UInt8] {
        let hello = proven
            ? Hello(routerKey: publicKey, nonce: nonce, relayPublicKey: [UInt8](Fixture.keys.relayWireGuardKey().publicKey))
            : Hello(routerKey: publicKey, nonce: nonce)
        return MessageMAC.seal(hello.authenticated, with: keys.requestKey)
    }

    func register(claim: Claim, nonce: [UInt8], cookie: [UInt8], certificate: [UInt8]? = nil) -> [UInt8] {
        MessageMAC.seal(Register(claim: claim, routerKey: publicKey, nonce: nonce, cookie: cookie,
                                 certificate: certificate ?? router.certificate).authenticated, with: keys.requestKey)
    }

    /// HELLO → CHALLENGE; the verified cookie.
    func cookie(_ socket: RawSocket, nonce: [UInt8]) throws -> [UInt8] {
        socket.send(hello(nonce: nonce))
        guard let reply = socket.receive(milliseconds: 2000), let parsed = try? MessageCodec.parse(reply),
              case .challenge(let challenge) = parsed.body,
              MessageMAC.verify(keys.responseKey, parsed.authenticated, mac: parsed.mac) else {
            throw LabError("no valid CHALLENGE")
        }
        return challenge.cookie
    }

    /// A verified RESULT, or nil when the relay stayed silent.
    func result(_ reply: [UInt8]?) -> RegistrationAnswer? {
        guard let reply, let parsed = try? MessageCodec.parse(reply), case .result(let answer) = parsed.body,
              MessageMAC.verify(keys.responseKey, parsed.authenticated, mac: parsed.mac) else { return nil }
        return answer
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
    init() {}
}

/// Starting wireguard-go in a namespace for the lab fixtures, the one way they all do it.
enum WireGuardGo {
    /// wireguard-go for `interface` in `namespace`, once `wg` can talk to it and the link is up. One
    /// that exits by itself is started once more, printing what it said (CI runs have seen `wg show`
    /// fail for a minute after a re-creation, with no output kept); one that still fails, or does not
    /// answer within 60 s, throws with its output (`wireguard-go-IFACE.log` in `logDirectory`).
    static func start(in namespace: String, _ interface: String, logDirectory: URL) throws -> Process {
        do {
            return try startOnce(in: namespace, interface, logDirectory: logDirectory)
        } catch let failure as Exited {
            print("Lab: \(failure); starting it once more")
            return try startOnce(in: namespace, interface, logDirectory: logDirectory)
        }
    }

    struct Exited: Error, CustomStringConvertible {
        var description: String
    }

    private static func startOnce(in namespace: String, _ interface: String, logDirectory: URL) throws -> Process {
        let wg = Process()
        wg.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        wg.arguments = ["netns", "exec", namespace, "wireguard-go", "-f", interface]
        var environment = ProcessInfo.processInfo.environment
        environment["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1"
        wg.environment = environment
        wg.standardInput = FileHandle.nullDevice
        let log = logDirectory.appendingPathComponent("wireguard-go-\(interface).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer { try? output.close() }
        wg.standardOutput = output
        wg.standardError = output
        try wg.run()
        func said() -> String { String(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(1500)) }
        // 60 s: while the suite builds images beside it, wireguard-go took over 15 s to open its socket.
        let deadline = Date().addingTimeInterval(60)
        while (try? sh("ip", ["netns", "exec", namespace, "wg", "show", interface])) == nil {
            if !wg.isRunning {
                throw Exited(description: "wireguard-go \(interface) exited (\(wg.terminationStatus)): \(said())")
            }
            guard Date() < deadline else {
                kill(wg.processIdentifier, SIGKILL)
                wg.waitUntilExit()
                throw LabError("timed out waiting for wireguard-go \(interface); it said: \(said())")
            }
            usleep(50_000)
        }
        try sh("ip", ["-n", namespace, "link", "set", interface, "up"])
        return wg
    }
}
