import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#endif

// MARK: - The document

/// A YAML document as the plan reader walks it: the shapes a parser composes, each with its line
/// (1-based). EdgeModel reads plans from it without a YAML library, so what links EdgeModel (the
/// agent) does not link a parser's dependencies; `PlanYAML` composes it from the text with Yams.
package indirect enum PlanNode: Sendable {
    /// A scalar's text; `plain` when it was written without quotes (an empty plain scalar is "no value").
    case scalar(String, plain: Bool, line: Int)
    case mapping([(key: PlanNode, value: PlanNode)], line: Int)
    case sequence([PlanNode], line: Int)
    case alias(line: Int)

    package var line: Int {
        switch self {
        case .scalar(_, _, let line), .mapping(_, let line), .sequence(_, let line), .alias(let line): line
        }
    }
}

extension Plan {
    /// The plan `root` describes, checked completely (docs/plan.md), or a `PlanError` with every
    /// problem found, in line order. `file` only names the source in diagnostics.
    package static func reading(_ root: PlanNode, file: String) throws -> Plan {
        var reader = NodeReader(file: file)
        let draft = PlanDraft.read(root, &reader)
        // Shape problems leave holes in the draft; the checker still runs on what was readable,
        // so one pass reports every problem.
        var checker = PlanChecker(file: file, diagnostics: reader.diagnostics)
        let plan = checker.resolve(draft)
        if let plan, checker.diagnostics.isEmpty { return plan }
        throw PlanError(checker.diagnostics.enumerated().sorted {
            (($0.element.line ?? 0), $0.offset) < (($1.element.line ?? 0), $1.offset)
        }.map(\.element))
    }
}

// MARK: - Strict YAML reading

/// A value read from the YAML with the line it came from, so later checks can point at it.
struct Located<Value> {
    var value: Value
    var line: Int
}

/// Walks the YAML node tree, collecting a diagnostic for every shape problem instead of stopping.
struct NodeReader {
    let file: String
    var diagnostics: [PlanDiagnostic] = []

    mutating func error(_ line: Int?, _ message: String) {
        diagnostics.append(PlanDiagnostic(file: file, line: line, message: message))
    }

    static func line(_ node: PlanNode) -> Int { node.line }

    /// The keys of a mapping, checking that each is allowed and appears once.
    mutating func fields(_ node: PlanNode, _ what: String, allowed: [String]) -> Fields? {
        guard case .mapping(let mapping, _) = node else {
            error(Self.line(node), "\(what) must be a mapping of keys (\(allowed.joined(separator: ", "))), found \(kind(node))")
            return nil
        }
        var values: [String: PlanNode] = [:]
        var keyLines: [String: Int] = [:]
        for (key, value) in mapping {
            guard case .scalar(let name, _, _) = key else {
                error(Self.line(key), "\(what): keys must be plain words")
                continue
            }
            if !allowed.contains(name) {
                let hint = allowed.first { $0.replacing("_", with: "") == name.lowercased().replacing("_", with: "").replacing("-", with: "") }
                let suggestion = hint.map { "; did you mean \"\($0)\"?" } ?? " (allowed: \(allowed.joined(separator: ", ")))"
                error(Self.line(key), "unknown key \"\(name)\" in \(what)\(suggestion)")
                continue
            }
            if let first = keyLines[name] {
                error(Self.line(key), "\(what): key \"\(name)\" appears twice (first on line \(first))")
                continue
            }
            values[name] = value
            keyLines[name] = Self.line(key)
        }
        return Fields(what: what, line: Self.line(node), values: values)
    }

    /// The text of `key` in a mapping without checking anything, to name the mapping in messages.
    static func peek(_ node: PlanNode, _ key: String) -> String? {
        guard case .mapping(let mapping, _) = node else { return nil }
        for (k, v) in mapping {
            if case .scalar(let ks, _, _) = k, ks == key, case .scalar(let vs, _, _) = v { return vs }
        }
        return nil
    }

    func kind(_ node: PlanNode) -> String {
        switch node {
        case .scalar(let text, _, _): text.isEmpty ? "an empty value" : "the value \"\(text)\""
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// A scalar as text. Plain scalars keep their text even when YAML 1.1 would read them as
    /// numbers (a MAC such as `10:22:33:44:55:66` is a base-60 integer to YAML 1.1).
    mutating func string(_ fields: Fields, _ key: String, required: Bool = true) -> Located<String>? {
        guard let node = fields.values[key] else {
            if required { error(fields.line, "\(fields.what) is missing \"\(key)\"") }
            return nil
        }
        guard case .scalar(let text, let plain, _) = node, !(text.isEmpty && plain) else {
            error(Self.line(node), "\(fields.label(key)) must be a text value, found \(kind(node))")
            return nil
        }
        return Located(value: text, line: Self.line(node))
    }

    /// A whole decimal number within `range`.
    mutating func integer(_ fields: Fields, _ key: String, _ range: ClosedRange<Int>, required: Bool = true) -> Located<Int>? {
        guard let text = string(fields, key, required: required) else { return nil }
        guard let value = Int(text.value), text.value.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) else {
            error(text.line, "\(fields.label(key)) must be a whole number \(range.lowerBound)–\(range.upperBound), found \"\(text.value)\"")
            return nil
        }
        guard range.contains(value) else {
            error(text.line, "\(fields.label(key)) is \(value), outside \(range.lowerBound)–\(range.upperBound)")
            return nil
        }
        return Located(value: value, line: text.line)
    }

    /// The entries of list `key` that name themselves (`servers:`, `clients:`): each one's fields,
    /// named in messages after its `name` (`client "a"`), else its position (`clients[2]`), and the
    /// name. An entry whose shape is wrong is reported and left out.
    mutating func namedEntries(_ fields: Fields, _ key: String, kind: String, allowed: [String]) -> [(fields: Fields, name: Located<String>?)] {
        var entries: [(fields: Fields, name: Located<String>?)] = []
        for (i, node) in (list(fields, key) ?? []).enumerated() {
            let label = NodeReader.peek(node, "name").map { "\(kind) \(FieldRules.quoted($0))" } ?? "\(key)[\(i)]"
            guard let f = self.fields(node, label, allowed: allowed) else { continue }
            let name = string(f, "name")
            let what = name.map { "\(kind) \(FieldRules.quoted($0.value))" } ?? "\(key)[\(i)]"
            entries.append((Fields(what: what, line: f.line, values: f.values), name))
        }
        return entries
    }

    mutating func list(_ fields: Fields, _ key: String) -> [PlanNode]? {
        guard let node = fields.values[key] else {
            error(fields.line, "\(fields.what) is missing \"\(key)\"")
            return nil
        }
        guard case .sequence(let sequence, _) = node else {
            error(Self.line(node), "\(fields.label(key)) must be a list (lines starting with \"- \"), found \(kind(node))")
            return nil
        }
        return Array(sequence)
    }
}

/// The keys of one YAML mapping after the allowed-key check.
struct Fields {
    var what: String
    var line: Int
    var values: [String: PlanNode]
    func has(_ key: String) -> Bool { values[key] != nil }

    /// How a key is named in messages: `sites`, `relay.host`, `site "a" index`.
    func label(_ key: String) -> String {
        switch what {
        case "the plan": key
        case "relay", "defaults", "mesh", "nat64": "\(what).\(key)"
        default: "\(what) \(key)"
        }
    }
}

// MARK: - The plan as written, before resolution

struct PlanDraft {
    var name: Located<String>?
    var ula: Located<String>?
    var tunnel: Located<String>?
    /// `relays:` in order, or the one relay of `relay:` (its `name` nil).
    var relays: [RelayDraft] = []
    /// Line of `relays:` or `relay:`; 0 when the plan has neither.
    var relaysLine = 0
    var defaults = DefaultsDraft()
    var sites: [SiteDraft] = []
    var sitesLine = 0
    var operators: [OperatorDraft] = []
    var mesh: MeshDraft?
    var servers: [ServerDraft] = []
    /// Line of `servers:`, 0 when the plan has none.
    var serversLine = 0
    var clients: [ClientDraft] = []
    var clientPrefix: Located<String>?
    var nat64: NAT64Draft?

    struct NAT64Draft {
        var line: Int
        var prefix: Located<String>?
        var dnsForward: [Located<String>] = []
    }

    struct ClientDraft {
        var line: Int
        var what: String
        var name: Located<String>?
        var address: Located<String>?
        var generation: Located<Int>?
    }

    struct MeshDraft {
        var line: Int
        var prefix: Located<String>?
        var port: Located<Int>?
    }

    struct ServerDraft {
        var line: Int
        var what: String
        var name: Located<String>?
        var site: Located<String>?
        var token: Located<String>?
        var address: Located<String>?
        var generation: Located<Int>?
    }

    struct RelayDraft {
        var line: Int
        /// nil for the relay of `relay:`, which is called `Relay.singleName`.
        var name: Located<String>?
        /// How messages name it: `relay` or `relay "b"` (`relays[1]` before its name is read).
        var what: String
        var host: Located<String>?
        var wireguardPort: Located<Int>?
        var registrationPort: Located<Int>?
        var tunnelAddress: Located<String>?
        var publicPrefix: Located<String>?
    }

    struct DMZDraft {
        var line: Int
        var what: String
        var vlan: Located<Int>?
        var port: Located<String>?
        var prefix: Located<String>?
        /// Whether `vlan` or `port` is written, even with a value that did not read.
        var linkWritten = false
    }

    struct DefaultsDraft {
        var line = 0
        var uplinkMTU: Located<Int>?
        var keepalive: Located<Int>?
        var vrrpAdvertInterval: Located<String>?
        var serverPorts: Located<String>?
        var sshOnLAN: Located<String>?
    }

    struct OperatorDraft {
        var line: Int
        var what: String
        var name: Located<String>?
        var sshKeys: [Located<String>] = []
        var sshKeysLine: Int?
    }

    struct SiteDraft {
        var line: Int
        var what: String
        var name: Located<String>?
        var index: Located<Int>?
        var prefix: Located<String>?
        var vrrpID: Located<Int>?
        var vip: Located<String>?
        var linkLocalVIP: Located<String>?
        var board: Located<String>?
        var uplinkMTU: Located<Int>?
        var nat64: Located<String>?
        var dmz: DMZDraft?
        var routers: [RouterDraft] = []
    }

    struct RouterDraft {
        var line: Int
        var what: String
        var slot: Located<Int>?
        var priority: Located<Int>?
        var generation: Located<Int>?
        var uplink: Located<String>?
        var lan: Located<String>?
        var tunnelAddress: Located<String>?
        var uplinkMTU: Located<Int>?
    }

    static let topKeys = ["name", "ula", "tunnel", "relay", "relays", "defaults", "sites", "operators", "mesh", "servers",
                          "clients", "client_prefix", "nat64"]
    static let clientKeys = ["name", "address", "generation"]
    static let meshKeys = ["prefix", "port"]
    static let serverKeys = ["name", "site", "token", "address", "generation"]
    static let relayKeys = ["host", "wireguard_port", "registration_port", "tunnel_address", "public_prefix"]
    static let defaultsKeys = ["uplink_mtu", "keepalive", "vrrp_advert_interval", "server_wireguard_ports", "ssh_on_lan"]
    static let operatorKeys = ["name", "ssh_keys"]
    static let siteKeys = ["name", "index", "prefix", "vrrp_id", "vip", "link_local_vip", "board", "uplink_mtu", "nat64", "dmz", "routers"]
    static let dmzKeys = ["vlan", "port", "prefix"]
    static let nat64Keys = ["prefix", "dns_forward"]
    static let routerKeys = ["slot", "priority", "generation", "uplink", "lan", "tunnel_address", "uplink_mtu"]

    static func relay(_ f: Fields, name: Located<String>?, what: String, _ r: inout NodeReader) -> PlanDraft.RelayDraft {
        PlanDraft.RelayDraft(
            line: f.line, name: name, what: what, host: r.string(f, "host"),
            wireguardPort: r.integer(f, "wireguard_port", 1...65535, required: false),
            registrationPort: r.integer(f, "registration_port", 1...65535, required: false),
            tunnelAddress: r.string(f, "tunnel_address", required: false),
            publicPrefix: r.string(f, "public_prefix", required: false))
    }

    static func read(_ root: PlanNode, _ r: inout NodeReader) -> PlanDraft {
        var draft = PlanDraft()
        guard let top = r.fields(root, "the plan", allowed: topKeys) else { return draft }
        draft.name = r.string(top, "name")
        draft.ula = r.string(top, "ula")
        draft.tunnel = r.string(top, "tunnel")
        switch (top.values["relay"], top.values["relays"]) {
        case (let node?, nil):
            draft.relaysLine = NodeReader.line(node)
            if let f = r.fields(node, "relay", allowed: relayKeys) {
                draft.relays = [relay(f, name: nil, what: "relay", &r)]
            }
        case (nil, let node?):
            draft.relaysLine = NodeReader.line(node)
            for (i, item) in (r.list(top, "relays") ?? []).enumerated() {
                let what = NodeReader.peek(item, "name").map { "relay \"\($0)\"" } ?? "relays[\(i)]"
                guard let f = r.fields(item, what, allowed: ["name"] + relayKeys) else { continue }
                draft.relays.append(relay(f, name: r.string(f, "name"), what: what, &r))
            }
        case (let node?, _?):
            r.error(NodeReader.line(node), "the plan has both \"relay\" and \"relays\"; keep one (relays: is a list of relays, relay: is one)")
        case (nil, nil):
            r.error(top.line, "the plan is missing \"relays\" (each relay's name, DNS name and ports; or \"relay\" for one)")
        }
        if let node = top.values["defaults"], let f = r.fields(node, "defaults", allowed: defaultsKeys) {
            draft.defaults = DefaultsDraft(
                line: f.line,
                uplinkMTU: r.integer(f, "uplink_mtu", FieldRules.uplinkMTUs, required: false),
                keepalive: r.integer(f, "keepalive", 0...65535, required: false),
                vrrpAdvertInterval: r.string(f, "vrrp_advert_interval", required: false),
                serverPorts: r.string(f, "server_wireguard_ports", required: false),
                sshOnLAN: r.string(f, "ssh_on_lan", required: false))
        }
        if top.has("operators") {
            for (i, node) in (r.list(top, "operators") ?? []).enumerated() {
                let label = NodeReader.peek(node, "name").map { "operator \"\($0)\"" } ?? "operators[\(i)]"
                guard let f = r.fields(node, label, allowed: operatorKeys) else { continue }
                var person = OperatorDraft(line: f.line, what: label, name: r.string(f, "name"))
                person.sshKeysLine = f.values["ssh_keys"].map(NodeReader.line)
                let keys = Fields(what: label, line: f.line, values: f.values)
                for keyNode in r.list(keys, "ssh_keys") ?? [] {
                    let entry = Fields(what: label, line: NodeReader.line(keyNode), values: ["ssh_keys": keyNode])
                    if let line = r.string(entry, "ssh_keys") { person.sshKeys.append(line) }
                }
                draft.operators.append(person)
            }
        }
        draft.sitesLine = top.values["sites"].map(NodeReader.line) ?? top.line
        for (i, node) in (r.list(top, "sites") ?? []).enumerated() {
            let siteLabel = NodeReader.peek(node, "name").map { "site \"\($0)\"" } ?? "sites[\(i)]"
            guard let f = r.fields(node, siteLabel, allowed: siteKeys) else { continue }
            let name = r.string(f, "name")
            let what = name.map { "site \"\($0.value)\"" } ?? "sites[\(i)]"
            var site = SiteDraft(
                line: f.line, what: what, name: name,
                index: r.integer(Fields(what: what, line: f.line, values: f.values), "index", 0...65535),
                prefix: r.string(f, "prefix", required: false),
                vrrpID: r.integer(Fields(what: what, line: f.line, values: f.values), "vrrp_id", 1...255),
                vip: r.string(f, "vip", required: false),
                linkLocalVIP: r.string(f, "link_local_vip", required: false),
                board: r.string(f, "board", required: false),
                uplinkMTU: r.integer(Fields(what: what, line: f.line, values: f.values), "uplink_mtu", FieldRules.uplinkMTUs, required: false),
                nat64: r.string(Fields(what: what, line: f.line, values: f.values), "nat64", required: false))
            if let node = f.values["dmz"], let d = r.fields(node, "\(what) dmz", allowed: dmzKeys) {
                site.dmz = DMZDraft(line: d.line, what: "\(what) dmz", vlan: r.integer(d, "vlan", DMZ.vlans, required: false),
                                    port: r.string(d, "port", required: false), prefix: r.string(d, "prefix", required: false),
                                    linkWritten: d.has("vlan") || d.has("port"))
            }
            for (j, routerNode) in (r.list(Fields(what: what, line: f.line, values: f.values), "routers") ?? []).enumerated() {
                let routerLabel = NodeReader.peek(routerNode, "slot").map { "\(what) router \($0)" } ?? "\(what) routers[\(j)]"
                guard let rf = r.fields(routerNode, routerLabel, allowed: routerKeys) else { continue }
                let slot = r.integer(rf, "slot", 1...16)
                let routerWhat = slot.map { "\(what) router \($0.value)" } ?? "\(what) routers[\(j)]"
                let named = Fields(what: routerWhat, line: rf.line, values: rf.values)
                site.routers.append(RouterDraft(
                    line: rf.line, what: routerWhat, slot: slot,
                    priority: r.integer(named, "priority", 1...254),
                    generation: r.integer(named, "generation", 1...1_000_000, required: false),
                    uplink: r.string(named, "uplink", required: false),
                    lan: r.string(named, "lan", required: false),
                    tunnelAddress: r.string(named, "tunnel_address", required: false),
                    uplinkMTU: r.integer(named, "uplink_mtu", FieldRules.uplinkMTUs, required: false)))
            }
            draft.sites.append(site)
        }
        readMesh(top, into: &draft, &r)
        readClients(top, into: &draft, &r)
        if let node = top.values["nat64"], let f = r.fields(node, "nat64", allowed: nat64Keys) {
            var nat64 = NAT64Draft(line: f.line, prefix: r.string(f, "prefix", required: false))
            if f.has("dns_forward") {
                for item in r.list(f, "dns_forward") ?? [] {
                    let entry = Fields(what: "nat64", line: NodeReader.line(item), values: ["dns_forward": item])
                    if let text = r.string(entry, "dns_forward") { nat64.dnsForward.append(text) }
                }
            }
            draft.nat64 = nat64
        }
        return draft
    }

    /// `clients:` and `client_prefix:`, both optional: a plan without them is read exactly as before.
    static func readClients(_ top: Fields, into draft: inout PlanDraft, _ r: inout NodeReader) {
        draft.clientPrefix = r.string(top, "client_prefix", required: false)
        guard top.has("clients") else { return }
        for (named, name) in r.namedEntries(top, "clients", kind: "client", allowed: clientKeys) {
            draft.clients.append(ClientDraft(
                line: named.line, what: named.what, name: name,
                address: r.string(named, "address", required: false),
                generation: r.integer(named, "generation", 1...1_000_000, required: false)))
        }
    }

    /// `mesh:` and `servers:`, both optional: a plan without them is read exactly as before.
    static func readMesh(_ top: Fields, into draft: inout PlanDraft, _ r: inout NodeReader) {
        if let node = top.values["mesh"], let f = r.fields(node, "mesh", allowed: meshKeys) {
            draft.mesh = MeshDraft(line: f.line, prefix: r.string(f, "prefix"),
                                   port: r.integer(f, "port", 1...65535, required: false))
        }
        guard top.has("servers") else { return }
        draft.serversLine = top.values["servers"].map(NodeReader.line) ?? top.line
        for (named, name) in r.namedEntries(top, "servers", kind: "server", allowed: serverKeys) {
            draft.servers.append(ServerDraft(
                line: named.line, what: named.what, name: name,
                site: r.string(named, "site"),
                token: r.string(named, "token", required: false),
                address: r.string(named, "address", required: false),
                generation: r.integer(named, "generation", 1...1_000_000, required: false)))
        }
    }
}
