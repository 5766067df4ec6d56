import EdgeModel
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The hostname from the site stamp (docs/agent.md, "Hostname"). Every site's disk image shares one
/// root filesystem, whose `/etc/hostname` says `edgekit`; only the site partition (the stamp,
/// `/etc/edgekit/site.json`) knows the site. So at every start of `apply` and `run` the agent makes
/// the running system's hostname and `/etc/hostname` the stamp's: the first now, the second for
/// the next boot's early hostname (systemd reads it before the agent starts).
extension Agent {
    /// The hostname file under the root.
    static let hostnameFile = "/etc/hostname"

    /// Makes `/etc/hostname` under the root say the stamp's hostname (written atomically, and only
    /// when it says something else, so a repeated apply touches nothing), and on the system root
    /// (`/`, never under another `--root`) the running hostname too (sethostname(2), only when it
    /// differs). Returns one line per change (or, with `dryRun`, per change it would make). A stamp
    /// that is missing or unreadable is left to `apply` to report; nothing happens then.
    public func syncHostname(dryRun: Bool = false) throws -> [String] {
        guard let stamp = try? SiteStamp.load(from: paths.siteStamp) else { return [] }
        let name = stamp.hostname
        guard Agent.isValidHostname(name) else {
            throw AgentError.badImageFile(paths.siteStamp, "hostname \"\(name)\" is not a valid host name (labels of letters, "
                                          + "digits and inner hyphens, separated by dots, at most 64 characters); rebuild the image")
        }
        let source = "from \(AgentPaths.stampPath)"
        var lines: [String] = []
        if paths.isSystemRoot, let running = Agent.runningHostname(), running != name {
            if dryRun {
                lines.append("would set the running system's hostname to \(name) (is \(running), \(source))")
            } else {
                let result = name.withCString { sethostname($0, strlen($0)) }
                guard result == 0 else {
                    throw AgentError.cannotSetHostname(name, DurableFiles.errorText())
                }
                lines.append("hostname: set the running system's hostname to \(name) (was \(running), \(source))")
            }
        }
        let file = paths.live(Agent.hostnameFile)
        let content = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingWhitespace()
        if content != name {
            if dryRun {
                lines.append("would write \(Agent.hostnameFile) (\(name), \(source))")
            } else {
                try writeHostnameFile(name, to: file)
                lines.append("hostname: wrote \(Agent.hostnameFile) (\(name), \(source))")
            }
        }
        return lines
    }

    /// `NAME\n` via a temporary file renamed over the old one, each durable: after a power cut the
    /// file holds the old name or the new one.
    func writeHostnameFile(_ name: String, to file: String) throws {
        let directory = file.deletingLastPathComponent
        try DurableFiles.makeDirectories(directory, steps: steps)
        let temporary = directory + "/.hostname.edgekit-new"
        unlink(temporary)
        try DurableFiles.create(temporary, Data((name + "\n").utf8), mode: 0o644, uid: 0, gid: 0, steps: steps)
        steps.step("rename \(temporary) → \(file)")
        guard rename(temporary, file) == 0 else {
            let why = DurableFiles.errorText()
            unlink(temporary)
            throw AgentError.cannotWrite(file, why)
        }
        try DurableFiles.fsyncDirectory(directory, steps: steps)
    }

    static func runningHostname() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// RFC 1123 host name: dot-separated labels of 1-63 letters, digits and hyphens, no hyphen at
    /// either end of a label; at most 64 characters in all (Linux's HOST_NAME_MAX).
    public static func isValidHostname(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.count) && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}
