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
    /// A bind of the caller's own (create's "home"): both ends are looked up with
    /// the caller's rights (`resolveAs`) and must be directories this uid owns, as
    /// the holder sees ids (0 in a user namespace, where the owner is root).
    public var owner: uid_t?

    public init(source: String, target: String, readOnly: Bool, owner: uid_t? = nil) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.owner = owner
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

/// A group's root as a copy-on-write overlay of the host's (holder.c,
/// `--overlay-root`), served by fuse-overlayfs as root of the group's user
/// namespace: what is written inside goes to the upper layer.
public struct OverlayRoot: Sendable, Equatable {
    public enum Upper: Sendable, Equatable {
        /// A tmpfs with these mount options (its size): gone with the group.
        case tmpfs(String)
        /// upper/ and work/ of this directory of the owner's: kept for a later group.
        case persist(String)
    }

    public var executable: String
    public var upper: Upper

    public init(executable: String, upper: Upper) {
        self.executable = executable
        self.upper = upper
    }
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
    /// Paths of `tmpfs` on directories everyone shares (create's privateTmp: /tmp,
    /// /var/tmp): looked up as the holder, never as the caller, with no owner check.
    public var sharedTmpfs: Set<String> = []
    /// create's root "overlay": the group's root is a copy-on-write view of the host's.
    public var overlayRoot: OverlayRoot?

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

    /// Where the holder of a group with an overlay root keeps its devpts instance open
    /// (ns_report.h): a session's terminal comes from /proc/HOLDER/fd/N.
    public static let devptsDescriptor = Int32(NS_HOLDER_DEVPTS_FD)

    /// The persist directory of an overlay root, for error messages.
    var persistDirectory: String {
        if case .persist(let directory) = overlayRoot?.upper { return directory }
        return "?"
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
            for bind in binds {
                if let owner = bind.owner {
                    args += ["--own-bind", bind.source, bind.target, String(owner)]
                } else {
                    args += ["--bind", bind.source, bind.target, bind.readOnly ? "ro" : "rw"]
                }
            }
            if let resolveAs, !tmpfs.isEmpty || binds.contains(where: { $0.owner != nil }) {
                args += ["--resolve-as", String(resolveAs.uid), String(resolveAs.gid),
                         resolveAs.groups.isEmpty ? "-" : resolveAs.groups.map(String.init).joined(separator: ",")]
                if resolveAs.requireOwner { args.append("--require-owner") }
            }
            for mount in tmpfs { args += [sharedTmpfs.contains(mount.path) ? "--shared-tmpfs" : "--tmpfs", mount.path, mount.options] }
            if let overlayRoot {
                switch overlayRoot.upper {
                case .tmpfs(let options): args += ["--overlay-root", overlayRoot.executable, "tmpfs", options]
                case .persist(let directory): args += ["--overlay-root", overlayRoot.executable, "persist", directory]
                }
            }
        }
        if namespaces.contains(.net) { args.append("--loopback") }
        return args
    }
}

/// Where a new holder goes in the cgroup hierarchies. The descriptors are
/// borrowed: the caller keeps them open until `start` returns.
public struct HolderCgroup: Sendable {
    /// The group's cgroup in the unified hierarchy (a directory): the clone lands there.
    public var groupDirectory: Int32
    /// cgroup.procs of the group's cgroup in each v1 hierarchy, joined next.
    public var groupProcs: [Int32]
    /// cgroup.procs of the holder's own leaf in every hierarchy, joined last
    /// (after the group's cgroup namespace is made, so that its root is the
    /// group's cgroup and sessions, siblings of the leaf, are inside it).
    public var leafProcs: [Int32]

    public init(groupDirectory: Int32, groupProcs: [Int32], leafProcs: [Int32]) {
        self.groupDirectory = groupDirectory
        self.groupProcs = groupProcs
        self.leafProcs = leafProcs
    }
}

/// Starts holders: the program `nsgroup-holder`, cloned straight into a new
/// group's namespaces.
public struct HolderSpawner: ~Copyable {
    private let executable: FileDescriptor

    /// Opens the holder executable once, so that later replacing the file on
    /// disk (an upgrade) cannot change what runs as a holder.
    public init(executablePath: String) throws(Errno) {
        let file = try FileDescriptor.open(executablePath, O_RDONLY)
        var st = stat()
        if fstat(file.rawValue, &st) < 0 { throw Errno.current }
        if st.st_mode & S_IFMT != S_IFREG { throw Errno(rawValue: EACCES) }
        executable = file
    }

    /// Clones the holder into new namespaces and returns at once with its
    /// launch, which the caller follows through its status pipe (see
    /// `HolderLaunch`). With a user namespace its maps are written first (as
    /// root of the parent user namespace, through /proc: no user's files).
    public func start(_ spec: HolderSpec, cgroup: HolderCgroup? = nil) throws(SpawnError) -> HolderLaunch {
        // The holder makes its time namespace itself, for its children only,
        // so that the offsets can be written before any process is inside;
        // and its cgroup namespace, when it has a cgroup to go to, once it is
        // in the group's cgroup in every hierarchy.
        let unshareCgroup = cgroup != nil && spec.namespaces.contains(.cgroup)
        var flags: UInt64 = 0
        for kind in spec.namespaces where kind != .time && !(kind == .cgroup && unshareCgroup) {
            flags |= UInt64(UInt32(bitPattern: kind.cloneFlag))
        }

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
        let join = cgroup?.groupProcs ?? []
        let leaf = cgroup?.leafProcs ?? []
        let status = withCStringArray(spec.arguments) { argv in
            join.withUnsafeBufferPointer { join in
                leaf.withUnsafeBufferPointer { leaf in
                    var holderSpec = ns_holder_spec(
                        clone_flags: flags, exe_fd: executable.rawValue, argv: argv,
                        status_fd: writer.rawValue, sync_fd: goReader.rawValue,
                        user_namespace: spec.namespaces.contains(.user) ? 1 : 0,
                        cgroup_fd: cgroup?.groupDirectory ?? -1, join_fds: join.baseAddress, join_count: join.count,
                        unshare_cgroup: unshareCgroup ? 1 : 0, leaf_fds: leaf.baseAddress, leaf_count: leaf.count)
                    return ns_spawn_holder(&holderSpec, &pid, &pidfdRaw)
                }
            }
        }
        let cloneError = Errno.current
        _ = consume writer  // only the holder may hold these ends now
        _ = consume goReader
        if status < 0 { throw SpawnError(step: .clone3, errno: cloneError) }
        let launch = HolderLaunch(spec: spec, pidfd: Pidfd(pid: pid, adopting: pidfdRaw), status: reader, go: goWriter)
        do throws(SpawnError) {
            try launch.prepare()
        } catch {
            launch.kill()
            throw error
        }
        return launch
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

/// A holder on its way (HolderSpawner.start), followed through its status
/// pipe, which the owner watches (an event source in nsgroupd) and hands to
/// `advance()` whenever it is readable. Nothing here blocks.
///
/// The holder is cloned waiting: it does nothing until it reads a byte on its
/// go-ahead pipe. When it says its namespaces are final, `advance()` returns
/// `.cloned` with its identity (start time, namespace ids); the owner records
/// it, so that a supervisor killed at any moment leaves either a record to
/// check at its next start, or nothing (the go-ahead pipe closes with the
/// supervisor and the holder exits), then calls `proceed()`. The holder then
/// sets up its mounts (tmpfs targets and bind sources: paths a user may
/// stall) and says `.ready`. On failure, or when killed, the owner reaps it.
public final class HolderLaunch {
    public enum State {
        case running
        /// The namespaces are final: record them, then `proceed()`.
        case cloned(startTime: UInt64, namespaces: [NamespaceID])
        /// Set up and running: `takePidfd()` hands it over.
        case ready
        case failed(SpawnError)
    }

    /// The read end of the status pipe (non-blocking).
    public let status: FileDescriptor
    private let go: FileDescriptor
    private var pidfd: Pidfd?
    public let pid: pid_t
    private let spec: HolderSpec
    private var expected = NS_STAGE_CLONED
    private var ended: State?

    init(spec: HolderSpec, pidfd: consuming Pidfd, status: consuming FileDescriptor, go: consuming FileDescriptor) {
        self.spec = spec
        self.pid = pidfd.pid
        self.pidfd = consume pidfd
        self.status = status
        self.go = go
    }

    /// The status pipe non-blocking; with a user namespace, its maps: the
    /// first byte on the go-ahead pipe then lets the child become root
    /// inside and exec.
    fileprivate func prepare() throws(SpawnError) {
        let flags = fcntl(status.rawValue, F_GETFL)
        if flags < 0 || fcntl(status.rawValue, F_SETFL, flags | O_NONBLOCK) < 0 {
            throw SpawnError(step: .pipe2, errno: .current)
        }
        if let maps = spec.userMaps {
            try HolderSpawner.writeMaps(maps, pid: pid)
            var mapped: UInt8 = 1
            if write(go.rawValue, &mapped, 1) != 1 { throw SpawnError(step: .writeGoAhead, errno: .current) }
        }
    }

    /// Reads the holder's next report, if one is there.
    public func advance() -> State {
        if let ended { return ended }
        var report = ns_report()
        let size = MemoryLayout<ns_report>.size
        let n = withUnsafeMutableBytes(of: &report) { raw in read(status.rawValue, raw.baseAddress, size) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .running }
        guard n == size else {
            return end(.failed(SpawnError(step: .holderExitedDuringSetup, errno: Errno(rawValue: EPIPE))))
        }
        guard report.stage == Int32(expected.rawValue) else {
            return end(.failed(SpawnError(report: report, tmpfs: spec.tmpfs.map(\.path), binds: spec.binds.map(\.target),
                                          bindSources: spec.binds.map(\.source), persist: spec.persistDirectory)))
        }
        if expected == NS_STAGE_OK { return end(.ready) }
        // The holder says when its namespaces are final (its time namespace
        // made); until then they cannot be recorded.
        let startTime: UInt64
        do { startTime = try ProcFS.startTime(pid: pid) } catch {
            return end(.failed(SpawnError(step: .readStat(pid: pid), errno: error)))
        }
        var ids: [NamespaceID] = []
        for kind in spec.namespaces.sorted() {
            do { ids.append(try NamespaceID.read(pid: pid, kind: kind, entry: kind.holderEntry)) } catch {
                return end(.failed(SpawnError(step: .readNamespaceLink(pid: pid, entry: kind.holderEntry), errno: error)))
            }
        }
        // The ids were read by pid: make sure it was our holder all along.
        guard pidfd?.isAlive == true else {
            return end(.failed(SpawnError(step: .holderExitedDuringSetup, errno: Errno(rawValue: EPIPE))))
        }
        expected = NS_STAGE_OK
        return .cloned(startTime: startTime, namespaces: ids)
    }

    /// Lets the holder go on with its set-up, once its identity is recorded.
    public func proceed() throws(SpawnError) {
        var byte: UInt8 = 1
        if write(go.rawValue, &byte, 1) != 1 { throw SpawnError(step: .writeGoAhead, errno: .current) }
    }

    /// Ends it as failed with `error` (a step of the owner's, or the timeout) and kills the holder.
    @discardableResult
    public func fail(_ error: SpawnError) -> State {
        kill()
        return end(.failed(error))
    }

    /// SIGKILL to the holder (the owner reaps it).
    public func kill() {
        try? pidfd?.signal(SIGKILL)
    }

    /// The holder's pidfd: to keep once ready, to reap otherwise.
    public func takePidfd() -> Pidfd? { pidfd.take() }

    private func end(_ state: State) -> State {
        if ended == nil { ended = state }
        return ended!
    }
}
