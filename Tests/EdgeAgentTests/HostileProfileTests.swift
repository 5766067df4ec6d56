import EdgeCrypto
import EdgeModel
import Foundation
import Testing

/// A profile signed with the real operator key but carrying values `plan check` would refuse: the
/// agent must refuse it with one line naming the field and change nothing under --root, even on a
/// device that already runs a generation (defence in depth against a leaked key or a builder bug).
@Suite struct HostileProfileTests {
    static let prefix = BadProfileCorpus.siteA.prefix

    /// A signed, sealed profile (serial 1001) with one edit, and the field and problem the agent names.
    static let cases: [String: (edit: @Sendable (inout ProfileDocument) -> Void, line: String)] = [
        "peer router LAN address is loopback": ({ $0.site.routers[0].lanAddress = IPv6Address("::1")! },
            "site.routers[0].lan_address ::1 is not inside the site /64 \(prefix)"),
        "vip outside the site /64": ({ $0.site.vip = IPv6Address("fd5e:d9e1:7c2a:99::1")! },
            "site.vip fd5e:d9e1:7c2a:99::1 is not inside the site /64 \(prefix)"),
        "tunnel address inside the plan /48": ({ $0.router.tunnelAddress = IPv6Address("fd5e:d9e1:7c2a:1::42")!; $0.site.routers[1].tunnelAddress = $0.router.tunnelAddress },
            "router.tunnel_address fd5e:d9e1:7c2a:1::42 is outside tunnel fd3b:4f10:a8c6::/64"),
        "lan interface with a newline": ({ $0.router.lan = .name("lan0\nAddress=::1/0"); $0.site.routers[1].lan = $0.router.lan },
            #"router.lan "lan0\nAddress=::1/0" is neither "auto", an interface name (1–15 characters, no '/', ':' or spaces) nor a MAC address"#),
    ]

    @Test(arguments: cases.keys.sorted())
    func runningDeviceRefusesHostileProfile(_ name: String) throws {
        let (edit, line) = try #require(Self.cases[name])
        try Scratch.with { scratch in
            let root = try scratch.makeRoot()
            let first = try scratch.apply(root, try scratch.stickFolder("good", serial: 1000))
            try #require(first.status == 0, "\(first)")

            var document = try BadProfileCorpus.keys.profile(
                plan: BadProfileCorpus.plan, site: BadProfileCorpus.siteA, router: BadProfileCorpus.router,
                serial: 1001, issuedAt: Date(timeIntervalSince1970: 1001))
            edit(&document)
            let stick = scratch.path("hostile")
            try FileManager.default.createDirectory(atPath: stick, withIntermediateDirectories: true)
            try BadProfileCorpus.sealDocument(document).write(to: URL(fileURLWithPath: stick + "/profile.age"))

            let before = treeHash(root)
            let result = try scratch.apply(root, stick)
            #expect(result.status == 1, "\(result)")
            #expect(result.stderrLines == ["\(stick)/profile.age: profile document is malformed: \(line)"], "\(result)")
            #expect(result.stdout.isEmpty, "\(result)")
            #expect(treeHash(root) == before, "the tree under --root changed")
        }
    }
}
