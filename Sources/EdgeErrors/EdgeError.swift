/// A stable, dotted name for a kind of failure: `profile.tampered`, `stick.too-large`.
///
/// Codes are what programs and tests match; the printed line is for people and may be reworded.
/// The first part names the library's concern, the rest the failure, in lower-case words joined
/// by hyphens. docs/architecture.md ("Errors") lists them; a code, once published, keeps its meaning.
public struct ErrorCode: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { rawValue }
}

/// The one shape of edgekit's library errors: a code, the input it concerns, a one-line message
/// and the error that caused it, if any.
///
/// `description` is the line the executables print, unchanged from before this protocol; `message`
/// is that line without the input when the type carries the input separately.
public protocol EdgeError: Error, CustomStringConvertible {
    /// What kind of failure this is; stable, for programs and tests.
    var code: ErrorCode { get }
    /// The path, field, flag or value the failure concerns; nil when there is none.
    var input: String? { get }
    /// One line saying what is wrong and how to fix it.
    var message: String { get }
    /// The lower-level error this one was made from (a tool's failure, an errno), if any.
    var cause: (any Error)? { get }
}

extension EdgeError {
    public var input: String? { nil }
    public var message: String { description }
    public var cause: (any Error)? { nil }

    /// The chain of causes, nearest first; stops at the first error that is not an `EdgeError`.
    public var causes: [any Error] {
        var chain: [any Error] = []
        var next = cause
        while let error = next {
            chain.append(error)
            next = (error as? any EdgeError)?.cause
        }
        return chain
    }
}

/// An underlying error kept inside an `Equatable` error (an enum case, a struct).
///
/// It never makes two errors unequal: an error's identity is its code and its words, and the
/// words already say what the cause said. It only lets a caller reach the original error.
public struct ErrorCause: Sendable, Equatable, CustomStringConvertible {
    public let error: (any Error)?

    public init(_ error: (any Error)?) { self.error = error }

    /// No cause.
    public static let none = ErrorCause(nil)

    public static func == (lhs: ErrorCause, rhs: ErrorCause) -> Bool { true }

    public var description: String { error.map { "\($0)" } ?? "" }
}
