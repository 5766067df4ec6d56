import EdgeErrors

/// One problem found in a plan file, printed as `plan.yaml:LINE: message` like a compiler would.
public struct PlanDiagnostic: Sendable, Equatable, CustomStringConvertible {
    /// The file name as the operator should see it (usually `plan.yaml`).
    public var file: String
    /// 1-based line, when the problem is tied to one.
    public var line: Int?
    /// What is wrong and how to fix it.
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// Always one line: control characters that came from the plan (a `"\n"` or `"\0"` inside a
    /// quoted value, a folder name with a newline) are shown escaped, never echoed raw.
    public var description: String {
        let text = if let line { "\(file):\(line): \(message)" } else { "\(file): \(message)" }
        return PlanDiagnostic.escapingControlCharacters(text)
    }

    /// `text` with every control character (Unicode Cc, plus the line and paragraph separators)
    /// written as a Swift-style escape: `\n`, `\r`, `\t`, `\0`, else `\u{HEX}`.
    public static func escapingControlCharacters(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\0": result += "\\0"
            default: result += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}"
    }
}

/// Every problem of a plan at once; thrown by `PlanLoader` so the operator can fix them in one pass.
///
/// Codes: `plan.unreadable`, `plan.too-large`, `plan.not-utf8`, `plan.alias` (YAML anchors and
/// aliases), `plan.too-deep`, `plan.yaml-syntax`, `plan.empty`, and `plan.invalid` for everything
/// the checker finds (the diagnostics say what).
public struct PlanError: EdgeError, Sendable, Equatable {
    public var diagnostics: [PlanDiagnostic]
    public var code: ErrorCode
    private var underlying: ErrorCause

    public init(_ diagnostics: [PlanDiagnostic], code: ErrorCode = "plan.invalid", cause: (any Error)? = nil) {
        self.diagnostics = diagnostics
        self.code = code
        self.underlying = ErrorCause(cause)
    }

    /// The file of the first problem (`plan.yaml`, or the path that could not be read).
    public var input: String? { diagnostics.first?.file }
    public var cause: (any Error)? { underlying.error }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
