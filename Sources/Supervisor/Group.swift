#if canImport(Glibc)
import Glibc
#endif
import Namespaces
import Cgroups
import POSIX
import RPC
import Systemd

/// One live group: its record, and the holder that keeps its namespaces.
/// Owned by the GroupRegistry; touched only on the event loop's thread.
final class Group {
    /// Changes only through share and unshare (and is then saved).
    var record: GroupRecord { didSet { cachedInfoJSON = nil; cachedListJSON = nil } }
    let holder: Pidfd
    /// Watches the holder's pidfd: readable once the holder has exited.
    var holderWatch: EventSource?
    /// Its pasta while it runs (PastaLauncher), watched through its pidfd.
    var pasta: PastaProcess?
    /// Set once destroy has killed the holder; the group goes when it is reaped.
    var destroying = false
    /// Replies waiting for the holder to be reaped (each destroy of this group).
    var destroyWaiters: [Completion] = []
    /// Why it is being destroyed: "request", "lifetime" or "idle" (events, journal).
    var destroyReason = "request"
    /// Who asked for it to be destroyed (destroyReason "request"): its sessions' end records name them.
    var destroyedBy: uid_t?
    /// Stopped by `freeze` (cgroup.freeze) until `thaw`.
    var frozen = false { didSet { cachedListJSON = nil } }
    /// What its cgroup used when the Sweep last read it (at most a second ago): what
    /// `list` shows, so that a list of thousands of groups reads no file.
    var usageSnapshot: ResourceUsage? { didSet { if oldValue != usageSnapshot { cachedListJSON = nil } } }
    /// `list`'s entry for the group: the description with the snapshot, kept between changes.
    var cachedListJSON: JSONValue?
    /// When a session last ran (monotonic seconds), for `idle`.
    var lastActive = monotonicSeconds()
    /// OOM kills in its cgroup already reported.
    var oomKillsReported: UInt64 = 0
    /// Its cgroup when the group is a unit of systemd's, the scope's (GroupUnits); nil when
    /// it is below nsgroupd's own cgroup (users/UID/group-NAME). Set by create and readoption.
    var scope: CgroupNode?
    /// Who has a guest cgroup in the group (users/UID/guest-NAME): everyone but its person
    /// who ran a session there. Written only by Containment.
    var guests: Set<uid_t> = []
    /// OOM kills in session cgroups removed since (v1 counts them only there).
    var oomKillsOfRemovedSessions: UInt64 = 0
    /// OOM kills last read in each guest's scope (a group that is a unit), by uid.
    var guestOOMKills: [uid_t: UInt64] = [:]
    /// Which registration of this name it is (GroupRegistry.register): records that
    /// outlive the group, like ended sessions, name it, not just the name.
    var instance: UInt64 = 0
    /// Processes started by `enter`, by session number. Written only by the
    /// SessionTable (a session's start, adoption and end).
    var sessions: [UInt64: Session] = [:] { didSet { cachedInfoJSON = nil; cachedListJSON = nil } }
    /// Enters under way into this group (their process has not exec'd yet), so that
    /// ending the group ends them too: none may start in a group that is gone. Written
    /// only by the EnterHandler.
    var launching: [ObjectIdentifier: SessionLaunch] = [:]
    /// `info.json`, kept between changes: `list` and `inspect` are most of what the
    /// supervisor answers, and building the description is most of their cost.
    private var cachedInfoJSON: JSONValue?

    /// A group whose record has no id yet (one an earlier version of the supervisor
    /// wrote) gets one here; the next save keeps it.
    init(record: GroupRecord, holder: consuming Pidfd) {
        var record = record
        if record.groupID == nil { record.groupID = RandomID.make() }
        self.record = record
        self.holder = holder
    }

    var name: String { record.name }
    /// NSGROUP_GROUP_ID: this instance's random id (always set once the group is built).
    var id: String { record.groupID ?? "" }
    var owner: uid_t { record.owner }
    var members: [Member] { record.members }

    /// What `inspect` answers and `list` has one of per group (recomputed after a change).
    var infoJSON: JSONValue {
        if let cachedInfoJSON { return cachedInfoJSON }
        let json = info.json
        cachedInfoJSON = json
        return json
    }

    var info: GroupInfo {
        GroupInfo(
            name: record.name,
            owner: record.owner,
            ownerName: record.ownerName,
            namespaces: record.namespaces.map { (kind: $0.kind.rawValue, id: $0.description) },
            holder: record.holderPID,
            created: Timestamp.format(secondsSinceEpoch: record.created),
            hostname: record.hostname,
            tmpfs: record.tmpfs.map(\.description),
            sessions: sessions.values.sorted { $0.id < $1.id }.map(\.info),
            members: record.members.map(\.description)
        )
        .with(record)
    }
}

/// What must be known of a group to describe it and to recognise its holder
/// again after a restart. This is what the state file holds.
package struct GroupRecord: Sendable, Equatable {
    package var name: String
    package var owner: uid_t
    package var ownerName: String
    package var namespaces: [NamespaceID]
    package var holderPID: pid_t
    /// The holder's start time in clock ticks since boot (/proc/PID/stat field 22).
    package var holderStartTime: UInt64
    /// Seconds since the epoch.
    package var created: Int64
    package var hostname: String?
    package var tmpfs: [TmpfsMount]
    /// Who besides the owner may enter.
    package var members: [Member]
    /// Processes started by enter and still running when this was written.
    package var sessions: [SessionRecord]
    package var binds: [BindMount] = []
    /// With a user namespace: the maps written for it.
    package var userMaps: UserMaps?
    /// With a time namespace: its offsets.
    package var monotonicOffset: Int64 = 0
    package var boottimeOffset: Int64 = 0
    /// /run/netns/NAME, when the net namespace is published there.
    package var netnsName: String?
    /// With `network` "pasta": what it forwards and the process that does.
    package var pasta: PastaRecord?
    /// Whose cgroup the group's is in (users/UID/NAME): the person it is
    /// charged to, its owner or, for a subordinate uid, that uid's owner.
    package var cgroupUser: uid_t = 0
    /// The limits on the group's cgroup, as they were set at create.
    package var limits = GroupLimits()
    /// With a lifetime: its length in seconds, and when it ends (seconds since the epoch).
    package var lifetime: Int64?
    package var expires: Int64?
    /// With an idle time: seconds without a running session before the group is destroyed.
    package var idle: Int64?
    /// This instance's random 128-bit id (RandomID), made at create; nil only in a record
    /// an earlier version wrote, until the group is taken back.
    package var groupID: String?
    /// Created with private /tmp and /var/tmp, and with a private home (its tmpfs in
    /// `tmpfs`), or with `home` (a directory of the owner's) bound onto the owner's home.
    package var privateTmp = false
    package var privateHome = false
    package var home: String?
    /// create's root: "overlay" for a copy-on-write view of the host's, with its upper layer
    /// in `persist` (a directory of the owner's) or on a tmpfs with `rootUpper`'s options.
    package var root: GroupRoot = .host
    package var persist: String?
    package var rootUpper: String?

    /// Every tmpfs the group is charged for (limits.tmpfs-per-user): its mounts and the
    /// upper layer of an overlay root (counted as a mount on "/").
    package var chargedTmpfs: [TmpfsMount] { tmpfs + (rootUpper.map { [TmpfsMount(path: "/", options: $0)] } ?? []) }

    package var kinds: Set<NamespaceKind> { Set(namespaces.map(\.kind)) }

    package init(name: String, owner: uid_t, ownerName: String, namespaces: [NamespaceID], holderPID: pid_t,
                 holderStartTime: UInt64, created: Int64, hostname: String?, tmpfs: [TmpfsMount], members: [Member],
                 sessions: [SessionRecord]) {
        self.name = name
        self.owner = owner
        self.ownerName = ownerName
        self.namespaces = namespaces
        self.holderPID = holderPID
        self.holderStartTime = holderStartTime
        self.created = created
        self.hostname = hostname
        self.tmpfs = tmpfs
        self.members = members
        self.sessions = sessions
        self.cgroupUser = owner
    }
}

/// What must be known of a session to list it, and to recognise its process
/// again after a restart.
package struct SessionRecord: Sendable, Equatable {
    package var id: UInt64
    package var pid: pid_t
    /// Clock ticks since boot, /proc/PID/stat field 22.
    package var startTime: UInt64
    package var uid: uid_t
    package var argv: [String]
    /// Seconds since the epoch.
    package var started: Int64
    package var tty: Bool
    /// Who asked for it (for the journal record of its end).
    package var callerGID: gid_t
    package var callerPID: pid_t
    /// Read back from a state file, which keeps argv cut as events do.
    package var argvTruncated = false
    /// Whose cgroup the session runs in when it is not the group's: the person it
    /// is charged to (users/UID/guest-NAME/session-ID), someone other than the
    /// group's owner. nil: the group's own (users/OWNER/group-NAME/session-ID).
    package var guestOf: uid_t?
    /// Its random 128-bit id (RandomID), made when it started; nil only in a record an
    /// earlier version wrote, until the session is taken back.
    package var sessionID: String?

    package init(id: UInt64, pid: pid_t, startTime: UInt64, uid: uid_t, argv: [String], started: Int64, tty: Bool,
                 callerGID: gid_t, callerPID: pid_t, argvTruncated: Bool = false) {
        self.id = id
        self.pid = pid
        self.startTime = startTime
        self.uid = uid
        self.argv = argv
        self.started = started
        self.tty = tty
        self.callerGID = callerGID
        self.callerPID = callerPID
        self.argvTruncated = argvTruncated
    }
}

extension GroupInfo {
    /// The optional parts of a group's description, from its record.
    func with(_ record: GroupRecord) -> GroupInfo {
        var info = self
        info.binds = record.binds.map(\.description)
        info.uidMap = record.userMaps?.uids.map(\.description)
        info.gidMap = record.userMaps?.gids.map(\.description)
        if record.kinds.contains(.time) {
            info.monotonicOffset = record.monotonicOffset
            info.boottimeOffset = record.boottimeOffset
        }
        info.netnsName = record.netnsName
        if let pasta = record.pasta {
            info.network = .pasta
            info.publish = pasta.publish
            info.pasta = pasta.pid == 0 ? nil : pasta.pid
        }
        info.limits = record.limits
        info.lifetime = record.lifetime
        info.expires = record.expires.map { Timestamp.format(secondsSinceEpoch: $0) }
        info.idle = record.idle
        info.privateTmp = record.privateTmp
        info.privateHome = record.privateHome
        info.home = record.home
        if record.root == .overlay {
            info.root = .overlay
            info.persist = record.persist
        }
        return info
    }
}

extension BindMount {
    /// As written in create's "binds": "SOURCE:TARGET" or "SOURCE:TARGET:ro".
    var description: String { "\(source):\(target)\(readOnly ? ":ro" : "")" }
}

extension TmpfsMount {
    /// As written in create's "tmpfs": "PATH", or "PATH:OPTIONS" when not the defaults.
    var description: String { options == TmpfsMount(path: path).options ? path : "\(path):\(options)" }
}
