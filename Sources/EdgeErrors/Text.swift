#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The few text and path operations the libraries need that FoundationEssentials does not have.
// Full Foundation has them (NSString's path methods, `trimmingCharacters(in:)`, `String(format:)`),
// but it brings ICU's data along, 30 MB of the agent's static binary (docs/agent.md, "Weight").
// They live here because every library already depends on EdgeErrors.

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line breaks.
    package func trimmingWhitespace() -> String {
        trimming { $0.isWhitespace }
    }

    /// Without leading and trailing spaces and tabs (line breaks kept).
    package func trimmingSpaces() -> String {
        trimming { $0 == " " || $0 == "\t" }
    }

    private func trimming(_ drop: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }

    /// Padded with spaces at the end to `width` characters; longer text is kept whole.
    package func padded(to width: Int) -> String {
        count >= width ? String(self) : String(self) + String(repeating: " ", count: width - count)
    }
}

extension String {
    /// printf-style formatting of numbers (`%02x`, `%.1f`, `%3d%%`), as `String(format:)` without
    /// Foundation. Only C's own conversions: no `%@`.
    package init(cFormat format: String, _ arguments: any CVarArg...) {
        var buffer = [CChar](repeating: 0, count: 128)
        while true {
            let needed = withVaList(arguments) { list in
                buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, list) }
            }
            if needed < 0 { self = ""; return }
            if Int(needed) < buffer.count { break }
            buffer = [CChar](repeating: 0, count: Int(needed) + 1)
        }
        self = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    // Paths as NSString reads them: "/" separates, trailing slashes do not count.

    /// `self` joined with `component` by one "/" (`component` alone when `self` is empty).
    package func appendingPath(_ component: String) -> String {
        if isEmpty { return component }
        let head = hasSuffix("/") ? String(dropLast()) : self
        let tail = component.hasPrefix("/") ? String(component.dropFirst()) : component
        return head + "/" + tail
    }

    /// The last component: "b" for "/a/b" and "/a/b/", "/" for "/".
    package var lastPathComponent: String {
        let trimmed = withoutTrailingSlashes
        if trimmed == "/" || trimmed.isEmpty { return trimmed }
        return trimmed.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? trimmed
    }

    /// Without the last component: "/a" for "/a/b", "/" for "/a", "" for "a".
    package var deletingLastPathComponent: String {
        let trimmed = withoutTrailingSlashes
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash]).withoutTrailingSlashes
    }

    private var withoutTrailingSlashes: String {
        var text = self
        while text.count > 1, text.hasSuffix("/") { text.removeLast() }
        return text
    }
}

/// The process's standard output and error, written whole (`FileHandle` is not in
/// FoundationEssentials). A closed or broken stream loses the text; nothing else happens.
package enum StandardStream: Int32 {
    case output = 1
    case error = 2

    package func write(_ text: String) {
        write(bytes: Array(text.utf8))
    }

    package func write(bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(rawValue, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}
