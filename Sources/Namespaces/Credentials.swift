#if canImport(Glibc)
import Glibc
#endif
import CSpawn

/// Who is on the other end of a Unix socket, as the kernel says (never as the
/// peer says): uid, gid and pid from SO_PEERCRED and the supplementary groups
/// from SO_PEERGROUPS, both recorded by the kernel when the peer connected.
public struct PeerCredentials: Sendable, Hashable {
    public let pid: pid_t
    public let uid: uid_t
    public let gid: gid_t
    /// Supplementary groups, read at connect time.
    public let groups: [gid_t]

    /// What /proc/PID/loginuid says of a process that has no login.
    public static let unsetLoginUID = UInt32.max

    public init(pid: pid_t, uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// Reads the credentials of the peer of a connected socket.
    ///
    /// The groups are the kernel's record from connect time (SO_PEERGROUPS,
    /// Linux 4.13+), so nothing the peer does later changes them. Where that
    /// is unavailable they are read from the peer's /proc/PID/status while
    /// the peer is pinned by SO_PEERPIDFD (a pid reused by another process
    /// cannot lend its groups), and failing that from the group database.
    public static func of(socket: Int32) throws(Errno) -> PeerCredentials {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        if ns_peer_credentials(socket, &pid, &uid, &gid) < 0 { throw Errno.current }
        return PeerCredentials(pid: pid, uid: uid, gid: gid,
                               groups: kernelGroups(socket) ?? procGroups(socket, pid: pid)
                                   ?? UserDatabase.groupList(uid: uid, primary: gid))
    }

    private static func kernelGroups(_ socket: Int32) -> [gid_t]? {
        var capacity: Int32 = 64
        while capacity <= 65536 {
            var groups = [gid_t](repeating: 0, count: Int(capacity))
            var count = capacity
            if ns_peer_groups(socket, &groups, &count) == 0 { return Array(groups[0..<Int(count)]) }
            guard errno == ERANGE, count > capacity else { return nil }
            capacity = count
        }
        return nil
    }

    private static func procGroups(_ socket: Int32, pid: pid_t) -> [gid_t]? {
        guard pid > 0, let groups = try? ProcFS.supplementaryGroups(pid: pid) else { return nil }
        let fd = ns_peer_pidfd(socket)
        guard fd >= 0 else { return nil }
        let pinned = Pidfd(pid: pid, adopting: fd)
        return pinned.isAlive ? groups : nil
    }

    /// Whether `gid` is the primary or a supplementary group.
    public func isMember(of gid: gid_t) -> Bool {
        self.gid == gid || groups.contains(gid)
    }
}

/// A process's resource limit, as prlimit(2) reports it (RLIM_INFINITY is UInt64.max).
public struct ResourceLimit: Sendable, Hashable {
    public var soft: UInt64
    public var hard: UInt64

    public init(soft: UInt64, hard: UInt64) {
        self.soft = soft
        self.hard = hard
    }
}

/// What a session takes from the process that connected, beyond its ids: its audit loginuid
/// and its resource limits (pam_limits' nproc, nofile, …). The kernel keeps neither with the
/// socket, so both are read from /proc/PID and prlimit(PID) when a session is to start, while
/// the peer is pinned by SO_PEERPIDFD: if the pidfd still refers to a live process after the
/// reads, the pid was the peer's all along and not a reused one. (Raising a hard limit or
/// changing a set loginuid needs CAP_SYS_RESOURCE or CAP_AUDIT_CONTROL, so a peer can only
/// have lowered them since connect.)
public struct PeerProcess: Sendable, Hashable {
    /// The loginuid (`PeerCredentials.unsetLoginUID` when the peer has none), or nil when the
    /// kernel has no audit support (no /proc/self/loginuid).
    public let loginUID: UInt32?
    /// Every resource limit, indexed by resource number (RLIMIT_CPU … RLIMIT_RTTIME).
    public let limits: [ResourceLimit]

    public init(loginUID: UInt32?, limits: [ResourceLimit]) {
        self.loginUID = loginUID
        self.limits = limits
    }

    /// Whether this kernel keeps audit loginuids at all.
    public static let kernelHasAudit = access("/proc/self/loginuid", F_OK) == 0

    /// Reads the peer of `socket`, process `pid` (its SO_PEERCRED pid); nil unless every read
    /// was the peer's own: SO_PEERPIDFD names the process that connected, and it must still
    /// be there after the reads, so a reused pid cannot lend its values. Read when a session
    /// is to be started, not at accept: only `enter` needs it, and a client waiting for its
    /// reply is alive then.
    public static func read(_ socket: Int32, pid: pid_t) -> PeerProcess? {
        guard pid > 0 else { return nil }
        let fd = ns_peer_pidfd(socket)
        guard fd >= 0 else { return nil }
        let pinned = Pidfd(pid: pid, adopting: fd)
        // prlimit(2) of another user's process needs CAP_SYS_RESOURCE; where the supervisor
        // runs without it, the same numbers come from /proc/PID/limits.
        var raw = [ns_rlimit](repeating: ns_rlimit(), count: Int(NS_RLIMIT_COUNT))
        let limits: [ResourceLimit]
        if ns_read_rlimits(pid, &raw) == 0 {
            limits = raw.map { ResourceLimit(soft: $0.cur, hard: $0.max) }
        } else if errno == EPERM, let read = try? ProcFS.resourceLimits(pid: pid), read.count == Int(NS_RLIMIT_COUNT) {
            limits = read
        } else {
            return nil
        }
        var loginUID: UInt32?
        if kernelHasAudit {
            guard let text = try? ProcFS.readText("/proc/\(pid)/loginuid", limit: 32),
                  let value = UInt32(text.split(separator: "\n").first ?? "")
            else { return nil }
            loginUID = value
        }
        guard pinned.isAlive else { return nil }
        return PeerProcess(loginUID: loginUID, limits: limits)
    }
}

