import Foundation

/// `edgekit-agent notify master|backup|fault`: keepalived's notify hook. Records the state in
/// `/run/edgekit/vrrp-state` (atomically) and pokes the running agent through its datagram socket,
/// without ever waiting: keepalived runs notify scripts synchronously, so this must not block.
public enum VRRPNotify {
    public static func record(_ state: VRRPState, paths: AgentPaths) throws {
        try FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        let temporary = paths.vrrpState + ".\(getpid())"
        try Data("\(state.rawValue)\n".utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, paths.vrrpState) == 0 else {
            unlink(temporary)
            throw AgentError.cannotWrite(paths.vrrpState, DurableFiles.errorText())
        }
        poke(paths.notifySocket, message: "vrrp \(state.rawValue)")
    }

    /// Reads the last recorded state, if any.
    public static func current(paths: AgentPaths) -> VRRPState? {
        (try? String(contentsOfFile: paths.vrrpState, encoding: .utf8))
            .flatMap { VRRPState(rawValue: $0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// One non-blocking datagram; no listener (agent not running) is fine: it reads the file at start.
    static func poke(_ socketPath: String, message: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = unixAddress(socketPath)
        _ = message.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, text, strlen(text), 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
    }

    static func unixAddress(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107))
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        return address
    }
}
