import EdgeErrors
import EdgeModel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// `profile.age`: a profile document, signed by the operator (signify embedded form), sealed with
/// age to the site image identity. Opening checks every layer and fails closed with one reason.
public enum SealedProfile {
    /// A real profile is a few kilobytes; anything far larger is refused before any work.
    public static let maximumSize = 256 * 1024

    /// Signs and seals `document` for the site whose image holds `siteRecipient`'s identity.
    public static func seal(_ document: ProfileDocument, operatorKey: Signify.SecretKey, siteRecipient: Age.Recipient) throws -> Data {
        let body = try DocumentCoding.encode(document)
        let signed = Signify.signEmbedded(
            body, with: operatorKey,
            comment: "edgekit profile \(document.plan.name)/\(document.site.name)/\(document.router.slot) serial \(document.serial)")
        return try Age.encrypt(signed, to: [siteRecipient])
    }

    /// What the device knows before it trusts a stick: its image identity and site, the operator
    /// key, and the last serial it applied.
    public struct Expectation: Sendable {
        public var identity: Age.Identity
        public var operatorKey: Signify.PublicKey
        public var plan: String
        public var site: String
        /// The serial of the last applied profile; an older one is refused, an equal one accepted
        /// (re-applying the same stick is a no-op).
        public var lastSerial: UInt64?

        public init(identity: Age.Identity, operatorKey: Signify.PublicKey, plan: String, site: String, lastSerial: UInt64?) {
            self.identity = identity
            self.operatorKey = operatorKey
            self.plan = plan
            self.site = site
            self.lastSerial = lastSerial
        }
    }

    /// Unseals, verifies and checks a profile (docs/keys.md, "Fail closed"): every failure is one
    /// `ProfileError` case, tested in the order a forger would have to get past them.
    public static func open(_ sealed: Data, expecting expected: Expectation) throws(ProfileError) -> ProfileDocument {
        guard !sealed.isEmpty else { throw .empty }
        guard sealed.count <= maximumSize else { throw .tooLarge }
        guard sealed.starts(with: Data("age-encryption.org/".utf8)) else { throw .notAge }

        let plaintext: Data
        do {
            plaintext = try Age.decrypt(sealed, with: [expected.identity])
        } catch let error as AgeError {
            switch error.kind {
            case .noMatch: throw .sealedToAnotherIdentity(site: expected.site)
            case .unsupportedVersion: throw .notAge
            default: throw .damaged(error.message, cause: ErrorCause(error))
            }
        } catch {
            throw .damaged("\(error)", cause: ErrorCause(error))
        }

        let body: Data
        do {
            body = try Signify.verifyEmbedded(plaintext, publicKey: expected.operatorKey)
        } catch let error as SignifyError {
            switch error.kind {
            case .wrongKey: throw .signedByAnotherKey
            case .badSignature: throw .badSignature
            default: throw .unsigned
            }
        } catch {
            throw .unsigned
        }

        // Read the schema alone first: a newer schema may not decode as this one.
        let schema: Int
        do {
            schema = try DocumentCoding.schema(of: body)
        } catch {
            throw .malformedDocument(error.description, cause: ErrorCause(error))
        }
        guard schema == ProfileDocument.currentSchema else { throw .unknownSchema(schema, what: "profile") }
        let document: ProfileDocument
        do {
            document = try DocumentCoding.decode(ProfileDocument.self, from: body)
        } catch {
            throw .malformedDocument(error.description, cause: ErrorCause(error))
        }

        guard document.plan.name == expected.plan else { throw .anotherPlan(found: document.plan.name, expected: expected.plan) }
        guard document.site.name == expected.site else { throw .anotherSite(found: document.site.name, expected: expected.site) }
        if let last = expected.lastSerial, document.serial < last {
            throw .olderSerial(found: document.serial, last: last)
        }
        // Signed is not enough: the device holds the document to the rules of `plan check`, in case
        // the operator key leaked or a builder has a bug (docs/keys.md, "Fail closed").
        if let problem = document.problem() { throw .malformedDocument(problem.description, cause: ErrorCause(problem)) }

        // The certificate inside must be the operator's and must describe this very router.
        let certificate: SiteCertificate
        do {
            certificate = try SiteCertificate.verify(Data(document.certificate.utf8), operatorKey: expected.operatorKey)
        } catch {
            throw .certificateInvalid("\(error)", cause: ErrorCause(error))
        }
        let secret: RouterSecret
        do {
            secret = try document.secret()
        } catch {
            throw .malformedDocument("router_secret is not 32 bytes of base64")
        }
        let mismatch: String? =
            certificate.plan != document.plan.name ? "plan"
            : certificate.site != document.site.name ? "site"
            : certificate.slot != document.router.slot ? "slot"
            : certificate.sitePrefix != document.site.prefix ? "site prefix"
            : certificate.tunnelAddress != document.router.tunnelAddress ? "tunnel address"
            : certificate.serial != document.serial ? "serial"
            : certificate.wireguardPublicKey != secret.wireGuardKey.publicKeyBase64 ? "WireGuard key"
            : nil
        if let mismatch { throw .certificateMismatch(mismatch) }
        return document
    }
}

/// Why a profile was refused. Each case prints as one line that names the layer that failed.
public enum ProfileError: EdgeError, Equatable {
    case empty
    case tooLarge
    case notAge
    case sealedToAnotherIdentity(site: String)
    /// The age layer failed; the `AgeError` is the cause.
    case damaged(String, cause: ErrorCause = .none)
    case unsigned
    case signedByAnotherKey
    case badSignature
    /// The document does not decode or breaks a rule; the `DocumentError` is the cause.
    case malformedDocument(String, cause: ErrorCause = .none)
    case unknownSchema(Int, what: String)
    case anotherPlan(found: String, expected: String)
    case anotherSite(found: String, expected: String)
    case olderSerial(found: UInt64, last: UInt64)
    case certificateInvalid(String, cause: ErrorCause = .none)
    case certificateMismatch(String)

    public var description: String {
        switch self {
        case .empty:
            "profile is empty"
        case .tooLarge:
            "profile is larger than \(SealedProfile.maximumSize) bytes, far more than any profile: not a profile"
        case .notAge:
            "profile is not an age v1 file (no age-encryption.org/v1 header)"
        case .sealedToAnotherIdentity(let site):
            "profile is sealed to another site's identity, not this image's (site \(site))"
        case .damaged(let detail, _):
            "profile is damaged or tampered: \(detail)"
        case .unsigned:
            "profile is not signed: the sealed content is not a signify-signed document"
        case .signedByAnotherKey:
            "profile is signed by another operator key, not this plan's"
        case .badSignature:
            "profile signature does not match its content: tampered"
        case .malformedDocument(let detail, _):
            "profile document is malformed: \(detail)"
        case .unknownSchema(let schema, let what):
            "\(what) has unknown schema \(schema) (this software understands \(ProfileDocument.currentSchema)); update the image"
        case .anotherPlan(let found, let expected):
            "profile is for plan \"\(found)\", this image is plan \"\(expected)\""
        case .anotherSite(let found, let expected):
            "profile is for site \"\(found)\", this image is site \"\(expected)\""
        case .olderSerial(let found, let last):
            "profile serial \(found) is older than the last applied serial \(last); use the newest stick"
        case .certificateInvalid(let detail, _):
            "profile's site certificate is not valid: \(detail)"
        case .certificateMismatch(let field):
            "profile's site certificate does not match the profile (\(field) differs)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .empty: "profile.empty"
        case .tooLarge: "profile.too-large"
        case .notAge: "profile.not-age"
        case .sealedToAnotherIdentity: "profile.another-identity"
        case .damaged: "profile.tampered"
        case .unsigned: "profile.unsigned"
        case .signedByAnotherKey: "profile.another-key"
        case .badSignature: "profile.bad-signature"
        case .malformedDocument: "profile.malformed"
        case .unknownSchema: "profile.unknown-schema"
        case .anotherPlan: "profile.another-plan"
        case .anotherSite: "profile.another-site"
        case .olderSerial: "profile.older-serial"
        case .certificateInvalid: "profile.certificate-invalid"
        case .certificateMismatch: "profile.certificate-mismatch"
        }
    }

    /// The age, document or certificate error behind `damaged`, `malformedDocument` or `certificateInvalid`.
    public var cause: (any Error)? {
        switch self {
        case .damaged(_, let cause), .malformedDocument(_, let cause), .certificateInvalid(_, let cause): cause.error
        default: nil
        }
    }
}
