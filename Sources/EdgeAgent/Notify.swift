import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// `edgekit-agent notify [--root DIR] master|backup|fault`: keepalived's notify hook. Records the state
/// in `/run/edgekit/vrrp-state` under the root (atomically) and pokes the agent running with that
/// root through its datagram socket `/run/edgekit/agent.sock` under the same root, without ever
/// waiting: keepalived runs notify scripts synchronously, so this must not block.
public enum VRRPNotify {
    /// Writes the state file under `paths.root` and pokes the agent running with the same root.
    /// A root that is not a directory is refused before anything is written.
    public static func record(_ state: VRRPState, paths: AgentPaths) throws {
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: paths.root, isDirectory: &isDirectory), isDirectory else {
            throw AgentError.badRoot(paths.root, "no such directory")
        }
        do {
            try FileManager.default.createDirectory(atPath: paths.runtime, withIntermediateDirectories: true)
        } catch {
            throw AgentError.cannotRecord(paths.vrrpState, "cannot create \(paths.runtime)")
        }
        let temporary = paths.vrrpState + ".\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data("\(state.rawValue)\n".utf8)) else {
            throw AgentError.cannotRecord(paths.vrrpState, "cannot write \(temporary)")
        }
        guard rename(temporary, paths.vrrpState) == 0 else {
            let why = DurableFiles.errorText()
            unlink(temporary)
            throw AgentError.cannotRecord(paths.vrrpState, why)
        }
        poke(paths.notifySocket, message: "vrrp \(state.rawValue)")
    }

    /// Reads the last recorded state, if any.
    public static func current(paths: AgentPaths) -> VRRPState? {
        (try? String(contentsOfFile: paths.vrrpState, encoding: .utf8))
            .flatMap { VRRPState(rawValue: $0.trimmingWhitespace()) }
    }

    /// One non-blocking datagram; no listener (agent not running) is fine: it reads the file at start,
    /// and a running agent reads it every tick anyway, so a path too long for a socket address is no error.
    static func poke(_ socketPath: String, message: String) {
        guard socketPath.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return }
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
