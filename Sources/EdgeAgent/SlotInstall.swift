import EdgeErrors
import EdgeModel
import EdgeStick
import EdgeSystem
import SystemCrypto
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Held while an `update` fetches or installs (flock on `state/update.lock`, released when the
/// process ends, even by a crash): the timer's run and one by hand never write the updates folder
/// or the inactive slot at once.
public struct UpdateLock {
    let lock: Lock

    public init(paths: AgentPaths) throws {
        let path = paths.state + "/update.lock"
        do {
            lock = try Lock(path: path)
        } catch AgentError.busy {
            throw AgentError.updateBusy(path)
        }
    }

    public func release() { lock.release() }
}

/// Installing an update bundle into the system slot that is not running, and judging the new
/// system on its trial boot (docs/updates.md, "Install" and "Trial boot").
///
/// The order is what makes a power cut at any moment safe: the inactive slot's boot entry is
/// removed (and the removal synced) before a byte of the slot is written, so until the very last
/// step the ESP names only the running system; the slot is written, synced and read back; then the
/// kernel and initrd; last the new entry, under a temporary name renamed into place. An interrupted
/// install leaves the running system as the only entry, and installing again starts over.
public struct SlotInstall {
    public let paths: AgentPaths

    public init(paths: AgentPaths) { self.paths = paths }

    /// Where systemd-boot's files are (overlays/etc/fstab mounts the ESP there on first use).
    public static let espPath = "/boot/efi"
    /// systemd-boot's `LoaderInfo` variable (systemd's boot loader interface): present when
    /// systemd-boot started this system, which is what boot counting needs.
    static let loaderInfo = "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    /// Tries a new system gets: one. systemd-boot counts the try down as it boots the entry; a
    /// system that fails its health check reboots, and the entry, out of tries, sorts last.
    static let trialTries = 1

    public var recordPath: String { paths.state + "/update.json" }
    var esp: String { paths.live(SlotInstall.espPath) }
    /// GRUB's environment block on the ESP (`pc-bios` under legacy BIOS, GrubPC in EdgeImage).
    var grubEnvironmentPath: String { esp + "/grub/grubenv" }

    /// What started this system, and so how a new slot is tried once and kept.
    enum BootLoader: Equatable {
        /// systemd-boot (UEFI): an entry with a boot counter, kept by systemd-bless-boot.
        case systemdBoot
        /// GRUB under legacy BIOS (`pc-bios`): `edgekit_trial` in grubenv, which GRUB clears as it
        /// boots that slot; kept by setting `edgekit_slot` once the trial is healthy.
        case grub
    }

    /// nil: a boot loader without trial boots (the Raspberry Pi's firmware), or an image from
    /// before them.
    func bootLoader() -> BootLoader? {
        if FileManager.default.fileExists(atPath: paths.live(SlotInstall.loaderInfo)) { return .systemdBoot }
        if !FileManager.default.fileExists(atPath: paths.live("/sys/firmware/efi")),
           FileManager.default.fileExists(atPath: grubEnvironmentPath) { return .grub }
        return nil
    }

    func readGrubEnvironment() throws -> GrubEnvironment {
        guard let data = FileManager.default.contents(atPath: grubEnvironmentPath),
              let environment = GrubEnvironment(bytes: Array(data)) else {
            throw AgentError.badImageFile(grubEnvironmentPath, "is not a GRUB environment block (1024 bytes, \"# GRUB Environment Block\")")
        }
        return environment
    }

    /// Writes the block in place, as GRUB's `save_env` does: the same 1024 bytes of the same
    /// clusters, so the FAT itself never changes. A new file renamed over it did: a guest killed
    /// after the rename (synced) left the directory entry pointing at a cluster its FAT called
    /// free (UpdateBootTests, pc-bios).
    func writeGrubEnvironment(_ environment: GrubEnvironment) throws {
        let path = grubEnvironmentPath
        guard let bytes = environment.encoded else {
            throw AgentError.cannotWrite(path, "its variables do not fit in GRUB's 1024-byte environment block")
        }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AgentError.cannotWrite(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size == GrubEnvironment.size else {
            throw AgentError.cannotWrite(path, "is not \(GrubEnvironment.size) bytes long; GRUB writes its block in place and cannot use it")
        }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count, fsync(fd) == 0 else { throw AgentError.cannotWrite(path, String(cString: strerror(errno))) }
    }

    public struct Installed: Sendable {
        public var bundle: String
        public var slot: SystemSlot
        public var version: UInt64
        public var bytes: UInt64
        public var entry: String

        /// `update BUNDLE: installed system version N into slot S (…); the next boot tries it once (ENTRY)`.
        public var line: String {
            "update \(Printable.escaped(bundle)): installed system version \(version) into slot \(slot.rawValue) "
                + "(\(bytes) bytes, written and read back); the next boot tries it once (\(entry))"
        }
    }

    /// Reboots the router (systemd), into the new system's trial.
    public static func reboot() throws {
        try SystemCommand.check("systemctl", ["reboot"], what: "rebooting")
    }

    // MARK: The record

    public func record() -> UpdateRecord? {
        FileManager.default.contents(atPath: recordPath).flatMap { try? DocumentCoding.decode(UpdateRecord.self, from: $0) }
    }

    func save(_ record: UpdateRecord) throws {
        try FileManager.default.createDirectory(atPath: paths.state, withIntermediateDirectories: true)
        try AtomicFile.write(try DocumentCoding.encode(record), to: recordPath, mode: 0o644, replace: true)
    }

    /// The record as this system sees it: a trial of another version that this system outlived
    /// (the board booted this one again) failed. With `save`, written back when that changed it.
    public func reconciledRecord(running: SystemRelease, save: Bool) -> UpdateRecord? {
        guard var record = record() else { return nil }
        if record.state == .trial, record.version != running.version, record.installedInBoot != bootID() {
            record.state = .failed
            record.reason = "not blessed on its trial boot; the board booted version \(running.version) again"
            if save { try? self.save(record) }
        }
        return record
    }

    // MARK: Trial boot

    /// Whether this system is healthy enough to keep (docs/updates.md, "Trial boot"): the agent's
    /// `run` is alive and its boot apply came to a good end: a profile applied, every service up and
    /// registered with a relay; or no stick at all (a spare, its agent waiting for one).
    public func judge() -> (healthy: Bool, reason: String) {
        guard let state = RuntimeState.load(paths: paths) else { return (false, "the agent has not started") }
        guard state.runIsAlive else { return (false, "the agent is \(state.agentLine)") }
        switch state.lastApplyResult {
        case "no_stick":
            return (true, "no profile stick (a spare), the agent running")
        case "applied":
            guard let at = state.registeredAt else { return (false, "profile applied, not registered with a relay yet (\(state.registration))") }
            return (true, "profile applied, services up, registered with a relay at \(at)")
        case "refused":
            return (false, "the profile stick was refused: \(state.lastApply ?? "")")
        case "service_failed":
            return (false, "a service did not come up: \(state.lastApply ?? "")")
        default:
            return (false, "the agent has not finished its boot apply")
        }
    }

    public enum Confirmation: Sendable, Equatable {
        /// Not a trial boot of this system: nothing to judge.
        case notOnTrial
        case healthy(String)
        case failed(String)
    }

    /// On the trial boot of a new system (the record says `trial` of the running version), waits
    /// up to `deadline` seconds for `judge()` to call it healthy, and records the verdict: `blessed`
    /// (then boot-complete.target is reached and systemd-bless-boot keeps the entry) or `failed`
    /// (the caller exits non-zero, the health unit's FailureAction reboots, and the entry, out of
    /// tries, sorts last).
    public func confirm(deadline: Double, poll: Double = 2) throws -> Confirmation {
        let release = try SystemUpdate.release(paths: paths)
        guard var record = record(), record.state == .trial, record.version == release.version else { return .notOnTrial }
        let started = Date()
        var verdict = judge()
        while !verdict.healthy && Date().timeIntervalSince(started) < deadline {
            Threads.sleep(poll)
            verdict = judge()
        }
        let seconds = Int(Date().timeIntervalSince(started))
        if verdict.healthy {
            // GRUB boots the new slot from now on (systemd-bless-boot keeps systemd-boot's entry).
            // On `pc-bios` started by UEFI too, so that a later start by legacy BIOS boots the same
            // system, with the options it runs with now; there a grubenv it cannot write does not
            // fail a healthy trial.
            func keepInGrub() throws {
                var environment = try readGrubEnvironment()
                environment["edgekit_slot"] = record.slot.rawValue
                environment["edgekit_\(record.slot.rawValue)_options"] = runningOptions()
                environment["edgekit_trial"] = nil
                try writeGrubEnvironment(environment)
            }
            if bootLoader() == .grub {
                try keepInGrub()
            } else if FileManager.default.fileExists(atPath: grubEnvironmentPath) {
                try? keepInGrub()
            }
        }
        record.state = verdict.healthy ? .blessed : .failed
        record.reason = verdict.healthy ? nil : verdict.reason
        try save(record)
        if verdict.healthy {
            return .healthy("system version \(release.version) (slot \(record.slot.rawValue)) is healthy on its trial boot after \(seconds) s: \(verdict.reason); it is kept")
        }
        return .failed("system version \(release.version) (slot \(record.slot.rawValue)) failed its trial boot: \(verdict.reason) after \(seconds) s; "
                       + "rebooting into version \(record.from)")
    }

    /// This boot's ID (nil where the kernel has none to read, e.g. a test root).
    func bootID() -> String? {
        (try? String(contentsOfFile: paths.live("/proc/sys/kernel/random/boot_id"), encoding: .utf8))
            .map { String($0.filter { !$0.isWhitespace }) }
    }

    // MARK: Install

    /// The running slot, from the kernel command line's `root=PARTUUID=`.
    public func bootedSlot() throws(UpdateBundleError) -> SystemSlot? {
        let line = (try? String(contentsOfFile: paths.live("/proc/cmdline"), encoding: .utf8)) ?? ""
        return SystemSlot.booted(commandLine: line)
    }

    /// Why no bundle can be installed on this system now, whatever the bundle; nil when one can.
    /// `update --from-relay --scheduled` asks this before it fetches anything.
    public func blocker(release: SystemRelease) throws -> String? {
        guard try bootedSlot() != nil else {
            return "this system was not booted from a system slot (no root=PARTUUID= of slot a or b on the kernel command line): images from before A/B slots are reflashed once"
        }
        guard bootLoader() != nil else {
            return "this router was started neither by systemd-boot nor by edgekit's GRUB (the Raspberry Pi's firmware, whose trial boots are not built yet)"
        }
        if let record = record(), record.state == .trial, record.version == release.version {
            return "this system (version \(release.version)) is on its trial boot and not yet blessed; install once it is"
        }
        return nil
    }

    /// Checks `bundle` as `update --check` does, then writes it into the slot that is not running and
    /// makes that slot's entry the one systemd-boot tries once at the next boot, under the update
    /// lock (`locked`: the caller holds it). `report` hears progress lines.
    public func install(_ bundlePath: String, locked: Bool = false, report: (String) -> Void = { _ in }) throws -> Installed {
        try install(checked: try SystemUpdate.check(bundlePath, paths: paths), locked: locked, report: report)
    }

    /// The same for a bundle `SystemUpdate.check` has just accepted (`update --from-relay` checks
    /// what it fetched first): its members are not hashed a second time before the write, which
    /// checks the system and the kernel files against the manifest again as it goes.
    public func install(checked: SystemUpdate.Checked, locked: Bool = false,
                        report: (String) -> Void = { _ in }) throws -> Installed {
        let (bundle, release) = checked
        let bundlePath = bundle.path
        func refuse(_ why: String) -> UpdateBundleError { UpdateBundleError("update.cannot-install", bundlePath, why) }
        if let why = try blocker(release: release) { throw refuse(why + "; nothing was written") }
        guard let running = try bootedSlot(), let loader = bootLoader() else { throw refuse("the booted slot or the boot loader is gone; nothing was written") }
        let slot = running.other
        let entries = esp + "/loader/entries"
        guard loader == .grub || FileManager.default.fileExists(atPath: entries) else {
            throw refuse("the EFI system partition is not at \(esp) (no loader/entries)")
        }
        let device = paths.live("/dev/disk/by-partuuid/" + slot.partitionUUID)
        guard FileManager.default.fileExists(atPath: device) else {
            throw refuse("this card has no slot \(slot.rawValue) (no partition \(slot.partitionUUID)): images from before A/B slots are reflashed once")
        }
        // Before anything changes, not after the boot entry is gone.
        if let capacity = SlotInstall.capacity(of: device), capacity < bundle.manifest.rootBytes {
            throw refuse("its system is \(bundle.manifest.rootBytes) bytes, slot \(slot.rawValue) holds \(capacity)")
        }
        // `locked`: the caller holds the update lock already (it fetched the bundle under it).
        let lock = locked ? nil : try UpdateLock(paths: paths)
        defer { lock?.release() }
        // 1. The inactive slot leaves the boot menu before it is touched.
        switch loader {
        case .systemdBoot:
            try removeEntries(of: slot, in: entries)
        case .grub:
            var environment = try readGrubEnvironment()
            if environment["edgekit_trial"] == slot.rawValue || environment["edgekit_slot"] == slot.rawValue {
                environment["edgekit_trial"] = nil
                environment["edgekit_slot"] = running.rawValue
                try writeGrubEnvironment(environment)
            }
        }
        // 2. The system, decoded straight onto the partition, then read back.
        try writeSlot(bundle, to: device, slot: slot, report: report)
        // 3. The kernel and initrd, into the slot's folder on the ESP.
        let folder = esp + "/" + slot.rawValue
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["vmlinuz", "initrd.img"] {
            guard let member = bundle.manifest.members.first(where: { $0.name == name }) else {
                throw refuse("it carries no \(name) to boot the new system with")
            }
            try SlotInstall.copyMember(member, of: bundle, to: folder + "/" + name)
        }
        try SlotInstall.syncDirectory(folder)
        // 4. The entry, last: from now on the boot loader tries the new system once.
        let options = bundle.manifest.kernelOptions ?? runningOptions()
        let name: String
        switch loader {
        case .systemdBoot:
            let text = slot.bootEntry(version: bundle.manifest.version, kernel: "/\(slot.rawValue)/vmlinuz", initrd: "/\(slot.rawValue)/initrd.img", options: options)
            name = "edgekit-\(slot.rawValue)+\(SlotInstall.trialTries).conf"
            try SlotInstall.writeDurably(entries + "/" + name, Data(text.utf8))
        case .grub:
            var environment = try readGrubEnvironment()
            environment["edgekit_\(slot.rawValue)_options"] = options
            environment["edgekit_trial"] = slot.rawValue
            name = "grubenv edgekit_trial=\(slot.rawValue)"
            try writeGrubEnvironment(environment)
        }
        try save(UpdateRecord(version: bundle.manifest.version, slot: slot, from: release.version, state: .trial, installedInBoot: bootID()))
        return Installed(bundle: bundlePath, slot: slot, version: bundle.manifest.version, bytes: bundle.manifest.rootBytes, entry: name)
    }

    /// The running kernel's command line without its root (the slot's entry names its own).
    func runningOptions() -> String {
        let line = (try? String(contentsOfFile: paths.live("/proc/cmdline"), encoding: .utf8)) ?? ""
        return line.split(whereSeparator: { $0 == " " || $0 == "\n" })
            .filter { !$0.hasPrefix("root=") && !$0.hasPrefix("BOOT_IMAGE=") && !$0.hasPrefix("initrd=") }.joined(separator: " ")
    }

    /// Removes `edgekit-SLOT.conf` and any `edgekit-SLOT+…conf` (an entry on trial) and syncs the folder.
    func removeEntries(of slot: SystemSlot, in entries: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: entries)) ?? []
        for name in names where name == "edgekit-\(slot.rawValue).conf" || (name.hasPrefix("edgekit-\(slot.rawValue)+") && name.hasSuffix(".conf")) {
            guard unlink(entries + "/" + name) == 0 else {
                throw AgentError.cannotWrite(entries + "/" + name, String(cString: strerror(errno)))
            }
        }
        try SlotInstall.syncDirectory(entries)
    }

    /// The bytes `device` (a partition, or a file standing in for one) holds; nil when it cannot
    /// be opened (the write says why).
    static func capacity(of device: String) -> UInt64? {
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return UInt64(max(0, lseek(fd, 0, SEEK_END)))
    }

    /// Decodes the bundle's `root.img.zst` onto `device`, checking size and SHA-256 against the
    /// signed manifest as it goes, syncs it, and reads it back from the device to check it again.
    func writeSlot(_ bundle: UpdateBundle, to device: String, slot: SystemSlot, report: (String) -> Void) throws {
        let manifest = bundle.manifest
        func refuse(_ why: String) -> UpdateBundleError { UpdateBundleError("update.cannot-install", bundle.path, why) }
        let fd = open(device, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw refuse("slot \(slot.rawValue) (\(device)) cannot be opened: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let decoder: ZstdDecoder
        do { decoder = try ZstdDecoder() } catch { throw refuse("cannot decode it: \(error)") }
        var written: UInt64 = 0
        var hash = SHA256()
        var reported: UInt64 = 0
        var failure: String?
        try bundle.readMember(UpdateBundle.rootMember) { chunk in
            guard failure == nil else { return }
            do {
                try decoder.decode(chunk) { bytes in
                    guard written + UInt64(bytes.count) <= manifest.rootBytes else {
                        throw SlotProblem( "it decodes to more than the \(manifest.rootBytes) bytes its manifest says")
                    }
                    var done = 0
                    while done < bytes.count {
                        let count = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(written) + off_t(done))
                        guard count > 0 else { throw SlotProblem( "writing slot \(slot.rawValue) failed: \(String(cString: strerror(errno)))") }
                        done += count
                    }
                    hash.update(data: bytes)
                    written += UInt64(bytes.count)
                }
            } catch {
                failure = "\(error)"
            }
            if written - reported >= manifest.rootBytes / 4 {
                reported = written
                report("writing slot \(slot.rawValue): \(written * 100 / max(1, manifest.rootBytes)) % (\(written >> 20) of \(manifest.rootBytes >> 20) MiB)")
            }
        }
        if let failure { throw refuse(failure) }
        guard written == manifest.rootBytes, decoder.atFrameEnd else {
            throw refuse("its system decodes to \(written) bytes, its manifest says \(manifest.rootBytes)")
        }
        guard hash.finalize().hex == manifest.rootSHA256 else {
            throw refuse("its system does not match root_sha256 in the signed manifest")
        }
        guard fsync(fd) == 0 else { throw refuse("slot \(slot.rawValue) cannot be synced: \(String(cString: strerror(errno)))") }
        report("slot \(slot.rawValue) written (\(written) bytes); reading it back")
        // Read back what the device holds, not the page cache.
        _ = posix_fadvise(fd, 0, off_t(written), POSIX_FADV_DONTNEED)
        let reader = open(device, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { throw refuse("slot \(slot.rawValue) cannot be read back: \(String(cString: strerror(errno)))") }
        defer { close(reader) }
        _ = posix_fadvise(reader, 0, off_t(written), POSIX_FADV_DONTNEED)
        var check = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position: UInt64 = 0
        while position < written {
            let want = Int(min(UInt64(buffer.count), written - position))
            let got = buffer.withUnsafeMutableBytes { pread(reader, $0.baseAddress!, want, off_t(position)) }
            guard got > 0 else { throw refuse("slot \(slot.rawValue) cannot be read back: \(got < 0 ? String(cString: strerror(errno)) : "it ends early")") }
            buffer.withUnsafeBytes { check.update(data: UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            position += UInt64(got)
        }
        guard check.finalize().hex == manifest.rootSHA256 else {
            throw refuse("slot \(slot.rawValue) read back does not match what was written (a failing card?); its entry was not written")
        }
    }

    // MARK: Files on the ESP and the data partition

    /// Copies a member out of the bundle to `path` (temporary name, fsync, rename), checking its SHA-256 again.
    static func copyMember(_ member: UpdateManifest.Member, of bundle: UpdateBundle, to path: String) throws {
        var data = Data()
        data.reserveCapacity(Int(member.bytes))
        try bundle.readMember(member.name) { data.append($0) }
        guard SHA256.hash(data: data).hex == member.sha256 else {
            throw UpdateBundleError("update.damaged", bundle.path, "member \(member.name) changed while it was installed")
        }
        try writeDurably(path, data)
    }

    /// Writes `data` to `path` under a temporary name, syncs it, renames it into place and syncs the
    /// folder: `AtomicFile.write` without its chmod, which FAT (the ESP, mounted `umask=0077`) refuses
    /// with EPERM. The temporary name ends in `.new`, never `.conf`, so systemd-boot never reads it.
    static func writeDurably(_ path: String, _ data: Data) throws {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AgentError.cannotWrite(temporary, String(cString: strerror(errno))) }
        var done = 0
        let ok = data.withUnsafeBytes { bytes -> Bool in
            while done < bytes.count {
                let count = write(fd, bytes.baseAddress! + done, bytes.count - done)
                guard count > 0 else { return false }
                done += count
            }
            return true
        }
        let synced = ok && fsync(fd) == 0
        let why = String(cString: strerror(errno))
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw AgentError.cannotWrite(path, why)
        }
        try syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]))
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw AgentError.cannotWrite(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        _ = fsync(fd)
    }
}

/// Why a slot write stopped, for the bundle's refusal line.
struct SlotProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
