import EdgeCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// What `apply --repair` did (or with `--dry-run` would do), in words for stdout.
public struct RepairReport: Sendable, Equatable {
    /// The generation that was checked.
    public var generation: Int
    /// The generation that now holds the restored files; nil when nothing drifted (or a dry run).
    public var repairedAs: Int?
    public var previous: Int?
    public var restored: [DriftedFile] = []
    public var services: [RouterService] = []
    public var serviceControl: String
    public var dryRun: Bool
    /// Services whose restart a crash had interrupted, finished now.
    public var recovered: [RouterService] = []

    public var lines: [String] {
        var lines: [String] = []
        if !recovered.isEmpty {
            lines.append("recovered an interrupted apply: restarted \(recovered.map(\.rawValue).joined(separator: ", "))")
        }
        guard !restored.isEmpty else {
            lines.append("generation \(generation) matches its manifest: drift=0, nothing changed, nothing restarted")
            return lines
        }
        if dryRun {
            lines.append("dry run: would repair generation \(generation): drift=\(restored.count); nothing was changed")
        } else {
            lines.append("repaired generation \(generation) as generation \(repairedAs ?? 0) from its own files, without the stick: "
                         + "drift=\(restored.count) restored" + (previous.map { "; previous generation \($0) kept" } ?? ""))
        }
        let verb = dryRun ? "would restore" : "restored"
        lines += restored.map { "\(verb) \($0.line)" }
        let list = services.isEmpty ? "nothing" : services.map(\.rawValue).joined(separator: ", ")
        if dryRun {
            lines.append("would restart: \(list)")
        } else if serviceControl == "none" {
            lines.append("not restarting (--services none): \(list)")
        } else {
            lines.append("restarted (\(serviceControl)): \(list)")
        }
        return lines
    }
}

extension Agent {
    /// `apply --repair`: puts every drifted file of the current generation back as its manifest
    /// records it, through a new generation written and switched exactly as `apply` does (staging,
    /// fsync, journal, one rename of `current`), and restarts only the services of the drifted files.
    /// Needs no stick: the bytes come from the generation's own copies, the previous generation, or
    /// the applied profile rendered again, and each must hash to the manifest's SHA-256.
    public func repair(dryRun: Bool) throws -> RepairReport {
        // Refusals first, before the lock: a refused repair creates nothing under --root.
        guard DurableFiles.exists(paths.current) else { throw AgentError.nothingApplied(paths.root) }
        if case .noManifest(let number) = store.drift() { throw AgentError.noManifest(generation: number) }
        if dryRun {
            guard let current = store.current else { throw AgentError.nothingApplied(paths.root) }
            var report = RepairReport(generation: current.number, previous: store.previous?.number,
                                      serviceControl: services.name, dryRun: true)
            report.restored = store.drift(of: current)
            _ = try repairFiles(current, drifted: report.restored, fresh: [])
            report.services = RouterService.services(for: report.restored.map(\.path))
            return report
        }
        let lock = try Lock(path: paths.runtime + "/apply.lock")
        defer { lock.release() }
        let recovered = try recoverLocked()
        guard let number = store.number(ofLink: paths.current) else { throw AgentError.nothingApplied(paths.root) }
        guard let current = store.generation(number) else { throw AgentError.noManifest(generation: number) }
        var report = try repairLocked(current, fresh: [])
        report.recovered = recovered
        return report
    }

    /// The repair with the apply lock held. `fresh` are files just rendered from the stick (when
    /// `apply` finds its own generation drifted), tried first.
    func repairLocked(_ current: Generation, fresh: [DesiredFile]) throws -> RepairReport {
        let store = self.store
        let previousBefore = store.previous?.number
        var report = RepairReport(generation: current.number, previous: previousBefore, serviceControl: services.name, dryRun: false)
        report.restored = store.drift(of: current)
        guard !report.restored.isEmpty else { return report }
        let files = try repairFiles(current, drifted: report.restored, fresh: fresh)
        report.services = RouterService.services(for: report.restored.map(\.path))

        var manifest = current.manifest
        let number = (store.existingNumbers.max() ?? current.number) + 1
        manifest.number = number
        try store.commit(number: number, manifest: manifest, files: files)
        // The repaired generation replaces the drifted one, whose content it has: the generation
        // kept for rollback stays the one kept before.
        try store.writeJournal(Transition(kind: .apply, from: current.number, to: number, previousBefore: previousBefore,
                                          paths: manifest.paths, services: report.services.map(\.rawValue)))
        try store.ensureLinks(manifest.paths)
        try store.switchLinks(current: number, previous: previousBefore)
        report.repairedAs = number
        do {
            try restartAll(report.services)
        } catch let failure as ServiceFailure {
            try rollback(from: number, to: current, previousBefore: previousBefore, paths: manifest.paths,
                         services: report.services, failure: failure)
        }
        try finishForward(carrying: store.failedServices)
        try store.prune(keeping: Set([number] + (previousBefore.map { [$0] } ?? [])))
        return report
    }

    /// Every file of `current` with the bytes its manifest records; throws `cannotRepair` naming
    /// the first drifted file no source has, before anything is written.
    func repairFiles(_ current: Generation, drifted: [DriftedFile], fresh: [DesiredFile]) throws -> [DesiredFile] {
        let store = self.store
        let freshByPath = Dictionary(fresh.map { ($0.path, $0.contents) }, uniquingKeysWith: { a, _ in a })
        var candidates = [current.number]
        if let previous = store.previous?.number, previous != current.number { candidates.append(previous) }
        func stored(_ entry: GenerationManifest.Entry) -> Data? {
            if let data = freshByPath[entry.path], DurableFiles.sha256(data) == entry.sha256 { return data }
            for number in candidates {
                let copy = paths.generation(number) + "/files" + entry.path
                if let data = GenerationStore.regularFileContents(copy), DurableFiles.sha256(data) == entry.sha256 { return data }
            }
            return nil
        }
        var rendered: [String: Data]?
        func renderedAgain() -> [String: Data] {
            if let rendered { return rendered }
            var result: [String: Data] = [:]
            if let entry = current.manifest.files.first(where: { $0.path == Agent.appliedProfile }), let data = stored(entry),
               let document = try? JSONDecoder().decode(ProfileDocument.self, from: data),
               let files = try? publicFiles(for: document, input: Agent.appliedProfile) {
                result = Dictionary(files.map { ($0.path, $0.contents) }, uniquingKeysWith: { a, _ in a })
            }
            rendered = result
            return result
        }
        return try current.manifest.files.map { entry in
            var contents = stored(entry)
            if contents == nil, !entry.secret, let data = renderedAgain()[entry.path], DurableFiles.sha256(data) == entry.sha256 {
                contents = data
            }
            guard let contents else { throw AgentError.cannotRepair(path: entry.path, generation: current.number) }
            return DesiredFile(path: entry.path, contents: contents, mode: entry.mode, uid: entry.uid, gid: entry.gid,
                               secret: entry.secret)
        }
    }
}
