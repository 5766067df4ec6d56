// libFuzzer entry for the plan loader (Sources/EdgeModel: YAML → Plan, every rule of docs/plan.md).
// Built by fuzz/run-plan.sh together with EdgeModel's sources and Yams; not part of the Swift package.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlan(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let plan = try PlanLoader.parse(text)
        // An accepted plan resolves every site and router the way docs/plan.md promises.
        precondition(!plan.sites.isEmpty, "an accepted plan has sites")
        for site in plan.sites {
            precondition(plan.ula.contains(site.prefix), "site /64 outside the ula")
            precondition(!site.routers.isEmpty, "an accepted site has routers")
        }
        _ = PlanSummary(plan).text()
    } catch let error as PlanError {
        // Every refusal is at least one line, and each line is one line.
        precondition(!error.diagnostics.isEmpty, "a refusal names at least one problem")
        for diagnostic in error.diagnostics {
            let line = diagnostic.description
            precondition(!line.contains("\n") && !line.contains("\r") && !line.contains("\0"), "a diagnostic spans lines: \(line)")
        }
    } catch {
        preconditionFailure("PlanLoader.parse threw something other than PlanError: \(error)")
    }
    return 0
}
