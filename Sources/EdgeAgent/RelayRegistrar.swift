import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// The router's VRRP role, as keepalived reports it through `edgekit-agent notify`.
public enum VRRPState: String, Codable, Sendable, CaseIterable {
    case master, backup, fault
}

/// What the agent asks the relay for: this router (by its operator-signed site certificate) holds its
/// tunnel /128, and, as VRRP master, the site /64 (docs/protocol.md on the relay branch).
public struct Claim: Sendable, Equatable {
    public var master: Bool
    /// The signed site certificate (signify embedded form), as sealed on the stick.
    public var certificate: String
    public var relayHost: String
    public var registrationPort: UInt16
    /// The relay's WireGuard public key (base64): authenticates its answers.
    public var relayPublicKey: String
    /// The router's WireGuard private key file; the key itself never travels through the agent's
    /// arguments, environment or logs.
    public var privateKeyFile: String
    /// Generation, agent version and health for the relay's fleet view; nil sends none.
    public var report: ClaimReport?

    public init(master: Bool, certificate: String, relayHost: String, registrationPort: UInt16,
                relayPublicKey: String, privateKeyFile: String, report: ClaimReport? = nil) {
        self.master = master
        self.report = report
        self.certificate = certificate
        self.relayHost = relayHost
        self.registrationPort = registrationPort
        self.relayPublicKey = relayPublicKey
        self.privateKeyFile = privateKeyFile
    }
}

/// The relay's authenticated answer.
public enum RegistrationOutcome: Sendable, Equatable {
    /// The relay accepted the claim (its answer verified under the relay key), answering from
    /// `relayAddress` (`host:port`, IPv6 in brackets) when the registrar knows it.
    case registered(String, relayAddress: String? = nil)
    /// The relay answered, authenticated, and said no (revoked, older certificate, …).
    case refused(String)
}

/// Registers this router with the relay. The real client is `Registration.RegistrationClient`
/// (module Registration, docs/protocol.md); see `UnavailableRegistrar` for this build.
public protocol RelayRegistrar: Sendable {
    func register(claim: Claim) async throws -> RegistrationOutcome
}

/// Used while the registration client is not part of the build: every attempt fails with a clear
/// reason, so `status` says so and nothing pretends the router is registered.
public struct UnavailableRegistrar: RelayRegistrar {
    public init() {}

    public func register(claim: Claim) async throws -> RegistrationOutcome {
        throw RegistrarUnavailable()
    }
}

public struct RegistrarUnavailable: EdgeError {
    public init() {}
    public var code: ErrorCode { "registration.unavailable" }
    public var description: String { "registration client not available in this build" }
}
