#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import SystemCrypto

/// A router's SSH host key: Ed25519 from HKDF(router secret, "edgekit/v1/router-ssh-host")
/// (docs/keys.md), so it is the router's, not the device's: a stick moved to the spare brings the
/// same host key, and `edgekit keys known-hosts` computes it from the master secret alone.
public struct SSHHostKey: Sendable, Equatable {
    /// The Ed25519 seed (RFC 8032 section 5.1.5's private key).
    public let seed: Data

    public init(seed: Data) {
        precondition(seed.count == 32, "an Ed25519 seed is 32 bytes")
        self.seed = seed
    }

    var signingKey: Curve25519.Signing.PrivateKey {
        // Any 32 bytes are an Ed25519 seed.
        try! Curve25519.Signing.PrivateKey(rawRepresentation: seed)
    }

    /// The 32-byte public key.
    public var publicKey: Data { signingKey.publicKey.rawRepresentation }

    /// The public key blob (RFC 8709 section 4): string "ssh-ed25519", string key.
    public var publicKeyBlob: Data { SSHWire.string("ssh-ed25519") + SSHWire.string(publicKey) }

    /// `ssh-ed25519 BASE64`, as in a `.pub` file or a known_hosts line.
    public var publicKeyLine: String { "ssh-ed25519 " + publicKeyBlob.base64EncodedString() }

    /// `SHA256:…`, as `ssh-keygen -l` and ssh's host key prompt print it.
    public var fingerprint: String {
        "SHA256:" + Data(SHA256.hash(data: publicKeyBlob)).base64EncodedString().replacing("=", with: "")
    }

    /// The private key in OpenSSH's own format ("openssh-key-v1", unencrypted; OpenSSH's
    /// PROTOCOL.key), what `ssh-keygen -t ed25519` writes and sshd's `HostKey` reads. The bytes
    /// are a function of the key and comment alone (the check integers are taken from the public
    /// key), so applying the same stick twice writes the same file.
    public func openSSHPrivateKey(comment: String) -> String {
        let check = publicKey.prefix(4)
        var section = check + check
        section += SSHWire.string("ssh-ed25519") + SSHWire.string(publicKey)
        section += SSHWire.string(seed + publicKey)
        section += SSHWire.string(Data(comment.utf8))
        // Pad to the cipher block size ("none": 8) with 1, 2, 3, …
        var pad: UInt8 = 1
        while section.count % 8 != 0 {
            section.append(pad)
            pad += 1
        }
        var body = Data("openssh-key-v1".utf8) + Data([0])
        body += SSHWire.string("none") + SSHWire.string("none") + SSHWire.string(Data())
        body += SSHWire.uint32(1) + SSHWire.string(publicKeyBlob) + SSHWire.string(section)
        let base64 = body.base64EncodedString()
        var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 70, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END OPENSSH PRIVATE KEY-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A known_hosts(5) line for `address` (port 22 needs no brackets), with `comment` after the key.
    public func knownHostsLine(address: String, comment: String) -> String {
        "\(address) \(publicKeyLine) \(comment)"
    }
}

extension RouterSecret {
    /// The router's SSH host key, derived on the device like its WireGuard key.
    public var sshHostKey: SSHHostKey {
        SSHHostKey(seed: KeyDerivation.expand(bytes, label: "router-ssh-host", fields: []))
    }
}

/// SSH wire encodings (RFC 4251 section 5).
enum SSHWire {
    static func uint32(_ value: Int) -> Data {
        Data([UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
              UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
    }

    static func string(_ bytes: Data) -> Data { uint32(bytes.count) + bytes }
    static func string(_ text: String) -> Data { string(Data(text.utf8)) }
}
