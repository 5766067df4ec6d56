import EdgeErrors
import Foundation
import SystemCrypto
import Testing
@testable import EdgeCrypto

/// The C2SP/CCTV age conformance vectors (Fixtures/age-cctv, see SOURCE.md there).
///
/// Every vector that exercises what edgekit implements (X25519 recipients, header, MAC and
/// STREAM payload) must produce exactly the expected outcome and released-plaintext hash;
/// vectors for features we do not implement (scrypt, ML-KEM hybrid, ASCII armor) are skipped
/// by name or feature, and the counts are checked so that a broken loader cannot skip silently.
struct CCTVVector: Sendable, CustomTestStringConvertible {
    var name: String
    var fields: [(key: String, value: String)]
    var file: Data

    var testDescription: String { name }

    func values(_ key: String) -> [String] { fields.filter { $0.key == key }.map(\.value) }
    func value(_ key: String) -> String? { values(key).first }

    struct LoadError: Error, CustomStringConvertible { let description: String }

    static let knownKeys: Set<String> = ["expect", "payload", "file key", "identity", "passphrase", "armored", "comment", "compressed"]

    /// Why this vector is not run, or nil if it must be run.
    var skipReason: String? {
        if let unknown = fields.first(where: { !Self.knownKeys.contains($0.key) }) {
            return "unknown key \"\(unknown.key)\""
        }
        if name.hasPrefix("armor") || value("armored") == "yes" || value("expect") == "armor failure" {
            return "ASCII armor is not implemented (binary age only)"
        }
        if name.hasPrefix("scrypt") || value("passphrase") != nil {
            return "scrypt passphrase recipients are not implemented"
        }
        if name.hasPrefix("hybrid") || values("identity").contains(where: { !$0.hasPrefix("AGE-SECRET-KEY-1") }) {
            return "ML-KEM hybrid (post-quantum) recipients are not implemented"
        }
        if let compressed = value("compressed"), compressed != "zlib" {
            return "unknown compression \(compressed)"
        }
        return nil
    }

    static let directory: URL? = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?
        .appendingPathComponent("age-cctv")

    static func load(_ name: String) throws -> CCTVVector {
        guard let directory else { throw LoadError(description: "Fixtures/age-cctv is missing from the test bundle") }
        let raw = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
        var fields: [(key: String, value: String)] = []
        var cursor = 0
        while true {
            guard let end = raw[cursor...].firstIndex(of: 0x0A) else {
                throw LoadError(description: "vector \(name) has no blank line after its header")
            }
            if end == cursor { cursor += 1; break }
            let line = String(decoding: raw[cursor..<end], as: UTF8.self)
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { throw LoadError(description: "vector \(name) has a malformed header line \(line)") }
            fields.append((String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)))
            cursor = end + 1
        }
        var file = Data(raw[cursor...])
        if fields.contains(where: { $0.key == "compressed" && $0.value == "zlib" }) {
            file = try Inflate.zlib(file)
        }
        return CCTVVector(name: name, fields: fields, file: file)
    }

    static let allNames: [String] = {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted()
    }()

    static let all: [CCTVVector] = allNames.compactMap { try? load($0) }
    static let runnable: [CCTVVector] = all.filter { $0.skipReason == nil }
}

@Suite("age CCTV vectors")
struct AgeCCTVTests {
    /// 143 vectors: 67 exercise X25519/header/MAC/STREAM; 33 armor, 25 scrypt and 18 hybrid are skipped
    /// (armor_scrypt and armor_hybrid count as armor).
    static let expectedTotal = 143
    static let minimumRun = 67

    @Test func vectorsLoadAndEnoughRun() {
        let skipped = CCTVVector.all.filter { $0.skipReason != nil }
        print("age CCTV: \(CCTVVector.runnable.count) vectors run, \(skipped.count) skipped, of \(CCTVVector.allNames.count) files")
        #expect(CCTVVector.allNames.count == Self.expectedTotal, "fixture count changed: \(CCTVVector.allNames.count)")
        #expect(CCTVVector.all.count == CCTVVector.allNames.count, "some vectors failed to load")
        #expect(CCTVVector.runnable.count >= Self.minimumRun, "only \(CCTVVector.runnable.count) CCTV vectors ran")
        var reasons: [String: Int] = [:]
        for vector in skipped { reasons[vector.skipReason ?? "", default: 0] += 1 }
        for (reason, count) in reasons.sorted(by: { $0.key < $1.key }) { print("  skipped \(count): \(reason)") }
    }

    @Test(arguments: CCTVVector.runnable)
    func vector(_ vector: CCTVVector) throws {
        let identities = try vector.values("identity").map { try Age.Identity(parsing: $0) }
        let expect = try #require(vector.value("expect"))
        var hasher = SHA256()
        var outcome: ErrorCode?
        var other: (any Error)?
        do {
            try Age.decrypt(vector.file, with: identities) { hasher.update(data: $0) }
        } catch let error as AgeError {
            outcome = error.code
        } catch {
            other = error
        }
        #expect(other == nil, "unexpected non-age error \(String(describing: other))")

        switch expect {
        case "success": #expect(outcome == nil)
        case "no match": #expect(outcome == "age.no-match")
        case "HMAC failure": #expect(outcome == "age.header-mac")
        case "header failure": #expect(outcome == "age.header" || outcome == "age.unsupported-version")
        case "payload failure": #expect(outcome == "age.payload")
        default: Issue.record("unknown expectation \(expect)")
        }

        if let payload = vector.value("payload") {
            let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            #expect(digest == payload, "released plaintext hash")
        }

        // Where the stanzas unwrap, the file key must be the one the vector was made with.
        if let header = try? AgeHeader.parse([UInt8](vector.file)),
           let fileKey = try? Age.unwrap(header.stanzas, with: identities),
           let expectedKey = vector.value("file key") {
            let hex = fileKey.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
            #expect(hex == expectedKey)
        }
    }
}
