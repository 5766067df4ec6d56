import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Where the running program and the programs installed beside it are.
public enum Executables {
    /// This program's path, from /proc/self/exe (argv[0] where /proc is missing).
    public static var current: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// `name` in the folder this program runs from (edgekit-agent and edgekit-relay next to edgekit).
    public static func sibling(_ name: String) -> String {
        current.deletingLastPathComponent + "/" + name
    }
}
