import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Canonical JSON for the wire documents (profile, site certificate, site stamp): sorted keys, no
/// escaped slashes, so the same document always produces the same bytes (signatures are checked over
/// the bytes as received, never re-encoded). EdgeCrypto signs and seals these bytes.
///
/// Decoding is strict: a field this software does not know is refused by name, and every field is
/// read with its kind's rule (`FieldRules`), so a document either becomes the model or fails with one
/// line that names the field and the problem.
public enum DocumentCoding {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0a)
        return data
    }

    public static func pretty<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    /// Decodes `data` as `type`, refusing unknown fields; every failure is a `DocumentError`.
    public static func decode<T: Codable>(_ type: T.Type, from data: Data) throws(DocumentError) -> T {
        let value: T
        do {
            value = try JSONDecoder().decode(type, from: data)
        } catch let error as DocumentError {
            throw error
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw DocumentError(field: nil, problem: "not JSON", code: "document.not-json")
        }
        // Every field the document carries must be one this software reads: what it would write
        // back is what it understood, so a key present only in the input is unknown.
        guard let received = try? JSONDecoder().decode(JSONShape.self, from: data),
            let understood = try? JSONDecoder().decode(JSONShape.self, from: JSONEncoder().encode(value))
        else { throw DocumentError(field: nil, problem: "not JSON", code: "document.not-json") }
        if let unknown = firstUnknownKey(received, understood, path: "") {
            throw DocumentError(field: unknown, problem: "is not a field this software knows; refusing rather than ignoring it", code: "document.unknown-field")
        }
        return value
    }

    /// Reads only the `schema` number, so a newer schema is named as such before its fields are read.
    public static func schema(of data: Data) throws(DocumentError) -> Int {
        struct SchemaOnly: Decodable { var schema: Int }
        do {
            return try JSONDecoder().decode(SchemaOnly.self, from: data).schema
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw DocumentError(field: nil, problem: "not JSON", code: "document.not-json")
        }
    }

    static func firstUnknownKey(_ received: JSONShape, _ understood: JSONShape, path: String) -> String? {
        switch (received, understood) {
        case (.object(let object), _):
            let known: [String: JSONShape]
            if case .object(let fields) = understood { known = fields } else { known = [:] }
            for key in object.keys.sorted() {
                let plain = key.utf8.count <= FieldRules.quotedLimit
                    && key.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
                let shown = plain ? key : FieldRules.quoted(key)
                let field = path.isEmpty ? shown : path + "." + shown
                guard let inner = known[key] else { return field }
                if let found = firstUnknownKey(object[key]!, inner, path: field) { return found }
            }
        case (.array(let array), .array(let known)):
            for (index, element) in array.enumerated() where index < known.count {
                if let found = firstUnknownKey(element, known[index], path: "\(path)[\(index)]") { return found }
            }
        default:
            break
        }
        return nil
    }

    /// A JSON value's shape: its objects' keys and its arrays' elements, every other value alike.
    enum JSONShape: Decodable {
        case object([String: JSONShape])
        case array([JSONShape])
        case value

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            if let object = try? decoder.container(keyedBy: Key.self) {
                var fields: [String: JSONShape] = [:]
                for key in object.allKeys { fields[key.stringValue] = try object.decode(JSONShape.self, forKey: key) }
                self = .object(fields)
            } else if var array = try? decoder.unkeyedContainer() {
                var elements: [JSONShape] = []
                while !array.isAtEnd { elements.append(try array.decode(JSONShape.self)) }
                self = .array(elements)
            } else {
                self = .value
            }
        }
    }

    /// A field path as the documents spell it: `site.routers[1].lan_address`.
    public static func fieldPath(_ codingPath: [any CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                path += "[\(index)]"
            } else {
                path += path.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return path
    }

    static func describe(_ error: DecodingError) -> DocumentError {
        switch error {
        case .keyNotFound(let key, let context):
            let field = fieldPath(context.codingPath + [key])
            return DocumentError(field: nil, problem: "missing \(field)", code: "document.missing-field")
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let field = fieldPath(context.codingPath)
            return DocumentError(field: field.isEmpty ? nil : field, problem: "has the wrong type (expected \(kind(type)))", code: "document.wrong-type")
        case .dataCorrupted(let context):
            let field = fieldPath(context.codingPath)
            if field.isEmpty { return DocumentError(field: nil, problem: "not JSON", code: "document.not-json") }
            return DocumentError(field: field, problem: context.debugDescription, code: "document.bad-value", cause: error)
        @unknown default:
            return DocumentError(field: nil, problem: "unreadable", code: "document.not-json", cause: error)
        }
    }

    static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "text"
        case is UInt64.Type: "a whole number 0–\(UInt64.max)"
        case is UInt16.Type: "a whole number 0–65535"
        case is Int.Type: "a whole number"
        case is [Any].Type: "a list"
        default: "\(type)"
        }
    }

    /// RFC 3339 in UTC to the second: `2026-12-07T11:18:15Z`.
    public static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(cFormat: "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }
}

/// A wire document that does not decode, or a field that breaks its rule: one line naming the field.
///
/// Codes: `document.not-json`, `document.unknown-field`, `document.missing-field`,
/// `document.wrong-type`, `document.bad-value` (a field rule refused the value) and
/// `document.invalid` (the fields break a rule together, e.g. a prefix outside the ula).
public struct DocumentError: EdgeError, Equatable {
    /// The field's path (`router.uplink`, `site.routers[1].lan_address`), nil for the whole document.
    public var field: String?
    public var problem: String
    public var code: ErrorCode
    private var underlying: ErrorCause

    public init(field: String?, problem: String, code: ErrorCode = "document.invalid", cause: (any Error)? = nil) {
        self.field = field
        self.problem = problem
        self.code = code
        self.underlying = ErrorCause(cause)
    }

    public var input: String? { field }
    public var message: String { problem }
    public var cause: (any Error)? { underlying.error }

    /// One line: control characters a hostile value may carry are shown escaped.
    public var description: String {
        let line = field.map { "\($0) \(problem)" } ?? problem
        guard line.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return line }
        return String(String.UnicodeScalarView(line.unicodeScalars.flatMap { scalar -> [Unicode.Scalar] in
            scalar.value < 0x20 || scalar.value == 0x7f ? Array("\\u{\(String(scalar.value, radix: 16))}".unicodeScalars) : [scalar]
        }))
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, checked by `rule`; a wrong type or a refused value names the field.
    public func field<Raw: Decodable, Value>(_ key: Key, as raw: Raw.Type,
                                      _ rule: (Raw) -> Result<Value, FieldProblem>) throws -> Value {
        let value: Raw
        do {
            value = try decode(Raw.self, forKey: key)
        } catch DecodingError.keyNotFound(let missing, let context) {
            throw DocumentError(field: nil, problem: "missing \(DocumentCoding.fieldPath(context.codingPath + [missing]))", code: "document.missing-field")
        } catch let error as DocumentError {
            throw error
        } catch {
            // Foundation's JSONDecoder does not throw a DecodingError for every bad number.
            let field = DocumentCoding.fieldPath(codingPath + [key])
            // A number out of the type's range (`"serial": -1`) is named with its value.
            if Raw.self is any FixedWidthInteger.Type, let number = try? decode(Double.self, forKey: key), number.isFinite {
                let shown = number == number.rounded() && abs(number) < 1e18 ? String(Int64(number)) : "\(number)"
                throw DocumentError(field: field, problem: "is \(shown), not \(DocumentCoding.kind(Raw.self))", code: "document.wrong-type")
            }
            throw DocumentError(field: field, problem: "has the wrong type (expected \(DocumentCoding.kind(Raw.self)))", code: "document.wrong-type")
        }
        switch rule(value) {
        case .success(let checked): return checked
        case .failure(let problem): throw DocumentError(field: DocumentCoding.fieldPath(codingPath + [key]), problem: problem.message, code: "document.bad-value", cause: problem)
        }
    }

    /// The value at `key` with no rule beyond its type (addresses and prefixes check their syntax).
    public func field<Value: Decodable>(_ key: Key, as type: Value.Type) throws -> Value {
        try field(key, as: type) { .success($0) }
    }
}
