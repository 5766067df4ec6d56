/// What a system (root filesystem) is, `/usr/lib/edgekit/system.json` inside it: its board and its
/// version, written by the image builder into the system level, read by the agent to judge an update
/// bundle (docs/updates.md). Version 0: built without `--system-version`; any versioned bundle is newer.
/// Canonical JSON (`DocumentCoding`): `{"board":"pc-uefi","version":0}`.
public struct SystemRelease: Codable, Sendable, Equatable {
    public static let path = "/usr/lib/edgekit/system.json"

    public var board: String
    public var version: UInt64

    public init(board: String, version: UInt64) {
        self.board = board
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case board, version
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        board = try c.field(.board, as: String.self, FieldRules.name)
        version = try c.field(.version, as: UInt64.self)
    }
}
