import EdgeErrors
import EdgeModel
import Foundation
import SystemCrypto

/// Everything that shapes the Debian base rootfs. Its `cacheKey` is a SHA-256 over all of it, so a
/// changed input rebuilds the base and an unchanged one never does (docs/image.md, "Cache").
public struct BaseRecipe: Sendable, Equatable {
    /// Debian 13: Debian 12 (bookworm) left regular security support in June 2026 (docs/image.md,
    /// "Debian suite"). The suite is in `cacheKey`, so a base of another suite is never reused.
    public var suite = "trixie"

    /// The suite as package URLs name the distribution (`distro=debian-13`).
    public var distribution: String {
        switch suite {
        case "bookworm": "debian-12"
        case "trixie": "debian-13"
        case "forky": "debian-14"
        default: "debian-\(suite)"
        }
    }
    /// The board the base is for: its architecture and boot packages are part of the recipe.
    public var board: Board
    public var architecture: String
    /// The suite's main archive, its updates and its security archive.
    public var mirrors: [String]
    /// minbase + the system, the board's kernel and boot packages, and what an edge router runs. No
    /// docs, man pages, locales or Perl modules (see `dpkgOptions`), and only the board's kernel
    /// modules (`Board.kernelModules`). systemd-networkd is still part of `systemd`
    /// in trixie (its own package only after it). The order is part of the cache key.
    public var packages: [String]
    static let systemPackages = ["systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus", "kmod"]
    static let routerPackages = [
        "wireguard-tools", "radvd", "keepalived", "nftables", "iproute2", "iputils-ping",
        "e2fsprogs", "mtools", "procps",
        // Makes the data partition at first boot, grown to the end of the card (overlays/etc/repart.d).
        "systemd-repart",
        // Metrics: scraped through the tunnel by Prometheus on the relay (docs/fleet.md).
        "prometheus-node-exporter",
        // Operator SSH (docs/fleet.md): started only with an applied profile that has operators.
        "openssh-server",
        // libcrypto, which edgekit-agent links dynamically (SystemCrypto) so that Debian's
        // security updates reach it; named, not left to come with openssh-server.
        "libssl3t64",
    ]
    public var dpkgOptions = [
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/locale/*",
        "path-include=/usr/share/locale/locale.alias",
        "path-exclude=/usr/share/lintian/*",
        // Perl's own modules: keepalived links libnetsnmp, which links libperl for net-snmp's
        // embedded Perl, so libperl5.40 and perl-modules-5.40 come along (~49 MB). keepalived runs
        // without SNMP and nothing else runs Perl beyond perl-base (debconf, dpkg's scripts).
        "path-exclude=/usr/share/perl/5.*",
        "path-exclude=/usr/lib/*/perl/5.*",
    ]
    /// Every file time in the image, and what mmdebstrap stamps (reproducible builds): see
    /// `imageFileTime(environment:)`.
    public var sourceDateEpoch: Int
    /// Bumped when the way edgekit packs the base changes. 2: packed after mmdebstrap's cleanup
    /// (empty /etc/machine-id, no apt lists, caches or logs), straight from its output folder.
    public static let packVersion = 2

    public init(sourceDateEpoch: Int, board: Board = .default) {
        self.sourceDateEpoch = sourceDateEpoch
        self.board = board
        self.architecture = board.architecture
        self.packages = BaseRecipe.systemPackages + board.packages + BaseRecipe.routerPackages
        self.mirrors = BaseRecipe.debianMirrors(suite: suite, components: board.components)
    }

    /// sources.list lines for `suite` on Debian's own mirrors: the suite, `SUITE-updates` and
    /// `SUITE-security` (the security archive's layout since bullseye), each with `components`.
    public static func debianMirrors(suite: String, components: [String] = ["main"]) -> [String] {
        let listed = components.joined(separator: " ")
        return [
            "deb http://deb.debian.org/debian \(suite) \(listed)",
            "deb http://deb.debian.org/debian \(suite)-updates \(listed)",
            "deb http://deb.debian.org/debian-security \(suite)-security \(listed)",
        ]
    }

    /// The mmdebstrap options that depend on the recipe (hooks are added by the builder).
    public var mmdebstrapOptions: [String] {
        ["--variant=minbase", "--arch=\(architecture)", "--include=\(packages.joined(separator: ","))"]
            + (dpkgOptions + KernelModuleTrim.dpkgOptions(board.kernelModules)).map { "--dpkgopt=\($0)" }
            + KernelModuleTrim.checkHook(board.kernelModules) + bootloaderHooks
    }

    /// Boot loader images made inside the finished tree with the tree's own tools (so the build
    /// host needs no boot loader packages): for GRUB on PCs, core.img (`GrubPC.makeCoreImage`).
    var bootloaderHooks: [String] {
        board.bootloaders.contains(.grubPC) ? ["--customize-hook=" + GrubPC.makeCoreImage] : []
    }

    /// 2025-01-01T00:00:00Z, the latest file time an image carries.
    public static let latestFileTime = 1_735_689_600

    /// The file time of everything in an image: `SOURCE_DATE_EPOCH` clamped to `latestFileTime`
    /// (reproducible-builds.org: no time later than SOURCE_DATE_EPOCH). Clamping keeps the base's
    /// cache key, and the images, the same from commit to commit when CI sets SOURCE_DATE_EPOCH to
    /// the commit time for growing profile serials; a time only shapes the image when it is older.
    public static func imageFileTime(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        guard let text = environment["SOURCE_DATE_EPOCH"] else { return latestFileTime }
        guard let epoch = Int(text), epoch >= 0 else {
            throw ImageError("image.bad-setting", "SOURCE_DATE_EPOCH \"\(text)\" is not a whole number of seconds since 1970; set it to e.g. $(git log -1 --format=%ct) or unset it")
        }
        return min(epoch, latestFileTime)
    }

    public var cacheKey: String {
        var hasher = SHA256()
        let fields = ["pack \(BaseRecipe.packVersion)", suite, architecture, "epoch \(sourceDateEpoch)"]
            + mirrors + packages + mmdebstrapOptions
        for field in fields {
            hasher.update(data: Data(field.utf8))
            hasher.update(data: Data([0]))
        }
        return String(hasher.finalize().hex.prefix(16))
    }
}
