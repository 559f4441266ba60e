import CSpawn
import POSIX

/// A step of starting a process that failed, with the errno it failed with:
/// `setns(net): Operation not permitted`, `execve(/bin/zsh): No such file or directory`.
public struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    public let step: Step
    public let errno: Errno

    public init(step: Step, errno: Errno) {
        self.step = step
        self.errno = errno
    }

    public var description: String { "\(step): \(errno)" }
}

extension SpawnError {
    /// Which step failed. Code tells steps apart by case; `description` writes
    /// one like the call that failed with its argument, which is what the
    /// journal and the protocol's `data.step` show (PROTOCOL.md §11: for
    /// people and logs, so the wording may change, but not by accident).
    public enum Step: Sendable, Hashable, CustomStringConvertible {
        // In the supervisor, around the clone of a holder or a session.
        /// Making the status or go-ahead pipe of a holder.
        case pipe2
        /// Cloning the holder, or (reported by the first child of an enter) the session.
        case clone3
        /// Writing to the holder's go-ahead pipe.
        case writeGoAhead
        /// Reading the holder's start time.
        case readStat(pid: Int32)
        /// Reading the holder's namespace link `entry` (`net`, `pid_for_children`, …).
        case readNamespaceLink(pid: Int32, entry: String)
        /// The holder's status pipe closed, or the holder died, before it reported.
        case holderExitedDuringSetup
        /// The holder did not report within the set-up timeout.
        case waitingForHolder
        /// Writing /proc/PID/setgroups, gid_map or uid_map of a holder.
        case writeMap(path: String)
        /// The group could not be recorded once its holder said its namespaces are final (see `HolderLaunch`).
        case recordHolder
        /// A session spec with the wrong number of resource limits.
        case resourceLimitCount(Int)
        /// Opening the pidfd of a session that has exec'd.
        case pidfdOpen(pid: Int32)
        /// Reading the command lines of a group's processes (`processes`) did not finish in time.
        case readProcesses
        /// The session did not exec (or fail) within the spawn timeout.
        case waitingForSession(seconds: Int)
        /// The launch was killed before its program ran (its client went away).
        case killed

        // In the supervisor, around a group that exists.
        /// Opening a holder's namespace files for an enter.
        case openNamespaces(pid: Int32)
        /// Opening a terminal in the group's devpts (or the host's).
        case openPtmx
        /// Signalling a session through its pidfd.
        case signal
        /// Writing a streamed session's input into its stdin.
        case writeInput
        /// Setting a streamed session's terminal size.
        case resizeTerminal
        /// Making a directory (/run/netns).
        case mkdir(path: String)
        /// Making a directory a shared mount point (/run/netns, as `ip netns` does).
        case makeShared(path: String)
        /// Creating the empty file a namespace is bound onto.
        case createFile(path: String)
        /// Opening a file: a holder's namespace, a bind mount's source.
        case open(path: String)
        /// Bind-mounting a namespace onto a file (/run/netns/NAME).
        case bindNamespace(target: String)

        // In a child, as it reports them (CSpawn's ns_report.h).
        case sigaction
        /// Joining a namespace; "?" when the report's index named none.
        case setns(kind: String)
        case chdir(path: String)
        case setsid
        case controllingTerminal
        case dup2(descriptor: Int32)
        case setgroups
        case setresgid
        case setresuid
        case noNewPrivileges
        case closeRange
        case execve(file: String)
        case joinSessionKeyring
        case execHolder
        case holderArguments
        case mountPropagation
        case sethostname
        case mountProc
        case mountDevpts
        case mountTmpfs(path: String)
        case mountBind(target: String)
        case loopback
        case waitingForSupervisor
        case becomeNamespaceRoot
        case writeTimeOffsets
        case unshareTime
        case notDumpable
        case writeLoginUID
        case resolveAs(path: String)
        /// Setting a resource limit, by its number (see `resourceNames`).
        case setResourceLimit(Int)
        case tmpfsTargetNotOwned(path: String)
        /// A home bind (create's "home") whose source or target is not the caller's.
        case bindNotOwned(source: String, target: String)
        /// Joining a cgroup by writing to its cgroup.procs (index: which one).
        case joinCgroup(Int)
        case unshareCgroup
        /// create's root "overlay" (holder.c, overlay_prepare).
        case overlayFuse
        case overlayUpper(path: String)
        case persistNotOwned(path: String)
        case persistBusy(path: String)
        case overlayDaemon
        case overlayMounts(path: String)
        case pivotRoot
        /// A stage this code does not know (a newer holder).
        case stage(Int32)

        public var description: String {
            switch self {
            case .pipe2: "pipe2"
            case .clone3: "clone3"
            case .writeGoAhead: "write(go-ahead)"
            case .readStat(let pid): "read /proc/\(pid)/stat"
            case .readNamespaceLink(let pid, let entry): "readlink(/proc/\(pid)/ns/\(entry))"
            case .holderExitedDuringSetup: "nsgroup-holder exited during set-up"
            case .waitingForHolder: "waiting for nsgroup-holder"
            case .writeMap(let path): "write(\(path))"
            case .recordHolder: "record the holder"
            case .resourceLimitCount(let count): "resource limits (\(count), not \(NS_RLIMIT_COUNT))"
            case .pidfdOpen(let pid): "pidfd_open(\(pid))"
            case .readProcesses: "read(/proc/PID/cmdline)"
            case .waitingForSession(let seconds): "waiting \(seconds) s for the session to start"
            case .killed: "stopped: the client went away"
            case .openNamespaces(let pid): "open(/proc/\(pid)/ns)"
            case .openPtmx: "open(/dev/pts/ptmx)"
            case .signal: "pidfd_send_signal"
            case .writeInput: "write(stdin)"
            case .resizeTerminal: "ioctl(TIOCSWINSZ)"
            case .mkdir(let path): "mkdir(\(path))"
            case .makeShared(let path): "mount(\(path), MS_SHARED)"
            case .createFile(let path): "create \(path)"
            case .open(let path): "open(\(path))"
            case .bindNamespace(let target): "mount(\(target))"
            case .sigaction: "sigaction"
            case .setns(let kind): "setns(\(kind))"
            case .chdir(let path): "chdir(\(path))"
            case .setsid: "setsid"
            case .controllingTerminal: "ioctl(TIOCSCTTY)"
            case .dup2(let descriptor): "dup2(\(descriptor))"
            case .setgroups: "setgroups"
            case .setresgid: "setresgid"
            case .setresuid: "setresuid"
            case .noNewPrivileges: "prctl(PR_SET_NO_NEW_PRIVS)"
            case .closeRange: "close_range"
            case .execve(let file): "execve(\(file))"
            case .joinSessionKeyring: "keyctl(KEYCTL_JOIN_SESSION_KEYRING)"
            case .execHolder: "execveat(nsgroup-holder)"
            case .holderArguments: "nsgroup-holder arguments"
            case .mountPropagation: "mount(/, MS_REC|MS_SLAVE)"
            case .sethostname: "sethostname"
            case .mountProc: "mount(proc, /proc)"
            case .mountDevpts: "mount(devpts, /dev/pts)"
            case .mountTmpfs(let path): "mount(tmpfs, \(path))"
            case .mountBind(let target): "mount(bind, \(target))"
            case .loopback: "ioctl(lo, SIOCSIFFLAGS)"
            case .waitingForSupervisor: "waiting for the supervisor"
            case .becomeNamespaceRoot: "setresuid(0) in the user namespace"
            case .writeTimeOffsets: "write(/proc/self/timens_offsets)"
            case .unshareTime: "unshare(CLONE_NEWTIME)"
            case .notDumpable: "prctl(PR_SET_DUMPABLE)"
            case .writeLoginUID: "write(/proc/self/loginuid)"
            case .resolveAs(let path): "setfsuid/setgroups for \(path)"
            case .setResourceLimit(let index):
                "prlimit(\(SpawnError.resourceNames.indices.contains(index) ? SpawnError.resourceNames[index] : "resource \(index)"))"
            case .tmpfsTargetNotOwned(let path): "tmpfs target \(path) is not the caller's"
            case .bindNotOwned(let source, let target): "bind \(source) onto \(target): not both directories of the caller's"
            case .joinCgroup(let index): "write(cgroup.procs #\(index))"
            case .unshareCgroup: "unshare(CLONE_NEWCGROUP)"
            case .overlayFuse: "mount(fuse-overlayfs on /dev/fuse)"
            case .overlayUpper(let path): "the overlay's upper layer (\(path))"
            case .persistNotOwned(let path): "persist directory \(path) is not the owner's"
            case .persistBusy(let path): "persist directory \(path) is in use by another group"
            case .overlayDaemon: "starting fuse-overlayfs"
            case .overlayMounts(let path): "mount(bind, \(path) into the overlay root)"
            case .pivotRoot: "pivot_root(overlay)"
            case .stage(let number): "stage \(number)"
            }
        }
    }
}

extension SpawnError {
    /// Names the step of an ns_report, with the details only the caller knows
    /// (which namespace was at an index, which path).
    init(report: ns_report, namespaces: [NamespaceKind] = [], tmpfs: [String] = [], binds: [String] = [],
         bindSources: [String] = [], persist: String = "?", cwd: String = "/", file: String = "") {
        let index = Int(report.index)
        /// The item at the report's index, or "?" when it names none.
        func item(_ list: [String]) -> String { list.indices.contains(index) ? list[index] : "?" }
        let step: Step
        switch ns_stage(UInt32(report.stage)) {
        case NS_STAGE_SIGNALS: step = .sigaction
        case NS_STAGE_SETNS: step = .setns(kind: item(namespaces.map(\.rawValue)))
        case NS_STAGE_CLONE: step = .clone3
        case NS_STAGE_CHDIR: step = .chdir(path: cwd)
        case NS_STAGE_SETSID, NS_STAGE_SETSID_HOLDER: step = .setsid
        case NS_STAGE_TIOCSCTTY: step = .controllingTerminal
        case NS_STAGE_STDIO: step = .dup2(descriptor: report.index)
        case NS_STAGE_SETGROUPS: step = .setgroups
        case NS_STAGE_SETGID: step = .setresgid
        case NS_STAGE_SETUID: step = .setresuid
        case NS_STAGE_NO_NEW_PRIVS: step = .noNewPrivileges
        case NS_STAGE_CLOSE_FDS: step = .closeRange
        case NS_STAGE_EXECVE: step = .execve(file: file)
        case NS_STAGE_KEYRING: step = .joinSessionKeyring
        case NS_STAGE_HOLDER_EXEC: step = .execHolder
        case NS_STAGE_HOLDER_ARGS: step = .holderArguments
        case NS_STAGE_MOUNT_PROPAGATION: step = .mountPropagation
        case NS_STAGE_SETHOSTNAME: step = .sethostname
        case NS_STAGE_MOUNT_PROC: step = .mountProc
        case NS_STAGE_MOUNT_DEVPTS: step = .mountDevpts
        case NS_STAGE_MOUNT_TMPFS: step = .mountTmpfs(path: item(tmpfs))
        case NS_STAGE_MOUNT_BIND: step = .mountBind(target: item(binds))
        case NS_STAGE_BIND_SOURCE: step = .open(path: item(bindSources))
        case NS_STAGE_LOOPBACK: step = .loopback
        case NS_STAGE_WAIT_PARENT: step = .waitingForSupervisor
        case NS_STAGE_SETID_HOLDER: step = .becomeNamespaceRoot
        case NS_STAGE_TIME_OFFSETS: step = .writeTimeOffsets
        case NS_STAGE_UNSHARE_TIME: step = .unshareTime
        case NS_STAGE_DUMPABLE: step = .notDumpable
        case NS_STAGE_LOGINUID: step = .writeLoginUID
        case NS_STAGE_RESOLVE_AS: step = .resolveAs(path: item(tmpfs))
        case NS_STAGE_RLIMIT: step = .setResourceLimit(index)
        case NS_STAGE_TMPFS_NOT_OWNED: step = .tmpfsTargetNotOwned(path: item(tmpfs))
        case NS_STAGE_BIND_NOT_OWNED: step = .bindNotOwned(source: item(bindSources), target: item(binds))
        case NS_STAGE_OPEN_PTY: step = .openPtmx
        case NS_STAGE_CGROUP_JOIN: step = .joinCgroup(index)
        case NS_STAGE_UNSHARE_CGROUP: step = .unshareCgroup
        case NS_STAGE_OVERLAY_FUSE: step = .overlayFuse
        case NS_STAGE_OVERLAY_UPPER: step = .overlayUpper(path: persist == "?" ? "tmpfs" : persist)
        case NS_STAGE_PERSIST_NOT_OWNED: step = .persistNotOwned(path: persist)
        case NS_STAGE_PERSIST_BUSY: step = .persistBusy(path: persist)
        case NS_STAGE_OVERLAY_DAEMON: step = .overlayDaemon
        case NS_STAGE_OVERLAY_MOUNTS: step = .overlayMounts(path: item(["/proc", "/sys", "/dev"]))
        case NS_STAGE_PIVOT_ROOT: step = .pivotRoot
        default: step = .stage(report.stage)
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
