import EdgeImage
import Foundation
import Testing
import TestSupport

/// The Debian archive's state, which a cached base is checked against (docs/image.md, "Security updates").
@Suite struct ArchiveStateTests {
    static let inRelease = """
        -----BEGIN PGP SIGNED MESSAGE-----
        Hash: SHA512

        Origin: Debian
        Label: Debian-Security
        Suite: stable-security
        Codename: trixie-security
        Date: Sat, 05 Dec 2026 21:04:17 UTC
        Valid-Until: Sat, 12 Dec 2026 21:04:17 UTC
        SHA256:
         0123 123 main/binary-amd64/Packages
        -----BEGIN PGP SIGNATURE-----

        """

    @Test func theDateOfEachSuiteIsItsState() throws {
        #expect(ArchiveState.date(inRelease: Data(Self.inRelease.utf8)) == "Sat, 05 Dec 2026 21:04:17 UTC")
        #expect(ArchiveState.date(inRelease: Data("SHA256:\n Date: not this\n".utf8)) == nil, "a Date: in the file lists is not the field")
        #expect(ArchiveState.date(inRelease: Data("<html>not found</html>".utf8)) == nil)
        var asked: [String] = []
        let state = try ArchiveState.lookUp(mirrors: BaseRecipe.debianMirrors(suite: "trixie")) { url in
            asked.append(url)
            return Data(Self.inRelease.replacingOccurrences(of: "21:04:17", with: "0\(asked.count):00:00").utf8)
        }
        #expect(asked == ["http://deb.debian.org/debian/dists/trixie/InRelease", "http://deb.debian.org/debian/dists/trixie-updates/InRelease",
                          "http://deb.debian.org/debian-security/dists/trixie-security/InRelease"])
        #expect(state == "trixie=Sat, 05 Dec 2026 01:00:00 UTC; trixie-updates=Sat, 05 Dec 2026 02:00:00 UTC; trixie-security=Sat, 05 Dec 2026 03:00:00 UTC")
        #expect(throws: ImageError.self) { try ArchiveState.lookUp(mirrors: ["deb http://x/debian trixie main"]) { _ in Data("nothing".utf8) } }
        #expect(throws: ImageError.self) { try ArchiveState.lookUp(mirrors: ["http://x/debian trixie"]) { _ in Data() } }
    }

    /// Debian's own archive, read with apt's downloader as a build does.
    @Test(.requiresTool("apt-get")) func debiansArchiveAnswersWithADatePerSuite() throws {
        let state = try ArchiveState.lookUp(mirrors: BaseRecipe.debianMirrors(suite: "trixie"))
        let parts = state.components(separatedBy: "; ")
        #expect(parts.map { $0.components(separatedBy: "=")[0] } == ["trixie", "trixie-updates", "trixie-security"], "\(state)")
        #expect(parts.allSatisfy { $0.hasSuffix(" UTC") }, "\(state)")
        let missing = #expect(throws: ImageError.self) {
            try ArchiveState.lookUp(mirrors: ["deb http://deb.debian.org/debian no-such-suite main"])
        }
        #expect(missing?.message.hasPrefix("cannot read http://deb.debian.org/debian/dists/no-such-suite/InRelease: ") == true, "\(String(describing: missing))")
    }
}
