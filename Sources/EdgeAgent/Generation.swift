import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One file of a generation as it will be installed: absolute path on the appliance, bytes, mode, owner.
public struct DesiredFile: Sendable, Equatable {
    public var path: String
    public var contents: Data
    public var mode: UInt16
    public var uid: UInt32
    public var gid: UInt32
    /// Secret files (the WireGuard key) are never printed and are scrubbed when removed.
    public var secret: Bool

    public init(path: String, contents: Data, mode: UInt16, uid: UInt32 = 0, gid: UInt32 = 0, secret: Bool = false) {
        self.path = path
        self.contents = contents
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.secret = secret
    }

    var entry: GenerationManifest.Entry {
        .init(path: path, mode: mode, uid: uid, gid: gid, sha256: DurableFiles.sha256(contents), secret: secret)
    }
}

/// What a generation holds: `generations/N/manifest.json`, next to the files in `generations/N/files/`.
public struct GenerationManifest: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var path: String
        public var mode: UInt16
        public var uid: UInt32
        public var gid: UInt32
        public var sha256: String
        public var secret: Bool
    }

    public var schema = 1
    public var number: Int
    /// `image` for generation 0 (the files the image shipped with), `profile` for a stick's.
    public var origin: String
    public var serial: UInt64?
    public var plan: String?
    public var site: String?
    public var slot: Int?
    public var files: [Entry]

    public var paths: [String] { files.map(\.path) }

    /// Same files and serial: applying this again would change nothing.
    func sameContent(as other: GenerationManifest) -> Bool {
        files == other.files && serial == other.serial && origin == other.origin
    }
}

/// One applied generation: its number and manifest.
public struct Generation: Sendable, Equatable {
    public var number: Int
    public var manifest: GenerationManifest
}

/// Written before a switch and removed once services run the files of `to` (docs/agent.md).
struct Transition: Codable, Equatable {
    enum Kind: String, Codable {
        /// Forward, to a new generation.
        case apply
        /// Back from `from`, whose service `failedService` did not come up, to `to`.
        case rollback
    }

    /// Nil in journals written before rollbacks were journalled as such: an apply.
    var kind: Kind?
    var from: Int?
    var to: Int
    var previousBefore: Int?
    var paths: [String]
    var services: [String]
    /// A rollback's reason, so a recovery that finishes it can say why.
    var failedService: String?
    var failureDetail: String?

    init(kind: Kind, from: Int?, to: Int, previousBefore: Int?, paths: [String], services: [String],
         failedService: String? = nil, failureDetail: String? = nil) {
        self.kind = kind
        self.from = from
        self.to = to
        self.previousBefore = previousBefore
        self.paths = paths
        self.services = services
        self.failedService = failedService
        self.failureDetail = failureDetail
    }

    var isRollback: Bool { kind == .rollback }
}

/// Services of the current generation that did not come up and that no rollback could bring back
/// (`/var/lib/edgekit/failed-services.json`): an apply of the same stick restarts them instead of
/// saying "nothing restarted", and a new generation restarts them along with what it changed.
public struct FailedServices: Codable, Sendable, Equatable {
    public var generation: Int
    public var services: [RouterService]
    /// The first failure, in the tool's words.
    public var detail: String
}

/// The generation store under `/var/lib/edgekit`: `generations/N/{manifest.json,files/…}`, the
/// `current` and `previous` links, `staging/` and the transition journal. Live paths (`/etc/radvd.conf`)
/// are relative symlinks through `current`, so one rename(2) of `current` switches every file at once.
public final class GenerationStore {
    public let paths: AgentPaths
    let steps: CrashPoints

    init(paths: AgentPaths, steps: CrashPoints) {
        self.paths = paths
        self.steps = steps
    }

    public convenience init(paths: AgentPaths) {
        self.init(paths: paths, steps: CrashPoints())
    }

    // MARK: Reading

    func number(ofLink link: String) -> Int? {
        guard let target = DurableFiles.readLink(link), target.hasPrefix("generations/") else { return nil }
        return Int(target.dropFirst("generations/".count))
    }

    public func manifest(_ number: Int) -> GenerationManifest? {
        guard let data = FileManager.default.contents(atPath: paths.generation(number) + "/manifest.json") else { return nil }
        return try? JSONDecoder().decode(GenerationManifest.self, from: data)
    }

    public var current: Generation? {
        guard let number = number(ofLink: paths.current), let manifest = manifest(number) else { return nil }
        return Generation(number: number, manifest: manifest)
    }

    public var previous: Generation? {
        guard let number = number(ofLink: paths.previous), let manifest = manifest(number) else { return nil }
        return Generation(number: number, manifest: manifest)
    }

    /// The last applied serial: the current generation's.
    public var lastSerial: UInt64? { current?.manifest.serial }

    var existingNumbers: [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: paths.generations)) ?? []).compactMap(Int.init).sorted()
    }

    /// What a live path's symlink must say: relative, so it is right under `--root` and on `/` alike.
    static func linkTarget(for path: String) -> String {
        let depth = path.split(separator: "/").count - 1
        return String(repeating: "../", count: depth) + String(AgentPaths.stateDirectory.dropFirst()) + "/current/files" + path
    }

    func isOurLink(_ path: String) -> Bool {
        DurableFiles.readLink(paths.live(path)) == Self.linkTarget(for: path)
    }

    /// The content a live path shows now (following links), or nil when absent.
    func liveContents(_ path: String) -> Data? {
        FileManager.default.contents(atPath: paths.live(path))
    }

    func transition() -> Transition? {
        FileManager.default.contents(atPath: paths.journal).flatMap { try? JSONDecoder().decode(Transition.self, from: $0) }
    }

    public func generation(_ number: Int) -> Generation? {
        manifest(number).map { Generation(number: number, manifest: $0) }
    }

    /// The services known not to run with the current generation; nil when all came up.
    public var failedServices: FailedServices? {
        guard let record = failedServicesRecord, record.generation == current?.number, !record.services.isEmpty else { return nil }
        return record
    }

    /// The record as written, whichever generation it names.
    var failedServicesRecord: FailedServices? {
        FileManager.default.contents(atPath: paths.failedServices).flatMap { try? JSONDecoder().decode(FailedServices.self, from: $0) }
    }

    /// Records (or with nil, forgets) which services of a generation did not come up; durable.
    func setFailedServices(_ record: FailedServices?) throws {
        guard let record, !record.services.isEmpty else {
            guard DurableFiles.exists(paths.failedServices) else { return }
            steps.step("remove failed-services")
            unlink(paths.failedServices)
            try DurableFiles.fsyncDirectory(paths.state, steps: steps)
            return
        }
        let temporary = paths.failedServices + ".new"
        unlink(temporary)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try DurableFiles.create(temporary, try encoder.encode(record), mode: 0o644, uid: 0, gid: 0, steps: steps)
        steps.step("rename failed-services")
        guard rename(temporary, paths.failedServices) == 0 else {
            throw AgentError.cannotWrite(paths.failedServices, DurableFiles.errorText())
        }
        try DurableFiles.fsyncDirectory(paths.state, steps: steps)
    }

    // MARK: Writing a generation

    /// Writes `files` and their manifest to `staging/`, fsyncs everything, and renames it to
    /// `generations/N`. On failure the staging tree is scrubbed and nothing else changed. Each file
    /// is fsynced as it is written; the directories once each, all before the rename (an fsync per
    /// new directory entry would be one journal commit each: a first apply went from 64 fsyncs to 46).
    func commit(number: Int, manifest: GenerationManifest, files: [DesiredFile]) throws {
        do {
            try DurableFiles.makeDirectories(paths.generations, steps: steps)
            DurableFiles.removeTree(paths.staging)
            var directories: Set<String> = [paths.staging, paths.staging + "/files"]
            try DurableFiles.makeDirectories(paths.staging + "/files", steps: steps, syncLater: &directories)
            for file in files {
                let target = paths.staging + "/files" + file.path
                let directory = target.deletingLastPathComponent
                try DurableFiles.makeDirectories(directory, steps: steps, syncLater: &directories)
                directories.insert(directory)
                try DurableFiles.create(target, file.contents, mode: file.mode, uid: file.uid, gid: file.gid, steps: steps)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            try DurableFiles.create(paths.staging + "/manifest.json", try encoder.encode(manifest) + Data("\n".utf8),
                                    mode: 0o644, uid: 0, gid: 0, steps: steps)
            for directory in directories.sorted(by: >) { try DurableFiles.fsyncDirectory(directory, steps: steps) }
            let destination = paths.generation(number)
            DurableFiles.removeTree(destination)
            steps.step("rename staging → generations/\(number)")
            guard rename(paths.staging, destination) == 0 else {
                throw AgentError.cannotWrite(destination, DurableFiles.errorText())
            }
            try DurableFiles.fsyncDirectory(paths.generations, steps: steps)
        } catch {
            DurableFiles.removeTree(paths.staging)
            throw error
        }
    }

    func writeJournal(_ transition: Transition) throws {
        let temporary = paths.journal + ".new"
        unlink(temporary)
        let data = try JSONEncoder().encode(transition)
        try DurableFiles.create(temporary, data, mode: 0o644, uid: 0, gid: 0, steps: steps)
        steps.step("rename journal")
        guard rename(temporary, paths.journal) == 0 else { throw AgentError.cannotWrite(paths.journal, DurableFiles.errorText()) }
        try DurableFiles.fsyncDirectory(paths.state, steps: steps)
    }

    func removeJournal() throws {
        guard DurableFiles.exists(paths.journal) else { return }
        steps.step("remove journal")
        unlink(paths.journal)
        try DurableFiles.fsyncDirectory(paths.state, steps: steps)
    }

    /// Makes every path a symlink through `current`. A path the current generation lacks dangles,
    /// which every reader sees as "no such file", exactly as before the link existed. Returns with
    /// every new link and directory durable (each changed directory fsynced once, at the end): the
    /// switch that follows must not become durable without them.
    func ensureLinks(_ paths: [String]) throws {
        var directories = Set<String>()
        for path in paths.sorted() where !isOurLink(path) {
            let live = self.paths.live(path)
            let directory = live.deletingLastPathComponent
            try DurableFiles.makeDirectories(directory, steps: steps, syncLater: &directories)
            try DurableFiles.replaceSymlink(live, target: Self.linkTarget(for: path), steps: steps, syncDirectory: false)
            directories.insert(directory)
        }
        for directory in directories.sorted(by: >) { try DurableFiles.fsyncDirectory(directory, steps: steps) }
    }

    /// Removes our links for paths the current generation does not hold (they dangle: no change seen).
    func removeDanglingLinks(_ candidates: [String]) throws {
        for path in Set(candidates).sorted() {
            let live = paths.live(path)
            unlink(live.deletingLastPathComponent + "/.\(live.lastPathComponent).edgekit-new")
            guard isOurLink(path), !FileManager.default.fileExists(atPath: live) else { continue }
            steps.step("unlink \(live)")
            unlink(live)
            try DurableFiles.fsyncDirectory(live.deletingLastPathComponent, steps: steps)
        }
    }

    /// The switch itself: `previous` first (harmless while `current` still names the same), then
    /// `current`, each a rename(2) of a new symlink.
    func switchLinks(current number: Int, previous: Int?) throws {
        try setPrevious(previous)
        if self.number(ofLink: paths.current) != number {
            try DurableFiles.replaceSymlink(paths.current, target: "generations/\(number)", steps: steps)
        }
    }

    /// Points `previous` at that generation, or removes it for nil; nothing when it already does.
    func setPrevious(_ previous: Int?) throws {
        if let previous {
            guard number(ofLink: paths.previous) != previous else { return }
            try DurableFiles.replaceSymlink(paths.previous, target: "generations/\(previous)", steps: steps)
        } else if DurableFiles.exists(paths.previous) {
            steps.step("unlink previous")
            unlink(paths.previous)
            try DurableFiles.fsyncDirectory(paths.state, steps: steps)
        }
    }

    /// Removes every generation but `keep`, scrubbing their secrets.
    func prune(keeping keep: Set<Int>) throws {
        for number in existingNumbers where !keep.contains(number) {
            steps.step("prune generation \(number)")
            DurableFiles.removeTree(paths.generation(number))
        }
        if DurableFiles.exists(paths.generations) { try DurableFiles.fsyncDirectory(paths.generations, steps: steps) }
    }

    /// Generation 0: the files the image itself shipped at the paths the agent is about to take over,
    /// so the first switch has an "old" side too and a failed first apply can roll back to the image.
    func adoptImage(paths desired: [String]) throws -> Generation {
        var files: [DesiredFile] = []
        for path in desired.sorted() {
            let live = paths.live(path)
            var info = stat()
            guard stat(live, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  let contents = FileManager.default.contents(atPath: live) else { continue }
            files.append(DesiredFile(path: path, contents: contents, mode: UInt16(info.st_mode & 0o7777),
                                     uid: info.st_uid, gid: info.st_gid, secret: info.st_mode & 0o004 == 0))
        }
        let manifest = GenerationManifest(number: 0, origin: "image", serial: nil, plan: nil, site: nil, slot: nil,
                                          files: files.map(\.entry))
        try commit(number: 0, manifest: manifest, files: files)
        try switchLinks(current: 0, previous: nil)
        // Each replacement shows the same bytes through generation 0: nothing visible changes.
        try ensureLinks(files.map(\.path))
        return Generation(number: 0, manifest: manifest)
    }

    /// Brings the store back to a committed state after a crash: scrubs staging, drops temporary
    /// links and files, and with no `current` everything (nothing was ever live). Returns the
    /// journal of an interrupted switch, if there is one, for `Agent` to finish (restart, roll
    /// back, or complete a rollback): until it has, nothing the journal may need is pruned. With no
    /// journal, dangling links and generations other than `current`/`previous` are removed.
    func recover() throws -> Transition? {
        if DurableFiles.exists(paths.staging) {
            steps.step("remove staging")
            DurableFiles.removeTree(paths.staging)
        }
        unlink(paths.journal + ".new")
        unlink(paths.failedServices + ".new")
        for link in [paths.current, paths.previous] {
            unlink(link.deletingLastPathComponent + "/.\(link.lastPathComponent).edgekit-new")
        }
        guard let current else {
            // Nothing was ever switched to: whatever is in generations/ was never live.
            if DurableFiles.exists(paths.generations) { DurableFiles.removeTree(paths.generations) }
            try? removeJournal()
            try? setFailedServices(nil)
            return nil
        }
        if let journal = transition() { return journal }
        try removeJournal()
        try tidy(keeping: [current.number] + (previous.map { [$0.number] } ?? []), links: [])
        return nil
    }

    /// After a switch (or its recovery): links that dangle are removed (of the live generations'
    /// paths and `links`), generations not in `keep` pruned.
    func tidy(keeping keep: [Int], links: [String]) throws {
        let candidates = keep.flatMap { manifest($0)?.paths ?? [] } + links
        try removeDanglingLinks(candidates)
        try prune(keeping: Set(keep))
    }
}
