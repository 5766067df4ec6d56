import EdgeErrors
import EdgeStick
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Why the agent did not apply or run. Each prints as one line naming the input and the problem.
public enum AgentError: EdgeError, Equatable {
    /// An image file (identity, operator key, stamp) is missing or unreadable.
    case badImageFile(String, String, cause: ErrorCause = .none)
    /// No block device carries the label; `generation` is what keeps running.
    case noStick(keeping: Int?)
    /// A profile was refused; the first field names the input (`STICK/profile.age` or the device).
    case profile(String, String, cause: ErrorCause = .none)
    /// The stick could not be read (StickError's text; the StickError is the cause).
    case stick(String, cause: ErrorCause = .none)
    /// Writing the generation failed; nothing was switched.
    case cannotWrite(String, String)
    /// A service did not come up with the new files, and the previous generation was restored.
    case serviceFailed(service: String, generation: Int, detail: String, rolledBackTo: Int?, rollbackProblem: String?)
    /// Recovery finished a transaction a crash had interrupted (`an apply`, `a rollback`), which
    /// ended in `error` (a rollback).
    indirect case interrupted(String, AgentError)
    /// The current generation is applied, but one of its services still does not come up.
    case stillFailing(service: String, generation: Int, detail: String)
    /// sethostname(2) failed.
    case cannotSetHostname(String, String)
    /// Another apply holds the lock.
    case busy(String)
    /// Another `update` holds the update lock (`UpdateLock`).
    case updateBusy(String)
    /// `--root` is unusable (not a directory).
    case badRoot(String, String)
    /// `notify` could not record the VRRP state.
    case cannotRecord(String, String)
    /// `apply --repair` with no generation applied under the root.
    case nothingApplied(String)
    /// The current generation has no (readable) manifest to compare the live files with.
    case noManifest(generation: Int)
    /// `apply --repair` found no copy with the manifest's SHA-256 for a drifted file.
    case cannotRepair(path: String, generation: Int)
    /// `update --from-relay` could not ask the relay or fetch what it named (docs/updates.md).
    case updateFromRelay(String)

    public var description: String {
        switch self {
        case .badImageFile(let path, let why, _):
            "\(path): \(why)"
        case .updateFromRelay(let why):
            "update from the relay: \(why)"
        case .noStick(let keeping):
            AgentError.noStickLine(keeping: keeping)
        case .profile(let input, let why, _):
            "\(input): \(why)"
        case .stick(let line, _):
            line
        case .cannotWrite(let path, let why):
            "cannot write \(path): \(why); nothing was switched"
        case .serviceFailed(let service, let generation, let detail, let rolledBackTo, let problem):
            "\(service) did not come up with generation \(generation) (\(detail)); "
                + (rolledBackTo.map { "rolled back to generation \($0)" } ?? "no previous generation to roll back to")
                + (problem.map { ", but after the rollback: \($0)" } ?? "")
        case .interrupted(let what, let error):
            "finishing \(what) that a crash interrupted: \(error)"
        case .stillFailing(let service, let generation, let detail):
            "generation \(generation) is applied, but \(service) still does not come up with it (\(detail)); "
                + "apply again once the cause is fixed, or apply a newer stick"
        case .cannotSetHostname(let name, let why):
            "cannot set the hostname to \(name): \(why); the agent needs CAP_SYS_ADMIN outside any private UTS namespace (no ProtectHostname= in its unit)"
        case .busy(let path):
            "another edgekit-agent is applying (lock \(path) is held); try again when it is done"
        case .updateBusy(let path):
            "another edgekit-agent update is fetching or installing (lock \(path) is held); try again when it is done"
        case .badRoot(let root, let why):
            "--root \(root): \(why); give the root the agent runs with (/ on the appliance)"
        case .cannotRecord(let path, let why):
            "cannot record the VRRP state in \(path): \(why)"
        case .nothingApplied(let root):
            "apply --repair: nothing applied yet under \(root), so there is nothing to repair; apply the stick first"
        case .noManifest(let generation):
            DriftCheck.noManifestLine(generation)
        case .cannotRepair(let path, let generation):
            "apply --repair: \(path) changed in generation \(generation) itself and no copy with its recorded SHA-256 is left "
                + "(previous generation, applied profile); nothing was changed: apply the stick (without --repair) to restore it"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .badImageFile: "agent.bad-image-file"
        case .updateFromRelay: "agent.update-from-relay"
        case .noStick: "agent.no-stick"
        case .profile: "agent.profile-refused"
        case .stick: "agent.stick-unreadable"
        case .cannotWrite: "agent.cannot-write"
        case .serviceFailed: "agent.service-failed"
        case .interrupted: "agent.interrupted"
        case .stillFailing: "agent.still-failing"
        case .cannotSetHostname: "agent.cannot-set-hostname"
        case .busy: "agent.busy"
        case .updateBusy: "agent.update-busy"
        case .badRoot: "agent.bad-root"
        case .cannotRecord: "agent.cannot-record"
        case .nothingApplied: "agent.nothing-applied"
        case .noManifest: "agent.no-manifest"
        case .cannotRepair: "agent.cannot-repair"
        }
    }

    public var input: String? {
        switch self {
        case .badImageFile(let path, _, _), .profile(let path, _, _), .cannotWrite(let path, _), .busy(let path), .updateBusy(let path),
             .badRoot(let path, _), .cannotRecord(let path, _), .nothingApplied(let path), .cannotRepair(let path, _):
            path
        case .stick(_, let cause):
            (cause.error as? StickError)?.input
        case .serviceFailed(let service, _, _, _, _), .stillFailing(let service, _, _):
            service
        case .cannotSetHostname(let name, _):
            name
        case .noStick, .interrupted, .noManifest, .updateFromRelay:
            nil
        }
    }

    /// The line without its `PATH: ` prefix where the input leads the line.
    public var message: String {
        switch self {
        case .badImageFile(_, let why, _), .profile(_, let why, _): why
        default: description
        }
    }

    /// The StickError, ProfileError or other error behind a refused stick; the interrupted error.
    public var cause: (any Error)? {
        switch self {
        case .badImageFile(_, _, let cause), .profile(_, _, let cause), .stick(_, let cause): cause.error
        case .interrupted(_, let error): error
        default: nil
        }
    }

    /// A service did not come up: the stick was fine, the device is not.
    public var isServiceFailure: Bool {
        switch self {
        case .serviceFailed, .stillFailing: true
        case .interrupted(_, let error): error.isServiceFailure
        default: false
        }
    }

    /// The console line the image boot test looks for.
    public static func noStickLine(keeping generation: Int?) -> String {
        "edgekit-agent: no profile stick found (label EDGEPROFILE); "
            + (generation.map { "keeping generation \($0)" } ?? "nothing applied yet")
    }
}
