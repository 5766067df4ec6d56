import EdgeErrors
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif

extension Error {
    /// The error in a few plain words for a one-line message: the system's own text for an errno
    /// ("No such file or directory"), also inside a Foundation file error, else the error itself.
    /// (Foundation's `localizedDescription` is not in FoundationEssentials.)
    package var plainDescription: String {
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = self as? CocoaError {
            if let underlying = cocoa.userInfo["NSUnderlyingError"] as? POSIXError {
                return String(cString: strerror(underlying.code.rawValue))
            }
            return "\(cocoa.code)"
        }
        return "\(self)"
    }
}
