import EdgeErrors

// The four messages of docs/protocol.md as values, with an encoder and a parser that never traps.
//
// This file depends on the standard library, EdgeErrors (itself standard library only) and, to
// build a HELLO, `HelloProof`, so fuzz/run.sh can compile it with a stand-in for that one and
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
    /// A REGISTER with a report (flag bit 0) adds 2 length bytes and the report itself.
    public static let reportLengthSize = 2

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
    /// What the router says about itself (generation, agent version, health); nil in a REGISTER
    /// from an agent before the report (flags bit 0 clear, docs/protocol.md "REGISTER").
    public var report: RouterReport?

    public init(claim: Claim, routerKey: [UInt8], nonce: [UInt8], cookie: [UInt8], certificate: [UInt8],
                report: RouterReport? = nil) {
        self.claim = claim
        self.routerKey = routerKey
        self.nonce = nonce
        self.cookie = cookie
        self.certificate = certificate
        self.report = report
    }

    /// Byte 3: bit 0 = a report follows the certificate.
    public var flags: UInt8 { report == nil ? 0 : RouterReport.flag }

    public var authenticated: [UInt8] {
        var bytes: [UInt8] = [Wire.version, Wire.MessageType.register.rawValue, claim.rawValue, flags]
        bytes += routerKey + nonce + cookie
        bytes += uint16Bytes(certificate.count)
        bytes += certificate
        if let report {
            let encoded = report.encoded
            bytes += uint16Bytes(encoded.count)
            bytes += encoded
        }
        return bytes
    }

    /// The relay timestamp inside the cookie.
    public var cookieTime: UInt64 { readUInt64(cookie, at: 0) }
}

/// What a router reports about itself in a REGISTER (docs/protocol.md, "Report"): the relay cannot
/// know these, and `edgekit-relay status` shows them per router (the fleet view, docs/fleet.md).
///
/// Values are made wire-safe when the report is made (text cut to its limit on a character
/// boundary, control characters replaced by spaces), so every report encodes to bytes the parser
/// accepts, and a parsed report compares equal to the one sent.
public struct RouterReport: Sendable, Equatable {
    /// The agent's health verdict (`HealthReport`), or unknown when it has none yet.
    public enum Health: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case unknown = 0, healthy = 1, unhealthy = 2

        public var description: String {
            switch self {
            case .unknown: "unknown"
            case .healthy: "healthy"
            case .unhealthy: "unhealthy"
            }
        }
    }

    /// REGISTER byte 3, bit 0.
    public static let flag: UInt8 = 1
    /// Generation (8) + health (1) + two length bytes.
    public static let fixedSize = 11
    public static let maximumVersionSize = 32
    public static let maximumReasonSize = 200
    /// The tunnel MTU after the reason, when the router says it: 2 bytes.
    public static let tunnelMTUSize = 2
    /// The system part last, when the router says it: version (8), update state (1), update version (8).
    public static let systemSize = 17
    public static let maximumSize = fixedSize + maximumVersionSize + maximumReasonSize + tunnelMTUSize + systemSize

    /// The router's system (docs/updates.md) and its last update install: which version it runs, and
    /// whether the last bundle it installed is on trial, blessed or failed its trial boot.
    public struct System: Sendable, Equatable {
        public enum Update: UInt8, Sendable, CaseIterable, CustomStringConvertible {
            case none = 0, trial = 1, blessed = 2, failed = 3

            public var description: String {
                switch self {
                case .none: "none"
                case .trial: "trial"
                case .blessed: "blessed"
                case .failed: "failed"
                }
            }
        }

        /// The running system's version (`--system-version` of its image or bundle); 0 for an image
        /// built without one.
        public var version: UInt64
        public var update: Update
        /// The version the last install wrote; 0 exactly when `update` is `none`.
        public var updateVersion: UInt64

        /// `updateVersion` is taken as 0 when there was no install.
        public init(version: UInt64, update: Update, updateVersion: UInt64) {
            self.version = version
            self.update = update
            self.updateVersion = update == .none ? 0 : updateVersion
        }

        var encoded: [UInt8] { uint64Bytes(version) + [update.rawValue] + uint64Bytes(updateVersion) }

        static func parse(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> System {
            let bytes = Array(bytes)
            guard let update = Update(rawValue: bytes[8]) else { throw .report("update state \(bytes[8]) is not 0, 1, 2 or 3") }
            let updateVersion = readUInt64(bytes, at: 9)
            guard (update == .none) == (updateVersion == 0) else {
                throw .report(update == .none ? "update version \(updateVersion) without an update" : "update \(update) of version 0")
            }
            return System(version: readUInt64(bytes, at: 0), update: update, updateVersion: updateVersion)
        }
    }

    /// The applied generation's number (0: none applied).
    public private(set) var generation: UInt64
    public private(set) var health: Health
    /// The agent's version: printable ASCII without spaces, at most 32 bytes.
    public private(set) var agentVersion: String
    /// One line of UTF-8, at most 200 bytes.
    public private(set) var healthReason: String
    /// The MTU of the router's tunnel to this relay now (the agent sets it from the uplink), 1280 or
    /// more; nil when the router does not say (agents before it). The relay routes the site's /64
    /// with it (docs/relay.md, "Site MTU").
    public private(set) var tunnelMTU: Int?
    /// The running system and its last update; nil when the router does not say (agents before it).
    public var system: System?

    public init(generation: UInt64, health: Health, agentVersion: String, healthReason: String, tunnelMTU: Int? = nil,
                system: System? = nil) {
        self.generation = generation
        self.health = health
        self.system = system
        self.tunnelMTU = tunnelMTU.map { min(max($0, RouterReport.minimumTunnelMTU), Int(UInt16.max)) }
        let version = String(String.UnicodeScalarView(agentVersion.unicodeScalars.map { (0x21...0x7e).contains($0.value) ? $0 : "_" }))
        self.agentVersion = RouterReport.prefix(version, bytes: RouterReport.maximumVersionSize)
        let line = String(String.UnicodeScalarView(healthReason.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f || (0x80..<0xa0).contains($0.value) ? " " : $0 }))
        self.healthReason = RouterReport.prefix(line, bytes: RouterReport.maximumReasonSize)
    }

    /// This report with its reason cut so the encoded report takes at most `size` bytes; nil when
    /// even an empty reason does not fit.
    public func fitting(_ size: Int) -> RouterReport? {
        let room = size - RouterReport.fixedSize - agentVersion.utf8.count - (tunnelMTU == nil ? 0 : RouterReport.tunnelMTUSize)
            - (system == nil ? 0 : RouterReport.systemSize)
        guard room >= 0 else { return nil }
        var copy = self
        copy.healthReason = RouterReport.prefix(healthReason, bytes: room)
        return copy
    }

    /// The report's bytes (docs/protocol.md, "Report").
    public var encoded: [UInt8] {
        var bytes = uint64Bytes(generation)
        bytes.append(health.rawValue)
        bytes.append(UInt8(truncatingIfNeeded: agentVersion.utf8.count))
        bytes += Array(agentVersion.utf8)
        bytes.append(UInt8(truncatingIfNeeded: healthReason.utf8.count))
        bytes += Array(healthReason.utf8)
        if let tunnelMTU { bytes += [UInt8(truncatingIfNeeded: tunnelMTU >> 8), UInt8(truncatingIfNeeded: tunnelMTU)] }
        if let system { bytes += system.encoded }
        return bytes
    }

    /// IPv6's minimum link MTU: the smallest tunnel MTU a report may carry.
    public static let minimumTunnelMTU = 1280

    /// Parses a report's bytes; any input gives a report or a `ParseError`, never a trap.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(ParseError) -> RouterReport {
        let bytes = Array(bytes)
        guard bytes.count >= fixedSize else { throw .report("\(bytes.count) bytes is shorter than \(fixedSize)") }
        guard bytes.count <= maximumSize else { throw .report("\(bytes.count) bytes is longer than \(maximumSize)") }
        guard let health = Health(rawValue: bytes[8]) else { throw .report("health \(bytes[8]) is not 0, 1 or 2") }
        let versionLength = Int(bytes[9])
        guard versionLength <= maximumVersionSize else { throw .report("agent version of \(versionLength) bytes is longer than \(maximumVersionSize)") }
        guard bytes.count >= fixedSize + versionLength else { throw .report("agent version runs past the report") }
        let version = bytes[10..<(10 + versionLength)]
        guard version.allSatisfy({ (0x21...0x7e).contains($0) }) else { throw .report("agent version is not printable ASCII") }
        let reasonLength = Int(bytes[10 + versionLength])
        guard reasonLength <= maximumReasonSize else { throw .report("health reason of \(reasonLength) bytes is longer than \(maximumReasonSize)") }
        let fields = fixedSize + versionLength + reasonLength
        // What follows the reason says which optional parts there are: none, the tunnel MTU, the
        // system, or both (in that order). The four lengths differ, so the count alone tells.
        let optional = bytes.count - fields
        guard [0, tunnelMTUSize, systemSize, tunnelMTUSize + systemSize].contains(optional) else {
            throw .report("\(bytes.count) bytes, but its fields take \(fields) (\(fields + tunnelMTUSize) with the tunnel MTU, "
                          + "\(fields + systemSize) with the system, \(fields + tunnelMTUSize + systemSize) with both)")
        }
        var tunnelMTU: Int?
        if optional == tunnelMTUSize || optional == tunnelMTUSize + systemSize {
            let mtu = Int(bytes[fields]) << 8 | Int(bytes[fields + 1])
            guard mtu >= minimumTunnelMTU else { throw .report("tunnel MTU \(mtu) is below \(minimumTunnelMTU)") }
            tunnelMTU = mtu
        }
        let system = optional >= systemSize ? try System.parse(bytes[(bytes.count - systemSize)...]) : nil
        let reasonBytes = bytes[(11 + versionLength)..<fields]
        guard let reason = String(validating: reasonBytes, as: UTF8.self) else { throw .report("health reason is not UTF-8") }
        guard !reason.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || (0x80..<0xa0).contains($0.value) }) else {
            throw .report("health reason holds a control character")
        }
        var report = RouterReport(generation: 0, health: health, agentVersion: "", healthReason: "")
        report.generation = readUInt64(bytes, at: 0)
        report.agentVersion = String(decoding: version, as: UTF8.self)
        report.healthReason = reason
        report.tunnelMTU = tunnelMTU
        report.system = system
        return report
    }

    /// The longest prefix of `text` whose UTF-8 takes at most `bytes` bytes (never half a character).
    static func prefix(_ text: String, bytes: Int) -> String {
        var result = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            guard used + size <= bytes else { break }
            result.append(character)
            used += size
        }
        return result
    }
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

    /// The router key a HELLO or REGISTER names (R); nil for the relay's messages.
    public var routerKey: [UInt8]? {
        switch body {
        case .hello(let hello): hello.routerKey
        case .register(let register): register.routerKey
        case .challenge, .result: nil
        }
    }

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
    case reportLength(Int)
    case report(String)

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
        case .reportLength(let n): "report length \(n) is outside \(RouterReport.fixedSize)...\(RouterReport.maximumSize) or runs past the datagram"
        case .report(let why): "report: \(why)"
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
        case .reportLength: "message.report-length"
        case .report: "message.bad-report"
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
            guard bytes[3] & ~RouterReport.flag == 0 else { throw .unknownFlags(bytes[3]) }
            let length = Int(bytes[76]) << 8 | Int(bytes[77])
            guard (1...Wire.maximumCertificateSize).contains(length) else { throw .certificateLength(length) }
            var report: RouterReport?
            var macAt = 78 + length
            if bytes[3] & RouterReport.flag != 0 {
                // Certificate, 2 length bytes, the report, the MAC: all inside the datagram.
                guard bytes.count >= macAt + Wire.reportLengthSize + RouterReport.fixedSize + Wire.macSize else {
                    throw .wrongLength(type, expected: macAt + Wire.reportLengthSize + RouterReport.fixedSize + Wire.macSize, actual: bytes.count)
                }
                let reportLength = Int(bytes[macAt]) << 8 | Int(bytes[macAt + 1])
                guard (RouterReport.fixedSize...RouterReport.maximumSize).contains(reportLength),
                      macAt + Wire.reportLengthSize + reportLength + Wire.macSize <= Wire.maximumSize else {
                    throw .reportLength(reportLength)
                }
                try exact(macAt + Wire.reportLengthSize + reportLength + Wire.macSize)
                let start = macAt + Wire.reportLengthSize
                report = try RouterReport.parse(bytes[start..<(start + reportLength)])
                macAt = start + reportLength
            } else {
                try exact(Wire.registerOverhead + length)
            }
            let (auth, mac) = split(macAt)
            let register = Register(claim: claim, routerKey: slice(4, 32), nonce: slice(36, 16),
                                    cookie: slice(52, 24), certificate: slice(78, length), report: report)
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

func uint16Bytes(_ value: Int) -> [UInt8] {
    [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
}

func uint64Bytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
}

func readUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    guard bytes.count >= offset + 8 else { return 0 }
    var value: UInt64 = 0
    for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
    return value
}
