import EdgeErrors

// The four messages of docs/protocol.md as values, with an encoder and a parser that never traps.
//
// This file depends on nothing but the standard library, so fuzz/run.sh can compile it alone with
// libFuzzer. MACs are computed elsewhere (KeySchedule.swift): a parsed message carries the bytes
// its MAC covers (`authenticated`) and the MAC itself.

/// What a router asks for: the site /64 too (master), or only its tunnel /128 (backup).
public enum Claim: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case master = 1
    case backup = 2

    public var description: String { self == .master ? "master" : "backup" }
}

/// The relay's answer code in RESULT (docs/protocol.md, "RESULT").
public enum RegistrationStatus: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case accepted = 0
    case revoked = 1
    case certificateInvalid = 2
    case certificateForeign = 3
    case keyMismatch = 4
    case superseded = 5
    case temporaryFailure = 6

    public var description: String {
        switch self {
        case .accepted: "accepted"
        case .revoked: "refused: this site or router is revoked on the relay"
        case .certificateInvalid: "refused: the site certificate is not signed by the relay's operator key, or malformed"
        case .certificateForeign: "refused: the site certificate is for another plan or its prefixes are outside the plan"
        case .keyMismatch: "refused: the site certificate names another WireGuard key than this router's"
        case .superseded: "refused: a newer certificate for this site and slot is registered under another key"
        case .temporaryFailure: "the relay could not apply the change to WireGuard; retry"
        }
    }
}

/// The wire constants of version 1.
public enum Wire {
    public static let version: UInt8 = 1
    public static let maximumSize = 1200
    public static let macSize = 16
    public static let keySize = 32
    public static let nonceSize = 16
    public static let cookieSize = 24

    public static let helloSize = 128
    public static let challengeSize = 60
    public static let resultSize = 76
    /// REGISTER = 78 header bytes + certificate + 16 MAC bytes.
    public static let registerOverhead = 94
    public static let maximumCertificateSize = maximumSize - registerOverhead

    public enum MessageType: UInt8, Sendable, CustomStringConvertible {
        case hello = 1, challenge = 2, register = 3, result = 4

        public var description: String {
            switch self {
            case .hello: "HELLO"
            case .challenge: "CHALLENGE"
            case .register: "REGISTER"
            case .result: "RESULT"
            }
        }
    }
}

/// HELLO: router → relay, "here is my key, give me a cookie".
public struct Hello: Sendable, Equatable {
    public var routerKey: [UInt8]
    public var nonce: [UInt8]
    /// Bytes 52..<68: `HelloProof` over bytes 0..<52, or 16 zero bytes (a router from before the
    /// proof, docs/protocol.md "HELLO").
    public var proof: [UInt8]

    public init(routerKey: [UInt8], nonce: [UInt8], proof: [UInt8] = HelloProof.none) {
        self.routerKey = routerKey
        self.nonce = nonce
        self.proof = proof
    }

    /// A HELLO that proves its sender knows the relay's public key S (read from a profile), so the
    /// relay spends key agreement on it from a budget a spoofed flood cannot reach.
    public init(routerKey: [UInt8], nonce: [UInt8], relayPublicKey: [UInt8]) {
        self.init(routerKey: routerKey, nonce: nonce)
        proof = HelloProof.compute(relayPublicKey: relayPublicKey, covering: Array(authenticated.prefix(HelloProof.covered)))
    }

    /// Everything the MAC covers (bytes 0..<112), proof and padding included.
    public var authenticated: [UInt8] {
        var bytes = header(.hello)
        bytes += routerKey + nonce + proof
        bytes += [UInt8](repeating: 0, count: Wire.helloSize - Wire.macSize - bytes.count)
        return bytes
    }
}

/// CHALLENGE: relay → router, the cookie for its REGISTER.
public struct Challenge: Sendable, Equatable {
    public var nonce: [UInt8]
    public var cookie: [UInt8]

    public init(nonce: [UInt8], cookie: [UInt8]) {
        self.nonce = nonce
        self.cookie = cookie
    }

    public var authenticated: [UInt8] { header(.challenge) + nonce + cookie }
}

/// REGISTER: router → relay, the claim with the certificate and the relay's cookie.
public struct Register: Sendable, Equatable {
    public var claim: Claim
    public var routerKey: [UInt8]
    public var nonce: [UInt8]
    public var cookie: [UInt8]
    public var certificate: [UInt8]

    public init(claim: Claim, routerKey: [UInt8], nonce: [UInt8], cookie: [UInt8], certificate: [UInt8]) {
        self.claim = claim
        self.routerKey = routerKey
        self.nonce = nonce
        self.cookie = cookie
        self.certificate = certificate
    }

    public var authenticated: [UInt8] {
        var bytes: [UInt8] = [Wire.version, Wire.MessageType.register.rawValue, claim.rawValue, 0]
        bytes += routerKey + nonce + cookie
        bytes += [UInt8(truncatingIfNeeded: certificate.count >> 8), UInt8(truncatingIfNeeded: certificate.count)]
        bytes += certificate
        return bytes
    }

    /// The relay timestamp inside the cookie.
    public var cookieTime: UInt64 { readUInt64(cookie, at: 0) }
}

/// RESULT: relay → router, what the relay did.
public struct RegistrationAnswer: Sendable, Equatable {
    public var status: RegistrationStatus
    /// The site /64 is in this router's AllowedIPs.
    public var routesSitePrefix: Bool
    public var claimedMaster: Bool
    public var nonce: [UInt8]
    public var cookieTime: UInt64
    /// 16 bytes; zero when refused.
    public var tunnelAddress: [UInt8]
    /// 16 bytes of the /64; zero unless `routesSitePrefix`.
    public var sitePrefix: [UInt8]

    public init(status: RegistrationStatus, routesSitePrefix: Bool, claimedMaster: Bool, nonce: [UInt8],
                cookieTime: UInt64, tunnelAddress: [UInt8], sitePrefix: [UInt8]) {
        self.status = status
        self.routesSitePrefix = routesSitePrefix
        self.claimedMaster = claimedMaster
        self.nonce = nonce
        self.cookieTime = cookieTime
        self.tunnelAddress = tunnelAddress
        self.sitePrefix = sitePrefix
    }

    public var authenticated: [UInt8] {
        let flags: UInt8 = (routesSitePrefix ? 1 : 0) | (claimedMaster ? 2 : 0)
        var bytes: [UInt8] = [Wire.version, Wire.MessageType.result.rawValue, status.rawValue, flags]
        bytes += nonce
        bytes += uint64Bytes(cookieTime)
        bytes += tunnelAddress + sitePrefix
        return bytes
    }
}

/// A parsed datagram: the message, the bytes its MAC covers, and the MAC.
public struct ParsedMessage: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case hello(Hello)
        case challenge(Challenge)
        case register(Register)
        case result(RegistrationAnswer)
    }

    public var body: Body
    public var authenticated: ArraySlice<UInt8>
    public var mac: ArraySlice<UInt8>

    public var type: Wire.MessageType {
        switch body {
        case .hello: .hello
        case .challenge: .challenge
        case .register: .register
        case .result: .result
        }
    }
}

/// Why a datagram is not a version-1 message. The relay drops such datagrams silently; the cases
/// exist for tests, logs at debug level and the fuzzer.
public enum ParseError: EdgeError, Equatable, Sendable {
    case empty
    case tooLarge(Int)
    case unknownVersion(UInt8)
    case unknownType(UInt8)
    case wrongLength(Wire.MessageType, expected: Int, actual: Int)
    case nonZeroReserved(Wire.MessageType, offset: Int)
    case unknownClaim(UInt8)
    case unknownStatus(UInt8)
    case unknownFlags(UInt8)
    case certificateLength(Int)

    public var description: String {
        switch self {
        case .empty: "empty datagram"
        case .tooLarge(let n): "datagram of \(n) bytes is larger than \(Wire.maximumSize)"
        case .unknownVersion(let v): "version \(v) is not 1"
        case .unknownType(let t): "message type \(t) is not 1...4"
        case .wrongLength(let type, let expected, let actual): "\(type) must be \(expected) bytes, got \(actual)"
        case .nonZeroReserved(let type, let offset): "\(type) byte \(offset) must be zero"
        case .unknownClaim(let c): "claim \(c) is neither 1 (master) nor 2 (backup)"
        case .unknownStatus(let s): "status \(s) is unknown"
        case .unknownFlags(let f): "flags \(f) has unknown bits"
        case .certificateLength(let n): "certificate length \(n) is outside 1...\(Wire.maximumCertificateSize)"
        }
    }

    public var code: ErrorCode {
        switch self {
        case .empty: "message.empty"
        case .tooLarge: "message.too-large"
        case .unknownVersion: "message.unknown-version"
        case .unknownType: "message.unknown-type"
        case .wrongLength: "message.wrong-length"
        case .nonZeroReserved: "message.reserved-not-zero"
        case .unknownClaim: "message.unknown-claim"
        case .unknownStatus: "message.unknown-status"
        case .unknownFlags: "message.unknown-flags"
        case .certificateLength: "message.certificate-length"
        }
    }
}

public enum MessageCodec {
    /// Appends `mac` to the authenticated bytes: the datagram to send.
    public static func datagram(_ authenticated: [UInt8], mac: [UInt8]) -> [UInt8] { authenticated + mac }

    /// Parses one datagram. Checks structure only (lengths, version, type, reserved bytes, codes);
    /// the caller verifies the MAC. Total: any input gives a value or a `ParseError`.
    public static func parse(_ input: some Collection<UInt8>) throws(ParseError) -> ParsedMessage {
        guard !input.isEmpty else { throw .empty }
        guard input.count <= Wire.maximumSize else { throw .tooLarge(input.count) }
        let bytes = Array(input)
        guard bytes.count >= 2 else { throw .unknownVersion(bytes[0]) }
        guard bytes[0] == Wire.version else { throw .unknownVersion(bytes[0]) }
        guard let type = Wire.MessageType(rawValue: bytes[1]) else { throw .unknownType(bytes[1]) }

        func exact(_ size: Int) throws(ParseError) {
            guard bytes.count == size else { throw .wrongLength(type, expected: size, actual: bytes.count) }
        }
        func zero(_ range: Range<Int>) throws(ParseError) {
            for offset in range where bytes[offset] != 0 { throw .nonZeroReserved(type, offset: offset) }
        }
        func slice(_ start: Int, _ count: Int) -> [UInt8] { Array(bytes[start..<(start + count)]) }
        func split(_ macAt: Int) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
            (bytes[0..<macAt], bytes[macAt..<(macAt + Wire.macSize)])
        }

        switch type {
        case .hello:
            try exact(Wire.helloSize)
            try zero(2..<4)
            try zero(68..<112)
            let (auth, mac) = split(112)
            return ParsedMessage(body: .hello(Hello(routerKey: slice(4, 32), nonce: slice(36, 16), proof: slice(52, 16))),
                                 authenticated: auth, mac: mac)
        case .challenge:
            try exact(Wire.challengeSize)
            try zero(2..<4)
            let (auth, mac) = split(44)
            return ParsedMessage(body: .challenge(Challenge(nonce: slice(4, 16), cookie: slice(20, 24))),
                                 authenticated: auth, mac: mac)
        case .register:
            guard bytes.count >= Wire.registerOverhead + 1 else {
                throw .wrongLength(type, expected: Wire.registerOverhead + 1, actual: bytes.count)
            }
            guard let claim = Claim(rawValue: bytes[2]) else { throw .unknownClaim(bytes[2]) }
            try zero(3..<4)
            let length = Int(bytes[76]) << 8 | Int(bytes[77])
            guard (1...Wire.maximumCertificateSize).contains(length) else { throw .certificateLength(length) }
            try exact(Wire.registerOverhead + length)
            let (auth, mac) = split(78 + length)
            let register = Register(claim: claim, routerKey: slice(4, 32), nonce: slice(36, 16),
                                    cookie: slice(52, 24), certificate: slice(78, length))
            return ParsedMessage(body: .register(register), authenticated: auth, mac: mac)
        case .result:
            try exact(Wire.resultSize)
            guard let status = RegistrationStatus(rawValue: bytes[2]) else { throw .unknownStatus(bytes[2]) }
            guard bytes[3] & ~3 == 0 else { throw .unknownFlags(bytes[3]) }
            let (auth, mac) = split(60)
            let answer = RegistrationAnswer(
                status: status, routesSitePrefix: bytes[3] & 1 != 0, claimedMaster: bytes[3] & 2 != 0,
                nonce: slice(4, 16), cookieTime: readUInt64(bytes, at: 20),
                tunnelAddress: slice(28, 16), sitePrefix: slice(44, 16))
            return ParsedMessage(body: .result(answer), authenticated: auth, mac: mac)
        }
    }
}

func header(_ type: Wire.MessageType) -> [UInt8] { [Wire.version, type.rawValue, 0, 0] }

func uint64Bytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
}

func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    guard bytes.count >= offset + 8 else { return 0 }
    var value: UInt64 = 0
    for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
    return value
}
