#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// An error number from a system call, as the kernel returned it.
///
/// `description` is the C library's text ("No such file or directory") and
/// `name` the symbolic constant ("ENOENT"), which is stable and goes on the wire.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The calling thread's `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public var name: String {
        guard let text = ns_errno_name(rawValue) else { return "E\(rawValue)" }
        return String(cString: text)
    }

    public var description: String {
        String(cString: strerror(rawValue))
    }

    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
}

/// Calls `body` until it stops failing with EINTR; returns its result or throws errno.
@inlinable
public func retryOnInterrupt<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = Errno.current
        if error != .interrupted { throw error }
    }
}
