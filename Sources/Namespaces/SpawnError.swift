import CSpawn
import POSIX

/// A step of starting a process that failed, with the errno it failed with:
/// `setns(net): Operation not permitted`, `execve(/bin/zsh): No such file or directory`.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    /// The step, written like the call that failed with its argument.
    public let step: String
    public let errno: Errno

    public init(step: String, errno: Errno) {
        self.step = step
        self.errno = errno
    }

    public var description: String { "\(step): \(errno)" }
}

extension SpawnError {
    /// Names the step of an ns_report, with the details only the caller knows
    /// (which namespace was at an index, which path).
    init(report: ns_report, namespaces: [NamespaceKind] = [], tmpfs: [String] = [], binds: [String] = [],
         bindSources: [String] = [], cwd: String = "/", file: String = "") {
        let index = Int(report.index)
        func item<T>(_ list: [T]) -> T? { list.indices.contains(index) ? list[index] : nil }
        let step: String
        switch ns_stage(UInt32(report.stage)) {
        case NS_STAGE_SIGNALS: step = "sigaction"
        case NS_STAGE_SETNS: step = "setns(\(item(namespaces)?.rawValue ?? "?"))"
        case NS_STAGE_CLONE: step = "clone3"
        case NS_STAGE_CHDIR: step = "chdir(\(cwd))"
        case NS_STAGE_SETSID, NS_STAGE_SETSID_HOLDER: step = "setsid"
        case NS_STAGE_TIOCSCTTY: step = "ioctl(TIOCSCTTY)"
        case NS_STAGE_STDIO: step = "dup2(\(index))"
        case NS_STAGE_SETGROUPS: step = "setgroups"
        case NS_STAGE_SETGID: step = "setresgid"
        case NS_STAGE_SETUID: step = "setresuid"
        case NS_STAGE_NO_NEW_PRIVS: step = "prctl(PR_SET_NO_NEW_PRIVS)"
        case NS_STAGE_CLOSE_FDS: step = "close_range"
        case NS_STAGE_EXECVE: step = "execve(\(file))"
        case NS_STAGE_KEYRING: step = "keyctl(KEYCTL_JOIN_SESSION_KEYRING)"
        case NS_STAGE_HOLDER_EXEC: step = "execveat(nsgroup-holder)"
        case NS_STAGE_HOLDER_ARGS: step = "nsgroup-holder arguments"
        case NS_STAGE_MOUNT_PROPAGATION: step = "mount(/, MS_REC|MS_SLAVE)"
        case NS_STAGE_SETHOSTNAME: step = "sethostname"
        case NS_STAGE_MOUNT_PROC: step = "mount(proc, /proc)"
        case NS_STAGE_MOUNT_DEVPTS: step = "mount(devpts, /dev/pts)"
        case NS_STAGE_MOUNT_TMPFS: step = "mount(tmpfs, \(item(tmpfs) ?? "?"))"
        case NS_STAGE_MOUNT_BIND: step = "mount(bind, \(item(binds) ?? "?"))"
        case NS_STAGE_BIND_SOURCE: step = "open(\(item(bindSources) ?? "?"))"
        case NS_STAGE_LOOPBACK: step = "ioctl(lo, SIOCSIFFLAGS)"
        case NS_STAGE_WAIT_PARENT: step = "waiting for the supervisor"
        case NS_STAGE_SETID_HOLDER: step = "setresuid(0) in the user namespace"
        case NS_STAGE_TIME_OFFSETS: step = "write(/proc/self/timens_offsets)"
        case NS_STAGE_UNSHARE_TIME: step = "unshare(CLONE_NEWTIME)"
        case NS_STAGE_DUMPABLE: step = "prctl(PR_SET_DUMPABLE)"
        case NS_STAGE_LOGINUID: step = "write(/proc/self/loginuid)"
        case NS_STAGE_RESOLVE_AS: step = "setfsuid/setgroups for \(item(tmpfs) ?? "?")"
        case NS_STAGE_RLIMIT: step = "prlimit(\(Self.resourceNames.indices.contains(index) ? Self.resourceNames[index] : "resource \(index)"))"
        case NS_STAGE_TMPFS_NOT_OWNED: step = "tmpfs target \(item(tmpfs) ?? "?") is not the caller's"
        default: step = "stage \(report.stage)"
        }
        self.init(step: step, errno: Errno(rawValue: report.error))
    }

    /// The kernel's resource limits by number, as ns_spawn.h's NS_RLIMIT_COUNT counts them.
    static let resourceNames = [
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
        "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ]
}
