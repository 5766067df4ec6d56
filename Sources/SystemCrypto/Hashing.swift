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

/// A hash function in CryptoKit's shape (`SHA256()`, `update(data:)`, `finalize()`,
/// `SHA256.hash(data:)`), so code written for CryptoKit's API builds unchanged.
///
/// A hasher is a value: a copy goes on independently from where the original was.
public protocol HashFunction {
    /// Bytes in a digest.
    static var byteCount: Int { get }
    /// Bytes in a block: HMAC pads its key to this size (RFC 2104 section 2).
    static var blockByteCount: Int { get }
    init()
    mutating func update<D: DataProtocol>(data: D)
    /// The digest of everything hashed so far; the hasher can go on after it.
    func finalize() -> HashDigest<Self>
}

extension HashFunction {
    public static func hash<D: DataProtocol>(data: D) -> HashDigest<Self> {
        var hasher = Self()
        hasher.update(data: data)
        return hasher.finalize()
    }
}

/// A digest, or an HMAC made with the hash function (CryptoKit's `SHA256Digest` and
/// `HashedAuthenticationCode`): its bytes in order.
public struct HashDigest<H: HashFunction>: Sequence {
    var bytes: [UInt8]

    public func makeIterator() -> IndexingIterator<[UInt8]> { bytes.makeIterator() }
    public var underestimatedCount: Int { bytes.count }

    /// Lower-case hex, as sha256sum prints it.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] }, as: UTF8.self)
    }

    /// Zeroes a digest that was a secret (HKDF's intermediate keys) before it is dropped.
    mutating func cleanse() { LibCrypto.cleanse(&bytes) }
}

/// SHA-256 (FIPS 180-4), by libcrypto.
public struct SHA256: HashFunction {
    public static var byteCount: Int { 32 }
    public static var blockByteCount: Int { 64 }
    private var context = HashContext(.sha256)

    public init() {}

    public mutating func update<D: DataProtocol>(data: D) { HashContext.update(&context, with: data) }

    public func finalize() -> HashDigest<SHA256> { HashDigest(bytes: context.finalize()) }
}

/// SHA-512 (FIPS 180-4), by libcrypto.
public struct SHA512: HashFunction {
    public static var byteCount: Int { 64 }
    public static var blockByteCount: Int { 128 }
    private var context = HashContext(.sha512)

    public init() {}

    public mutating func update<D: DataProtocol>(data: D) { HashContext.update(&context, with: data) }

    public func finalize() -> HashDigest<SHA512> { HashDigest(bytes: context.finalize()) }
}
