import Foundation
import Testing
import TestSupport

/// The agent that goes into images stays small (issue 20: ≤ 20 MiB stripped): its libraries import
/// FoundationEssentials, not Foundation, whose ICU data alone is 34 MB. A file that imports
/// Foundation (or a dependency that does) anywhere in the agent's graph shows up here as a binary
/// of 55 MB or more.
@Suite struct AgentWeightTests {
    static let limit = 20 * 1_048_576

    @Test(.requiresApplianceAgent)
    func theAppliancesAgentIsAtMost20MiB() throws {
        try expectLight(Products.applianceAgent!)
    }

    @Test(.requiresArm64ApplianceAgent)
    func theAarch64AgentIsAtMost20MiB() throws {
        try expectLight(Products.arm64ApplianceAgent!)
    }

    func expectLight(_ path: String) throws {
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size <= Self.limit, "\(path) is \(size) bytes, over 20 MiB: does something in the agent's graph import Foundation?")
        // ICU's data file names itself (icudt76l, …) inside the blob; FoundationEssentials has none.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(data.range(of: Data("icudt".utf8)) == nil, "\(path) carries ICU data")
    }
}
