#if canImport(Glibc)
import Glibc
#endif
import CSpawn
import POSIX

/// Everything needed to start one process inside a group as its caller.
public struct SessionSpec {
    /// The caller's identity: the process gets exactly these.
    public var uid: uid_t
    public var gid: gid_t
    public var groups: [gid_t]
    /// Directory inside the group; with `cwdFallback`, "/" when it cannot be entered.
    public var cwd: String
    public var cwdFallback: Bool
    /// The program to run: a path, or a name looked up in `searchPath`.
    public var executable: String
    /// The arguments, argv[0] included (for a login shell, "-bash").
    public var argv: [String]
    public var environment: [String]
    public var searchPath: String
    /// Make fd 0 the controlling terminal of the new session (interactive).
    public var controllingTerminal: Bool
    /// The caller's resource limits, every one (see `PeerProcess.limits`), set
    /// before the switch to `uid`; they replace the supervisor's, NOFILE
    /// included. Nil keeps the supervisor's.
    public var resourceLimits: [ResourceLimit]?
    /// Entering the group's user namespace (uid and gid are then the ids
    /// inside, normally 0). `groups` are set before joining it, in the host's
    /// user namespace, and kept inside (where setgroups may be denied): the
    /// owner's own groups, or none (`[]`) for someone entering through the
    /// owner's user namespace.
    public var userNamespaceRoot = false
    /// The audit loginuid to give the process (written to /proc/self/loginuid
    /// before any namespace is entered; 4294967295 is "unset"), or nil to
    /// leave it the supervisor's.
    public var loginUID: UInt32?
    /// The file mode creation mask the process starts with: its caller's, as if it ran
    /// the command directly (a login's 022 where the caller's is not known).
    public var umask: mode_t = 0o022

    public init(uid: uid_t, gid: gid_t, groups: [gid_t], cwd: String, cwdFallback: Bool, executable: String,
                argv: [String], environment: [String], searchPath: String, controllingTerminal: Bool) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.cwd = cwd
        self.cwdFallback = cwdFallback
        self.executable = executable
        self.argv = argv
        self.environment = environment
        self.searchPath = searchPath
        self.controllingTerminal = controllingTerminal
    }
}

/// The namespace files of a group's holder, opened in the order they are entered.
public struct NamespaceFiles: ~Copyable {
    public let kinds: [NamespaceKind]
    let files: ReceivedDescriptors

    /// Opens /proc/PID/ns/* of the holder for each kind, in `NamespaceKind.enterOrder`,
    /// then checks through its pidfd that the holder was alive throughout, so
    /// a reused pid cannot hand over someone else's namespaces.
    public init(holder: borrowing Pidfd, kinds: Set<NamespaceKind>) throws(Errno) {
        // (A caller who is not to be root in the group's user namespace is
        // given kinds without .user: the other namespaces are entered from
        // the host's user namespace, whose root owns every namespace.)
        let ordered = NamespaceKind.enterOrder.filter { kinds.contains($0) }
        let files = ReceivedDescriptors()
        for kind in ordered {
            let fd = try FileDescriptor.open("/proc/\(holder.pid)/ns/\(kind.holderEntry)", O_RDONLY)
            files.append(contentsOf: [fd.release()])
        }
        guard holder.isAlive else { throw Errno(rawValue: ESRCH) }
        self.kinds = ordered
        self.files = files
    }
}

/// The terminal a session gets, opened by the launch's first child (never on
/// the supervisor's thread: it is reached through the group's tree).
public struct TerminalRequest {
    /// The group's /proc/HOLDER/root (O_PATH), borrowed until `SessionLaunch.start`
    /// returns; nil for the host's /dev/ptmx.
    public var groupRoot: Int32?
    /// The slave's owner; its group is `ttyGroup`, its mode 0620.
    public var uid: uid_t
    public var ttyGroup: gid_t
    public var rows: UInt16
    public var columns: UInt16

    public init(groupRoot: Int32?, uid: uid_t, ttyGroup: gid_t, rows: UInt16, columns: UInt16) {
        self.groupRoot = groupRoot
        self.uid = uid
        self.ttyGroup = ttyGroup
        self.rows = rows
        self.columns = columns
    }
}

/// Where a session goes in the cgroup hierarchies: the first child of the
/// enter is cloned into `directory` (unified) and joins each v1 hierarchy
/// through `procs`; the session inherits both. Borrowed descriptors: the
/// caller keeps them open until `start` returns.
public struct SessionCgroup: Sendable {
    public var directory: Int32
    public var procs: [Int32]

    public init(directory: Int32, procs: [Int32]) {
        self.directory = directory
        self.procs = procs
    }
}

/// A process on its way into a group (ns_spawn_enter_start): started without
/// waiting, then followed through its status channel, which the owner of the
/// launch watches (an event source in nsgroupd) and hands to `advance()`
/// whenever it is readable. Nothing here blocks.
///
/// Whoever owns it reaps what it started: the first child (`takeFirstChild`)
/// always, and the session when the launch failed or was killed.
public final class SessionLaunch {
    /// How far it is.
    public enum State {
        /// The children are still at work (the channel is open).
        case running
        /// The session has exec'd its program: `takeSession()` gives its pidfd.
        case started
        /// A step failed, or the launch was killed; nothing will run the program.
        case failed(SpawnError)
    }

    /// The supervisor's end of the status channel (non-blocking, close-on-exec).
    public let channel: FileDescriptor
    private var firstChild: Pidfd?
    private var session: Pidfd?
    private var terminal: FileDescriptor?
    private var failure: SpawnError?
    private var ended: State?
    private let kinds: [NamespaceKind]
    private let cwd: String
    private let file: String

    private init(channel: consuming FileDescriptor, firstChild: consuming Pidfd, kinds: [NamespaceKind], cwd: String, file: String) {
        self.channel = channel
        self.firstChild = consume firstChild
        self.kinds = kinds
        self.cwd = cwd
        self.file = file
    }

    /// Starts the two children of an enter and returns at once. `stdio` are
    /// borrowed (the children have their own copies when this returns), as is
    /// `terminal.groupRoot`; with `terminal`, stdio is the new terminal's slave
    /// and `stdio` is ignored.
    public static func start(_ spec: SessionSpec, namespaces: borrowing NamespaceFiles, stdio: (Int32, Int32, Int32),
                             terminal: TerminalRequest? = nil, cgroup: SessionCgroup? = nil) throws(SpawnError) -> SessionLaunch {
        let join = cgroup?.procs ?? []
        let nsFDs = namespaces.files.rawValues
        let nsTypes = namespaces.kinds.map(\.cloneFlag)
        let file = spec.executable
        // Exactly one per resource, or none.
        if let given = spec.resourceLimits, given.count != Int(NS_RLIMIT_COUNT) {
            throw SpawnError(step: .resourceLimitCount(given.count), errno: Errno(rawValue: EINVAL))
        }
        let limits = spec.resourceLimits?.map { ns_rlimit(cur: $0.soft, max: $0.hard) }
        var channel: Int32 = -1
        var firstPID: pid_t = 0
        var firstPidfd: Int32 = -1
        let status = withCStringArray(spec.argv) { argv in
            withCStringArray(spec.environment) { envp in
                nsFDs.withUnsafeBufferPointer { fds in
                    nsTypes.withUnsafeBufferPointer { types in
                        spec.groups.withUnsafeBufferPointer { groups in
                            spec.cwd.withCString { cwd in
                                file.withCString { filePointer in
                                    spec.searchPath.withCString { path in
                                        withOptionalBuffer(limits) { rlimits in
                                          join.withUnsafeBufferPointer { join in
                                            var c = ns_enter_spec()
                                            c.cgroup_fd = cgroup?.directory ?? -1
                                            c.join_fds = join.baseAddress
                                            c.join_count = join.count
                                            c.ns_fds = fds.baseAddress
                                            c.ns_types = types.baseAddress
                                            c.ns_count = fds.count
                                            c.cwd = cwd
                                            c.cwd_fallback = spec.cwdFallback ? 1 : 0
                                            c.uid = spec.uid
                                            c.gid = spec.gid
                                            c.groups = groups.baseAddress
                                            c.ngroups = groups.count
                                            c.stdio = stdio
                                            if let terminal {
                                                c.pty = 1
                                                c.pty_root_fd = terminal.groupRoot ?? -1
                                                c.pty_uid = terminal.uid
                                                c.tty_gid = terminal.ttyGroup
                                                c.rows = terminal.rows
                                                c.cols = terminal.columns
                                            }
                                            c.controlling_tty = spec.controllingTerminal ? 1 : 0
                                            // setns into a time namespace needs a memory of one's own.
                                            c.share_memory = namespaces.kinds.contains(.time) ? 0 : 1
                                            c.rlimits = rlimits
                                            c.userns_root = spec.userNamespaceRoot ? 1 : 0
                                            c.set_loginuid = spec.loginUID == nil ? 0 : 1
                                            c.loginuid = spec.loginUID ?? PeerCredentials.unsetLoginUID
                                            c.umask = UInt32(spec.umask & 0o777)
                                            c.file = filePointer
                                            c.search_path = path
                                            c.argv = argv
                                            c.envp = envp
                                            return ns_spawn_enter_start(&c, &channel, &firstPID, &firstPidfd)
                                          }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if status < 0 { throw SpawnError(step: .clone3, errno: .current) }
        return SessionLaunch(channel: FileDescriptor(adopting: channel), firstChild: Pidfd(pid: firstPID, adopting: firstPidfd),
                             kinds: namespaces.kinds, cwd: spec.cwd, file: file)
    }

    /// Reads every report waiting on the channel. `.running` until end of
    /// file; then, and from then on, how it ended.
    public func advance() -> State {
        if let ended { return ended }
        var record = ns_report()
        let size = MemoryLayout<ns_report>.size
        while true {
            let received: UnixSocket.Received
            do {
                received = try withUnsafeMutableBytes(of: &record) { (raw) throws(Errno) in
                    try UnixSocket.receive(channel.rawValue, into: raw)
                }
            } catch {
                if error.rawValue == EAGAIN || error.rawValue == EWOULDBLOCK { return .running }
                return end(SpawnError(step: .clone3, errno: error))
            }
            let descriptors = ReceivedDescriptors(received.descriptors)
            if received.count == 0 { return end(nil) }
            guard received.count == size else { continue }
            switch ns_stage(UInt32(record.stage)) {
            case NS_STAGE_PTY_MASTER:
                if terminal == nil { terminal = descriptors.take(0) }
            case NS_STAGE_FORKED:
                // Our child (CLONE_PARENT) and not reaped: its pid cannot be reused before we reap it.
                do {
                    session = try Pidfd.open(pid: record.pid)
                } catch {
                    if failure == nil { failure = SpawnError(step: .pidfdOpen(pid: record.pid), errno: error) }
                }
            case NS_STAGE_OK:
                break
            default:
                if failure == nil { failure = SpawnError(report: record, namespaces: kinds, cwd: cwd, file: file) }
            }
        }
    }

    private func end(_ error: SpawnError?) -> State {
        let state: State
        if let error = failure ?? error {
            state = .failed(error)
        } else if session == nil {
            state = .failed(SpawnError(step: .clone3, errno: Errno(rawValue: ECHILD)))
        } else {
            state = .started
        }
        ended = state
        return state
    }

    /// Ends the launch: SIGKILL to both children. The channel then reaches
    /// end of file (once they are gone) and the launch ends as failed.
    public func kill() {
        signalChildren()
        if failure == nil { failure = SpawnError(step: .killed, errno: Errno(rawValue: ECANCELED)) }
    }

    /// Ends the launch for having taken longer than `seconds`: kills both
    /// children and says so from now on.
    public func timeOut(after seconds: Int) -> State {
        // What has arrived counts: the session's pid, above all, and an end
        // that came in the same pass as the timer (then it stands).
        let state = advance()
        if case .started = state { return state }
        signalChildren()
        if case .failed = state { return state }
        let failed = State.failed(SpawnError(step: .waitingForSession(seconds: seconds), errno: .timedOut))
        ended = failed
        return failed
    }


    private func signalChildren() {
        try? session?.signal(SIGKILL)
        try? firstChild?.signal(SIGKILL)
    }

    /// The first child's pidfd, for reaping (it exits on its own, right after its report).
    public func takeFirstChild() -> Pidfd? { firstChild.take() }

    /// The session's pidfd: to watch once started, to reap after a failure.
    public func takeSession() -> Pidfd? { session.take() }

    /// The terminal's master, when the launch opened one.
    public func takeTerminal() -> FileDescriptor? { terminal.take() }
}

/// Calls `body` with a pointer to `array`'s elements, or with nil when there is no array.
private func withOptionalBuffer<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
