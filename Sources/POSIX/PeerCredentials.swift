#if canImport(Glibc)
import Glibc
#endif
import CPOSIX

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
        guard let pinned = Pidfd.ofPeer(socket, pid: pid) else { return nil }
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

extension Pidfd {
    /// The process at the other end of `socket` (SO_PEERPIDFD, Linux 6.5+), whose SO_PEERCRED
    /// pid is `pid`; nil where the kernel cannot say. Reads about `pid` made while this is
    /// held are the peer's own if `isAlive` is still true after them: a pid reused by another
    /// process cannot lend its values.
    public static func ofPeer(_ socket: Int32, pid: pid_t) -> Pidfd? {
        let fd = ns_peer_pidfd(socket)
        guard fd >= 0 else { return nil }
        return Pidfd(pid: pid, adopting: fd)
    }
}
