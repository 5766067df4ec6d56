import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

/// Named steps of an apply, for the crash-consistency test: with `EDGEKIT_AGENT_CRASH_AT=N` (the Nth
/// step) or `=NAME`, a debug build kills itself with SIGKILL right there, as a power cut would stop
/// it. `EDGEKIT_AGENT_TRACE_STEPS=1` lists the steps on stderr. Release builds compile to nothing.
final class CrashPoints {
    private var count = 0
    #if DEBUG
    private let target = ProcessInfo.processInfo.environment["EDGEKIT_AGENT_CRASH_AT"]
    private let trace = ProcessInfo.processInfo.environment["EDGEKIT_AGENT_TRACE_STEPS"] == "1"
    #endif

    init() {}

    func step(_ name: @autoclosure () -> String) {
        #if DEBUG
        count += 1
        guard target != nil || trace else { return }
        let label = name()
        if trace { StandardStream.error.write("step \(count): \(label)\n") }
        if let target, target == String(count) || target == label {
            kill(getpid(), SIGKILL)
        }
        #endif
    }
}
