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

/// The two system (root) slots of an appliance on a GPT board (docs/updates.md, "System slots"):
/// slot A is the image's root partition, slot B the empty one beside it that the first update
/// fills. The image builder gives the partitions these PARTUUIDs (DiskLayout); the boot entry of a
/// slot names it on the kernel command line (`root=PARTUUID=`), which is how the agent tells which
/// slot it runs from.
public enum SystemSlot: String, Codable, Sendable, CaseIterable {
    case a, b

    public var other: SystemSlot { self == .a ? .b : .a }

    public var partitionUUID: String {
        switch self {
        case .a: "d4c27ba9-7b6e-468d-90b1-64c5b7f1c749"
        case .b: "cc0257bc-4d86-4439-bb62-71aa553f66b6"
        }
    }

    /// systemd-boot's entry for this slot (Boot Loader Specification, type 1), in
    /// `loader/entries/edgekit-SLOT.conf` on the ESP, or `edgekit-SLOT+1.conf` on trial: the newest
    /// `version` sorts first and boots (no `default` in loader.conf); an entry whose boot counter has
    /// run out sorts last, so the slot that booted before boots again (docs/updates.md, "Trial boot").
    public func bootEntry(version: UInt64, kernel: String, initrd: String, options: String) -> String {
        """
        title edgekit system \(version) (slot \(rawValue))
        sort-key edgekit
        version \(version)
        linux \(kernel)
        initrd \(initrd)
        options root=PARTUUID=\(partitionUUID) \(options)

        """
    }

    /// The slot whose partition `root=PARTUUID=…` on `commandLine` names; nil for another root.
    public static func booted(commandLine: String) -> SystemSlot? {
        for word in commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" }) where word.hasPrefix("root=PARTUUID=") {
            let uuid = word.dropFirst("root=PARTUUID=".count).lowercased()
            return allCases.first { $0.partitionUUID == uuid }
        }
        return nil
    }
}

/// The last update install and how its trial boot went, `/var/lib/edgekit/update.json` on the data
/// partition (shared by both slots): written `trial` by the install, `blessed` by the health check
/// of the new system's trial boot, `failed` when the old system finds itself running again.
public struct UpdateRecord: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case trial, blessed, failed
    }

    public var version: UInt64
    public var slot: SystemSlot
    /// The version that installed it (and that a failed trial comes back to).
    public var from: UInt64
    public var state: State
    /// Why a trial failed, as far as the system that judged it knew.
    public var reason: String?
    /// The kernel's boot ID when it was installed (/proc/sys/kernel/random/boot_id): until the
    /// router reboots, a trial of another version is waiting for its boot, not failed.
    public var installedInBoot: String?

    public init(version: UInt64, slot: SystemSlot, from: UInt64, state: State, reason: String? = nil, installedInBoot: String? = nil) {
        self.version = version
        self.slot = slot
        self.from = from
        self.state = state
        self.reason = reason
        self.installedInBoot = installedInBoot
    }

    enum CodingKeys: String, CodingKey {
        case version, slot, from, state, reason
        case installedInBoot = "installed_in_boot"
    }
}

/// GRUB's environment block, `grub/grubenv` on the ESP of `pc-bios` (docs/updates.md, "Trial boot
/// under legacy BIOS"): what GRUB's `load_env`/`save_env` read and write, and the agent edits to
/// try and keep a slot. Exactly 1024 bytes: `# GRUB Environment Block\n`, then `name=value\n` lines
/// (`\` and newlines in a value escaped with `\`), padded with `#` (grub-core/lib/envblk.c). GRUB
/// writes the block in place, so its size never changes.
///
/// The variables edgekit keeps there: `edgekit_slot` (the slot GRUB boots, `a` or `b`),
/// `edgekit_trial` (a slot to try once: GRUB clears it before it boots that slot) and
/// `edgekit_a_options`/`edgekit_b_options` (each slot's kernel options after `root=`).
public struct GrubEnvironment: Sendable, Equatable {
    public static let size = 1024
    static let signature = "# GRUB Environment Block\n"

    /// In file order.
    public private(set) var variables: [(name: String, value: String)]

    public init(_ variables: [(name: String, value: String)] = []) {
        self.variables = variables
    }

    public static func == (a: GrubEnvironment, b: GrubEnvironment) -> Bool {
        a.variables.map { "\($0.name)=\($0.value)" } == b.variables.map { "\($0.name)=\($0.value)" }
    }

    public subscript(name: String) -> String? {
        get { variables.first { $0.name == name }?.value }
        set {
            if let index = variables.firstIndex(where: { $0.name == name }) {
                if let newValue { variables[index].value = newValue } else { variables.remove(at: index) }
            } else if let newValue {
                variables.append((name, newValue))
            }
        }
    }

    /// The block's bytes; nil when the variables do not fit in 1024 bytes.
    public var encoded: [UInt8]? {
        var text = GrubEnvironment.signature
        for (name, value) in variables {
            text += name + "=" + value.replacing("\\", with: "\\\\").replacing("\n", with: "\\\n") + "\n"
        }
        var bytes = Array(text.utf8)
        guard bytes.count <= GrubEnvironment.size else { return nil }
        bytes += [UInt8](repeating: UInt8(ascii: "#"), count: GrubEnvironment.size - bytes.count)
        return bytes
    }

    /// Parses a block; nil for anything that is not one (wrong size or signature).
    public init?(bytes: [UInt8]) {
        guard bytes.count == GrubEnvironment.size, bytes.starts(with: Array(GrubEnvironment.signature.utf8)) else { return nil }
        var variables: [(String, String)] = []
        var line: [UInt8] = []
        var escaped = false
        func finish() {
            defer { line = [] }
            guard let equals = line.firstIndex(of: UInt8(ascii: "=")), line.first != UInt8(ascii: "#") else { return }
            variables.append((String(decoding: line[..<equals], as: UTF8.self), String(decoding: line[(equals + 1)...], as: UTF8.self)))
        }
        for byte in bytes.dropFirst(GrubEnvironment.signature.utf8.count) {
            if escaped {
                line.append(byte)
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\n") {
                finish()
            } else {
                line.append(byte)
            }
        }
        self.variables = variables
    }
}

/// The names a relay serves update bundles by and a router fetches them under (docs/updates.md,
/// "From the relay"): letters, digits, `.`, `_`, `-`, not starting with a dot, at most 255 bytes,
/// so never a path on either side.
public enum BundleFileName {
    public static func isPlain(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && !name.hasPrefix(".")
            && name.utf8.allSatisfy { $0 == 0x2e || $0 == 0x5f || $0 == 0x2d || (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) }
    }

    /// The name `edgekit image update` gives a bundle: `SITE-VERSION.update`, or
    /// `PLAN-BOARD-VERSION.update` for a bundle for any site (`site` nil).
    public static func name(plan: String, site: String?, board: String, version: UInt64) -> String {
        "\(site ?? "\(plan)-\(board)")-\(version).update"
    }
}
