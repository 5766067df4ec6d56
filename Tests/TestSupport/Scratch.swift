import Foundation
import Synchronization

/// Names that do not collide between tests, test processes and the host: namespaces
/// (`ek<pid>x<n>`), interfaces (at most 15 bytes, the kernel's IFNAMSIZ - 1) and folders.
public enum UniqueName {
    private static let counter = Mutex(0)

    /// A name starting with `prefix`, unique for this process, at most 15 characters.
    public static func next(_ prefix: String) -> String {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        return String("\(prefix)\(getpid() % 100_000)x\(number)".prefix(15))
    }
}

/// A folder of its own under the temporary folder, removed with everything in it by `remove()`
/// (call it from `defer`) or at the end of `TemporaryDirectory.with`.
public struct TemporaryDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(_ label: String = "edgekit-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Runs `body` with a new folder and removes it afterwards, also when `body` throws.
    public static func with<T>(_ label: String = "edgekit-test", _ body: (TemporaryDirectory) throws -> T) throws -> T {
        let directory = try TemporaryDirectory(label)
        defer { directory.remove() }
        return try body(directory)
    }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}
