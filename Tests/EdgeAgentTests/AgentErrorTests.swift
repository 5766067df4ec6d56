import EdgeAgent
import EdgeCrypto
import EdgeErrors
import Testing

/// An agent error says which input it concerns and keeps the error that refused the stick.
@Suite struct AgentErrorTests {
    @Test func aRefusedProfileKeepsItsProfileErrorThroughAnInterruptedApply() {
        let refused = AgentError.profile("/media/stick/profile.age", ProfileError.unsigned.description,
                                         cause: ErrorCause(ProfileError.unsigned))
        #expect(refused.code == "agent.profile-refused")
        #expect(refused.input == "/media/stick/profile.age")
        #expect(refused.message == ProfileError.unsigned.description)
        #expect(refused.description == "/media/stick/profile.age: \(ProfileError.unsigned)")
        #expect(refused == .profile("/media/stick/profile.age", ProfileError.unsigned.description), "the cause is not part of equality")

        let interrupted = AgentError.interrupted("an apply", refused)
        #expect(interrupted.code == "agent.interrupted")
        #expect(interrupted.causes.compactMap { ($0 as? any EdgeError)?.code } == ["agent.profile-refused", "profile.unsigned"])
    }
}
