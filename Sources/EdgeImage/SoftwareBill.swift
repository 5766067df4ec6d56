import CArchive
import EdgeModel
import Foundation

/// One Debian package as dpkg records it installed (`/var/lib/dpkg/status`).
public struct DebianPackage: Sendable, Equatable {
    public var name: String
    public var version: String
    public var architecture: String
    /// The source package, when it differs from the binary package's name (`Source:`, without a
    /// version in parentheses).
    public var source: String?

    public init(name: String, version: String, architecture: String, source: String? = nil) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.source = source
    }

    /// The package URL (purl spec, type `deb`) that vulnerability databases and scanners match on,
    /// e.g. `pkg:deb/debian/libssl3t64@3.5.1-1?arch=amd64&distro=debian-13`.
    public func packageURL(distribution: String) -> String {
        var url = "pkg:deb/debian/\(DebianPackage.percentEncoded(name))@\(DebianPackage.percentEncoded(version))?arch=\(architecture)"
        if let source { url += "&upstream=\(DebianPackage.percentEncoded(source))" }
        return url + "&distro=\(distribution)"
    }

    /// purl's encoding: letters, digits and `.-_~` stay, everything else (the epoch's `:`, `+`) is %XX.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.append(Character(Unicode.Scalar(byte)))
            default:
                result += String(format: "%%%02X", byte)
            }
        }
        return result
    }

    /// The packages `status` (the text of dpkg's status file) lists as installed, sorted by name and
    /// architecture. Stanzas in any other state (removed, config files only, half installed) are left out.
    public static func installed(fromStatus status: String) -> [DebianPackage] {
        var packages: [DebianPackage] = []
        for stanza in status.components(separatedBy: "\n\n") {
            var fields: [String: String] = [:]
            for line in stanza.split(separator: "\n") where !line.hasPrefix(" ") && !line.hasPrefix("\t") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard let name = fields["Package"], let version = fields["Version"], let architecture = fields["Architecture"],
                  fields["Status"]?.hasSuffix(" installed") == true else { continue }
            let source = fields["Source"].map { String($0.prefix { $0 != " " }) }
            packages.append(DebianPackage(name: name, version: version, architecture: architecture,
                                          source: source == name ? nil : source))
        }
        return packages.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
    }
}

/// The software bill of materials of a system level: every Debian package the image carries and the
/// edgekit agent, as an SPDX 2.3 JSON document (spdx.github.io/spdx-spec/v2.3), so an operator can
/// see which routers run a vulnerable version (docs/image.md, "Software bill of materials").
public enum SoftwareBill {
    public static let fileName = "sbom.spdx.json"

    /// The document. `name` names the system (board and system key), which also makes the
    /// document's namespace unique; `created` is the image file time, so the bytes are reproducible.
    public static func spdx(name: String, board: String, distribution: String, packages: [DebianPackage],
                            agentSHA256: String, created: Int) throws -> Data {
        let image = "SPDXRef-image"
        var entries: [[String: Any]] = [[
            "SPDXID": image,
            "name": name,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": "edgekit appliance system for board \(board)",
        ], [
            "SPDXID": "SPDXRef-edgekit-agent",
            "name": "edgekit-agent",
            "primaryPackagePurpose": "APPLICATION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "checksums": [["algorithm": "SHA256", "checksumValue": agentSHA256]],
            "comment": "/usr/local/bin/edgekit-agent, statically linked Swift runtime; libcrypto from libssl3t64",
        ]]
        var relationships: [[String: Any]] = [
            ["spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image],
            ["spdxElementId": image, "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-edgekit-agent"],
        ]
        for package in packages {
            let id = "SPDXRef-deb-" + identifierSafe("\(package.name)-\(package.architecture)")
            entries.append([
                "SPDXID": id,
                "name": package.name,
                "versionInfo": package.version,
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "externalRefs": [[
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": package.packageURL(distribution: distribution),
                ]],
            ])
            relationships.append(["spdxElementId": image, "relationshipType": "CONTAINS", "relatedSpdxElement": id])
        }
        let document: [String: Any] = [
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": name,
            "documentNamespace": "https://edgekit.invalid/spdx/\(identifierSafe(name))",
            "creationInfo": [
                "created": DocumentCoding.timestamp(Date(timeIntervalSince1970: TimeInterval(created))),
                "creators": ["Tool: edgekit"],
            ],
            "packages": entries,
            "relationships": relationships,
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
    }

    /// SPDX identifiers hold letters, digits, `.` and `-` only.
    static func identifierSafe(_ text: String) -> String {
        String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "-" })
    }

    /// dpkg's status file from a rootfs tarball (`rootfs.tar.zst` of a system level), read with
    /// libarchive up to that member.
    public static func dpkgStatus(inTarball path: String) throws -> String {
        guard let archive = archive_read_new() else { throw ImageError("cannot read \(path): out of memory") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_zstd(archive)
        archive_read_support_format_tar(archive)
        guard archive_read_open_filename(archive, path, 1 << 16) == edgekit_archive_ok() else {
            throw ImageError("cannot read \(path): \(String(cString: archive_error_string(archive)))")
        }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == edgekit_archive_eof() { break }
            guard status == edgekit_archive_ok() || status == edgekit_archive_warn(), let entry else {
                throw ImageError("cannot read \(path): \(String(cString: archive_error_string(archive)))")
            }
            let member = String(cString: archive_entry_pathname(entry))
            guard member == "var/lib/dpkg/status" || member == "./var/lib/dpkg/status" else { continue }
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = archive_read_data(archive, &buffer, buffer.count)
                guard count >= 0 else { throw ImageError("cannot read \(path): \(String(cString: archive_error_string(archive)))") }
                if count == 0 { break }
                data.append(contentsOf: buffer[0..<count])
            }
            return String(decoding: data, as: UTF8.self)
        }
        throw ImageError("\(path) has no var/lib/dpkg/status: not a Debian root filesystem")
    }
}
