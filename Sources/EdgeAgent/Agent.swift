import EdgeCrypto
import EdgeErrors
import EdgeModel
import EdgeRender
import EdgeStick
import EdgeSystem
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// What `apply` did, in words for stdout.
public struct ApplyReport: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// The current generation already holds exactly these files and serial.
        case unchanged
        /// A new generation is live (and the services that read changed files were restarted).
        case applied(previous: Int)
        /// `--dry-run`: what would change.
        case wouldApply
    }

    public var outcome: Outcome
    public var generation: Int?
    public var serial: UInt64
    public var site: String
    public var slot: Int
    public var stick: String
    public var added: [String] = []
    public var changed: [String] = []
    public var removed: [String] = []
    /// Restarted, or (dry run / `--services none`) that would be.
    public var services: [RouterService] = []
    public var serviceControl: String
    /// Services whose restart a crash had interrupted, finished now.
    public var recovered: [RouterService] = []
    /// Services that had not come up with the current generation, restarted again now.
    public var retried: [RouterService] = []
    /// What the apply did about the plan's `auto` ports: one line per role pinned, moved, or without a port.
    public var ports: [String] = []

    /// The line that says what happened (the first one but for a recovery note).
    public var summary: String? { lines.first { !$0.hasPrefix("recovered an interrupted apply") } }

    public var lines: [String] {
        var lines: [String] = []
        if !recovered.isEmpty {
            lines.append("recovered an interrupted apply: restarted \(recovered.map(\.rawValue).joined(separator: ", "))")
        }
        let who = "site \(site) router \(slot), serial \(serial)"
        switch outcome {
        case .unchanged where retried.isEmpty:
            lines.append("generation \(generation ?? 0) already applied (\(who)): nothing changed, nothing restarted")
        case .unchanged:
            lines.append("generation \(generation ?? 0) already applied (\(who)): nothing changed, but "
                         + "\(retried.map(\.rawValue).joined(separator: ", ")) had not come up with it")
        case .applied(let previous):
            lines.append("applied generation \(generation ?? 0) (\(who)) from \(stick); previous generation \(previous) kept")
        case .wouldApply:
            lines.append("dry run: would apply \(who) from \(stick); nothing was changed")
        }
        lines += ports
        let verb = outcome == .wouldApply ? "would " : ""
        lines += added.map { "\(verb)add \($0)" } + changed.map { "\(verb)change \($0)" } + removed.map { "\(verb)remove \($0)" }
        if outcome != .unchanged || !retried.isEmpty {
            let list = services.isEmpty ? "nothing" : services.map(\.rawValue).joined(separator: ", ")
            if outcome == .wouldApply {
                lines.append("would restart: \(list)")
            } else if serviceControl == "none" {
                lines.append("not restarting (--services none): \(list)")
            } else {
                lines.append("restarted (\(serviceControl)): \(list)")
            }
        }
        return lines
    }
}

/// The device side: find the stick, unseal, verify, derive, render, and apply one generation.
public struct Agent {
    /// The applied profile, secret redacted (public: plan parameters, relay, site certificate).
    public static let appliedProfile = "/etc/edgekit/profile.json"

    public let paths: AgentPaths
    public let services: any ServiceControl
    let steps = CrashPoints()

    public init(paths: AgentPaths, services: any ServiceControl) {
        self.paths = paths
        self.services = services
    }

    public var store: GenerationStore { GenerationStore(paths: paths, steps: steps) }

    /// The applied profile (secret redacted) and the model it describes, or nil when nothing is
    /// applied: what the watches (VIPs, health, resignation) read of the current generation.
    static func appliedModel(paths: AgentPaths) -> (document: ProfileDocument, model: (plan: Plan, site: Site, router: Router))? {
        guard let data = FileManager.default.contents(atPath: paths.live(appliedProfile)),
              let document = try? JSONDecoder().decode(ProfileDocument.self, from: data),
              let model = try? document.model() else { return nil }
        return (document, model)
    }

    // MARK: Inputs

    /// The device of the stick labelled EDGEPROFILE, probing devices afresh (no blkid cache).
    public static func locateStick() -> String? {
        guard let result = try? SystemCommand.run("blkid", ["-c", "/dev/null", "-t", "LABEL=\(ProfileStick.label)", "-o", "device"]),
              result.succeeded else { return nil }
        return result.output.split(separator: "\n").map(String.init).sorted().first
    }

    func loadImageKeys() throws -> (SiteStamp, Age.Identity, Signify.PublicKey) {
        let stamp = try SiteStamp.load(from: paths.siteStamp)
        guard let identityText = try? String(contentsOfFile: paths.siteIdentity, encoding: .utf8) else {
            throw AgentError.badImageFile(paths.siteIdentity, "missing or unreadable; the image holds no site identity")
        }
        guard let identity = try? Age.Identity(parsing: identityText) else {
            throw AgentError.badImageFile(paths.siteIdentity, "not an age identity (AGE-SECRET-KEY-1…)")
        }
        guard let keyText = try? String(contentsOfFile: paths.operatorKey, encoding: .utf8) else {
            throw AgentError.badImageFile(paths.operatorKey, "missing or unreadable; the image holds no operator key")
        }
        guard let operatorKey = try? Signify.PublicKey(parsing: keyText) else {
            throw AgentError.badImageFile(paths.operatorKey, "not a signify public key")
        }
        return (stamp, identity, operatorKey)
    }

    /// Reads and checks the profile on `stick` (or the stick found by label); every refusal is one
    /// `AgentError` line and nothing is written.
    public func readProfile(stick given: String?) throws -> (document: ProfileDocument, stick: String) {
        let (stamp, identity, operatorKey) = try loadImageKeys()
        guard let stick = given ?? Agent.locateStick() else { throw AgentError.noStick(keeping: store.current?.number) }
        let read: (sealed: Data, source: String)
        do {
            read = try ProfileStick.readProfile(at: stick)
        } catch {
            throw AgentError.stick("\(error)", cause: ErrorCause(error))
        }
        let (sealed, input) = read
        let expectation = SealedProfile.Expectation(identity: identity, operatorKey: operatorKey, plan: stamp.plan,
                                                    site: stamp.site, lastSerial: store.lastSerial)
        do {
            return (try SealedProfile.open(sealed, expecting: expectation), stick)
        } catch {
            throw AgentError.profile(input, error.description, cause: ErrorCause(error))
        }
    }

    /// Every file of the router (rendered) plus its WireGuard key (0600, owned by systemd-network)
    /// and, when the plan has operators, its SSH host key (0600, root). `pinnedPorts`: the `auto`
    /// ports' MAC addresses; nil, the pinned ones on disk.
    public func desiredFiles(for document: ProfileDocument, input: String, pinnedPorts: PinnedPorts? = nil) throws -> [DesiredFile] {
        let secret: RouterSecret
        do {
            secret = try document.secret()
        } catch {
            throw AgentError.profile(input, "\(error)", cause: ErrorCause(error))
        }
        var files = try publicFiles(for: document, input: input, pinnedPorts: pinnedPorts)
        let (uid, gid) = keyOwner()
        files.append(DesiredFile(path: ConfigPaths.routerWireGuardKey,
                                 contents: Data((secret.wireGuardKey.privateKeyBase64 + "\n").utf8),
                                 mode: 0o600, uid: uid, gid: gid, secret: true))
        // The SSH host key, like the WireGuard key, comes from the router secret: the stick brings it.
        // sshd (root) reads it and refuses a key others can read (sshd(8), HostKey).
        if !document.plan.operators.isEmpty {
            let hostname = document.site.hostname(slot: document.router.slot)
            files.append(DesiredFile(path: ConfigPaths.sshHostKey,
                                     contents: Data(secret.sshHostKey.openSSHPrivateKey(comment: "root@\(hostname)").utf8),
                                     mode: 0o600, uid: geteuid() == 0 ? 0 : geteuid(), gid: geteuid() == 0 ? 0 : getegid(),
                                     secret: true))
        }
        return files.sorted { $0.path < $1.path }
    }

    /// Every file but the key: what the profile renders to, and the applied profile itself. Needs
    /// no secret, so `apply --repair` can render it again from the applied (redacted) profile, with
    /// the ports pinned on disk (`pinnedPorts` nil).
    func publicFiles(for document: ProfileDocument, input: String, pinnedPorts: PinnedPorts? = nil) throws -> [DesiredFile] {
        do {
            let model = try document.model()
            var files = EdgeRouterConfig.files(plan: model.plan, site: model.site, router: model.router,
                                               relayPublicKeys: document.plan.relays.map(\.publicKey),
                                               pinnedPorts: pinnedPorts ?? PortPinning(paths: paths).load())
                .map { DesiredFile(path: $0.path, contents: Data($0.contents.utf8), mode: $0.mode) }
            // The profile without its secret: what `run` needs to register (certificate, relay) and
            // what an operator reads to see which stick is applied.
            let publicProfile = try DocumentCoding.pretty(document.redacted())
            files.append(DesiredFile(path: Agent.appliedProfile, contents: Data(publicProfile.utf8), mode: 0o644))
            return files
        } catch {
            throw AgentError.profile(input, "\(error)", cause: ErrorCause(error))
        }
    }

    /// systemd-network from the root's /etc/passwd (networkd opens PrivateKeyFile= as that user),
    /// else root; a non-root test run can only give files to itself.
    func keyOwner() -> (UInt32, UInt32) {
        guard geteuid() == 0 else { return (geteuid(), getegid()) }
        let passwd = (try? String(contentsOfFile: paths.live("/etc/passwd"), encoding: .utf8)) ?? ""
        for line in passwd.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count >= 4, fields[0] == "systemd-network", let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) {
                return (uid, gid)
            }
        }
        return (0, 0)
    }

    // MARK: Apply

    /// Finds, checks and applies the stick as one generation (docs/agent.md). Throws `AgentError`
    /// with nothing changed for any bad input; on a service failure rolls back and throws.
    public func apply(stick given: String?, dryRun: Bool) throws -> ApplyReport {
        let (document, stick) = try readProfile(stick: given)
        let input = stick
        // The plan's `auto` ports: pinned by MAC at the first apply that finds them, kept after
        // (docs/network.md, "Interface names"). Written below, once the apply holds the lock.
        let pinning = PortPinning(paths: paths)
        // A profile without a model is refused by `desiredFiles`, with its reason.
        let ports = (try? document.model()).map { pinning.resolve(for: $0.router, ports: WiredPorts.scan(pinning.classNet)) }
            ?? (pins: PinnedPorts(), lines: [])
        let files = try desiredFiles(for: document, input: input, pinnedPorts: ports.pins)
        let entries = files.map(\.entry)
        var report = ApplyReport(outcome: .wouldApply, generation: nil, serial: document.serial, site: document.site.name,
                                 slot: document.router.slot, stick: stick, serviceControl: services.name, ports: ports.lines)
        var manifest = GenerationManifest(number: 0, origin: "profile", serial: document.serial, plan: document.plan.name,
                                          site: document.site.name, slot: document.router.slot, files: entries)
        let store = self.store

        if dryRun {
            let old = store.current
            diff(old: old?.manifest.files ?? [], new: entries, into: &report)
            let drifted = old.map { store.drift(of: $0) } ?? []
            if let old, old.manifest.sameContent(as: manifest), drifted.isEmpty {
                report.outcome = .unchanged
                report.generation = old.number
            } else if let old, old.manifest.sameContent(as: manifest) {
                // The same stick restores what drifted (below): say which files and services.
                report.generation = old.number
                report.changed = drifted.map(\.path)
                report.services = RouterService.services(for: report.changed)
            } else if old == nil {
                // Without a generation the live files are the image's: compare with what is there.
                report.added = []; report.changed = []
                for file in files {
                    guard let live = store.liveContents(file.path) else { report.added.append(file.path); continue }
                    if live != file.contents { report.changed.append(file.path) }
                }
                report.services = RouterService.services(for: report.added + report.changed)
            }
            return report
        }

        let lock = try Lock(path: paths.runtime + "/apply.lock")
        defer { lock.release() }

        report.recovered = try recoverLocked()
        if ports.pins != pinning.load() { try pinning.save(ports.pins, steps: steps) }

        if let current = store.current, current.manifest.sameContent(as: manifest) {
            // The generation's own copies were changed in place (an editor writes through the
            // link), chmod-ed or chown-ed: put them back from the stick, as `apply --repair` would.
            if store.drift(of: current).contains(where: { !$0.copyIntact }) {
                let repaired = try repairLocked(current, fresh: files)
                report.outcome = .applied(previous: repaired.previous ?? current.number)
                report.generation = repaired.repairedAs ?? current.number
                report.changed = repaired.restored.map(\.path)
                report.services = repaired.services
                return report
            }
            let broken = entries.map(\.path).filter { !store.isOurLink($0) }
            report.outcome = .unchanged
            report.generation = current.number
            if !broken.isEmpty {
                // Someone replaced a live file by hand: point it back at the generation.
                try store.ensureLinks(broken)
                report.outcome = .applied(previous: current.number)
                report.changed = broken
            }
            // Services that did not come up with this generation are not "nothing to do": try again.
            let failed = store.failedServices
            report.retried = failed?.services ?? []
            report.services = Array(Set(RouterService.services(for: broken) + report.retried)).sorted()
            try restartCurrent(report.services, generation: current.number)
            return report
        }

        let old = try store.current ?? store.adoptImage(paths: files.map(\.path))
        let previousBefore = store.previous?.number
        let number = (store.existingNumbers.max() ?? old.number) + 1
        manifest.number = number
        try store.commit(number: number, manifest: manifest, files: files)
        diff(old: old.manifest.files, new: entries, into: &report)
        let changedPaths = report.added + report.changed + report.removed
        // A service that never came up with the old generation is restarted with the new one too.
        let dead = store.failedServices
        report.services = Array(Set(RouterService.services(for: changedPaths) + (dead?.services ?? []))).sorted()
        let union = Array(Set(old.manifest.paths + manifest.paths)).sorted()
        try store.writeJournal(Transition(kind: .apply, from: old.number, to: number, previousBefore: previousBefore,
                                          paths: union, services: report.services.map(\.rawValue)))
        try store.ensureLinks(manifest.paths)
        try store.switchLinks(current: number, previous: old.number)
        try store.removeDanglingLinks(old.manifest.paths)
        report.generation = number
        report.outcome = .applied(previous: old.number)

        do {
            try restartAll(report.services)
        } catch let failure as ServiceFailure {
            try rollback(from: number, to: old, previousBefore: previousBefore, paths: union, services: report.services,
                         failure: failure)
        }
        try finishForward(carrying: dead)
        try store.prune(keeping: [number, old.number])
        return report
    }

    /// Finishes or undoes an apply a crash interrupted (docs/agent.md, "Recovery"); `run` calls it
    /// at start so this happens even when no stick is present. Returns the services it restarted;
    /// throws `AgentError.interrupted` when it had to roll back (or finished a rollback).
    public func recover() throws -> [RouterService] {
        guard DurableFiles.exists(paths.state) else { return [] }
        let lock = try Lock(path: paths.runtime + "/apply.lock")
        defer { lock.release() }
        return try recoverLocked()
    }

    /// Recovery with the lock held. The journal says how far the interrupted transaction got:
    /// - a rollback: it is completed (links to its target, services restarted, failed generation dropped);
    /// - an apply that switched (`to` is current): its services are restarted, and if one does not
    ///   come up, the switch is rolled back like any failed apply;
    /// - an apply that had not switched: `previous` is put back and the new generation dropped.
    func recoverLocked() throws -> [RouterService] {
        let store = self.store
        guard let journal = try store.recover(), let current = store.current else { return [] }
        let list = journal.services.compactMap(RouterService.init(rawValue:)).sorted()
        if journal.isRollback {
            try completeRollback(journal, interrupted: "a rollback")
        }
        if journal.to == current.number {
            do {
                try restartAll(list)
            } catch let failure as ServiceFailure {
                guard let from = journal.from, let old = store.generation(from), from != current.number else {
                    try store.setFailedServices(FailedServices(generation: current.number, services: [failure.service],
                                                               detail: failure.detail))
                    try store.removeJournal()
                    try store.tidy(keeping: [current.number] + (store.previous.map { [$0.number] } ?? []), links: journal.paths)
                    throw AgentError.interrupted("an apply", .serviceFailed(
                        service: failure.service.rawValue, generation: current.number, detail: failure.detail,
                        rolledBackTo: nil, rollbackProblem: nil))
                }
                try rollback(from: current.number, to: old, previousBefore: journal.previousBefore, paths: journal.paths,
                             services: list, failure: failure, interrupted: "an apply")
            }
            try finishForward(carrying: store.failedServicesRecord)
            try store.tidy(keeping: [current.number] + (store.previous.map { [$0.number] } ?? []), links: journal.paths)
            return list
        }
        // The crash came before the switch: `current` is still the old generation. The switch may
        // already have moved `previous`; put it back, so the generation kept for rollback is the one
        // kept before.
        var keep = [current.number]
        if journal.from == current.number {
            let before = journal.previousBefore.flatMap { store.generation($0) }?.number
            try store.setPrevious(before)
            keep += before.map { [$0] } ?? []
        } else {
            keep += store.previous.map { [$0.number] } ?? []
        }
        try store.removeJournal()
        try store.tidy(keeping: keep, links: journal.paths)
        return []
    }

    func restartAll(_ list: [RouterService]) throws {
        for service in list {
            steps.step("restart \(service.rawValue)")
            try services.restart(service)
        }
    }

    /// Restarts every service of `list`, whatever happens to the others; returns those that failed.
    func restartEach(_ list: [RouterService]) -> [ServiceFailure] {
        var failures: [ServiceFailure] = []
        for service in list {
            steps.step("restart \(service.rawValue)")
            do {
                try services.restart(service)
            } catch let failure as ServiceFailure {
                failures.append(failure)
            } catch {
                failures.append(ServiceFailure(service: service, detail: "\(error)", cause: error))
            }
        }
        return failures
    }

    /// The services of the current generation came up: forget any failure, end the transaction.
    /// With `--services none` nothing was restarted, so a service that had not come up with the
    /// old generation is still down, now with this one.
    func finishForward(carrying dead: FailedServices?) throws {
        if services.name == "none" {
            if let dead, let number = store.current?.number, dead.generation != number {
                try store.setFailedServices(FailedServices(generation: number, services: dead.services, detail: dead.detail))
            }
        } else {
            try store.setFailedServices(nil)
        }
        try store.removeJournal()
    }

    /// The same generation again, with `list` to restart (links repaired by hand, services that had
    /// not come up). One that still fails is recorded and thrown; nothing is rolled back, since this
    /// generation is the one to run.
    func restartCurrent(_ list: [RouterService], generation: Int) throws {
        guard !list.isEmpty, services.name != "none" else { return }
        let failures = restartEach(list)
        try store.setFailedServices(failures.isEmpty ? nil : FailedServices(
            generation: generation, services: failures.map(\.service), detail: failures[0].detail))
        if let first = failures.first {
            throw AgentError.stillFailing(service: first.service.rawValue, generation: generation, detail: first.detail)
        }
    }

    /// Puts `old` back as current, restarts the same services with its files, drops the failed
    /// generation, and throws the failure with what was done. The rollback is journalled as one, so
    /// a crash anywhere in it is completed by the next recovery (`completeRollback`).
    func rollback(from failed: Int, to old: Generation, previousBefore: Int?, paths union: [String],
                  services list: [RouterService], failure: ServiceFailure, interrupted: String? = nil) throws -> Never {
        let journal = Transition(kind: .rollback, from: failed, to: old.number, previousBefore: previousBefore, paths: union,
                                 services: list.map(\.rawValue), failedService: failure.service.rawValue,
                                 failureDetail: failure.detail)
        try store.writeJournal(journal)
        try completeRollback(journal, interrupted: interrupted)
    }

    /// Every step of a rollback, each harmless to repeat, so recovery can run it again from the
    /// start whatever point a crash stopped it at.
    func completeRollback(_ journal: Transition, interrupted: String?) throws -> Never {
        let store = self.store
        let service = journal.failedService ?? "a service"
        let detail = journal.failureDetail ?? "no detail recorded"
        func fail(_ error: AgentError) -> AgentError { interrupted.map { .interrupted($0, error) } ?? error }
        guard let old = store.generation(journal.to) else {
            // Nothing to go back to (cannot happen unless the store was changed by hand): keep what is current.
            let current = store.current?.number ?? journal.from ?? 0
            try store.setFailedServices(FailedServices(generation: current, services: RouterService(rawValue: service).map { [$0] } ?? [],
                                                       detail: detail))
            try store.removeJournal()
            try store.tidy(keeping: [current] + (store.previous.map { [$0.number] } ?? []), links: journal.paths)
            throw fail(.serviceFailed(service: service, generation: journal.from ?? current, detail: detail,
                                      rolledBackTo: nil, rollbackProblem: nil))
        }
        let previous = journal.previousBefore.flatMap { store.generation($0) }?.number
        try store.ensureLinks(old.manifest.paths)
        try store.switchLinks(current: old.number, previous: previous)
        try store.removeDanglingLinks(journal.paths)
        let list = journal.services.compactMap(RouterService.init(rawValue:)).sorted()
        let failures = restartEach(list)
        if services.name != "none" {
            try store.setFailedServices(failures.isEmpty ? nil : FailedServices(
                generation: old.number, services: failures.map(\.service), detail: failures[0].detail))
        }
        try store.removeJournal()
        try store.prune(keeping: Set([old.number] + (previous.map { [$0] } ?? [])))
        throw fail(.serviceFailed(service: service, generation: journal.from ?? 0, detail: detail, rolledBackTo: old.number,
                                  rollbackProblem: failures.first.map(\.description)))
    }

    func diff(old: [GenerationManifest.Entry], new: [GenerationManifest.Entry], into report: inout ApplyReport) {
        let before = Dictionary(old.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        report.added = after.keys.filter { before[$0] == nil }.sorted()
        report.changed = after.keys.filter { before[$0] != nil && before[$0] != after[$0] }.sorted()
        report.removed = before.keys.filter { after[$0] == nil }.sorted()
        report.services = RouterService.services(for: report.added + report.changed + report.removed)
    }
}

/// An exclusive lock (flock) so a manual `apply` and the running agent never apply at once (or
/// write the runtime status at once: `wait`, for a lock held only for moments).
struct Lock {
    let fd: Int32

    init(path: String, wait: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: path.deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgentError.cannotWrite(path, DurableFiles.errorText()) }
        guard flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0 else {
            close(fd)
            throw AgentError.busy(path)
        }
    }

    func release() { close(fd) }
}
