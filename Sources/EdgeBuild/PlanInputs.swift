import EdgeCrypto
import EdgeModel
import EdgeSystem
import Foundation

extension Plan {
    /// The site and, when `slot` is given, the router named on a command line, or a one-line error
    /// that lists what exists.
    public func locate(site name: String, router slot: Int?) throws(BuildError) -> (Site, Router?) {
        guard let site = site(named: name) else {
            throw BuildError("--site \(name): no such site in plan \(self.name) (sites: \(sites.map(\.name).joined(separator: ", ")))",
                             code: "build.no-such-site", input: name)
        }
        guard let slot else { return (site, nil) }
        guard let router = site.router(slot: slot) else {
            throw BuildError("--router \(slot): site \(name) has no router \(slot) (slots: \(site.routers.map { String($0.slot) }.joined(separator: ", ")))",
                             code: "build.no-such-router", input: String(slot))
        }
        return (site, router)
    }

    /// The relay named on a command line (`--relay NAME`), or the plan's only relay when none is
    /// named; a one-line error that lists the relays otherwise.
    public func locate(relay name: String?) throws(BuildError) -> Relay {
        let names = relays.map(\.name).joined(separator: ", ")
        guard let name else {
            guard relays.count == 1 else {
                throw BuildError("plan \(self.name) has \(relays.count) relays; name one with --relay NAME (relays: \(names))",
                                 code: "build.which-relay", input: self.name)
            }
            return relay
        }
        guard let relay = relay(named: name) else {
            throw BuildError("--relay \(Printable.escaped(name)): no such relay in plan \(self.name) (relays: \(names))",
                             code: "build.no-such-relay", input: name)
        }
        return relay
    }
}

extension PlanKeys {
    /// The plan's keys from the master secret in `secrets` (default: $EDGEKIT_SECRETS).
    public static func load(for plan: Plan, secrets: String?) throws -> PlanKeys {
        let folder = try SecretsFolder.resolve(option: secrets)
        return PlanKeys(master: try folder.loadMaster(), planName: plan.name)
    }
}

/// A profile's serial and issue time. Default: $SOURCE_DATE_EPOCH when set (reproducible CI builds
/// that still grow with every commit), else the current UNIX time; both only ever grow.
public enum ProfileSerial {
    public static func resolve(_ serial: UInt64?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(BuildError) -> (serial: UInt64, issuedAt: Date)
    {
        if let serial { return (serial, Date(timeIntervalSince1970: TimeInterval(serial))) }
        if let text = environment["SOURCE_DATE_EPOCH"] {
            guard let epoch = UInt64(text) else {
                throw BuildError("SOURCE_DATE_EPOCH \"\(text)\" is not a whole number of seconds", code: "build.bad-serial", input: text)
            }
            return (epoch, Date(timeIntervalSince1970: TimeInterval(epoch)))
        }
        let now = Date()
        return (UInt64(now.timeIntervalSince1970), now)
    }
}

/// Writes `data` to `path` with `mode` through `AtomicFile` (0600 from the first byte for
/// secrets), refusing to replace an existing file unless `replace` is set.
public func writeOutputFile(_ data: Data, to path: String, mode: Int, replace: Bool) throws {
    do {
        try AtomicFile.write(data, to: path, mode: mode, replace: replace)
    } catch let error as AtomicFileError where error.code == "file.exists" {
        throw BuildError("\(path) already exists; remove it or choose another --out", code: "build.output-exists", input: path, cause: error)
    }
}
