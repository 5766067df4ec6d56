import EdgeCrypto
import EdgeModel
import EdgeStick
import EdgeSystem
import Foundation

/// `edgekit profile inspect`: a sealed profile opened with the plan's keys, trying each site's
/// identity in turn, and what is shown of it (secrets redacted).
public struct ProfileReport: Sendable {
    public var document: ProfileDocument
    public var operatorKeyNumber: String

    /// Opens the profile at `input` (profile.age, a stick image or device, or a stick's folder) as
    /// a device of one of `sites` that applied `lastSerial` would.
    public init(input: String, plan: Plan, keys: PlanKeys, sites: [Site], lastSerial: UInt64?) throws {
        let sealed: Data
        do {
            sealed = try ProfileInput.readSealed(input)
        } catch {
            throw BuildError("\(error)", code: "build.unreadable-profile", input: input, cause: error)
        }
        for candidate in sites {
            let expectation = SealedProfile.Expectation(
                identity: keys.siteIdentity(site: candidate.name), operatorKey: keys.operatorKey.publicKey,
                plan: plan.name, site: candidate.name, lastSerial: lastSerial)
            do {
                document = try SealedProfile.open(sealed, expecting: expectation)
                operatorKeyNumber = keys.operatorKeyNumber.map { String(format: "%02x", $0) }.joined()
                return
            } catch .sealedToAnotherIdentity where sites.count > 1 {
                continue
            } catch {
                throw BuildError("\(Printable.escaped(input)): \(error)", code: "build.invalid-profile", input: input, cause: error)
            }
        }
        throw BuildError("\(Printable.escaped(input)): profile is sealed to none of plan \(plan.name)'s site identities",
                         code: "build.invalid-profile", input: input)
    }

    /// The document with the router secret taken out, for `--format json`.
    public var redacted: ProfileDocument { document.redacted() }

    /// The text `profile inspect` prints.
    public func text() throws -> String {
        let shown = document.redacted()
        let wireGuard = try document.secret().wireGuardKey
        return """
            profile \(shown.plan.name)/\(shown.site.name)/router \(shown.router.slot): valid
              sealed to        site \(shown.site.name)'s image identity
              signed by        operator key \(operatorKeyNumber)
              serial           \(shown.serial) (issued \(shown.issuedAt))
              site prefix      \(shown.site.prefix)  vip \(shown.site.vip)  vrrp \(shown.site.vrrpID)
              router           slot \(shown.router.slot) priority \(shown.router.priority) generation \(shown.router.generation)
              tunnel address   \(shown.router.tunnelAddress)
              wireguard key    \(wireGuard.publicKeyBase64) (certificate matches)
              relay            \(shown.plan.relay.host):\(shown.plan.relay.wireguardPort) key \(shown.plan.relay.publicKey)
              router secret    (redacted)

            """
    }
}
