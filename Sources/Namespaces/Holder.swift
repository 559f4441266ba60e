#if canImport(Glibc)
import Glibc
#endif
import CSpawn

/// A tmpfs the holder mounts inside a group's mount namespace.
public struct TmpfsMount: Sendable, Hashable {
    /// An absolute path inside the group, reached without symlinks.
    public var path: String
    /// Mount options, e.g. "mode=1777" or "mode=1777,size=64m". nosuid and nodev always apply.
    public var options: String

    public init(path: String, options: String = "mode=1777") {
        self.path = path
        self.options = options
    }
}

/// Everything the holder of a new group sets up.
public struct HolderSpec: Sendable {
    public var name: String
    public var namespaces: Set<NamespaceKind>
    public var hostname: String?
    public var tmpfs: [TmpfsMount]
    /// The tty group, for the group's own devpts instance.
    public var ttyGroup: gid_t

    public init(name: String, namespaces: Set<NamespaceKind>, hostname: String? = nil,
                tmpfs: [TmpfsMount] = [], ttyGroup: gid_t = 5) {
        self.name = name
        self.namespaces = namespaces
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.ttyGroup = ttyGroup
    }

    /// The holder's command line (see Sources/nsgroup-holder/holder.c).
    var arguments: [String] {
        var args = ["nsgroup-holder", name, "--wait"]
        let mnt = namespaces.contains(.mnt)
        if mnt { args.append("--propagation") }
        if namespaces.contains(.uts), let hostname { args += ["--hostname", hostname] }
        if mnt && namespaces.contains(.pid) { args.append("--proc") }
        if mnt { args += ["--devpts", String(ttyGroup)] }
        if mnt {
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
    /// closes and the holder exits on its own.
    public func spawn(_ spec: HolderSpec,
                      commit: (_ pid: pid_t, _ startTime: UInt64, _ namespaces: [NamespaceID]) throws(SpawnError) -> Void = { _, _, _ in }
    ) throws(SpawnError) -> SpawnedHolder {
        // A user namespace needs its maps written and a time namespace its
        // offsets before anything runs inside; until the holder does that,
        // both are refused rather than half made.
        if let kind = spec.namespaces.first(where: { $0 == .user || $0 == .time }) {
            throw SpawnError(step: "clone3(CLONE_NEW\(kind.rawValue.uppercased()))", errno: Errno(rawValue: EOPNOTSUPP))
        }
        var flags: UInt64 = 0
        for kind in spec.namespaces { flags |= UInt64(UInt32(bitPattern: kind.cloneFlag)) }

        var statusPipe: [Int32] = [-1, -1]
        if ns_pipe_cloexec(&statusPipe) < 0 { throw SpawnError(step: "pipe2", errno: .current) }
        let reader = FileDescriptor(adopting: statusPipe[0])
        let writer = FileDescriptor(adopting: statusPipe[1])
        var syncPipe: [Int32] = [-1, -1]
        if ns_pipe_cloexec(&syncPipe) < 0 { throw SpawnError(step: "pipe2", errno: .current) }
        let goReader = FileDescriptor(adopting: syncPipe[0])
        let goWriter = FileDescriptor(adopting: syncPipe[1])

        var pid: pid_t = 0
        var pidfdRaw: Int32 = -1
        let status = withCStringArray(spec.arguments) { argv in
            var holderSpec = ns_holder_spec(
                clone_flags: flags, exe_fd: executable.rawValue, argv: argv,
                status_fd: writer.rawValue, sync_fd: goReader.rawValue)
            return ns_spawn_holder(&holderSpec, &pid, &pidfdRaw)
        }
        let cloneError = Errno.current
        _ = consume writer  // only the holder may hold these ends now
        _ = consume goReader
        if status < 0 { throw SpawnError(step: "clone3", errno: cloneError) }
        let pidfd = Pidfd(pid: pid, adopting: pidfdRaw)

        do throws(SpawnError) {
            // A holder that died before its go-ahead (it could not even be
            // exec'd) reports why on the status pipe, or at least that it died.
            func died() throws(SpawnError) -> Never {
                try awaitReady(reader: reader, spec: spec)
                throw SpawnError(step: "nsgroup-holder exited during set-up", errno: Errno(rawValue: EPIPE))
            }
            let startTime: UInt64
            do { startTime = try ProcFS.startTime(pid: pid) } catch {
                if !pidfd.isAlive { try died() }
                throw SpawnError(step: "read /proc/\(pid)/stat", errno: error)
            }
            var ids: [NamespaceID] = []
            for kind in spec.namespaces.sorted() {
                do { ids.append(try NamespaceID.read(pid: pid, kind: kind, entry: kind.holderEntry)) } catch {
                    if !pidfd.isAlive { try died() }
                    throw SpawnError(step: "readlink(/proc/\(pid)/ns/\(kind.holderEntry))", errno: error)
                }
            }
            // The ids were read by pid: make sure it was our holder all along.
            guard pidfd.isAlive else { try died() }
            try commit(pid, startTime, ids)
            var go: UInt8 = 1
            if write(goWriter.rawValue, &go, 1) != 1 { throw SpawnError(step: "write(go-ahead)", errno: .current) }
            try awaitReady(reader: reader, spec: spec)
            return SpawnedHolder(pidfd: pidfd, startTime: startTime, namespaces: ids)
        } catch {
            try? pidfd.signal(SIGKILL)
            _ = try? pidfd.reap(block: true)
            throw error
        }
    }

    private func awaitReady(reader: borrowing FileDescriptor, spec: HolderSpec) throws(SpawnError) {
        var fds = pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)
        let ready = try? retryOnInterrupt { poll(&fds, 1, setupTimeoutMilliseconds) }
        if ready == nil || ready == 0 {
            throw SpawnError(step: "waiting for nsgroup-holder", errno: .timedOut)
        }
        var report = ns_report()
        let size = MemoryLayout<ns_report>.size
        let n = withUnsafeMutableBytes(of: &report) { raw in
            try? retryOnInterrupt { read(reader.rawValue, raw.baseAddress, size) }
        }
        guard let n, n == size else {
            throw SpawnError(step: "nsgroup-holder exited during set-up", errno: Errno(rawValue: EPIPE))
        }
        if report.stage != Int32(NS_STAGE_OK.rawValue) {
            throw SpawnError(report: report, tmpfs: spec.tmpfs.map(\.path))
        }
    }
}

/// Runs `body` with a NULL-terminated C array of copies of `strings`.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
