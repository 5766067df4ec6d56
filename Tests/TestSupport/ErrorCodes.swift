import EdgeErrors
import Testing

/// The code of what `body` throws; nil when it returns, or throws an error that is not an `EdgeError`.
public func errorCode(_ body: () throws -> Void) -> ErrorCode? {
    do {
        try body()
        return nil
    } catch let error as any EdgeError {
        return error.code
    } catch {
        return nil
    }
}

/// Expects `body` to throw an `EdgeError` with `code`; tests match codes, not the printed line.
public func expectCode(_ code: ErrorCode, _ comment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> Void) {
    do {
        try body()
        Issue.record(Comment(rawValue: "expected an error with code \(code), nothing was thrown" + (comment.map { ": \($0)" } ?? "")),
                     sourceLocation: sourceLocation)
    } catch let error as any EdgeError {
        #expect(error.code == code, Comment(rawValue: "\(error)" + (comment.map { " (\($0))" } ?? "")), sourceLocation: sourceLocation)
    } catch {
        Issue.record(Comment(rawValue: "expected an error with code \(code), got \(type(of: error)): \(error)"),
                     sourceLocation: sourceLocation)
    }
}

/// `expectCode` for async bodies.
public func expectCode(_ code: ErrorCode, _ comment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record(Comment(rawValue: "expected an error with code \(code), nothing was thrown" + (comment.map { ": \($0)" } ?? "")),
                     sourceLocation: sourceLocation)
    } catch let error as any EdgeError {
        #expect(error.code == code, Comment(rawValue: "\(error)" + (comment.map { " (\($0))" } ?? "")), sourceLocation: sourceLocation)
    } catch {
        Issue.record(Comment(rawValue: "expected an error with code \(code), got \(type(of: error)): \(error)"),
                     sourceLocation: sourceLocation)
    }
}
