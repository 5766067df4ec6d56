import EdgeErrors
import EdgeSystem
import Foundation

/// What the Debian archive a base is installed from looks like now: the `Date:` of each suite's
/// signed index (`dists/SUITE/InRelease`), which the archive changes whenever it publishes (a
/// point release, an update, a security fix). A cached base records the state it was built from
/// (its `complete` file's `archive` line), and a build whose lookup finds another state builds the
/// base anew (docs/image.md, "Security updates").
public enum ArchiveState {
    /// `SUITE=DATE` for each `deb URI SUITE …` line of `mirrors`, joined with `; `, in order.
    /// `fetch` reads a URL (tests give their own); the default is apt's own downloader.
    public static func lookUp(mirrors: [String], fetch: (String) throws -> Data = download) throws -> String {
        var parts: [String] = []
        for line in mirrors {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 3, words[0] == "deb" else { throw ImageError("image.bad-setting", "mirror line \"\(line)\" is not `deb URI SUITE COMPONENTS`") }
            let url = words[1].hasSuffix("/") ? words[1] : words[1] + "/"
            let index = url + "dists/\(words[2])/InRelease"
            guard let date = date(inRelease: try fetch(index)) else {
                throw ImageError("image.archive", "\(index) has no Date: field (not a Debian archive's InRelease file)")
            }
            parts.append("\(words[2])=\(date)")
        }
        return parts.joined(separator: "; ")
    }

    /// `lookUp(mirrors:)` with apt's downloader, once per process and mirror list: a build asks for
    /// the base at every level it makes (each site's system level, each update bundle), and the
    /// answer of its first look is the one its base was checked against. Failures are not kept.
    public static func current(mirrors: [String]) throws -> String {
        let key = mirrors.joined(separator: "\n")
        if let known = lock.withLock({ looked[key] }) { return known }
        let state = try lookUp(mirrors: mirrors)
        lock.withLock { looked[key] = state }
        return state
    }

    private static let lock = ThreadLock()
    nonisolated(unsafe) private static var looked: [String: String] = [:]

    /// The `Date:` field of a Release file (clear-signed or not), nil without one before its file lists.
    public static func date(inRelease data: Data) -> String? {
        let text = String(decoding: data.prefix(64 << 10), as: UTF8.self)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Date: ") {
                let value = line.dropFirst("Date: ".count).trimmingCharacters(in: .whitespaces)
                return value.isEmpty ? nil : value
            }
            // The file lists come after the fields.
            if line.hasPrefix("MD5Sum:") || line.hasPrefix("SHA256:") { break }
        }
        return nil
    }

    /// Downloads `url` with apt's helper (`/usr/lib/apt/apt-helper download-file`, on every Debian
    /// host), which honours the host's apt proxy settings; 30 s at most.
    public static func download(_ url: String) throws -> Data {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("edgekit-inrelease-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { unlink(file) }
        let result = try SystemCommand.run("timeout", ["30", "/usr/lib/apt/apt-helper", "download-file", url, file])
        guard result.status == 0, let data = FileManager.default.contents(atPath: file) else {
            let why = result.errorText.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
            throw ImageError("image.archive", "cannot read \(url): \(why)")
        }
        return data
    }
}

