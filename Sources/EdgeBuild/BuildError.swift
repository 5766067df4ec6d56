/// A request the build library refuses, in one line naming the input (a flag, a file, a site) and
/// what to do about it.
public struct BuildError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
