#if canImport(Glibc)
import Glibc
#endif
import CPOSIX
import CSpawn
import POSIX

/// A tmpfs the holder mounts inside a group's mount namespace.
public struct TmpfsMount: Sendable, Hashable {
    /// An absolute path inside the group, reached without symlinks.
    public var path: String
    /// Mount options, e.g. "mode=0700" or "mode=1777,size=64m". nosuid and nodev always apply.
    public var options: String

    public init(path: String, options: String = "mode=0700") {
        self.path = path
        self.options = options
    }
}

/// A host path bound onto a path inside a group's mount namespace.
public struct BindMount: Sendable, Hashable {
    public var source: String
    public var target: String
    public var readOnly: Bool

    public init(source: String, target: String, readOnly: Bool) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }
}

/// Whose rights the holder looks tmpfs targets up with: the caller's filesystem
/// ids and supplementary groups, so that a path the caller could not reach fails
/// for them as it would for the caller (no existence oracle), before the mount
/// itself is made as root.
public struct ResolveCredentials: Sendable, Hashable {
    public var uid: uid_t
    public var gid: gid_t
    public var groups: [gid_t]
    /// Each tmpfs target must be a directory this uid owns (`--require-owner`):
    /// a caller who is not an admin may hide only a directory of their own.
    public var requireOwner: Bool

    public init(uid: uid_t, gid: gid_t, groups: [gid_t], requireOwner: Bool = false) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.requireOwner = requireOwner
    }
}

/// One line of a uid_map or gid_map: `count` ids from `inside` map to ids from `outside`.
public struct IDMapping: Sendable, Hashable, CustomStringConvertible {
    public var inside: UInt32
    public var outside: UInt32
    public var count: UInt32

    public init(inside: UInt32, outside: UInt32, count: UInt32) {
        self.inside = inside
        self.outside = outside
        self.count = count
    }

    public var description: String { "\(inside) \(outside) \(count)" }
}

/// The id maps of a group's user namespace.
public struct UserMaps: Sendable, Hashable {
    public var uids: [IDMapping]
    public var gids: [IDMapping]

    public init(uids: [IDMapping], gids: [IDMapping]) {
        self.uids = uids
        self.gids = gids
    }

    /// A gid map of one id cannot allow setgroups(2): dropping a
    /// supplementary group inside could then grant access outside that
    /// the group denied. "deny" is written first, as newgidmap does.
    public var deniesSetgroups: Bool { gids.count == 1 && gids[0].count == 1 }
}

/// Everything the holder of a new group sets up.
public struct HolderSpec: Sendable {
    public var name: String
    public var namespaces: Set<NamespaceKind>
    public var hostname: String?
    public var tmpfs: [TmpfsMount]
    public var binds: [BindMount]
    /// The tty group, for the group's own devpts instance.
    public var ttyGroup: gid_t
    /// With a user namespace: its maps, written before the holder goes on.
    public var userMaps: UserMaps?
    /// With a time namespace: offsets in seconds.
    public var monotonicOffset: Int64
    public var boottimeOffset: Int64
    /// Look tmpfs targets up as this caller (`--resolve-as`); nil: as the holder
    /// (root, or root of the group's user namespace).
    public var resolveAs: ResolveCredentials?

    public init(name: String, namespaces: Set<NamespaceKind>, hostname: String? = nil,
                tmpfs: [TmpfsMount] = [], binds: [BindMount] = [], ttyGroup: gid_t = 5,
                userMaps: UserMaps? = nil, monotonicOffset: Int64 = 0, boottimeOffset: Int64 = 0) {
        self.name = name
        self.namespaces = namespaces
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.binds = binds
        self.ttyGroup = ttyGroup
        self.userMaps = userMaps
        self.monotonicOffset = monotonicOffset
        self.boottimeOffset = boottimeOffset
    }

    /// The holder's command line (see Sources/nsgroup-holder/holder.c).
    var arguments: [String] {
        var args = ["nsgroup-holder", name, "--wait"]
        let mnt = namespaces.contains(.mnt)
        let user = namespaces.contains(.user)
        if namespaces.contains(.time) { args += ["--time-offsets", String(monotonicOffset), String(boottimeOffset)] }
        if mnt { args.append("--propagation") }
        if namespaces.contains(.uts), let hostname { args += ["--hostname", hostname] }
        if mnt && namespaces.contains(.pid) { args.append("--proc") }
        // The tty group may not be mapped in a user namespace of the group's own.
        if mnt { args += ["--devpts", user ? "-" : String(ttyGroup)] }
        if mnt {
            for bind in binds { args += ["--bind", bind.source, bind.target, bind.readOnly ? "ro" : "rw"] }
            if let resolveAs, !tmpfs.isEmpty {
                args += ["--resolve-as", String(resolveAs.uid), String(resolveAs.gid),
                         resolveAs.groups.isEmpty ? "-" : resolveAs.groups.map(String.init).joined(separator: ",")]
                if resolveAs.requireOwner { args.append("--require-owner") }
            }
            for mount in tmpfs { args += ["--tmpfs", mount.path, mount.options] }
        }
        if namespaces.contains(.net) { args.append("--loopback") }
        return args
    }
}

/// A running holder, as `HolderSpawner` hands it over: the caller owns its pidfd.
public struct SpawnedHolder: ~Copyable {
    public let pidfd: Pidfd
    /// The process start time (clock ticks since boot), to recognise it after a restart.
    public let startTime: UInt64
    /// The group's namespaces, as the kernel names them.
    public let namespaces: [NamespaceID]

    public var pid: pid_t { pidfd.pid }

    /// Hands the pidfd on to its long-term owner.
    public consuming func takePidfd() -> Pidfd {
        pidfd
    }
}

/// Starts holders: the program `nsgroup-holder`, cloned straight into a new
/// group's namespaces.
public struct HolderSpawner: ~Copyable {
    private let executable: FileDescriptor
    /// How long a holder may take to report that it is set up.
    public var setupTimeoutMilliseconds: Int32 = 10_000

    /// Opens the holder executable once, so that later replacing the file on
    /// disk (an upgrade) cannot change what runs as a holder.
    public init(executablePath: String) throws(Errno) {
        let file = try FileDescriptor.open(executablePath, O_RDONLY)
        var st = stat()
        if fstat(file.rawValue, &st) < 0 { throw Errno.current }
        if st.st_mode & S_IFMT != S_IFREG { throw Errno(rawValue: EACCES) }
        executable = file
    }

    /// Clones the holder into new namespaces and waits until it reports that
    /// it is set up. On any failure nothing is left: the holder is killed and
    /// reaped before the error is thrown.
    ///
    /// The holder is cloned waiting: it does nothing until it reads a byte
    /// on its go-ahead pipe. In between, `commit` receives the holder's
    /// identity (pid, start time, namespace ids — the namespaces exist from
    /// the clone on) and records it, so that a supervisor killed at any
    /// moment leaves either a record to check at its next start, or nothing:
    /// if the supervisor dies before the go-ahead, the pipe's write end
    /// closes and the holder exits on its own. A `commit` that fails fails
    /// the spawn with the step `recordHolder` and its errno.
    public func spawn(_ spec: HolderSpec,
                      commit: (_ pid: pid_t, _ startTime: UInt64, _ namespaces: [NamespaceID]) throws(Errno) -> Void = { _, _, _ in }
    ) throws(SpawnError) -> SpawnedHolder {
        // The holder makes its time namespace itself, for its children only,
        // so that the offsets can be written before any process is inside.
        var flags: UInt64 = 0
        for kind in spec.namespaces where kind != .time { flags |= UInt64(UInt32(bitPattern: kind.cloneFlag)) }

        var statusPipe: [Int32] = [-1, -1]
        if ns_pipe_cloexec(&statusPipe) < 0 { throw SpawnError(step: .pipe2, errno: .current) }
        let reader = FileDescriptor(adopting: statusPipe[0])
        let writer = FileDescriptor(adopting: statusPipe[1])
        var syncPipe: [Int32] = [-1, -1]
        if ns_pipe_cloexec(&syncPipe) < 0 { throw SpawnError(step: .pipe2, errno: .current) }
        let goReader = FileDescriptor(adopting: syncPipe[0])
        let goWriter = FileDescriptor(adopting: syncPipe[1])

        var pid: pid_t = 0
        var pidfdRaw: Int32 = -1
        let status = withCStringArray(spec.arguments) { argv in
            var holderSpec = ns_holder_spec(
                clone_flags: flags, exe_fd: executable.rawValue, argv: argv,
                status_fd: writer.rawValue, sync_fd: goReader.rawValue,
                user_namespace: spec.namespaces.contains(.user) ? 1 : 0)
            return ns_spawn_holder(&holderSpec, &pid, &pidfdRaw)
        }
        let cloneError = Errno.current
        _ = consume writer  // only the holder may hold these ends now
        _ = consume goReader
        if status < 0 { throw SpawnError(step: .clone3, errno: cloneError) }
        let pidfd = Pidfd(pid: pid, adopting: pidfdRaw)

        do throws(SpawnError) {
            // With a user namespace, its maps first: the first byte on the
            // go-ahead pipe lets the child become root inside and exec.
            if let maps = spec.userMaps {
                try Self.writeMaps(maps, pid: pid)
                var mapped: UInt8 = 1
                if write(goWriter.rawValue, &mapped, 1) != 1 { throw SpawnError(step: .writeGoAhead, errno: .current) }
            }
            // The holder says when its namespaces are final (its time
            // namespace made); until then they cannot be recorded.
            try awaitReport(NS_STAGE_CLONED, reader: reader, spec: spec)
            let startTime: UInt64
            do { startTime = try ProcFS.startTime(pid: pid) } catch {
                throw SpawnError(step: .readStat(pid: pid), errno: error)
            }
            var ids: [NamespaceID] = []
            for kind in spec.namespaces.sorted() {
                do { ids.append(try NamespaceID.read(pid: pid, kind: kind, entry: kind.holderEntry)) } catch {
                    throw SpawnError(step: .readNamespaceLink(pid: pid, entry: kind.holderEntry), errno: error)
                }
            }
            // The ids were read by pid: make sure it was our holder all along.
            guard pidfd.isAlive else {
                throw SpawnError(step: .holderExitedDuringSetup, errno: Errno(rawValue: EPIPE))
            }
            do throws(Errno) { try commit(pid, startTime, ids) } catch {
                throw SpawnError(step: .recordHolder, errno: error)
            }
            var go: UInt8 = 1
            if write(goWriter.rawValue, &go, 1) != 1 { throw SpawnError(step: .writeGoAhead, errno: .current) }
            try awaitReport(NS_STAGE_OK, reader: reader, spec: spec)
            return SpawnedHolder(pidfd: pidfd, startTime: startTime, namespaces: ids)
        } catch {
            try? pidfd.signal(SIGKILL)
            _ = try? pidfd.reap(block: true)
            throw error
        }
    }

    /// Waits for the holder's next report, which must be `expected`.
    private func awaitReport(_ expected: ns_stage, reader: borrowing FileDescriptor, spec: HolderSpec) throws(SpawnError) {
        var fds = pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)
        let ready = try? retryOnInterrupt { poll(&fds, 1, setupTimeoutMilliseconds) }
        if ready == nil || ready == 0 {
            throw SpawnError(step: .waitingForHolder, errno: .timedOut)
        }
        var report = ns_report()
        let size = MemoryLayout<ns_report>.size
        let n = withUnsafeMutableBytes(of: &report) { raw in
            try? retryOnInterrupt { read(reader.rawValue, raw.baseAddress, size) }
        }
        guard let n, n == size else {
            throw SpawnError(step: .holderExitedDuringSetup, errno: Errno(rawValue: EPIPE))
        }
        if report.stage != Int32(expected.rawValue) {
            throw SpawnError(report: report, tmpfs: spec.tmpfs.map(\.path), binds: spec.binds.map(\.target),
                             bindSources: spec.binds.map(\.source))
        }
    }

    /// Writes /proc/PID/setgroups ("deny" for a single-gid map), gid_map and
    /// uid_map, as root in the parent user namespace.
    static func writeMaps(_ maps: UserMaps, pid: pid_t) throws(SpawnError) {
        func write(_ file: String, _ text: String) throws(SpawnError) {
            let path = "/proc/\(pid)/\(file)"
            do {
                let fd = try FileDescriptor.open(path, O_WRONLY)
                try fd.writeAll(Array(text.utf8))
            } catch {
                throw SpawnError(step: .writeMap(path: path), errno: error)
            }
        }
        if maps.deniesSetgroups { try write("setgroups", "deny") }
        try write("gid_map", maps.gids.map { "\($0)\n" }.joined())
        try write("uid_map", maps.uids.map { "\($0)\n" }.joined())
    }
}
