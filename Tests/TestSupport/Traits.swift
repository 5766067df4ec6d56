import Foundation
import Testing

/// Conditions that skip a test with the reason, instead of failing it, when the machine cannot run
/// it: a plain `swift test` as a user skips what needs root or a missing tool and fails nothing.
extension Trait where Self == ConditionTrait {
    /// Network namespaces, mounts and chroots need root.
    public static var requiresRoot: Self {
        .enabled(if: SystemTools.isRoot, "needs root (network namespaces, mounts)")
    }

    /// Every named tool must be installed (`./build.sh deps` installs them all).
    public static func requiresTool(_ names: String...) -> Self {
        let missing = SystemTools.missing(names)
        return .enabled(if: missing.isEmpty,
                        Comment(rawValue: "needs \(missing.joined(separator: ", ")) (install with ./build.sh deps)"))
    }

    /// Root and every named tool.
    public static func requiresRoot(andTools names: String...) -> Self {
        let missing = SystemTools.missing(names)
        let reasons = (SystemTools.isRoot ? [] : ["root"]) + missing
        return .enabled(if: reasons.isEmpty, Comment(rawValue: "needs \(reasons.joined(separator: ", "))"))
    }

    /// The static appliance agent build.sh makes (`EDGEKIT_AGENT_BINARY`); image tests put it into images.
    public static var requiresApplianceAgent: Self {
        .enabled(if: Products.applianceAgent != nil,
                 "needs EDGEKIT_AGENT_BINARY, the static edgekit-agent (run the suite with ./build.sh test)")
    }

    /// The aarch64 agent build.sh cross-builds (`EDGEKIT_ARM64_AGENT_BINARY`); arm64 image tests put it into images.
    public static var requiresArm64ApplianceAgent: Self {
        .enabled(if: Products.arm64ApplianceAgent != nil,
                 "needs EDGEKIT_ARM64_AGENT_BINARY, the cross-built aarch64 edgekit-agent (run the suite with ./build.sh test)")
    }

    /// Takes more than a few seconds; `./build.sh test quick` (EDGEKIT_QUICK=1) skips it.
    public static var slow: Self {
        .enabled(if: ProcessInfo.processInfo.environment["EDGEKIT_QUICK"] != "1", "slow; skipped by ./build.sh test quick")
    }
}
