import PlanYAML

/// The lines `plan check` prints for `text` (one per problem), or none when the plan is valid.
func planProblems(_ text: String) -> [String] {
    do {
        _ = try PlanLoader.parse(text)
        return []
    } catch {
        return "\(error)".split(separator: "\n").map(String.init)
    }
}
