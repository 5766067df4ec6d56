@testable import EdgeImage
import Foundation
import Testing
import TestSupport

@Suite struct SoftwareBillTests {
    static let status = """
        Package: keepalived
        Status: install ok installed
        Priority: optional
        Architecture: amd64
        Version: 1:2.3.3-1
        Description: Failover and monitoring daemon for LVS clusters
         keepalived is used for monitoring real servers within a Linux
         Version: 9.9 (a continuation line, not a field)

        Package: libssl3t64
        Status: install ok installed
        Architecture: amd64
        Multi-Arch: same
        Source: openssl (3.5.1-1)
        Version: 3.5.1-1

        Package: libssl3t64
        Status: install ok installed
        Architecture: i386
        Source: openssl
        Version: 3.5.1-1

        Package: removed-but-configured
        Status: deinstall ok config-files
        Architecture: amd64
        Version: 1.0-1

        Package: radvd
        Status: install ok installed
        Architecture: amd64
        Source: radvd
        Version: 1:2.20-1+b1

        """

    @Test("dpkg's status file: installed packages only, sorted, Source without its version")
    func installedPackagesFromTheStatusFile() {
        let packages = DebianPackage.installed(fromStatus: Self.status)
        #expect(packages == [
            DebianPackage(name: "keepalived", version: "1:2.3.3-1", architecture: "amd64"),
            DebianPackage(name: "libssl3t64", version: "3.5.1-1", architecture: "amd64", source: "openssl"),
            DebianPackage(name: "libssl3t64", version: "3.5.1-1", architecture: "i386", source: "openssl"),
            DebianPackage(name: "radvd", version: "1:2.20-1+b1", architecture: "amd64"),
        ])
        #expect(DebianPackage.installed(fromStatus: "").isEmpty && DebianPackage.installed(fromStatus: "garbage\n\n\n:\n").isEmpty)
    }

    @Test("package URLs encode the epoch and +, and name the source package and the distribution")
    func packageURLs() {
        let radvd = DebianPackage(name: "radvd", version: "1:2.20-1+b1", architecture: "amd64")
        #expect(radvd.packageURL(distribution: "debian-13") == "pkg:deb/debian/radvd@1%3A2.20-1%2Bb1?arch=amd64&distro=debian-13")
        let ssl = DebianPackage(name: "libssl3t64", version: "3.5.1-1", architecture: "arm64", source: "openssl")
        #expect(ssl.packageURL(distribution: "debian-13") == "pkg:deb/debian/libssl3t64@3.5.1-1?arch=arm64&upstream=openssl&distro=debian-13")
    }

    @Test("the document is SPDX 2.3 that the SPDX project's own validator accepts", .requiresTool("pyspdxtools"))
    func theSPDXValidatorAcceptsTheDocument() throws {
        let scratch = try TemporaryDirectory("edgekit-sbom")
        defer { scratch.remove() }
        let dir = scratch.path
        let data = try SoftwareBill.spdx(name: "edgekit-system-pc-uefi-0123456789abcdef", board: "pc-uefi", distribution: "debian-13",
                                         packages: DebianPackage.installed(fromStatus: Self.status),
                                         agentSHA256: String(repeating: "ab", count: 32), created: 1_735_689_600)
        let path = dir + "/sbom.spdx.json"
        try data.write(to: URL(fileURLWithPath: path))
        let validator = try #require(SystemTools.path("pyspdxtools"))
        let check = try system(validator, ["-i", path])
        #expect(check.status == 0 && check.stderr.isEmpty, "pyspdxtools: \(check.stdout)\(check.stderr)")
        // Reproducible: the same inputs give the same bytes.
        let again = try SoftwareBill.spdx(name: "edgekit-system-pc-uefi-0123456789abcdef", board: "pc-uefi", distribution: "debian-13",
                                          packages: DebianPackage.installed(fromStatus: Self.status),
                                          agentSHA256: String(repeating: "ab", count: 32), created: 1_735_689_600)
        #expect(again == data)
        // The validator is not a rubber stamp: a document without its namespace is refused.
        var broken = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        broken["documentNamespace"] = nil
        try JSONSerialization.data(withJSONObject: broken).write(to: URL(fileURLWithPath: path))
        let refused = try system(validator, ["-i", path])
        #expect(refused.status == 1 && refused.stderr.contains("document_namespace"), "\(refused.stdout)\(refused.stderr)")
    }
}
