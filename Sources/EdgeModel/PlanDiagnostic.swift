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

    public var description: String {
        if let line { "\(file):\(line): \(message)" } else { "\(file): \(message)" }
    }
}

/// Every problem of a plan at once; thrown by `PlanLoader` so the operator can fix them in one pass.
public struct PlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [PlanDiagnostic]

    public init(_ diagnostics: [PlanDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
