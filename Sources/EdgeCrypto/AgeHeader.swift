import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// One recipient stanza: `-> type args…` followed by its base64 body.
struct AgeStanza: Sendable, Equatable {
    var type: String
    var arguments: [String]
    var body: Data
}

/// A parsed age v1 header, with the exact bytes the MAC covers kept alongside so that the
/// MAC is checked over what was read, not over a re-encoding.
struct AgeHeader: Sendable {
    static let versionLine = "age-encryption.org/v1"
    /// Body lines are wrapped at 64 columns, i.e. 48 raw bytes.
    static let columnsPerLine = 64

    var stanzas: [AgeStanza]
    /// Header bytes from the version line up to and including the `---` of the MAC line.
    var macInput: Data
    var mac: Data
    /// Offset of the first byte after the MAC line (the payload nonce).
    var payloadOffset: Int

    /// Parses the header strictly per age v1: LF line endings only, arguments of printable
    /// ASCII separated by single spaces, canonical unpadded base64 bodies ending with a short
    /// line, and a `--- <43 base64 chars>` MAC line.
    static func parse(_ bytes: [UInt8]) throws(AgeError) -> AgeHeader {
        var cursor = 0

        /// The next LF-terminated line without its LF; a missing LF means the header is cut short.
        func nextLine(_ what: String) throws(AgeError) -> ArraySlice<UInt8> {
            guard cursor < bytes.count else {
                throw AgeError(.headerFailure, "header ends before the \(what)")
            }
            guard let end = bytes[cursor...].firstIndex(of: 0x0A) else {
                throw AgeError(.headerFailure, "header ends without a newline in the \(what)")
            }
            let line = bytes[cursor..<end]
            cursor = end + 1
            return line
        }

        let version = try nextLine("version line")
        guard String(decoding: version, as: UTF8.self) == versionLine else {
            let text = describe(version)
            if version.starts(with: Array("age-encryption.org/".utf8)) {
                throw AgeError(.unsupportedVersion, "unsupported age version line \(text)")
            }
            throw AgeError(.headerFailure, "not an age file: first line is \(text)")
        }

        var stanzas: [AgeStanza] = []
        while true {
            let lineStart = cursor
            let line = try nextLine("stanza or MAC line")
            if line.starts(with: Array("---".utf8)) {
                guard line.starts(with: Array("--- ".utf8)) else {
                    throw AgeError(.headerFailure, "malformed MAC line \(describe(line)): expected '--- ' then the MAC")
                }
                let encoded = line.dropFirst(4)
                guard let mac = StrictBase64.decode(encoded, padded: false), mac.count == 32 else {
                    throw AgeError(.headerFailure, "malformed MAC line \(describe(line)): not 32 bytes of canonical unpadded base64")
                }
                guard !stanzas.isEmpty else {
                    throw AgeError(.headerFailure, "header has no recipient stanzas")
                }
                return AgeHeader(
                    stanzas: stanzas,
                    macInput: Data(bytes[0..<(lineStart + 3)]),
                    mac: mac,
                    payloadOffset: cursor)
            }
            guard line.starts(with: Array("-> ".utf8)) else {
                throw AgeError(.headerFailure, "malformed header line \(describe(line)): expected '-> ' or '--- '")
            }
            let fields = line.dropFirst(3).split(separator: 0x20, omittingEmptySubsequences: false)
            for field in fields {
                guard !field.isEmpty else {
                    throw AgeError(.headerFailure, "malformed stanza line \(describe(line)): empty argument")
                }
                guard field.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
                    throw AgeError(.headerFailure, "malformed stanza line \(describe(line)): argument has a character outside printable ASCII")
                }
            }
            guard let type = fields.first else {
                throw AgeError(.headerFailure, "stanza line has no type")
            }

            var body = Data()
            while true {
                let bodyLine = try nextLine("body of the \(describe(type)) stanza")
                guard bodyLine.count <= columnsPerLine else {
                    throw AgeError(.headerFailure, "body line of the \(describe(type)) stanza is longer than \(columnsPerLine) columns")
                }
                guard let chunk = StrictBase64.decode(bodyLine, padded: false) else {
                    throw AgeError(.headerFailure, "body line \(describe(bodyLine)) of the \(describe(type)) stanza is not canonical unpadded base64")
                }
                body.append(chunk)
                if bodyLine.count < columnsPerLine { break }
            }
            stanzas.append(AgeStanza(
                type: String(decoding: type, as: UTF8.self),
                arguments: fields.dropFirst().map { String(decoding: $0, as: UTF8.self) },
                body: body))
        }
    }

    /// Serialises stanzas and returns the header text up to and including `---`,
    /// which is what the MAC covers.
    static func encode(stanzas: [AgeStanza]) -> Data {
        var text = versionLine + "\n"
        for stanza in stanzas {
            text += "-> " + ([stanza.type] + stanza.arguments).joined(separator: " ") + "\n"
            let encoded = Array(StrictBase64.encode(stanza.body, padded: false).utf8)
            var index = 0
            while encoded.count - index >= columnsPerLine {
                text += String(decoding: encoded[index..<(index + columnsPerLine)], as: UTF8.self) + "\n"
                index += columnsPerLine
            }
            // The stanza ends at the first short line, which is empty if the body filled the last line.
            text += String(decoding: encoded[index...], as: UTF8.self) + "\n"
        }
        text += "---"
        return Data(text.utf8)
    }

    /// Quotes input for error messages, escaping anything that is not printable ASCII.
    static func describe<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = "\""
        for byte in bytes.prefix(80) {
            switch byte {
            case 0x20...0x7E where byte != 0x22 && byte != 0x5C: out.append(Character(Unicode.Scalar(byte)))
            case 0x0D: out += "\\r"
            default: out += String(cFormat: "\\x%02x", byte)
            }
        }
        if bytes.count > 80 { out += "…" }
        return out + "\""
    }
}
