import EdgeModel
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A small deterministic generator so failures reproduce (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Addresses with runs of zero groups of every length, where compression rules matter.
func generatedAddresses(count: Int, seed: UInt64) -> [IPv6Address] {
    var generator = SeededGenerator(state: seed)
    return (0..<count).map { _ in
        let groups = (0..<8).map { _ -> UInt16 in
            switch UInt8.random(in: 0..<4, using: &generator) {
            case 0, 1: 0
            case 2: UInt16.random(in: 0...0xf, using: &generator)
            default: UInt16.random(in: 0...0xffff, using: &generator)
            }
        }
        return IPv6Address(groups: groups)
    }
}

/// glibc's inet_ntop/inet_pton as an independent oracle for RFC 5952 text.
func systemText(_ address: IPv6Address) -> String {
    var raw = in6_addr()
    withUnsafeMutableBytes(of: &raw) { buffer in
        for (i, byte) in address.bytes.enumerated() { buffer[i] = byte }
    }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
    return String(cString: text)
}

@Suite struct IPv6Tests {
    @Test func canonicalTextMatchesRFC5952Examples() throws {
        // RFC 5952 sections 4.1-4.3.
        let cases = [
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:DB8::1", "2001:db8::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("::", "::"),
            ("::1", "::1"),
            ("fe80::", "fe80::"),
        ]
        for (input, expected) in cases {
            let address = try #require(IPv6Address(input), "parse \(input)")
            #expect(address.description == expected)
        }
    }

    @Test func rejectsMalformedText() {
        for text in ["", ":", ":::", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1.2.3.4", "fe80::1%eth0", " ::1"] {
            #expect(IPv6Address(text) == nil, "\(text) must not parse")
        }
    }

    @Test func roundTripsAndAgreesWithGlibcOverGeneratedAddresses() throws {
        for address in generatedAddresses(count: 20_000, seed: 42) {
            let text = address.description
            #expect(IPv6Address(text) == address, "round trip of \(text)")
            // glibc prints IPv4-mapped/compatible forms with dotted quads; RFC 5952 section 5
            // allows that, edgekit never uses those ranges, so compare only the others.
            let groups = address.groups
            let dotted = groups[0..<5].allSatisfy { $0 == 0 } && (groups[5] == 0 || groups[5] == 0xffff)
            if !dotted {
                #expect(text == systemText(address), "RFC 5952 text of \(groups)")
            }
            // Non-canonical spellings parse to the same value.
            let longForm = groups.map { String(format: "%04X", $0) }.joined(separator: ":")
            #expect(IPv6Address(longForm) == address)
        }
    }

    @Test func prefixContainmentAndSubnetsOverGeneratedCases() throws {
        var generator = SeededGenerator(state: 7)
        for address in generatedAddresses(count: 5_000, seed: 99) {
            let length = Int.random(in: 0...120, using: &generator)
            let prefix = IPv6Prefix(address: address, length: length)
            #expect(prefix.contains(prefix.address))
            #expect(IPv6Prefix(prefix.description) == prefix, "prefix round trip \(prefix)")
            #expect(prefix.contains(address), "\(prefix) contains the address it was made from")
            // Every subnet lies inside, subnets are distinct, and their hosts lie inside them.
            let newLength = min(128, length + Int.random(in: 1...16, using: &generator))
            let bits = newLength - length
            let index = UInt64.random(in: 0..<(1 << UInt64(bits)), using: &generator)
            let subnet = try #require(prefix.subnet(index, length: newLength))
            #expect(prefix.contains(subnet))
            #expect(!subnet.contains(prefix) || bits == 0)
            #expect(prefix.subnet(1 << UInt64(bits), length: newLength) == nil, "index past the end does not fit")
            if newLength < 128 {
                let host = try #require(subnet.host(1))
                #expect(subnet.contains(host))
                #expect(prefix.contains(host))
            }
            // An address that differs in the first bit is outside any prefix longer than 0.
            if length > 0 {
                let flipped = IPv6Address(high: address.high ^ (1 << 63), low: address.low)
                #expect(!prefix.contains(flipped))
                #expect(!prefix.overlaps(IPv6Prefix(address: flipped, length: length)))
            }
        }
    }

    @Test func siteSubnetsUseTheFourthHextet() throws {
        let ula = try #require(IPv6Prefix("fd12:3456:789a::/48"))
        #expect(ula.subnet(1, length: 64)?.description == "fd12:3456:789a:1::/64")
        #expect(ula.subnet(0xffff, length: 64)?.description == "fd12:3456:789a:ffff::/64")
        #expect(ula.subnet(0x10000, length: 64) == nil)
        #expect(ula.subnet(1, length: 64)?.host(1)?.description == "fd12:3456:789a:1::1")
        #expect(IPv6Prefix("fd00::/64")?.host(1 << 32 | 2 << 16 | 1)?.description == "fd00::1:2:1")
    }

    @Test func prefixParseErrorsSayWhatToFix() {
        #expect(IPv6Prefix.parse("fd00::1/64") == .failure(.hostBitsSet("fd00::1/64", canonical: "fd00::/64")))
        #expect(IPv6Prefix.parse("fd00::/129") == .failure(.syntax("fd00::/129")))
        #expect(IPv6Prefix.parse("fd00::") == .failure(.syntax("fd00::")))
        #expect(IPv6Prefix.parse("fd00::/+4") == .failure(.syntax("fd00::/+4")))
    }

    @Test func linkLocal() {
        #expect(IPv6Address("fe80::1")!.isLinkLocal)
        #expect(IPv6Address("febf::1")!.isLinkLocal)
        #expect(!IPv6Address("fec0::1")!.isLinkLocal)
        #expect(!IPv6Address("fd00::1")!.isLinkLocal)
    }
}
