import EdgeErrors

/// A 128-bit IPv6 address as a value: parse, print in RFC 5952 canonical form, do arithmetic.
///
/// This is the only place in edgekit that turns addresses into text or text into addresses;
/// everything else composes prefixes and host numbers through this type.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The upper 64 bits (network half).
    public var high: UInt64
    /// The lower 64 bits (interface identifier half).
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> UInt64(48 - 16 * (i % 4)))
        }
    }

    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has eight groups")
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(groups[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(groups[i]) }
        self.init(high: high, low: low)
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { i in
            let word = i < 8 ? high : low
            return UInt8(truncatingIfNeeded: word >> UInt64(56 - 8 * (i % 8)))
        }
    }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        self.init(high: high, low: low)
    }

    /// Parses any RFC 4291 text form (with `::` compression, any case, no zone index,
    /// no embedded IPv4). Returns nil when the text is not an IPv6 address.
    public init?(_ text: some StringProtocol) {
        let text = String(text)
        guard !text.isEmpty, text.count <= 39,
            text.allSatisfy({ $0.isHexDigit || $0 == ":" })
        else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for piece in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = parseGroups(halves[0]) else { return nil }
        if halves.count == 1 {
            guard head.count == 8 else { return nil }
            self.init(groups: head)
        } else {
            guard let tail = parseGroups(halves[1]), head.count + tail.count <= 7 else { return nil }
            self.init(groups: head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail)
        }
    }

    /// RFC 5952 section 4: lower case, no leading zeros, the longest run (leftmost on a tie)
    /// of two or more zero groups compressed to `::`.
    public var description: String {
        let groups = self.groups
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            let start = index
            while index < 8 && groups[index] == 0 { index += 1 }
            if index - start > bestLength {
                bestStart = start
                bestLength = index - start
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestLength >= 2 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// The address `offset` above this one, or nil on overflow past ffff:…:ffff.
    public func adding(_ offset: UInt64) -> IPv6Address? {
        let (low, carry) = self.low.addingReportingOverflow(offset)
        if !carry { return IPv6Address(high: high, low: low) }
        let (high, overflow) = self.high.addingReportingOverflow(1)
        return overflow ? nil : IPv6Address(high: high, low: low)
    }

    /// The address with only the first `length` bits kept.
    public func masked(to length: Int) -> IPv6Address {
        let mask = IPv6Address.mask(length)
        return IPv6Address(high: high & mask.high, low: low & mask.low)
    }

    static func mask(_ length: Int) -> IPv6Address {
        func word(_ bits: Int) -> UInt64 {
            bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits))
        }
        return IPv6Address(high: word(length), low: word(length - 64))
    }

    /// True for fe80::/10.
    public var isLinkLocal: Bool { high >> 54 == 0x3fa }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = IPv6Address(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an IPv6 address: \(text)"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An IPv6 prefix (`address/length`) whose host bits are zero.
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The network address; its bits past `length` are always zero.
    public let address: IPv6Address
    /// The prefix length, 0...128.
    public let length: Int

    /// A prefix from an address and length; host bits are cleared.
    public init(address: IPv6Address, length: Int) {
        precondition((0...128).contains(length), "prefix length \(length) is outside 0...128")
        self.address = address.masked(to: length)
        self.length = length
    }

    /// Parses `addr/len`. Returns nil on bad syntax or when host bits are set
    /// (`fd00::1/64` is an address on a link, not a prefix); see `parseStrict` for the reason.
    public init?(_ text: some StringProtocol) {
        guard case .success(let prefix) = IPv6Prefix.parse(String(text)) else { return nil }
        self = prefix
    }

    /// Why a text is not a prefix, in words an operator can act on.
    public enum ParseError: EdgeError, Equatable {
        case syntax(String)
        case hostBitsSet(String, canonical: String)

        public var code: ErrorCode {
            switch self {
            case .syntax: "prefix.syntax"
            case .hostBitsSet: "prefix.host-bits"
            }
        }

        public var input: String? {
            switch self {
            case .syntax(let text), .hostBitsSet(let text, _): text
            }
        }

        public var description: String {
            switch self {
            case .syntax(let text):
                "\"\(text)\" is not an IPv6 prefix (expected ADDRESS/LENGTH, e.g. fd12:3456:789a::/48)"
            case .hostBitsSet(let text, let canonical):
                "\"\(text)\" has bits set past its length; did you mean \(canonical)?"
            }
        }
    }

    public static func parse(_ text: String) -> Result<IPv6Prefix, ParseError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv6Address(parts[0]),
            parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber),
            let length = Int(parts[1]), (0...128).contains(length), parts[1].count <= 3
        else { return .failure(.syntax(text)) }
        let prefix = IPv6Prefix(address: address, length: length)
        guard prefix.address == address else {
            return .failure(.hostBitsSet(text, canonical: prefix.description))
        }
        return .success(prefix)
    }

    public var description: String { "\(address)/\(length)" }

    /// True when `other` lies inside this prefix.
    public func contains(_ other: IPv6Address) -> Bool {
        other.masked(to: length) == address
    }

    /// True when every address of `other` lies inside this prefix.
    public func contains(_ other: IPv6Prefix) -> Bool {
        other.length >= length && contains(other.address)
    }

    /// True when the two prefixes share at least one address.
    public func overlaps(_ other: IPv6Prefix) -> Bool {
        contains(other) || other.contains(self)
    }

    /// The `index`-th subnet of length `newLength` inside this prefix, or nil if it does not fit.
    /// For a /48 and `newLength` 64, index 1 is the subnet with 4th hextet 1 (`fdxx:…:1::/64`).
    public func subnet(_ index: UInt64, length newLength: Int) -> IPv6Prefix? {
        guard newLength >= length, newLength <= 128 else { return nil }
        let bits = newLength - length
        if bits < 64, index >> UInt64(bits) != 0 { return nil }
        // Shift index into bit position (128 - newLength).
        let shift = 128 - newLength
        var high: UInt64 = 0
        var low: UInt64 = 0
        if shift >= 64 {
            high = index << UInt64(shift - 64)
        } else if shift == 0 {
            low = index
        } else {
            low = index << UInt64(shift)
            high = index >> UInt64(64 - shift)
        }
        let candidate = IPv6Address(high: address.high | high, low: address.low | low)
        let result = IPv6Prefix(address: candidate, length: newLength)
        return contains(result) ? result : nil
    }

    /// The address `number` inside this prefix (`fd00:0:0:1::/64`.host(1) is `fd00:0:0:1::1`),
    /// or nil if `number` does not fit in the host bits.
    public func host(_ number: UInt64) -> IPv6Address? {
        let hostBits = 128 - length
        if hostBits < 64, number >> UInt64(hostBits) != 0 { return nil }
        return IPv6Address(high: address.high, low: address.low | number)
    }

    /// The single-address prefix of `address`.
    public static func host(_ address: IPv6Address) -> IPv6Prefix {
        IPv6Prefix(address: address, length: 128)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        switch IPv6Prefix.parse(text) {
        case .success(let value): self = value
        case .failure(let error):
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
