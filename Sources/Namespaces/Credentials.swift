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
    /// The peer's audit loginuid at connect time (`unsetLoginUID` when it has
    /// none), or nil when it could not be read from a process known to be the
    /// peer: then nobody's should be assumed.
    public let loginUID: UInt32?

    /// What /proc/PID/loginuid says of a process that has no login.
    public static let unsetLoginUID = UInt32.max

    public init(pid: pid_t, uid: uid_t, gid: gid_t, groups: [gid_t], loginUID: UInt32? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.loginUID = loginUID
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
                                   ?? UserDatabase.groupList(uid: uid, primary: gid),
                               loginUID: loginUID(socket, pid: pid))
    }

    /// The peer's /proc/PID/loginuid, read while the peer is pinned by
    /// SO_PEERPIDFD: if the pidfd still refers to a live process after the
    /// read, the pid was the peer's all along and not a reused one. (The
    /// kernel keeps no loginuid with the socket, so this is the peer's value
    /// now, which only a process with CAP_AUDIT_CONTROL can have changed.)
    /// Nil when that cannot be made sure of.
    private static func loginUID(_ socket: Int32, pid: pid_t) -> UInt32? {
        guard pid > 0 else { return nil }
        let fd = ns_peer_pidfd(socket)
        guard fd >= 0 else { return nil }
        let pinned = Pidfd(pid: pid, adopting: fd)
        guard let text = try? ProcFS.readText("/proc/\(pid)/loginuid", limit: 32),
              let value = UInt32(text.split(separator: "\n").first ?? "")
        else { return nil }
        return pinned.isAlive ? value : nil
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
