import EdgeErrors
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The folder holding `master.key` (`--secrets DIR`, default `$EDGEKIT_SECRETS`), kept outside the
/// repository. The folder is 0700 and the file 0600, and both are checked like ssh checks its keys.
public struct SecretsFolder: Sendable {
    public static let environmentVariable = "EDGEKIT_SECRETS"
    public static let masterFileName = "master.key"

    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// `--secrets` if given, else `$EDGEKIT_SECRETS`.
    public static func resolve(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SecretsFolder {
        if let option, !option.isEmpty { return SecretsFolder(path: option) }
        if let value = environment[environmentVariable], !value.isEmpty { return SecretsFolder(path: value) }
        throw SecretsError("secrets.no-folder", "no secrets folder: pass --secrets DIR or set \(environmentVariable) (the folder holding \(masterFileName))")
    }

    public var masterPath: String { path.appendingPath(SecretsFolder.masterFileName) }

    /// Creates the folder (0700) if needed and writes a new master secret (0600). Never overwrites.
    public func create(_ master: MasterSecret) throws {
        let files = FileManager.default
        var isDirectory = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory else { throw SecretsError("secrets.not-a-folder", "\(path) is a file; --secrets needs a folder") }
            if files.fileExists(atPath: masterPath) {
                throw SecretsError("secrets.exists", "\(masterPath) already exists; refusing to overwrite the plan's master secret (every key derives from it)")
            }
            let mode = try permissions(path)
            if mode & 0o077 != 0 {
                throw SecretsError("secrets.permissions", "\(path) is accessible by group or others (mode \(octal(mode))); run chmod 700 \(path) first")
            }
        } else {
            do {
                try files.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw SecretsError("secrets.cannot-write", "cannot create \(path): \(error.plainDescription)", cause: error)
            }
        }
        // Never replaces: if another process created the file meanwhile, fail rather than overwrite.
        do {
            try AtomicFile.write(Data(master.fileText.utf8), to: masterPath, mode: 0o600, replace: false)
        } catch AtomicFileError.alreadyExists {
            throw SecretsError("secrets.exists", "\(masterPath) already exists; refusing to overwrite the plan's master secret (every key derives from it)")
        } catch let error as AtomicFileError {
            throw SecretsError("secrets.cannot-write", error.description, cause: error)
        }
    }

    /// Reads the master secret, refusing a file others can read.
    public func loadMaster() throws -> MasterSecret {
        guard FileManager.default.fileExists(atPath: masterPath) else {
            throw SecretsError("secrets.missing", "\(masterPath) does not exist; create it with `edgekit keys init --plan DIR --secrets \(path)` or restore it from your secret store")
        }
        let mode = try permissions(masterPath)
        if mode & 0o077 != 0 {
            throw SecretsError("secrets.permissions", "\(masterPath) is readable by group or others (mode \(octal(mode))); run chmod 600 \(masterPath)")
        }
        guard let data = FileManager.default.contents(atPath: masterPath) else {
            throw SecretsError("secrets.unreadable", "cannot read \(masterPath)")
        }
        do {
            return try MasterSecret(fileText: String(decoding: data, as: UTF8.self))
        } catch let error as KeyError {
            throw SecretsError("secrets.malformed", "\(masterPath): \(error)", cause: error)
        }
    }

    private func permissions(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SecretsError("secrets.unreadable", "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        return Int(info.st_mode) & 0o777
    }

    private func octal(_ mode: Int) -> String { "0" + String(mode, radix: 8) }
}

/// A problem with the secrets folder, in one line that says how to fix it.
public struct SecretsError: EdgeError, Equatable {
    public let code: ErrorCode
    public let message: String
    private let underlying: ErrorCause

    public init(_ code: ErrorCode, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = ErrorCause(cause)
    }

    public var cause: (any Error)? { underlying.error }
    public var description: String { message }
}
