import EdgeCrypto
import EdgeModel
import Foundation
import PlanYAML
import Testing

/// The fail-closed corpus: 40 bad profiles and sticks, each with the exact line `edgekit profile
/// inspect` prints. Shared by CLITests and EdgeAgentTests (a symlink there), so the device agent is held
/// to the same inputs. Needs `packageRoot` and `runSystem` from the including target.
enum BadProfileCorpus {
    static let plan = try! PlanLoader.load(directory: packageRoot.appendingPathComponent("profiles/example").path)
    static let master = try! MasterSecret(bytes: Data(0..<32))
    static let keys = PlanKeys(master: master, planName: "example")
    static let siteA = plan.site(named: "site-a")!
    static let siteB = plan.site(named: "site-b")!
    static let router = siteA.router(slot: 2)!
    static let serial: UInt64 = 1000

    static func good() -> ProfileDocument {
        try! keys.profile(plan: plan, site: siteA, router: router, serial: serial, issuedAt: Date(timeIntervalSince1970: 1000))
    }

    static func seal(_ body: Data, signer: Signify.SecretKey = keys.operatorKey, to site: String = "site-a") -> Data {
        let signed = Signify.signEmbedded(body, with: signer, comment: "test")
        return try! Age.encrypt(signed, to: [keys.siteIdentity(site: site).recipient])
    }

    static func sealDocument(_ document: ProfileDocument, signer: Signify.SecretKey = keys.operatorKey) -> Data {
        seal(try! DocumentCoding.encode(document), signer: signer)
    }

    static func flip(_ data: Data, at offset: Int) -> Data {
        var copy = data
        copy[offset] ^= 0x01
        return copy
    }

    static let goodSealed = sealDocument(good())
    static let chunkFailure = "chunk 0 failed authentication (corrupted, reordered or truncated payload)"
    static let otherOperator = try! Signify.SecretKey(seed: Data(repeating: 7, count: 32), keyNumber: Data(repeating: 7, count: 8))

    /// A file to inspect, extra flags, and the exact line expected after "PATH: ".
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var testDescription: String { name }
    }

    static let names = [
        "empty file", "10 MB of garbage", "1 KB of garbage", "tampered ciphertext", "tampered header",
        "truncated in the header", "truncated payload", "trailing data", "sealed to another site",
        "another operator's key", "tampered signature", "signature over a different document",
        "valid age but unsigned plaintext", "unknown schema version", "another plan", "another site",
        "older serial than the last applied", "malformed document", "certificate by another key",
        "certificate for another slot", "router secret does not match the certificate", "age version 2 header",
        "stick with the wrong label", "stick with two profiles", "stick without a profile",
        "folder with two profiles", "unformatted stick image", "missing file",
        "300 KB of garbage", "ext4 stick with a 1 GiB sparse profile", "FAT stick with a 300 KB profile",
        "ext4 stick whose profile.age is a symbolic link", "FAT stick with a looping cluster chain",
        "blkid killed while probing", "folder with control characters in a profile's name", "a FIFO given as the profile",
        // Signed with the operator key, and still refused: the device checks every field as `plan check` does.
        "uplink that adds a networkd section", "LAN address outside the site /64", "unknown field", "negative serial",
    ]

    /// Extra environment the case's run needs (a PATH whose blkid is killed as it starts).
    static func environment(_ name: String, in dir: URL) throws -> [String: String] {
        guard name == "blkid killed while probing" else { return [:] }
        let tools = dir.appendingPathComponent("tools")
        try FileManager.default.createDirectory(at: tools, withIntermediateDirectories: true)
        let blkid = tools.appendingPathComponent("blkid")
        try Data("#!/bin/sh\nkill -KILL $$\n".utf8).write(to: blkid)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: blkid.path)
        return ["PATH": tools.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
    }

    /// Builds one bad input under `dir`; returns its path, extra flags and the expected line.
    static func make(_ name: String, in dir: URL) throws -> (path: String, flags: [String], expected: String) {
        let file = dir.appendingPathComponent("profile.age")
        func write(_ data: Data) throws -> String {
            try data.write(to: file)
            return file.path
        }
        let p = file.path
        switch name {
        case "empty file":
            return (try write(Data()), [], "\(p): profile is empty")
        case "10 MB of garbage":
            var generator = SystemRandomNumberGenerator()
            let garbage = Data((0..<(10 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            return (try write(Data("age-encryption.org/v1\n".utf8) + garbage), [], "\(p): profile is larger than 262144 bytes, far more than any profile: not a profile")
        case "1 KB of garbage":
            return (try write(Data((0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })), [], "\(p): profile is not an age v1 file (no age-encryption.org/v1 header)")
        case "tampered ciphertext":
            return (try write(flip(goodSealed, at: goodSealed.count - 20)), [], "\(p): profile is damaged or tampered: \(chunkFailure)")
        case "tampered header":
            // Change one character of the header MAC (keeping it canonical base64).
            var data = goodSealed
            let macStart = data.firstRange(of: Data("\n--- ".utf8))!.upperBound
            data[macStart + 3] = data[macStart + 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            return (try write(data), [], "\(p): profile is damaged or tampered: header MAC does not match: the header was modified or the file key is wrong")
        case "truncated in the header":
            return (try write(goodSealed.prefix(60)), [], "\(p): profile is damaged or tampered: header ends without a newline in the stanza or MAC line")
        case "truncated payload":
            return (try write(goodSealed.dropLast(30)), [], "\(p): profile is damaged or tampered: \(chunkFailure)")
        case "trailing data":
            return (try write(goodSealed + Data("extra".utf8)), [], "\(p): profile is damaged or tampered: \(chunkFailure)")
        case "sealed to another site":
            let other = try Age.encrypt(Signify.signEmbedded(DocumentCoding.encode(good()), with: keys.operatorKey, comment: "x"),
                                        to: [keys.siteIdentity(site: "site-b").recipient])
            return (try write(other), ["--site", "site-a"], "\(p): profile is sealed to another site's identity, not this image's (site site-a)")
        case "another operator's key":
            return (try write(sealDocument(good(), signer: otherOperator)), [], "\(p): profile is signed by another operator key, not this plan's")
        case "tampered signature":
            let signed = Signify.signEmbedded(try DocumentCoding.encode(good()), with: keys.operatorKey, comment: "x")
            var text = String(decoding: signed, as: UTF8.self)
            let lines = text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
            var sig = Array(lines[1])
            sig[40] = sig[40] == "A" ? "B" : "A"
            text = lines[0] + "\n" + String(sig) + "\n" + lines[2]
            return (try write(try Age.encrypt(Data(text.utf8), to: [keys.siteIdentity(site: "site-a").recipient])), [],
                    "\(p): profile signature does not match its content: tampered")
        case "signature over a different document":
            let signedA = Signify.signEmbedded(try DocumentCoding.encode(good()), with: keys.operatorKey, comment: "x")
            var other = good()
            other.router.priority = 250
            let header = String(decoding: signedA, as: UTF8.self).split(separator: "\n", maxSplits: 2)
            let spliced = Data((header[0] + "\n" + header[1] + "\n").utf8) + (try DocumentCoding.encode(other))
            return (try write(try Age.encrypt(spliced, to: [keys.siteIdentity(site: "site-a").recipient])), [],
                    "\(p): profile signature does not match its content: tampered")
        case "valid age but unsigned plaintext":
            return (try write(try Age.encrypt(DocumentCoding.encode(good()), to: [keys.siteIdentity(site: "site-a").recipient])), [],
                    "\(p): profile is not signed: the sealed content is not a signify-signed document")
        case "unknown schema version":
            var document = good()
            document.schema = 2
            return (try write(sealDocument(document)), [], "\(p): profile has unknown schema 2 (this software understands 1); update the image")
        case "another plan":
            var document = good()
            document.plan.name = "other"
            return (try write(sealDocument(document)), [], "\(p): profile is for plan \"other\", this image is plan \"example\"")
        case "another site":
            var document = good()
            document.site.name = "site-b"
            return (try write(sealDocument(document)), ["--site", "site-a"], "\(p): profile is for site \"site-b\", this image is site \"site-a\"")
        case "older serial than the last applied":
            return (try write(goodSealed), ["--last-serial", "1001"], "\(p): profile serial 1000 is older than the last applied serial 1001; use the newest stick")
        case "malformed document":
            return (try write(seal(Data("{\"schema\":1,\"plan\":{}}\n".utf8))), [], "\(p): profile document is malformed: missing plan.name")
        case "certificate by another key":
            var document = good()
            let certificate = try SiteCertificate(
                plan: "example", site: "site-a", slot: 2,
                wireguardPublicKey: keys.routerSecret(site: siteA, router: router).wireGuardKey.publicKeyBase64,
                tunnelAddress: router.tunnelAddress, sitePrefix: siteA.prefix, serial: serial)
            document.certificate = try certificate.signed(with: otherOperator)
            return (try write(sealDocument(document)), [], "\(p): profile's site certificate is not valid: signify: signed by another key: signature has key number 0707070707070707, public key has a7bed93c52ac53ae")
        case "certificate for another slot":
            var document = good()
            document.certificate = try keys.certificate(plan: plan, site: siteA, router: siteA.router(slot: 1)!, serial: serial)
            return (try write(sealDocument(document)), [], "\(p): profile's site certificate does not match the profile (slot differs)")
        case "router secret does not match the certificate":
            var document = good()
            document.routerSecret = keys.routerSecret(site: "site-a", slot: 2, generation: 9).bytes.base64EncodedString()
            return (try write(sealDocument(document)), [], "\(p): profile's site certificate does not match the profile (WireGuard key differs)")
        case "age version 2 header":
            var data = goodSealed
            data.replaceSubrange(0..<21, with: Data("age-encryption.org/v2".utf8))
            return (try write(data), [], "\(p): profile is not an age v1 file (no age-encryption.org/v1 header)")
        case "stick with the wrong label":
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "NOTPROFILE", files: ["profile.age": goodSealed])
            return (image, [], "stick \(image) is labelled \"NOTPROFILE\", not EDGEPROFILE")
        case "stick with two profiles":
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "EDGEPROFILE", files: ["profile.age": goodSealed, "old.age": goodSealed])
            return (image, [], "stick \(image) holds 2 profiles (old.age, profile.age); keep exactly one profile.age")
        case "stick without a profile":
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "EDGEPROFILE", files: ["readme.txt": Data("hi".utf8)])
            return (image, [], "stick \(image) holds no profile.age")
        case "folder with two profiles":
            let folder = dir.appendingPathComponent("mounted")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try goodSealed.write(to: folder.appendingPathComponent("profile.age"))
            try goodSealed.write(to: folder.appendingPathComponent("profile-new.age"))
            return (folder.path, [], "stick \(folder.path) holds 2 profiles (profile-new.age, profile.age); keep exactly one profile.age")
        case "unformatted stick image":
            let image = dir.appendingPathComponent("blank.img")
            try Data(count: 1 << 20).write(to: image)
            return (image.path, [], "stick \(image.path) has no filesystem (expected FAT or ext4 labelled EDGEPROFILE)")
        case "300 KB of garbage":
            // No age header and no filesystem: a damaged profile, refused for its size (not "no filesystem").
            return (try write(Data((0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) })), [],
                    "\(p): profile is larger than 262144 bytes, far more than any profile: not a profile")
        case "ext4 stick with a 1 GiB sparse profile":
            // Refused from its directory entry: the reader must never take 1 GiB into memory.
            let image = dir.appendingPathComponent("stick.img").path
            try makeExtStick(image, in: dir) { folder in
                let file = folder + "/profile.age"
                _ = FileManager.default.createFile(atPath: file, contents: nil)
                #expect(truncate(file, 1 << 30) == 0)
            }
            return (image, [], "stick \(image): profile.age is larger than 262144 bytes: not a profile")
        case "FAT stick with a 300 KB profile":
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "EDGEPROFILE", files: ["profile.age": Data(repeating: 0x61, count: 300 * 1024)])
            return (image, [], "stick \(image): profile.age is larger than 262144 bytes: not a profile")
        case "ext4 stick whose profile.age is a symbolic link":
            let image = dir.appendingPathComponent("stick.img").path
            try makeExtStick(image, in: dir) { folder in
                try goodSealed.write(to: URL(fileURLWithPath: folder + "/real"))
                try FileManager.default.createSymbolicLink(atPath: folder + "/profile.age", withDestinationPath: "real")
            }
            return (image, [], "stick \(image): profile.age is a symbolic link, not a file; put the sealed profile.age from `edgekit profile seal` there")
        case "FAT stick with a looping cluster chain":
            // profile.age starts at cluster 2 (the first file on a fresh FAT12); make cluster 2 point
            // to itself and its directory entry claim 100000 bytes: mtools stops with two lines.
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "EDGEPROFILE", files: ["profile.age": Data(repeating: 0x61, count: 5000)])
            var bytes = try Data(contentsOf: URL(fileURLWithPath: image))
            let fat = Int(bytes[14]) | Int(bytes[15]) << 8
            let sector = Int(bytes[11]) | Int(bytes[12]) << 8
            let entry = fat * sector + 3  // FAT12 entry 2: the low 12 bits at byte 3
            bytes[entry] = 0x02
            bytes[entry + 1] = bytes[entry + 1] & 0xF0
            let name = try #require(bytes.firstRange(of: Data("PROFILE AGE".utf8)))
            bytes.replaceSubrange((name.lowerBound + 28)..<(name.lowerBound + 32), with: [0xA0, 0x86, 0x01, 0x00])
            try bytes.write(to: URL(fileURLWithPath: image))
            return (image, [], "stick \(image) is unreadable: reading profile.age: mtype: loop detected! oldrel=1 newrel=2 abs=2")
        case "blkid killed while probing":
            // A probe that failed is not "no filesystem" (environment(_:in:) supplies the blkid).
            let image = dir.appendingPathComponent("stick.img").path
            try makeStick(image, label: "EDGEPROFILE", files: ["profile.age": goodSealed])
            return (image, [], "stick \(image) is unreadable: blkid: killed by signal 9")
        case "folder with control characters in a profile's name":
            let folder = dir.appendingPathComponent("mounted")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try goodSealed.write(to: folder.appendingPathComponent("profile.age"))
            try goodSealed.write(to: folder.appendingPathComponent("evil\u{1b}[2J\n.age"))
            return (folder.path, [], "stick \(folder.path) holds 2 profiles (evil\\u{1b}[2J\\n.age, profile.age); keep exactly one profile.age")
        case "a FIFO given as the profile":
            // Never opened for a blocking read: with no writer, that would wait forever.
            let fifo = dir.appendingPathComponent("profile.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            return (fifo, [], "\(fifo) is a FIFO: give a profile.age, a stick image or device, or a mounted stick's folder")
        case "uplink that adds a networkd section":
            var document = good()
            document.router.uplink = .name("eth0\n[Match]\nName=*")
            return (try write(sealDocument(document)), [],
                    "\(p): profile document is malformed: router.uplink \"eth0\\n[Match]\\nName=*\" is neither \"auto\", an interface name (1–15 characters, no '/', ':' or spaces) nor a MAC address")
        case "LAN address outside the site /64":
            var document = good()
            document.router.lanAddress = IPv6Address("::1")!
            return (try write(sealDocument(document)), [],
                    "\(p): profile document is malformed: router.lan_address ::1 is not inside the site /64 \(siteA.prefix)")
        case "unknown field":
            let body = String(decoding: try DocumentCoding.encode(good()), as: UTF8.self)
                .replacingOccurrences(of: "\"router\":{", with: "\"router\":{\"comment\":\"x\",")
            return (try write(seal(Data(body.utf8))), [],
                    "\(p): profile document is malformed: router.comment is not a field this software knows; refusing rather than ignoring it")
        case "negative serial":
            let body = String(decoding: try DocumentCoding.encode(good()), as: UTF8.self)
                .replacingOccurrences(of: "\"serial\":1000", with: "\"serial\":-1")
            return (try write(seal(Data(body.utf8))), [],
                    "\(p): profile document is malformed: serial is -1, not a whole number 0–18446744073709551615")
        case "missing file":
            let path = dir.appendingPathComponent("nothing-here.age").path
            return (path, [], "\(path) does not exist")
        default:
            throw CocoaError(.featureUnsupported)
        }
    }

    /// A FAT image made with the standard tools, for stick-level cases.
    static func makeStick(_ path: String, label: String, files: [String: Data]) throws {
        try Data(count: 2 << 20).write(to: URL(fileURLWithPath: path))
        #expect(try runSystem("mkfs.vfat", ["-n", label, path]).status == 0)
        for (name, data) in files.sorted(by: { $0.key < $1.key }) {
            let source = URL(fileURLWithPath: path + "." + name)
            try data.write(to: source)
            defer { try? FileManager.default.removeItem(at: source) }
            #expect(try runSystem("mcopy", ["-i", path, source.path, "::/\(name)"]).status == 0)
        }
    }

    /// An ext4 image labelled EDGEPROFILE made by mkfs.ext4 -d from a folder `fill` populates.
    static func makeExtStick(_ path: String, in dir: URL, fill: (String) throws -> Void) throws {
        let folder = dir.appendingPathComponent("ext4-contents").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try fill(folder)
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        #expect(truncate(path, 16 << 20) == 0)
        #expect(try runSystem("mkfs.ext4", ["-q", "-F", "-L", "EDGEPROFILE", "-d", folder, path]).status == 0)
    }
}
