import EdgeCrypto
import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import Registration

/// Registers through `Registration.RegistrationClient` (docs/protocol.md): reads the router's
/// WireGuard key from its 0600 file, claims master or backup, and reports the relay's
/// authenticated answer. Refusals are answers (not errors); silence past the deadline is an error.
public struct RelayClientRegistrar: RelayRegistrar {
    let logger: AgentLogger
    let deadline: Duration

    public init(logger: AgentLogger, deadline: Duration = .seconds(60)) {
        self.logger = logger
        self.deadline = deadline
    }

    public func register(claim: Claim) async throws -> RegistrationOutcome {
        guard let text = FileManager.default.contents(atPath: claim.privateKeyFile),
            let raw = Data(base64Encoded: String(decoding: text, as: UTF8.self).trimmingWhitespace())
        else {
            throw RegistrationFailure.invalidConfiguration("cannot read the WireGuard key \(claim.privateKeyFile)")
        }
        guard let relayKey = Data(base64Encoded: claim.relayPublicKey) else {
            throw RegistrationFailure.invalidConfiguration("the profile's relay public key is not base64")
        }
        var configuration = RegistrationClient.Configuration(
            relayHost: claim.relayHost, relayPort: claim.registrationPort, relayPublicKey: [UInt8](relayKey),
            routerKey: try WireGuardKey(privateKey: raw), certificate: Array(claim.certificate.utf8))
        configuration.deadline = deadline
        configuration.report = claim.report.map(RouterReport.init)
        let client = try RegistrationClient(configuration: configuration, log: logger.registration)
        do {
            let result = try await client.register(claim: claim.master ? .master : .backup)
            let prefix = result.sitePrefix.map { " and \($0)" } ?? ""
            return .registered("\(result.claim) via \(result.relayAddress): relay routes \(result.tunnelAddress)\(prefix) here",
                               relayAddress: result.relayAddress)
        } catch let failure as RegistrationFailure {
            if case .refused(let status, _) = failure { return .refused("\(status)") }
            throw failure
        }
    }
}

extension RouterReport {
    /// The wire form of the agent's report (docs/protocol.md, "Report").
    init(_ report: ClaimReport) {
        let health: Health = switch report.health?.verdict {
        case .healthy: .healthy
        case .unhealthy: .unhealthy
        case nil: .unknown
        }
        self.init(generation: UInt64(max(0, report.generation)), health: health, agentVersion: report.agentVersion,
                  healthReason: report.health?.reason ?? "no health verdict yet", tunnelMTU: report.tunnelMTU,
                  system: report.system.map(RouterReport.System.init))
    }
}

extension RouterReport.System {
    /// The wire form of the system state: the last install's state and version, `none` when there was none.
    init(_ state: SystemState) {
        let update: Update = switch state.update?.state {
        case .trial: .trial
        case .blessed: .blessed
        case .failed: .failed
        case nil: .none
        }
        self.init(version: state.version, update: update, updateVersion: state.update?.version ?? 0)
    }
}
