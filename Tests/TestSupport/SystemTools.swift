import Foundation

/// The system's own programs (Debian's radvd, nft, wg, …) that tests start for real.
public enum SystemTools {
    /// The absolute path of `name` on `$PATH` or in the sbin folders (root's tools live there even
    /// when a test runner's PATH lacks them), or nil.
    public static func path(_ name: String) -> String? {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = searchPath.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The names among `names` that are not installed, in order.
    public static func missing(_ names: [String]) -> [String] {
        names.filter { path($0) == nil }
    }

    /// True when the tests run as root (network namespaces, mounts, chroots need it).
    public static var isRoot: Bool { geteuid() == 0 }
}
