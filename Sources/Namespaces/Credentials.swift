#if canImport(Glibc)
import Glibc
#endif
import CSpawn

/// Who is on the other end of a Unix socket, as the kernel says (never as the
/// peer says): SO_PEERCRED at connect time, the supplementary groups from the
/// peer's /proc/PID/status, and the peer pinned by SO_PEERPIDFD.
public struct PeerCredentials: Sendable, Hashable {
    public let pid: pid_t
    public let uid: uid_t
    public let gid: gid_t
    /// Supplementary groups, read at connect time.
    public let groups: [gid_t]

    public init(pid: pid_t, uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// Reads the credentials of the peer of a connected socket. The groups
    /// come from /proc/PID/status; the pid is pinned with SO_PEERPIDFD so a
    /// peer that exits and is replaced by another process under the same pid
    /// cannot lend us someone else's groups. When the peer's /proc entry cannot
    /// be read (it died, or lives in a pid namespace we cannot see) the groups
    /// come from the group database for its uid instead.
    public static func of(socket: Int32) throws(Errno) -> PeerCredentials {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        if ns_peer_credentials(socket, &pid, &uid, &gid) < 0 { throw Errno.current }
        let pinned: Pidfd? = {
            let fd = ns_peer_pidfd(socket)
            return fd >= 0 ? Pidfd(pid: pid, adopting: fd) : nil
        }()
        var groups: [gid_t]?
        if pid > 0, let read = try? ProcFS.supplementaryGroups(pid: pid) {
            // Trust the file only if the pinned peer was alive while it was read.
            if let pinned { if pinned.isAlive { groups = read } } else { groups = read }
        }
        return PeerCredentials(pid: pid, uid: uid, gid: gid,
                               groups: groups ?? UserDatabase.groupList(uid: uid, primary: gid))
    }

    /// Whether `gid` is the primary or a supplementary group.
    public func isMember(of gid: gid_t) -> Bool {
        self.gid == gid || groups.contains(gid)
    }
}
