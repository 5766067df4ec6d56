// Times rendering every file of the whole example plan (all routers and the relay).
// Usage: edgekit-bench-render PLAN_DIR [ITERATIONS] [--dump DIR]
import EdgeModel
import EdgeRender
import Foundation
import PlanYAML

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: edgekit-bench-render PLAN_DIR [ITERATIONS]\n".utf8))
    exit(2)
}
let plan = try PlanLoader.load(directory: arguments[1])
let iterations = arguments.count >= 3 ? Int(arguments[2]) ?? 500 : 500
// Any valid WireGuard public key; the figure does not depend on it.
let relayKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

func renderAll() -> Int {
    var bytes = 0
    for site in plan.sites {
        for router in site.routers {
            for file in EdgeRouterConfig.files(plan: plan, site: site, router: router, relayPublicKeys: plan.relays.map { _ in relayKey }) {
                bytes += file.contents.utf8.count
            }
        }
    }
    for file in RelayFiles.files(plan: plan) { bytes += file.contents.utf8.count }
    return bytes
}

var checksum = renderAll()  // warm-up
let clock = ContinuousClock()
let elapsed = clock.measure {
    for _ in 0..<iterations { checksum &+= renderAll() }
}
let perPlan = elapsed / iterations
let ms = Double(perPlan.components.seconds) * 1e3 + Double(perPlan.components.attoseconds) / 1e15
let rounded = (ms * 100).rounded() / 100
let text = String(rounded)
let decimals = text.split(separator: ".").last.map(\.count) ?? 0
print("render whole example plan: \(text)\(String(repeating: "0", count: max(0, 2 - decimals))) ms (target < 20 ms)")
FileHandle.standardError.write(Data("\(iterations) iterations, \(checksum / (iterations + 1)) bytes per plan\n".utf8))
