@testable import EdgeAgent
import Foundation
import Testing

/// The path choice's state machine with a fake clock: a round of probes per second.
@Suite struct PathChoiceTests {
    /// Feeds `rounds` rounds of the same answers, one second apart from `start`; returns the
    /// choice after each round.
    static func run(_ choice: inout PathChoice, _ answers: [String: Bool], rounds: Int, from start: inout Date) -> [String?] {
        (0..<rounds).map { _ in
            _ = choice.record(answers, at: start)
            start += 1
            return choice.chosen
        }
    }

    @Test func choosesThePreferredRelayAtItsFirstAnswer() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"], misses: 3, rise: 3, holdDown: 10)
        #expect(Self.run(&choice, [:], rounds: 2, from: &clock) == [nil, nil])
        // Nothing chosen yet: the first relay that answers, in order of preference.
        #expect(Self.run(&choice, ["a": true, "b": true], rounds: 3, from: &clock) == ["a", "a", "a"])
        #expect(choice.paths.map(\.up) == [true, true])
    }

    @Test func aRelayThatStartsDeadLeavesTheSiteOnTheNextOne() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"])
        let trace = Self.run(&choice, ["a": false, "b": true], rounds: 4, from: &clock)
        #expect(trace == ["b", "b", "b", "b"])
        #expect(choice.paths.map(\.up) == [false, true])
    }

    @Test func twoMissesMoveTheSiteByDefault() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"])
        _ = Self.run(&choice, ["a": true, "b": true], rounds: 3, from: &clock)
        #expect(Self.run(&choice, ["a": false, "b": true], rounds: 2, from: &clock) == ["a", "b"])
    }

    @Test func failsOverAfterThreeMissesAndBackAfterTheHoldDown() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"], misses: 3, rise: 3, holdDown: 10)
        _ = Self.run(&choice, ["a": true, "b": true], rounds: 3, from: &clock)
        #expect(choice.chosen == "a")
        // Relay a dies: two misses keep it, the third moves the site to b.
        #expect(Self.run(&choice, ["a": false, "b": true], rounds: 3, from: &clock) == ["a", "a", "b"])
        // Relay a is back: up after 3 answers, but the site stays on b for the 10 s hold-down.
        let back = Self.run(&choice, ["a": true, "b": true], rounds: 13, from: &clock)
        #expect(back.prefix(12).allSatisfy { $0 == "b" }, "\(back)")
        #expect(back.last == "a", "\(back)")
    }

    @Test func aFlappingPreferredRelayNeverTakesTheSiteBack() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"], misses: 3, rise: 3, holdDown: 10)
        _ = Self.run(&choice, ["a": false, "b": true], rounds: 3, from: &clock)
        #expect(choice.chosen == "b")
        // Relay a answers for 5 s, then misses 3, over and over: it never holds 10 s.
        for _ in 0..<6 {
            #expect(Self.run(&choice, ["a": true, "b": true], rounds: 5, from: &clock).allSatisfy { $0 == "b" })
            #expect(Self.run(&choice, ["a": false, "b": true], rounds: 3, from: &clock).allSatisfy { $0 == "b" })
        }
    }

    @Test func theChosenRelayDyingMovesTheSiteAtOnceWhateverTheHoldDown() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"], misses: 3, rise: 3, holdDown: 10)
        _ = Self.run(&choice, ["a": false, "b": true], rounds: 3, from: &clock)
        _ = Self.run(&choice, ["a": true, "b": true], rounds: 3, from: &clock)
        #expect(choice.chosen == "b")
        // b dies while a has been up for only 3 s: no hold-down for leaving a dead relay.
        #expect(Self.run(&choice, ["a": true, "b": false], rounds: 3, from: &clock) == ["b", "b", "a"])
    }

    @Test func withEveryRelayDownTheChoiceStaysAndTheFirstOneBackWins() {
        var clock = Date(timeIntervalSince1970: 1000)
        var choice = PathChoice(relays: ["a", "b"], misses: 3, rise: 3, holdDown: 10)
        _ = Self.run(&choice, ["a": true, "b": true], rounds: 3, from: &clock)
        _ = Self.run(&choice, ["a": false, "b": false], rounds: 5, from: &clock)
        #expect(!choice.anyUp)
        #expect(choice.chosen == "a")
        // Only b comes back: the site moves to it at its first answer, before b counts as up.
        #expect(Self.run(&choice, ["a": false, "b": true], rounds: 3, from: &clock) == ["b", "b", "b"])
        #expect(choice.paths.map(\.up) == [false, true])
    }
}
