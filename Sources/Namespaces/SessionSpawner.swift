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

/// Starts processes inside groups (see ns_spawn_enter in CSpawn).
public enum SessionSpawner {
    /// Starts the process and returns its pidfd once it has exec'd. The
    /// supervisor is its parent. `stdio` are borrowed: the caller still owns them.
    public static func spawn(_ spec: SessionSpec, namespaces: borrowing NamespaceFiles,
                             stdio: (Int32, Int32, Int32)) throws(SpawnError) -> Pidfd {
        let nsFDs = namespaces.files.rawValues
        let nsTypes = namespaces.kinds.map(\.cloneFlag)
        var pid: pid_t = 0
        var report = ns_report()
        let file = spec.executable
        // Exactly one per resource, or none.
        if let given = spec.resourceLimits, given.count != Int(NS_RLIMIT_COUNT) {
            throw SpawnError(step: .resourceLimitCount(given.count), errno: Errno(rawValue: EINVAL))
        }
        let limits = spec.resourceLimits?.map { ns_rlimit(cur: $0.soft, max: $0.hard) }
        let status = withCStringArray(spec.argv) { argv in
            withCStringArray(spec.environment) { envp in
                nsFDs.withUnsafeBufferPointer { fds in
                    nsTypes.withUnsafeBufferPointer { types in
                        spec.groups.withUnsafeBufferPointer { groups in
                            spec.cwd.withCString { cwd in
                                file.withCString { filePointer in
                                    spec.searchPath.withCString { path in
                                        withOptionalBuffer(limits) { rlimits in
                                            var c = ns_enter_spec()
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
                                            c.controlling_tty = spec.controllingTerminal ? 1 : 0
                                            // setns into a time namespace needs a private mm.
                                            c.share_memory = namespaces.kinds.contains(.time) ? 0 : 1
                                            c.rlimits = rlimits
                                            c.userns_root = spec.userNamespaceRoot ? 1 : 0
                                            c.set_loginuid = spec.loginUID == nil ? 0 : 1
                                            c.loginuid = spec.loginUID ?? PeerCredentials.unsetLoginUID
                                            c.file = filePointer
                                            c.search_path = path
                                            c.argv = argv
                                            c.envp = envp
                                            return ns_spawn_enter(&c, &pid, &report)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if status < 0 {
            throw SpawnError(report: report, namespaces: namespaces.kinds, cwd: spec.cwd, file: file)
        }
        // The session is our unreaped child: its pid cannot be reused before
        // we reap it, so opening the pidfd by pid is safe.
        do {
            return try Pidfd.open(pid: pid)
        } catch {
            throw SpawnError(step: .pidfdOpen(pid: pid), errno: error)
        }
    }
}

/// Calls `body` with a pointer to `array`'s elements, or with nil when there is no array.
private func withOptionalBuffer<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
