/// The public parameters a site image is stamped with, `/etc/edgekit/site.json`: written by the
/// image builder (`edgekit image build`), read by the agent on the device. Canonical JSON
/// (`DocumentCoding`): `{"hostname":"...","plan":"...","site":"..."}`; unknown fields are refused.
public struct SiteStamp: Codable, Sendable, Equatable {
    public var plan: String
    public var site: String
    public var hostname: String

    public init(plan: String, site: String, hostname: String) {
        self.plan = plan
        self.site = site
        self.hostname = hostname
    }

    enum CodingKeys: String, CodingKey {
        case plan, site, hostname
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        plan = try c.field(.plan, as: String.self, FieldRules.name)
        site = try c.field(.site, as: String.self, FieldRules.name)
        // The agent checks the hostname with its own rule (host names may have dots) before using it.
        hostname = try c.field(.hostname, as: String.self)
    }
}
