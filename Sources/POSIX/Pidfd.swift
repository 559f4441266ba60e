#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

/// How a process ended.
public struct ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// The exit code, when it exited.
    public let code: Int32?
    /// The signal that killed it, when one did.
    public let signal: Int32?

    public init(code: Int32?, signal: Int32?) {
        self.code = code
        self.signal = signal
    }

    /// The status a shell would report: the code, or 128 plus the signal.
    public var shellStatus: Int32 {
        if let signal { return 128 + signal }
        return code ?? 255
    }

    public var description: String {
        if let signal { return "killed by signal \(signal)" }
        if let code { return "exited with code \(code)" }
        return "ended"
    }
}

/// A process referred to by a pidfd: signals and waits can never reach
/// another process that happens to reuse the pid.
public struct Pidfd: ~Copyable {
    public let pid: pid_t
    public let descriptor: FileDescriptor

    public init(pid: pid_t, adopting fd: Int32) {
        self.pid = pid
        self.descriptor = FileDescriptor(adopting: fd)
    }

    /// pidfd_open(2).
    public static func open(pid: pid_t) throws(Errno) -> Pidfd {
        let fd = ns_pidfd_open(pid, 0)
        if fd < 0 { throw Errno.current }
        return Pidfd(pid: pid, adopting: fd)
    }

    public var rawValue: Int32 { descriptor.rawValue }

    /// pidfd_send_signal(2).
    public func signal(_ signal: Int32) throws(Errno) {
        if ns_pidfd_send_signal(descriptor.rawValue, signal) < 0 { throw Errno.current }
    }

    /// pidfd_send_signal(2) with PIDFD_SIGNAL_PROCESS_GROUP: to the process's whole
    /// process group, with no pid-reuse race. EINVAL before Linux 6.9.
    public func signalProcessGroup(_ signal: Int32) throws(Errno) {
        if ns_pidfd_send_signal_group(descriptor.rawValue, signal) < 0 { throw Errno.current }
    }

    /// Whether the process has not exited yet (a zombie counts as exited).
    public var isAlive: Bool {
        var fds = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&fds, 1, 0) == 0
    }

    /// Reaps the process if it is our child and has exited (waitid P_PIDFD,
    /// WNOHANG). Returns nil while it runs. A process that is not our child
    /// (one adopted after a restart) cannot be reaped here; its status is then
    /// unknown and `ExitStatus(code: nil, signal: nil)` is returned once it has
    /// exited.
    public func reap(block: Bool = false) throws(Errno) -> ExitStatus? {
        var info = siginfo_t()
        let options = WEXITED | __WALL | (block ? 0 : WNOHANG)
        if ns_pidfd_wait(descriptor.rawValue, &info, options) < 0 {
            let error = Errno.current
            if error.rawValue == ECHILD {
                return isAlive ? nil : ExitStatus(code: nil, signal: nil)
            }
            throw error
        }
        if ns_siginfo_pid(&info) == 0 { return nil }
        var code: Int32 = 0
        var signal: Int32 = 0
        ns_siginfo_status(&info, &code, &signal)
        return ExitStatus(code: code >= 0 ? code : nil, signal: signal > 0 ? signal : nil)
    }
}
