import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One parser per field kind, shared by `plan check` (`PlanChecker`) and the wire documents a device
/// reads (the profile, relay.json): both sides accept and refuse the same values for the same reason.
///
/// Each rule returns the value or the problem in the operator's words, without the field's name: the
/// caller prefixes it (`plan.yaml:12: site "a" router 1 uplink …`, `router.uplink …`).
public enum FieldRules {
    // Ranges of the plan's whole-number fields (docs/plan.md, "Rules").
    public static let slots = 1...16
    public static let priorities = 1...254
    public static let generations = 1...1_000_000
    public static let vrrpIDs = 1...255
    public static let siteIndexes = 0...65535
    public static let ports = 1...65535
    public static let uplinkMTUs = 576...65535
    public static let keepalives = 0...65535
    /// VRRPv3 carries the advertisement interval in 12 bits of centiseconds (RFC 5798 section 5.2.7).
    public static let vrrpAdvertIntervalCentiseconds = 1...4095

    /// A plan, site or relay label: RFC 1123, lower case.
    public static func name(_ text: String) -> Result<String, FieldProblem> {
        PlanChecker.isDNSLabel(text) ? .success(text)
            : .failure(FieldProblem("\(quoted(text)) is not DNS-safe: use 1–63 lower-case letters, digits and inner hyphens"))
    }

    /// The relay's DNS name.
    public static func host(_ text: String) -> Result<String, FieldProblem> {
        PlanChecker.isDNSName(text) ? .success(text)
            : .failure(FieldProblem("\(quoted(text)) is not a DNS name (lower-case labels separated by dots, e.g. relay.example.net)"))
    }

    /// `auto`, a kernel interface name or a MAC address: the plan checker's own rule, called.
    public static func interface(_ text: String) -> Result<InterfaceMatch, FieldProblem> {
        var checker = PlanChecker(file: "")
        let match = checker.interface(Located(value: text, line: 0), "")
        guard let diagnostic = checker.diagnostics.first else { return .success(match) }
        // The checker words it as `<what> "<text>" …`; the caller names the field.
        var message = diagnostic.message
        let prefix = " \"\(text)\""
        if message.hasPrefix(prefix) { message = quoted(text) + message.dropFirst(prefix.count) }
        return .failure(FieldProblem(message))
    }

    /// `LOW-HIGH`, 1 ≤ LOW ≤ HIGH ≤ 65535: the servers' WireGuard port range.
    public static func portRange(_ text: String) -> Result<ClosedRange<UInt16>, FieldProblem> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 2, let low = UInt16(parts[0].trimmingSpaces()),
            let high = UInt16(parts[1].trimmingSpaces()), low >= 1, low <= high {
            return .success(low...high)
        }
        return .failure(FieldProblem("\(quoted(text)) must be a port range LOW-HIGH within 1–65535, e.g. 58000-60000"))
    }

    /// The text form `portRange` reads back.
    public static func portRangeText(_ range: ClosedRange<UInt16>) -> String {
        "\(range.lowerBound)-\(range.upperBound)"
    }

    /// An IPv6 address in any RFC 4291 text form.
    public static func address(_ text: String) -> Result<IPv6Address, FieldProblem> {
        IPv6Address(text).map { .success($0) } ?? .failure(FieldProblem("\(quoted(text)) is not an IPv6 address"))
    }

    /// An IPv6 prefix `ADDRESS/LENGTH` with no host bits set.
    public static func prefix(_ text: String) -> Result<IPv6Prefix, FieldProblem> {
        switch IPv6Prefix.parse(text) {
        case .success(let prefix): .success(prefix)
        case .failure(.hostBitsSet(_, let canonical)):
            .failure(FieldProblem("\(quoted(text)) has bits set past its length; did you mean \(canonical)?"))
        case .failure(.syntax):
            .failure(FieldProblem("\(quoted(text)) is not an IPv6 prefix (expected ADDRESS/LENGTH, e.g. fd12:3456:789a::/48)"))
        }
    }

    /// A whole number inside `range`.
    public static func integer(_ value: Int, in range: ClosedRange<Int>) -> Result<Int, FieldProblem> {
        range.contains(value) ? .success(value)
            : .failure(FieldProblem("is \(value), outside \(range.lowerBound)–\(range.upperBound)"))
    }

    /// An uplink MTU (`defaults.uplink_mtu`, a site's or a router's): in range, and big enough that the
    /// servers' mesh still carries IPv6's 1280 bytes inside two WireGuard layers: 80 bytes for the
    /// mesh (over IPv6) and 60 for the tunnel to the relay at its cheapest (over IPv4).
    public static func uplinkMTU(_ value: Int) -> Result<Int, FieldProblem> {
        if case .failure(let problem) = integer(value, in: uplinkMTUs) { return .failure(problem) }
        guard value >= Defaults.minimumUplinkMTU else {
            let inner = value - Defaults.wireGuardOverheadIPv4 - Defaults.wireGuardOverhead
            return .failure(FieldProblem("\(value) is too small: minus 60 (tunnel to the relay over IPv4) and 80 (servers' mesh) it leaves \(inner) bytes, and IPv6 needs 1280; use \(Defaults.minimumUplinkMTU) or more (docs/network.md, \"MTU\")"))
        }
        return .success(value)
    }

    /// `text` in double quotes with control characters escaped, so a hostile value (`"eth0\n[Match]"`)
    /// stays on the one line that reports it; past `quotedLimit` characters it is cut off with "…".
    public static func quoted(_ text: String) -> String {
        var result = "\""
        for (count, scalar) in text.unicodeScalars.enumerated() {
            if count == quotedLimit {
                result += "…"
                break
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
                    || scalar == "\u{2028}" || scalar == "\u{2029}" {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// How much of a refused value a message shows: enough to recognise it, never a flood.
    public static let quotedLimit = 64
}

/// Why one field's value is refused, without the field's name (the caller adds it).
public struct FieldProblem: EdgeError, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var code: ErrorCode { "field.refused" }
    public var description: String { message }
}
