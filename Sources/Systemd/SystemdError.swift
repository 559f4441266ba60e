import Glibc

/// An error from a libsystemd call: the call's name and the errno it returned (negated by libsystemd).
///
/// `errno` is stored positive (`EBADF`, not `-EBADF`).
public struct SystemdError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The libsystemd function that failed, e.g. `"sd_event_add_io"`.
    public let operation: String
    /// The positive errno value.
    public let errno: Int32

    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno < 0 ? -errno : errno
    }

    /// `"sd_event_add_io: Bad file descriptor"`.
    public var description: String {
        "\(operation): \(SystemdError.errorText(errno))"
    }

    /// The strerror(3) text for an errno value (glibc's strerror is thread-safe for known values
    /// and uses a thread-local buffer for unknown ones).
    static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }

    /// Turns a libsystemd return value into a thrown error when it is negative.
    @discardableResult
    static func check(_ result: Int32, _ operation: String) throws(SystemdError) -> Int32 {
        if result < 0 { throw SystemdError(operation: operation, errno: -result) }
        return result
    }
}
