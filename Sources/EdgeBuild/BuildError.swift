import EdgeErrors

/// A request the build library refuses, in one line naming the input (a flag, a file, a site) and
/// what to do about it, with the error it came from when there is one.
public struct BuildError: EdgeError, Equatable {
    public var code: ErrorCode
    public var input: String?
    /// The whole line the CLI prints.
    public var description: String
    public var underlying: ErrorCause

    public init(_ line: String, code: ErrorCode = "build.refused", input: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.input = input
        description = line
        underlying = ErrorCause(cause)
    }

    public var cause: (any Error)? { underlying.error }
}
