import POSIX

/// What went wrong with a cgroup: the operation, the path it was done on, and the errno the
/// kernel gave, or a reason when no system call failed (no cgroup2 mounted, a controller this
/// host lacks, a name that is not a single path component).
///
/// `description` reads like the shell's: "mkdir /sys/fs/cgroup/unified/nsgroupd/users:
/// Permission denied".
public struct CgroupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// "mkdir", "rmdir", "open", "read", "write 5 to", "detect", "apply", "name", …
    public var operation: String
    /// The file or directory, or "" when there is none.
    public var path: String
    /// The kernel's answer, when a system call failed.
    public var errno: Errno?
    /// Why, when no system call failed.
    public var reason: String?

    public init(operation: String, path: String, errno: Errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.reason = nil
    }

    public init(operation: String, path: String, reason: String) {
        self.operation = operation
        self.path = path
        self.errno = nil
        self.reason = reason
    }

    public var description: String {
        let what = path.isEmpty ? operation : operation + " " + path
        return what + ": " + (errno?.description ?? reason ?? "failed")
    }
}
