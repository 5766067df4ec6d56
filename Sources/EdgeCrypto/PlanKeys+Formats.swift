import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

extension PlanKeys {
    /// The operator signing key in signify's form.
    public var operatorKey: Signify.SecretKey {
        // The seed is 32 bytes and the key number 8 by construction.
        try! Signify.SecretKey(seed: operatorSigningSeed, keyNumber: operatorKeyNumber)
    }

    /// The site image identity in age's form (`AGE-SECRET-KEY-1…`).
    public func siteIdentity(site: String) -> Age.Identity {
        Age.Identity(privateKey: siteIdentityKey(site: site))
    }

    /// The site identity as a file (age-keygen's layout: comments, then the key), as installed in
    /// the image and written by `edgekit keys identity`.
    public func siteIdentityFile(site: String) -> String {
        let identity = siteIdentity(site: site)
        return "# edgekit site image identity: plan \(planName), site \(site)\n# public key: \(identity.recipient.text)\n\(identity.text)\n"
    }

    /// The router's site certificate, signed.
    public func certificate(plan: Plan, site: Site, router: Router, serial: UInt64) throws -> String {
        let wireGuard = routerSecret(site: site, router: router).wireGuardKey
        return try SiteCertificate(
            plan: plan.name, site: site.name, slot: router.slot, wireguardPublicKey: wireGuard.publicKeyBase64,
            tunnelAddress: router.tunnelAddress, sitePrefix: site.prefix, serial: serial
        ).signed(with: operatorKey)
    }

    /// The complete profile document for one router (secret included: seal it, never print it).
    public func profile(plan: Plan, site: Site, router: Router, serial: UInt64, issuedAt: Date) throws -> ProfileDocument {
        ProfileDocument(
            plan: plan, site: site, router: router, relayPublicKeys: relayPublicKeys(of: plan),
            serial: serial, issuedAt: issuedAt, routerSecret: routerSecret(site: site, router: router),
            certificate: try certificate(plan: plan, site: site, router: router, serial: serial))
    }

    /// `profile.age` for one router.
    public func sealedProfile(plan: Plan, site: Site, router: Router, serial: UInt64, issuedAt: Date) throws -> Data {
        try SealedProfile.seal(
            profile(plan: plan, site: site, router: router, serial: serial, issuedAt: issuedAt),
            operatorKey: operatorKey, siteRecipient: siteIdentity(site: site.name).recipient)
    }
}
