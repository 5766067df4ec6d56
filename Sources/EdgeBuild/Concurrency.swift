import Foundation

/// Runs `body` for every item, as many at once as there are cores; the first error stops the
/// items not yet started and is rethrown.
public func forEachConcurrently<Item: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) throws -> Void) throws {
    let failure = FirstError()
    DispatchQueue.concurrentPerform(iterations: items.count) { index in
        guard !failure.isSet else { return }
        do {
            try body(items[index])
        } catch {
            failure.set(error)
        }
    }
    try failure.rethrow()
}

/// A count that several threads add to.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// Adds `amount` and returns the new count.
    func add(_ amount: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += amount
        return value
    }
}

/// The first error any of several threads raised; later ones are dropped.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return error != nil
    }

    func set(_ error: any Error) {
        lock.lock()
        defer { lock.unlock() }
        if self.error == nil { self.error = error }
    }

    func rethrow() throws {
        lock.lock()
        defer { lock.unlock() }
        if let error { throw error }
    }
}
