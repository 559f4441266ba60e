#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// A new pseudo-terminal pair for an interactive session.
public struct Pty: ~Copyable {
    public let master: FileDescriptor
    public let slave: FileDescriptor

    /// Opens a pty in the devpts instance of the group whose holder is `holderPID`
    /// (through /proc/PID/root, so in the group's mount namespace), or the
    /// host's when `holderPID` is nil. The slave belongs to `uid` and the tty
    /// group, mode 0620, like a login terminal.
    public static func open(holderPID: pid_t?, uid: uid_t, ttyGroup: gid_t, rows: UInt16, columns: UInt16) throws(Errno) -> Pty {
        var root: FileDescriptor?
        if let holderPID {
            root = try FileDescriptor.open("/proc/\(holderPID)/root", NS_O_PATH | O_DIRECTORY)
        }
        var master: Int32 = -1
        var slave: Int32 = -1
        if ns_pty_open(root?.rawValue ?? -1, uid, ttyGroup, rows, columns, &master, &slave) < 0 {
            throw Errno.current
        }
        return Pty(master: FileDescriptor(adopting: master), slave: FileDescriptor(adopting: slave))
    }

    /// TIOCSWINSZ.
    public static func setWindowSize(_ fd: Int32, rows: UInt16, columns: UInt16) throws(Errno) {
        if ns_pty_set_size(fd, rows, columns) < 0 { throw Errno.current }
    }

    /// TIOCGWINSZ, or nil when fd is not a terminal.
    public static func windowSize(_ fd: Int32) -> (rows: UInt16, columns: UInt16)? {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        return ns_pty_get_size(fd, &rows, &columns) == 0 ? (rows, columns) : nil
    }
}
