import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on one entry of the image cache, so two builds sharing a cache (CI jobs on one
/// runner, the test suite's image tests and the lab) never build the same level into the same
/// `.partial` folder at once: the second waits, then finds the level complete and reuses it.
/// The lock is `flock(2)` on `<entry>.lock`, released when the process ends, even by a crash.
struct CacheLock {
    let descriptor: Int32

    /// Takes the lock for the cache entry `directory`, waiting (and saying so) while another build holds it.
    init(for directory: String, progress: (String) -> Void) throws {
        let path = directory + ".lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ImageError("cannot open the cache lock \(path): \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            progress("waiting for another build using \((directory as NSString).lastPathComponent) in this cache")
            guard flock(descriptor, LOCK_EX) == 0 else {
                close(descriptor)
                throw ImageError("cannot lock the cache entry \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    func release() {
        close(descriptor)
    }
}
